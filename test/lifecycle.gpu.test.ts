/**
 * The engine's lifecycle in Node: the webgguf/node entry (file paths, no wiring), requests that
 * never block each other (an abandoned stream), no listeners left on a shared AbortSignal, and a
 * disposed engine that rejects every call at once.
 */
import { getEventListeners } from 'node:events';
import { relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { createEngine as createEngineIn, type Engine } from '../src/engine/engine.js';
import { createEngine } from '../src/node/index.js';
import { testGpu } from './helpers/gpu.js';
import { HAVE_MODELS, storiesPath } from './helpers/models.js';

const MESSAGES = [{ role: 'user' as const, content: 'Once upon a time' }];

describe.skipIf(!HAVE_MODELS)('engine lifecycle (Node)', () => {
  let engine: Engine;

  beforeAll(async () => {
    engine = await createEngineIn({ worker: false, cache: false, gpu: testGpu });
    await engine.load(new File([await (await import('node:fs/promises')).readFile(storiesPath('q4_0'))], 'stories260K-q4_0.gguf'));
  });
  afterAll(() => engine?.unload());

  test('webgguf/node loads a relative file path with no wiring; a missing file is a typed not-found', async () => {
    const node = await createEngine({ gpu: testGpu });
    try {
      const info = await node.load(relative(process.cwd(), storiesPath('q4_0')));
      expect(info).toMatchObject({ architecture: 'llama', fromCache: false });
      let text = '';
      for await (const piece of node.generate('Once upon a time', { maxTokens: 8, temperature: 0 })) text += piece.text;
      expect(text.length).toBeGreaterThan(0);
      await expect(node.load('no/such/model.gguf')).rejects.toMatchObject({ code: 'not-found', message: expect.stringContaining('no/such/model.gguf') });
    } finally {
      await node.dispose();
    }
  });

  test('the browser entry in Node (no Worker) says to use webgguf/node', async () => {
    await expect(createEngineIn()).rejects.toMatchObject({ code: 'worker-failed', message: expect.stringContaining('webgguf/node') });
  });

  test('a 4 MB raw prompt fails with context-overflow at once, before it is tokenized', async () => {
    const huge = 'Once upon a time '.repeat(250_000);
    const start = Date.now();
    await expect(engine.generate(huge)[Symbol.asyncIterator]().next()).rejects.toMatchObject({ code: 'context-overflow' });
    await expect(engine.completions.create({ prompt: huge })).rejects.toMatchObject({ code: 'context-overflow' });
    expect(Date.now() - start).toBeLessThan(3_000);
  });

  test('a stream whose reader stops reading without returning does not hold up later requests', async () => {
    const abandoned = engine.generate('Once upon a time', { maxTokens: 40, temperature: 0 })[Symbol.asyncIterator]();
    expect((await abandoned.next()).done).toBe(false);
    // Never read again, never returned: the next request still runs.
    const reply = await engine.chat.completions.create({ messages: MESSAGES, max_tokens: 4, temperature: 0 });
    expect(reply.choices[0]!.finish_reason).toBe('length');
  });

  test('a hundred streamed requests sharing one AbortSignal leave no listener on it', async () => {
    const controller = new AbortController();
    for (let i = 0; i < 100; i++) {
      const stream = await engine.chat.completions.create({ messages: MESSAGES, max_tokens: 1, stream: true }, { signal: controller.signal });
      for await (const chunk of stream) void chunk;
      for await (const piece of engine.generate('Once', { maxTokens: 1, signal: controller.signal })) void piece;
    }
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  test('after dispose() every call rejects at once with disposed; a request in flight ends with disposed', async () => {
    const e = await createEngineIn({ worker: false, cache: false, gpu: testGpu });
    await e.load(new File([await (await import('node:fs/promises')).readFile(storiesPath('q4_0'))], 'm.gguf'));
    const running = e.chat.completions.create({ messages: MESSAGES, max_tokens: 200, temperature: 0 });
    await new Promise((r) => setTimeout(r, 50));
    await e.dispose();
    await expect(running).rejects.toMatchObject({ code: 'disposed' });
    const start = Date.now();
    await expect(e.load('x.gguf')).rejects.toMatchObject({ code: 'disposed' });
    await expect(e.bytesOnGpu()).rejects.toMatchObject({ code: 'disposed' });
    await expect(e.cache.list()).rejects.toMatchObject({ code: 'disposed' });
    await expect(e.generate('hi')[Symbol.asyncIterator]().next()).rejects.toMatchObject({ code: 'disposed' });
    await expect(e.chat.completions.create({ messages: MESSAGES, stream: true })).rejects.toMatchObject({ code: 'disposed' });
    expect(Date.now() - start).toBeLessThan(500);
    await e.dispose(); // twice is fine
  });

  test('without the optional peer dependency webgpu, webgguf/node says to install it', async () => {
    vi.resetModules();
    vi.doMock('webgpu', () => {
      throw new Error('Cannot find package "webgpu"');
    });
    const { createEngine: fresh } = await import('../src/node/index.js');
    const e = await fresh();
    await expect(e.load(storiesPath('q4_0'))).rejects.toMatchObject({ code: 'no-webgpu', message: expect.stringContaining('npm install webgpu') });
    await e.dispose();
    vi.doUnmock('webgpu');
  });
});
