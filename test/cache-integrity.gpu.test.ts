/**
 * The weight cache's integrity through the engine: a resumed load never mixes files, a hash
 * covers every byte whichever session fetched it, a damaged cache is `cache-corrupt` and the next
 * load downloads again, deleting a loading model cancels the load, and progress is one byte count.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { serveFile } from '../scripts/serve-file.mjs';
import { memoryStore, type KeyValueStore } from '../src/cache/store.js';
import type { StoredChunk } from '../src/cache/weight-cache.js';
import { createEngine, type Engine } from '../src/engine/engine.js';
import type { LoadProgress, ModelSource } from '../src/engine/types.js';
import { WebGGUFError } from '../src/errors.js';
import { readGGUF } from '../src/gguf/gguf.js';
import { bytesSource } from '../src/io/byte-source.js';
import { testGpu } from './helpers/gpu.js';
import { HAVE_MODELS, storiesPath } from './helpers/models.js';

const MESSAGES = [{ role: 'user' as const, content: 'Once upon a time' }];

/** One URL whose file, ETag and speed a test sets; counts requests and body bytes. */
class Host {
  path = '';
  etag: string | undefined;
  lastModified: string | undefined;
  delayMs = 0;
  requests = 0;
  bytes = 0;
  private server: Server | undefined;
  url = '';

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      this.requests++;
      const write = res.write.bind(res);
      res.write = ((chunk: Uint8Array, ...rest: never[]) => {
        this.bytes += chunk.byteLength;
        return write(chunk, ...rest);
      }) as typeof res.write;
      const headers: Record<string, string> = {};
      if (this.etag) headers.ETag = this.etag;
      if (this.lastModified) headers['Last-Modified'] = this.lastModified;
      const serve = () => serveFile(req, res, this.path, { headers });
      if (this.delayMs) setTimeout(serve, this.delayMs);
      else serve();
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}/models/m.gguf`;
    return this;
  }

  stop(): Promise<void> {
    this.server?.closeAllConnections();
    return new Promise((r) => this.server?.close(() => r()) ?? r());
  }
}

describe.skipIf(!HAVE_MODELS)('weight cache integrity (engine)', () => {
  let host: Host;
  let right: string;
  let other: string;
  let sha256: string;
  let size: number;
  let expected: string;

  const make = (store: KeyValueStore | null) => createEngine({ worker: false, cache: store !== null, store: store ?? undefined, gpu: testGpu });
  const reply = async (e: Engine) => (await e.chat.completions.create({ messages: MESSAGES, temperature: 0, max_tokens: 16 })).choices[0]!.message.content!;
  const failure = async (p: Promise<unknown>) => {
    const e = await p.then(() => null, (x: unknown) => x);
    expect(e).toBeInstanceOf(WebGGUFError);
    return e as WebGGUFError;
  };
  /** Loads until `chunks` chunks have gone to the GPU, then aborts: the load must fail `aborted`. */
  const interrupted = async (e: Engine, source: ModelSource, chunks: number) => {
    const controller = new AbortController();
    let uploads = 0;
    const onProgress = (p: LoadProgress) => {
      if (p.phase === 'upload' && ++uploads === chunks) controller.abort();
    };
    expect((await failure(e.load(source, { onProgress, signal: controller.signal }))).code).toBe('aborted');
  };
  const chunkKeys = async (store: KeyValueStore) => (await store.keys()).filter((k) => k.includes('/chunk/'));

  beforeAll(async () => {
    const bytes = readFileSync(storiesPath('q4_0'));
    size = bytes.byteLength;
    sha256 = createHash('sha256').update(bytes).digest('hex');
    // Another file with the same header: every weight byte changed.
    const { dataOffset } = await readGGUF(bytesSource(new Uint8Array(bytes)));
    const changed = Buffer.from(bytes);
    for (let i = dataOffset; i < changed.length; i++) changed[i]! ^= 0x11;
    const dir = mkdtempSync(join(tmpdir(), 'webgguf-integrity-'));
    right = join(dir, 'right.gguf');
    other = join(dir, 'other.gguf');
    writeFileSync(right, bytes);
    writeFileSync(other, changed);
    host = await new Host().start();
    host.path = right;
    const e = await make(null);
    await e.load(host.url);
    expected = await reply(e);
    host.path = other;
    await e.load(host.url);
    // The other file really generates something else, so a mix would show.
    expect(await reply(e)).not.toBe(expected);
    await e.dispose();
  });
  afterAll(() => host?.stop());

  test('sha256 on resume: chunks kept from other bytes never pass the hash', async () => {
    const store = memoryStore();
    const e = await make(store);
    host.etag = '"same"';
    host.path = other;
    await interrupted(e, { url: host.url, sha256 }, 40);
    expect((await chunkKeys(store)).length).toBeGreaterThan(20);
    host.path = right; // the right file at the same URL and ETag
    const second = await e.load({ url: host.url, sha256 }).then(() => null, (x: WebGGUFError) => x);
    if (second) {
      // The kept chunks failed the hash over the whole file: everything went.
      expect(second.code).toBe('integrity');
      expect(await store.keys()).toEqual([]);
      await e.load({ url: host.url, sha256 });
    }
    expect(await reply(e)).toBe(expected);
    // What is cached now is the right model.
    host.requests = 0;
    expect((await e.load({ url: host.url, sha256 })).fromCache).toBe(true);
    expect(host.requests).toBe(0);
    expect(await reply(e)).toBe(expected);
    await e.dispose();
  });

  test('sha256 on resume with the same file: resumes (fewer bytes fetched) and passes the hash', async () => {
    const store = memoryStore();
    const e = await make(store);
    host.etag = '"same"';
    host.path = right;
    await interrupted(e, { url: host.url, sha256 }, 60);
    host.bytes = 0;
    await e.load({ url: host.url, sha256 });
    expect(host.bytes).toBeLessThan(size * 0.8);
    expect(await reply(e)).toBe(expected);
    await e.dispose();
  });

  test.each([
    ['no ETag', undefined],
    ['a weak ETag', 'W/"same"'],
  ])('%s: a changed file is downloaded from the start, never mixed with kept chunks', async (_, etag) => {
    const store = memoryStore();
    const e = await make(store);
    host.etag = etag;
    host.path = other;
    await interrupted(e, host.url, 40);
    expect((await chunkKeys(store)).length).toBeGreaterThan(20);
    host.path = right;
    host.bytes = 0;
    await e.load(host.url);
    expect(host.bytes).toBeGreaterThan(size * 0.9);
    expect(await reply(e)).toBe(expected);
    await e.dispose();
  });

  test.each([
    ['a strong ETag', '"strong"', undefined],
    ['Last-Modified (no ETag)', undefined, 'Wed, 21 Oct 2015 07:28:00 GMT'],
  ])('%s: the load resumes after the kept chunks', async (_, etag, lastModified) => {
    const e = await make(memoryStore());
    host.etag = etag;
    host.lastModified = lastModified;
    host.path = right;
    try {
      await interrupted(e, host.url, 60);
      host.bytes = 0;
      await e.load(host.url);
      expect(host.bytes).toBeLessThan(size * 0.8);
      expect(await reply(e)).toBe(expected);
    } finally {
      host.lastModified = undefined;
      await e.dispose();
    }
  });

  test.each([
    ['a flipped bit', (c: StoredChunk) => void (c.words[c.words.length >> 1]! ^= 1 << 9)],
    ['a string where the words were', (c: StoredChunk) => void Object.assign(c, { words: 'words' })],
  ])('a cached chunk with %s: cache-corrupt, deleted, and the next load downloads it again', async (_, tamper) => {
    const store = memoryStore();
    const e = await make(store);
    host.etag = '"v1"';
    host.path = right;
    await e.load(host.url);
    const keys = await chunkKeys(store);
    tamper((await store.get<StoredChunk>(keys[keys.length >> 1]!))!);
    const broken = await failure(e.load(host.url));
    expect(broken.code).toBe('cache-corrupt');
    expect(broken.message).toContain(host.url);
    expect(await store.keys()).toEqual([]);
    expect(await e.cache.list()).toEqual([]);
    host.requests = 0;
    expect((await e.load(host.url)).fromCache).toBe(false);
    expect(host.requests).toBeGreaterThan(0);
    expect(await reply(e)).toBe(expected);
    await e.dispose();
  });

  test('deleting a model while it loads cancels the load and leaves nothing listed', async () => {
    const store = memoryStore();
    const e = await make(store);
    host.etag = '"v1"';
    host.path = right;
    host.delayMs = 20;
    let deleted: Promise<void> | undefined;
    const load = e.load(host.url, {
      onProgress: (p) => {
        if (p.phase === 'upload' && !deleted) deleted = e.cache.delete(host.url);
      },
    });
    try {
      expect((await failure(load)).code).toBe('aborted');
      await deleted;
      expect(await e.cache.list()).toEqual([]);
      expect(await store.keys()).toEqual([]);
      // And the model loads again afterwards.
      host.delayMs = 0;
      await e.load(host.url);
      expect(await reply(e)).toBe(expected);
    } finally {
      host.delayMs = 0;
      await e.dispose();
    }
  });

  /** The one progress shape: bytes over the whole load, never back, never past, ending at total. */
  const checkProgress = (events: LoadProgress[]) => {
    expect(events.length).toBeGreaterThan(3);
    const total = events[0]!.total;
    expect(total).toBeGreaterThan(0);
    let last = 0;
    for (const p of events) {
      expect(p.total).toBe(total);
      expect(p.loaded).toBeGreaterThanOrEqual(last);
      expect(p.loaded).toBeLessThanOrEqual(total);
      last = p.loaded;
    }
    expect(events.at(-1)).toEqual({ phase: 'compile', loaded: total, total });
    // A true fraction: halfway through the events, the load is neither done nor at its start.
    const mid = events[events.length >> 1]!;
    expect(mid.loaded / total).toBeGreaterThan(0.05);
    expect(mid.loaded / total).toBeLessThan(1);
    return events;
  };

  test('progress: fresh, resumed and cached loads each count bytes up to their total', async () => {
    const e = await make(memoryStore());
    host.etag = '"v1"';
    host.path = right;
    await interrupted(e, host.url, 50);
    const resumed: LoadProgress[] = [];
    await e.load(host.url, { onProgress: (p) => resumed.push(p) });
    checkProgress(resumed);
    expect(new Set(resumed.map((p) => p.phase))).toEqual(new Set(['download', 'cache', 'upload', 'compile']));
    const cached: LoadProgress[] = [];
    await e.load(host.url, { onProgress: (p) => cached.push(p) });
    checkProgress(cached);
    expect(new Set(cached.map((p) => p.phase))).toEqual(new Set(['cache', 'upload', 'compile']));
    expect(cached[0]!.total).toBe(resumed[0]!.total);
    const fresh: LoadProgress[] = [];
    await (await make(null)).load({ url: host.url, sha256 }, { onProgress: (p) => fresh.push(p) });
    checkProgress(fresh);
    expect(fresh[0]!.total).toBe(resumed[0]!.total);
    expect(new Set(fresh.map((p) => p.phase))).toEqual(new Set(['download', 'upload', 'compile']));
    await e.dispose();
  });
});
