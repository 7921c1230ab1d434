/**
 * The weight cache's integrity without a GPU: every record read back is checked, tampering is a
 * typed `cache-corrupt` that deletes the model, keys of one model never cover another's, File ids
 * see content, and a SHA-256 carried across sessions equals the one-shot hash.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, test } from 'vitest';
import { checksumWords } from '../src/cache/checksum.js';
import { memoryStore, type KeyValueStore } from '../src/cache/store.js';
import { WeightCache, type StoredChunk } from '../src/cache/weight-cache.js';
import { sourceId } from '../src/engine/core.js';
import { WebGGUFError } from '../src/errors.js';
import { readGGUF } from '../src/gguf/gguf.js';
import { bytesSource } from '../src/io/byte-source.js';
import { isHashCheckpoint, sha256Source, type HashCheckpoint } from '../src/io/sha256-source.js';
import { readConfig } from '../src/model/config.js';
import { planWeights, repackWeights, type WeightChunk } from '../src/model/weights.js';
import { HAVE_MODELS, storiesPath } from './helpers/models.js';

const ID = 'http://host/models/m';

async function corruptCode(p: Promise<unknown>): Promise<string> {
  const e = await p.then(() => null, (x: unknown) => x);
  expect(e).toBeInstanceOf(WebGGUFError);
  return (e as WebGGUFError).code;
}

async function drain<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe.skipIf(!HAVE_MODELS)('weight cache integrity', () => {
  let bytes: Uint8Array<ArrayBuffer>;
  let header: Uint8Array;
  let chunks: WeightChunk[];

  beforeAll(async () => {
    bytes = new Uint8Array(readFileSync(storiesPath('q4_0')));
    const file = await readGGUF(bytesSource(bytes));
    header = file.header;
    chunks = await drain(repackWeights(file, planWeights(file, readConfig(file))));
  });

  /** A complete model `id` in a fresh store, as a load writes it. */
  async function cached(id = ID, store: KeyValueStore = memoryStore()) {
    const cache = new WeightCache(store);
    await cache.start(id, header.slice(), '"v1" 1', bytes.byteLength); // its own copy: tests edit it in place
    const checks: number[] = [];
    for (const [n, c] of chunks.entries()) checks.push(await cache.putChunk(id, n, { ...c, words: c.words.slice() }, 0));
    const storedBytes = chunks.reduce((s, c) => s + c.words.byteLength, 0);
    await cache.finish({ id, source: id, fileBytes: bytes.byteLength, storedBytes, architecture: 'llama', createdAt: 1 }, header, checks);
    return { cache, store };
  }

  /** Reads the whole model back as a cached load does. */
  async function readBack(cache: WeightCache, id = ID) {
    const m = await cache.manifest(id);
    if (!m) throw new Error('not listed');
    await cache.header(m);
    return drain(cache.chunks(id, 0, m.chunks, m));
  }

  const keyOf = async (store: KeyValueStore, kind: string, n?: number) =>
    (await store.keys()).find((k) => k.includes(`/${kind}/`) && (n === undefined || k.endsWith(`/${n}`)))!;

  test('an intact model reads back word for word', async () => {
    const { cache } = await cached();
    const back = await readBack(cache);
    expect(back.map((c) => [c.tensor, c.wordOffset, c.words])).toEqual(chunks.map((c) => [c.tensor, c.wordOffset, c.words]));
    expect((await cache.list()).map((e) => e.id)).toEqual([ID]);
  });

  const tamperings: [string, (store: KeyValueStore) => Promise<void>][] = [
    ['a flipped bit in a chunk', async (store) => {
      const c = (await store.get<StoredChunk>(await keyOf(store, 'chunk', 3)))!;
      c.words[c.words.length >> 1]! ^= 1 << 7;
    }],
    ['a truncated chunk', async (store) => {
      const k = await keyOf(store, 'chunk', 5);
      const c = (await store.get<StoredChunk>(k))!;
      await store.setMany([[k, { ...c, words: c.words.slice(0, c.words.length - 1) }]]);
    }],
    ['a chunk pointed at another tensor', async (store) => {
      const k = await keyOf(store, 'chunk', 2);
      const c = (await store.get<StoredChunk>(k))!;
      await store.setMany([[k, { ...c, tensor: chunks.find((x) => x.tensor !== c.tensor)!.tensor }]]);
    }],
    ['a chunk at another offset', async (store) => {
      const k = await keyOf(store, 'chunk', 2);
      const c = (await store.get<StoredChunk>(k))!;
      await store.setMany([[k, { ...c, wordOffset: c.wordOffset + 4 }]]);
    }],
    ['two chunks swapped', async (store) => {
      const [a, b] = [await keyOf(store, 'chunk', 1), await keyOf(store, 'chunk', 2)];
      const [ca, cb] = [await store.get(a), await store.get(b)];
      await store.setMany([[a, cb], [b, ca]]);
    }],
    ['a shortened manifest', async (store) => {
      const k = await keyOf(store, 'manifest');
      const m = (await store.get<{ chunks: number; chunkChecks: number[] }>(k))!;
      await store.setMany([[k, { ...m, chunks: m.chunks - 1, chunkChecks: m.chunkChecks.slice(0, -1) }]]);
    }],
    ['a manifest with its check recomputed over fewer chunks is still not the stored list', async (store) => {
      // Deleting the last chunk and shortening the list leaves the manifest's check wrong.
      const k = await keyOf(store, 'manifest');
      const m = (await store.get<{ chunks: number }>(k))!;
      await store.setMany([[k, { ...m, chunks: m.chunks - 1 }]]);
    }],
    ['an edited vocabulary token in the header', async (store) => {
      const k = await keyOf(store, 'header');
      const h = (await store.get<{ bytes: Uint8Array }>(k))!;
      const at = Buffer.from(h.bytes).indexOf('<unk>');
      expect(at).toBeGreaterThan(0);
      h.bytes[at + 1] = 'x'.charCodeAt(0);
    }],
    ['an edited context_length', async (store) => {
      const k = await keyOf(store, 'header');
      const h = (await store.get<{ bytes: Uint8Array }>(k))!;
      const name = Buffer.from(h.bytes).indexOf('llama.context_length');
      // The key, then its u32 type, then the value.
      const value = name + 'llama.context_length'.length + 4;
      new DataView(h.bytes.buffer, h.bytes.byteOffset).setUint32(value, 64, true);
    }],
    ['a deleted header', async (store) => store.delMany([await keyOf(store, 'header')])],
    ['a deleted chunk', async (store) => store.delMany([await keyOf(store, 'chunk', 4)])],
    ['a string where the words were', async (store) => {
      const k = await keyOf(store, 'chunk', 0);
      await store.setMany([[k, { ...(await store.get<StoredChunk>(k))!, words: 'not words' }]]);
    }],
    ['a number where the chunk was', async (store) => store.setMany([[await keyOf(store, 'chunk', 1), 42]])],
    ['a string where the manifest was', async (store) => store.setMany([[await keyOf(store, 'manifest'), 'manifest']])],
    ['a string where the header bytes were', async (store) => {
      const k = await keyOf(store, 'header');
      await store.setMany([[k, { ...(await store.get<object>(k))!, bytes: 'GGUF' }]]);
    }],
  ];

  test.each(tamperings)('%s: cache-corrupt, and nothing of the model is left', async (_, tamper) => {
    const { cache, store } = await cached();
    await cached('http://host/models/other', store);
    await tamper(store);
    expect(await corruptCode(readBack(cache))).toBe('cache-corrupt');
    expect((await store.keys()).filter((k) => k.includes(encodeURIComponent(ID) + '/') || k.endsWith(encodeURIComponent(ID)))).toEqual([]);
    // The other model is untouched.
    expect((await readBack(cache, 'http://host/models/other')).length).toBe(chunks.length);
    expect((await cache.list()).map((e) => e.id)).toEqual(['http://host/models/other']);
  });

  test('the error names the source to load again', async () => {
    const { cache, store } = await cached();
    const c = (await store.get<StoredChunk>(await keyOf(store, 'chunk', 0)))!;
    c.words[0]! ^= 1;
    const e = await readBack(cache).catch((x: WebGGUFError) => x);
    expect((e as WebGGUFError).message).toMatch(/damaged.*chunk 0.*deleted.*load it from http:\/\/host\/models\/m again/);
  });

  test('a damaged manifest is not listed, and is deleted', async () => {
    const { cache, store } = await cached();
    const k = await keyOf(store, 'manifest');
    await store.setMany([[k, { ...(await store.get<object>(k))!, fileBytes: 1 }]]);
    expect(await cache.list()).toEqual([]);
    expect(await store.keys()).toEqual([]);
  });

  test('no id is a key prefix of another: deleting …/m keeps …/m/v2 and …/m2', async () => {
    const store = memoryStore();
    const { cache } = await cached(ID, store);
    await cached(`${ID}/v2`, store);
    await cached(`${ID}2`, store);
    await cache.delete(ID);
    expect((await cache.list()).map((e) => e.id).sort()).toEqual([`${ID}/v2`, `${ID}2`]);
    expect((await readBack(cache, `${ID}/v2`)).length).toBe(chunks.length);
    expect((await readBack(cache, `${ID}2`)).length).toBe(chunks.length);
  });

  test('a partial load with damaged records is dropped, not resumed', async () => {
    const store = memoryStore();
    const cache = new WeightCache(store);
    await cache.start(ID, header, '"v1" 1', bytes.byteLength);
    await cache.putChunk(ID, 0, chunks[0]!, 100);
    expect(await cache.partial(ID)).toMatchObject({ chunks: 1, fileAt: 100, proof: '"v1" 1' });
    const k = await keyOf(store, 'progress');
    await store.setMany([[k, { chunks: 'many' }]]);
    expect(await cache.partial(ID)).toBeUndefined();
    expect(await store.keys()).toEqual([]);
  });

  test('two Files with the same name, size and date but other bytes get different ids', async () => {
    const other = bytes.slice();
    other[other.length - 100]! ^= 0xff; // a weight, far from the header
    const a = new File([bytes], 'm.gguf', { lastModified: 1000 });
    const b = new File([other], 'm.gguf', { lastModified: 1000 });
    const [ia, ib, ia2] = [await sourceId(a), await sourceId(b), await sourceId(new File([bytes], 'm.gguf', { lastModified: 1000 }))];
    expect(ia).toMatch(/^file:m\.gguf:/);
    expect(ia).not.toBe(ib);
    expect(ia2).toBe(ia);
  });

  test('the checksum sees one flipped bit anywhere and the place of equal words', () => {
    const words = new Uint32Array(4096).map((_, i) => (i * 2654435761) >>> 0);
    const base = checksumWords('x', words);
    for (let i = 0; i < words.length; i += 97) {
      for (const bit of [0, 13, 31]) {
        const w = words.slice();
        w[i]! ^= 1 << bit;
        expect(checksumWords('x', w)).not.toBe(base);
      }
    }
    // Two flips of the same high bit (a multiply alone would let them cancel).
    const twice = words.slice();
    twice[10]! ^= 1 << 31;
    twice[20]! ^= 1 << 31;
    expect(checksumWords('x', twice)).not.toBe(base);
    expect(checksumWords('y', words)).not.toBe(base);
    expect(checksumWords('x', words.subarray(0, 4095))).not.toBe(base);
  });
});

describe('SHA-256 across sessions', () => {
  const data = new Uint8Array(300_001).map((_, i) => (i * 31 + (i >> 8)) & 0xff);
  const expected = createHash('sha256').update(data).digest('hex');

  test('a checkpoint stored as plain data and resumed in a new session gives the one-shot hash', async () => {
    const reads = [[0, 1000], [1000, 63], [1063, 70_000], [71_063, 5], [71_068, 100_000]] as const;
    for (let stop = 1; stop < reads.length; stop++) {
      const first = sha256Source(bytesSource(data));
      for (const [o, l] of reads.slice(0, stop)) await first.read(o, l);
      const saved: HashCheckpoint = structuredClone(first.checkpoint());
      expect(isHashCheckpoint(saved)).toBe(true);
      expect(saved.at).toBe(reads[stop - 1]![0]);
      const second = sha256Source(bytesSource(data));
      await second.read(0, 10); // the header, read again by the new session
      second.resume(saved);
      for (const [o, l] of reads.slice(stop - 1)) await second.read(o, l);
      expect(await second.finish()).toBe(expected);
    }
  });

  test('a checkpoint is only taken where no earlier read reaches past it', async () => {
    const s = sha256Source(bytesSource(data));
    await s.read(0, 64 << 10); // a header window reaching into the data
    await s.read(2000, 5000); // the first tensor, inside the window
    expect(s.checkpoint().at).toBe(0);
    await s.read(70_000, 10);
    expect(s.checkpoint().at).toBe(70_000);
  });

  test('after resuming, bytes the earlier session hashed cannot be read again unseen', async () => {
    const first = sha256Source(bytesSource(data));
    await first.read(0, 5000);
    await first.read(5000, 5000);
    const s = sha256Source(bytesSource(data));
    s.resume(structuredClone(first.checkpoint()));
    const e = await s.read(100, 10).catch((x: WebGGUFError) => x);
    expect((e as WebGGUFError).code).toBe('integrity');
  });
});
