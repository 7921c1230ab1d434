/** Loads from a misbehaving server: each case is a typed error or a correct load with exact bytes. */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { memoryStore } from '../src/cache/store.js';
import { createEngine, type Engine } from '../src/engine/engine.js';
import { WebGGUFError } from '../src/errors.js';
import { testGpu } from './helpers/gpu.js';
import { nodeGpuContext } from '../src/node/gpu.js';
import { ModelServer } from './helpers/model-server.js';
import { HAVE_MODELS, storiesPath } from './helpers/models.js';

const MODEL = 'stories260K/stories260K-q4_0.gguf';
const SIZE = 260_672;
const MESSAGES = [{ role: 'user' as const, content: 'Once upon a time' }];

describe.skipIf(!HAVE_MODELS)('broken downloads', () => {
  let server: ModelServer;
  let expected: string;
  const engine = (stallTimeoutMs?: number) => createEngine({ worker: false, cache: true, store: memoryStore(), gpu: testGpu, stallTimeoutMs });
  const reply = async (e: Engine) => (await e.chat.completions.create({ messages: MESSAGES, temperature: 0, max_tokens: 24 })).choices[0]!.message.content!;
  const failure = async (p: Promise<unknown>) => {
    const e = await p.then(() => null, (x: unknown) => x);
    expect(e).toBeInstanceOf(WebGGUFError);
    return e as WebGGUFError;
  };

  beforeAll(async () => {
    server = await new ModelServer().start();
    const e = await engine();
    await e.load(server.url(MODEL));
    expected = await reply(e);
    await e.unload();
  });
  afterAll(() => server?.stop());

  test('404 and 500 are network errors naming the status', async () => {
    for (const status of [404, 500]) {
      server.reset();
      server.status = status;
      const e = await failure((await engine()).load(server.url(MODEL)));
      expect(e.code).toBe('network');
      expect(e.message).toContain(`HTTP ${status}`);
    }
  });

  test('an HTML error page instead of the model', async () => {
    server.reset();
    server.html = true;
    const e = await failure((await engine()).load(server.url(MODEL)));
    expect(e.code).toBe('network');
    expect(e.message).toMatch(/web page/);
  });

  test('a server that ignores Range: one streamed response, the exact bytes, the same output', async () => {
    server.reset();
    server.ignoreRange = true;
    const e = await engine();
    await e.load(server.url(MODEL));
    expect(server.requests).toBe(1);
    expect(server.bytes).toBe(SIZE);
    expect(await reply(e)).toBe(expected);
    await e.unload();
  });

  test('content that changes between requests fails, and the next load starts over on the new version', async () => {
    server.reset();
    server.changeAfterRequests = 3;
    const store = memoryStore();
    const first = await createEngine({ worker: false, cache: true, store, gpu: testGpu });
    const e = await failure(first.load(server.url(MODEL)));
    expect(e.code).toBe('network');
    expect(e.message).toMatch(/changed on the server/);
    // The server now serves "v2" consistently: the stored chunks of "v1" must not be reused.
    server.requests = 0;
    server.bytes = 0;
    server.changeAfterRequests = undefined;
    await first.load(server.url(MODEL));
    expect(server.bytes).toBeGreaterThanOrEqual(SIZE - 10_000);
    expect(await reply(first)).toBe(expected);
    await first.unload();
  });

  test('a stalled server fails with a network error; a slow one loads the exact bytes', async () => {
    server.reset();
    server.delayMs = 400;
    const stalled = await failure((await engine(150)).load(server.url(MODEL)));
    expect(stalled.code).toBe('network');
    server.reset();
    server.delayMs = 30;
    const slow = await engine(2000);
    await slow.load(server.url(MODEL));
    expect(await reply(slow)).toBe(expected);
    await slow.unload();
  });

  test('sha256: a matching hash loads; a mismatch is a typed error and keeps nothing', async () => {
    const sha256 = createHash('sha256').update(readFileSync(storiesPath('q4_0'))).digest('hex');
    const store = memoryStore();
    const e = await createEngine({ worker: false, cache: true, store, gpu: testGpu });
    server.reset();
    await e.load({ url: server.url(MODEL), sha256 });
    expect(await reply(e)).toBe(expected);
    expect((await e.cache.list()).map((m) => m.id)).toEqual([`${server.url(MODEL)}#sha256=${sha256}`]);

    const wrong = sha256.replace(/^./, (c) => (c === '0' ? '1' : '0'));
    const failed = await failure(e.load({ url: server.url(MODEL), sha256: wrong }));
    expect(failed.code).toBe('integrity');
    const keys = await store.keys();
    expect(keys.some((k) => k.includes(wrong))).toBe(false);
    expect((await e.cache.list()).map((m) => m.id)).toEqual([`${server.url(MODEL)}#sha256=${sha256}`]);
    await e.unload();
  });

  test('the fit check refuses a model too large for a limited device before any weight is fetched', async () => {
    const small = { maxStorageBufferBindingSize: 64 << 10, maxBufferSize: 64 << 10 };
    const limited = await nodeGpuContext({ limitOverrides: small });
    const store = memoryStore();
    const e = await createEngine({ worker: false, cache: true, store, gpu: async () => limited });
    server.reset();
    const refused = await failure(e.load(server.url(MODEL)));
    expect(refused.code).toBe('insufficient-memory');
    expect(refused.message).toMatch(/needs .* MiB in one buffer/);
    // Only the one-byte probe and the header window: no range request for weights.
    expect(server.requests).toBe(2);
    expect(await store.keys()).toEqual([]);
    limited.device.destroy();
  });
});
