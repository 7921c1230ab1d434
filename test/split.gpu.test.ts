/** Split GGUF models and download options through the engine: the same tokens as the whole file. */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { memoryStore } from '../src/cache/store.js';
import { createEngine, type Engine } from '../src/engine/engine.js';
import { readGGUF } from '../src/gguf/gguf.js';
import { bytesSource } from '../src/io/byte-source.js';
import { testGpu } from './helpers/gpu.js';
import { ModelServer } from './helpers/model-server.js';
import { HAVE_MODELS, storiesPath } from './helpers/models.js';
import { splitGGUF, writeParts } from './helpers/split-gguf.js';

const MODEL = 'stories260K/stories260K-q4_0.gguf';

describe.skipIf(!HAVE_MODELS)('split models and download options through the engine', () => {
  let server: ModelServer;
  let expected: number[];
  let parts: Uint8Array<ArrayBuffer>[];
  let urls: string[];
  const engine = (store = memoryStore()) => createEngine({ worker: false, cache: true, store, gpu: testGpu });
  const tokens = async (e: Engine) => {
    const out: number[] = [];
    for await (const t of e.generate('Once upon a time', { temperature: 0, maxTokens: 24 })) out.push(t.token);
    return out;
  };

  beforeAll(async () => {
    server = await new ModelServer().start();
    const e = await engine();
    await e.load(server.url(MODEL));
    expected = await tokens(e);
    await e.dispose();
    const q4 = new Uint8Array(readFileSync(storiesPath('q4_0')));
    parts = await splitGGUF(q4, Math.ceil((await readGGUF(bytesSource(q4))).tensors.length / 3));
    const { names, paths } = writeParts(parts, 'stories260K-q4_0');
    names.forEach((n, i) => server.files.set(`split/${n}`, paths[i]!));
    urls = names.map((n) => server.url(`split/${n}`));
  });
  afterAll(() => server?.stop());

  test('the first part\'s URL generates exactly the whole file\'s tokens; the next load comes from the cache', async () => {
    expect(expected.length).toBe(24);
    const store = memoryStore();
    const e = await engine(store);
    server.reset();
    const info = await e.load(urls[0]!);
    expect(info.fromCache).toBe(false);
    expect(new Set(server.requestHeaders.map((h) => h.host)).size).toBe(1);
    expect(server.maxInFlight).toBeLessThanOrEqual(4);
    expect(await tokens(e)).toEqual(expected);
    server.reset();
    const again = await (await engine(store)).load(urls[0]!);
    expect(again.fromCache).toBe(true);
    expect(server.requests).toBe(0);
    await e.dispose();
  });

  test('the parts as Files, in any order, generate the same tokens; sha256 (one file\'s hash) is refused for a split model', async () => {
    const e = await engine();
    const refused = await e.load({ url: urls[0]!, sha256: '0'.repeat(64) }).then(() => null, (x: { code?: string }) => x);
    expect(refused?.code).toBe('invalid-argument');
    await e.load([parts[2]!, parts[0]!, parts[1]!].map((p, i) => new File([p], `part${i}.gguf`)));
    expect(await tokens(e)).toEqual(expected);
    await e.dispose();
  });

  test('engine.load passes headers, or a caller\'s fetch, to every request of a gated model', async () => {
    server.reset();
    server.authorization = 'Bearer hf_gated';
    const e = await engine();
    expect(await e.load(server.url(MODEL)).then(() => 'loaded', (x: Error) => x.message)).toContain('HTTP 401');
    await e.load(urls[0]!, { headers: { Authorization: 'Bearer hf_gated' } });
    expect(await tokens(e)).toEqual(expected);
    let calls = 0;
    const gated: typeof fetch = (input, init) => {
      calls++;
      const headers = new Headers(init?.headers);
      headers.set('Authorization', 'Bearer hf_gated');
      return fetch(input, { ...init, headers });
    };
    await (await engine()).load(server.url(MODEL), { fetch: gated });
    expect(calls).toBeGreaterThan(1);
    expect(server.requestHeaders.every((h) => h.authorization === 'Bearer hf_gated' || h.authorization === undefined)).toBe(true);
    await e.dispose();
  });
});
