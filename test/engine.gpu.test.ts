/** The engine in-thread (worker: false) in Node, with an in-memory weight cache. */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { memoryStore, type KeyValueStore } from '../src/cache/store.js';
import { createEngine, type Engine } from '../src/engine/engine.js';
import type { ChatCompletionChunk } from '../src/engine/types.js';
import { WebGGUFError } from '../src/errors.js';
import { nodeGpuContext } from '../src/node/gpu.js';
import type { GpuContext } from '../src/gpu/context.js';
import { testGpu } from './helpers/gpu.js';
import { ModelServer } from './helpers/model-server.js';
import { HAVE_MODELS } from './helpers/models.js';

const MODEL = 'stories260K/stories260K-q4_0.gguf';
const MESSAGES = [{ role: 'user' as const, content: 'Once upon a time, a little girl' }];

describe.skipIf(!HAVE_MODELS)('engine (in-thread)', () => {
  let server: ModelServer;
  let store: KeyValueStore;
  let engine: Engine;
  const make = (s: KeyValueStore | null = store) =>
    createEngine({ worker: false, cache: s !== null, store: s ?? undefined, gpu: testGpu });

  beforeAll(async () => {
    server = await new ModelServer().start();
    store = memoryStore();
    engine = await make();
  });
  afterAll(async () => {
    await engine?.unload();
    await server?.stop();
  });

  test('load reports model info and progress; a second load comes from the cache with no requests', async () => {
    const phases = new Set<string>();
    const info = await engine.load(server.url(MODEL), { onProgress: (p) => phases.add(p.phase) });
    expect(info).toMatchObject({ architecture: 'llama', contextLength: 512, fromCache: false, quantTypes: expect.arrayContaining(['Q4_0']) });
    expect(info.parameters).toBeGreaterThan(250_000);
    expect(info.bytesOnGpu).toBeGreaterThan(0);
    expect([...phases]).toEqual(expect.arrayContaining(['download', 'upload', 'compile']));
    expect((await engine.cache.list()).map((m) => m.id)).toEqual([server.url(MODEL)]);

    server.reset();
    const again = await engine.load(server.url(MODEL));
    expect(again.fromCache).toBe(true);
    expect(server.requests).toBe(0);
  });

  test('streamed deltas concatenate to the non-streamed reply; usage and finish_reason', async () => {
    const full = await engine.chat.completions.create({ messages: MESSAGES, temperature: 0, max_tokens: 40 });
    expect(full.object).toBe('chat.completion');
    expect(full.choices[0]!.finish_reason).toBe('length');
    expect(full.usage.completion_tokens).toBe(40);
    const chunks: ChatCompletionChunk[] = [];
    const request = { messages: MESSAGES, temperature: 0, max_tokens: 40, stream: true, stream_options: { include_usage: true } } as const;
    for await (const c of await engine.chat.completions.create(request)) chunks.push(c);
    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
    const usageChunk = chunks.pop()!;
    expect(chunks.map((c) => c.choices[0]!.delta.content ?? '').join('')).toBe(full.choices[0]!.message.content);
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe('length');
    expect(usageChunk.usage).toMatchObject({ completion_tokens: 40, prompt_tokens: full.usage.prompt_tokens });
  });

  test('abort mid-stream stops within one token, and the engine keeps working', async () => {
    const controller = new AbortController();
    let contentChunks = 0;
    let finish: string | null = null;
    for await (const c of await engine.chat.completions.create({ messages: MESSAGES, temperature: 0, max_tokens: 200, stream: true }, { signal: controller.signal })) {
      if (c.choices[0]!.delta.content) contentChunks++;
      if (contentChunks === 5) controller.abort();
      finish = c.choices[0]!.finish_reason ?? finish;
    }
    expect(finish).toBe('abort');
    expect(contentChunks).toBeLessThanOrEqual(6);
    const after = await engine.chat.completions.create({ messages: MESSAGES, temperature: 0, max_tokens: 10 });
    expect(after.choices[0]!.finish_reason).toBe('length');
  });

  test('a follow-up turn reuses the cached prefix and answers as a fresh engine would', async () => {
    const first = await engine.chat.completions.create({ messages: MESSAGES, temperature: 0, max_tokens: 20 });
    const followUp = [...MESSAGES, first.choices[0]!.message, { role: 'user' as const, content: 'What happened next?' }];
    const second = await engine.chat.completions.create({ messages: followUp, temperature: 0, max_tokens: 20 });
    expect(second.usage.prompt_tokens_details.cached_tokens).toBeGreaterThan(first.usage.prompt_tokens / 2);

    const fresh = await make(null);
    await fresh.load(server.url(MODEL));
    const expected = await fresh.chat.completions.create({ messages: followUp, temperature: 0, max_tokens: 20 });
    expect(expected.usage.prompt_tokens_details.cached_tokens).toBe(0);
    expect(second.choices[0]!.message.content).toBe(expected.choices[0]!.message.content);
    await fresh.dispose();
  });

  test('concurrent requests queue and each equals its sequential result', async () => {
    const prompts = ['The cat', 'A big dog', 'Lily had a', 'One day, Tom', 'The sun was'];
    const sequential: string[] = [];
    for (const p of prompts) sequential.push((await engine.chat.completions.create({ messages: [{ role: 'user', content: p }], temperature: 0, max_tokens: 15 })).choices[0]!.message.content!);
    const concurrent = await Promise.all(prompts.map((p) => engine.chat.completions.create({ messages: [{ role: 'user', content: p }], temperature: 0, max_tokens: 15 })));
    expect(concurrent.map((c) => c.choices[0]!.message.content)).toEqual(sequential);
  });

  test('stop strings end the reply before the stop text', async () => {
    const full = (await engine.chat.completions.create({ messages: MESSAGES, temperature: 0, max_tokens: 60 })).choices[0]!.message.content!;
    const word = full.split(' ').filter((w) => w.length > 3)[3]!;
    const stopped = await engine.chat.completions.create({ messages: MESSAGES, temperature: 0, max_tokens: 60, stop: [word] });
    expect(stopped.choices[0]!.finish_reason).toBe('stop');
    expect(stopped.choices[0]!.message.content).toBe(full.slice(0, full.indexOf(word)));
  });

  test('bad requests get typed errors', async () => {
    const bad = async (req: object, code: string) => {
      const e = await engine.chat.completions.create({ messages: MESSAGES, ...req } as never).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(WebGGUFError);
      expect((e as WebGGUFError).code).toBe(code);
    };
    await bad({ max_tokens: -1 }, 'invalid-argument');
    await bad({ max_tokens: 1.5 }, 'invalid-argument');
    await bad({ temperature: Number.NaN }, 'invalid-argument');
    await bad({ messages: [{ role: 'wizard', content: 'x' }] }, 'invalid-argument');
    await bad({ messages: [] }, 'invalid-argument');
    await bad({ messages: [{ role: 'user', content: 'the end '.repeat(400) }] }, 'context-overflow');
  });

  test('an interrupted download fails with a typed error and the next load resumes', async () => {
    // What a whole load fetches, for comparison.
    const whole = await make(memoryStore());
    server.reset();
    await whole.load(server.url(MODEL));
    const wholeBytes = server.bytes;
    await whole.unload();

    const resumeStore = memoryStore();
    const e1 = await make(resumeStore);
    server.reset();
    server.dropAfterBytes = 120_000;
    const failure = await e1.load(server.url(MODEL)).catch((x: unknown) => x);
    expect(failure).toBeInstanceOf(WebGGUFError);
    expect((failure as WebGGUFError).code).toBe('network');
    expect(await e1.cache.list()).toEqual([]);
    const firstBytes = server.bytes;

    server.reset();
    const info = await e1.load(server.url(MODEL));
    expect(info.fromCache).toBe(false);
    // The first attempt stored the chunks it completed (about 40 kB of its 120 kB went to whole
    // chunks; the rest was the header and the chunk cut short); those are not fetched again.
    expect(firstBytes).toBe(120_000);
    expect(server.bytes).toBeLessThan(wholeBytes - 25_000);
    const resumed = await e1.chat.completions.create({ messages: MESSAGES, temperature: 0, max_tokens: 30 });
    const reference = await engine.chat.completions.create({ messages: MESSAGES, temperature: 0, max_tokens: 30 });
    expect(resumed.choices[0]!.message.content).toBe(reference.choices[0]!.message.content);
    await e1.unload();
  });

  test('unload frees the model\'s GPU memory', async () => {
    const e2 = await make(null);
    await e2.load(server.url(MODEL));
    expect(await e2.bytesOnGpu()).toBeGreaterThan(200_000);
    await e2.unload();
    expect(await e2.bytesOnGpu()).toBe(0);
    await expect(e2.chat.completions.create({ messages: MESSAGES })).rejects.toThrow(/no model is loaded/);
  });

  test('a device lost mid-generation gives a typed error; loading again recovers from the cache', async () => {
    const devices: GpuContext[] = [];
    const lossStore = memoryStore();
    const e3 = await createEngine({ worker: false, store: lossStore, cache: true, gpu: async () => {
      const ctx = await nodeGpuContext();
      devices.push(ctx);
      return ctx;
    } });
    await e3.load(server.url(MODEL));
    let received = 0;
    const failure = await (async () => {
      for await (const t of e3.generate('Once upon a time', { temperature: 0, maxTokens: 200 })) {
        if (++received === 3) devices[0]!.device.destroy();
        void t;
      }
    })().catch((x: unknown) => x);
    expect(failure).toBeInstanceOf(WebGGUFError);
    expect((failure as WebGGUFError).code).toBe('device-lost');
    expect(received).toBeLessThan(10);
    await expect(e3.chat.completions.create({ messages: MESSAGES })).rejects.toMatchObject({ code: 'device-lost' });

    server.reset();
    const info = await e3.load(server.url(MODEL));
    expect(info.fromCache).toBe(true);
    expect(server.requests).toBe(0);
    expect(devices).toHaveLength(2);
    const after = await e3.chat.completions.create({ messages: MESSAGES, temperature: 0, max_tokens: 10 });
    expect(after.choices[0]!.finish_reason).toBe('length');
    await e3.dispose();
  });

  test('an uncaptured WebGPU error on the engine\'s device surfaces as a typed error with the next request', async () => {
    let ctx: GpuContext | undefined;
    const e4 = await createEngine({ worker: false, cache: false, gpu: async () => (ctx = await nodeGpuContext()) });
    await e4.load(server.url(MODEL));
    // An invalid buffer (MAP_READ with STORAGE) raises a validation error nobody scopes.
    ctx!.device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.STORAGE });
    await ctx!.device.queue.onSubmittedWorkDone();
    await new Promise((r) => setTimeout(r, 50));
    await expect(e4.chat.completions.create({ messages: MESSAGES, max_tokens: 4 })).rejects.toMatchObject({ code: 'gpu' });
    // Reported once; the engine then works.
    const ok = await e4.chat.completions.create({ messages: MESSAGES, temperature: 0, max_tokens: 4 });
    expect(ok.choices[0]!.finish_reason).toBe('length');
    await e4.dispose();
    ctx!.device.destroy();
  });
});
