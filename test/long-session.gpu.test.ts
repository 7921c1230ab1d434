/** Long chats: more turns than the context holds, under each context policy. */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createEngine } from '../src/engine/engine.js';
import { shiftToFit } from '../src/engine/core.js';
import type { ChatMessage } from '../src/chat/messages.js';
import { WebGGUFError } from '../src/errors.js';
import { testGpu } from './helpers/gpu.js';
import { ModelServer } from './helpers/model-server.js';
import { HAVE_MODELS } from './helpers/models.js';

const MODEL = 'stories260K/stories260K-q4_0.gguf';
const SYSTEM: ChatMessage = { role: 'system', content: 'Tell happy stories about animals.' };

test('shift drops the oldest turns first and keeps the system prompt and the last message', async () => {
  const m = (role: ChatMessage['role'], content: string): ChatMessage => ({ role, content });
  const messages = [m('system', 'SS'), m('user', 'u1u1'), m('assistant', 'a1a1'), m('user', 'u2u2'), m('assistant', 'a2a2'), m('user', 'u3')];
  const encode = (msgs: ChatMessage[]) => Array.from(msgs.map((x) => x.content).join(''), (c) => c.charCodeAt(0));
  const kept = async (limit: number) => String.fromCharCode(...(await shiftToFit(messages, encode, limit)));
  expect(await kept(12)).toBe('SSu2u2a2a2u3');
  expect(await kept(1)).toBe('SSu3');
  expect(await kept(100)).toBe('SSu1u1a1a1u2u2a2a2u3');
});

describe.skipIf(!HAVE_MODELS)('20 chat turns through a 128-token context', () => {
  let server: ModelServer;
  beforeAll(async () => {
    server = await new ModelServer().start();
  });
  afterAll(() => server?.stop());

  async function converse(policy: 'error' | 'shift') {
    const engine = await createEngine({ worker: false, cache: false, gpu: testGpu, contextPolicy: policy, contextLength: 128 });
    const info = await engine.load(server.url(MODEL));
    const history: ChatMessage[] = [SYSTEM];
    const turns: { prompt: number; gpu: number; heap: number }[] = [];
    try {
      for (let turn = 0; turn < 20; turn++) {
        history.push({ role: 'user', content: `Then dog ${turn} ran and` });
        const r = await engine.chat.completions.create({ messages: history, temperature: 0.8, seed: turn, max_tokens: 16 });
        history.push({ ...r.choices[0]!.message, content: r.choices[0]!.message.content! });
        (globalThis as { gc?: () => void }).gc?.();
        turns.push({ prompt: r.usage.prompt_tokens, gpu: await engine.bytesOnGpu(), heap: process.memoryUsage().heapUsed });
      }
      return { turns, contextLength: info.contextLength };
    } finally {
      await engine.unload();
    }
  }

  test("default policy: a typed context error once the chat outgrows the context", async () => {
    const e = await converse('error').then(() => null, (x: unknown) => x);
    expect(e).toBeInstanceOf(WebGGUFError);
    expect((e as WebGGUFError).code).toBe('context-overflow');
  });

  test("'shift': every turn answers; GPU memory and the JS heap stay flat", async () => {
    const { turns, contextLength } = await converse('shift');
    expect(turns).toHaveLength(20);
    const history = turns.reduce((n, t) => Math.max(n, t.prompt), 0);
    expect(contextLength).toBe(128);
    expect(history).toBeLessThanOrEqual(contextLength - 16);
    expect(new Set(turns.map((t) => t.gpu)).size).toBe(1);
    // After collection the heap holds only live objects: allow 4 MiB of noise over 15 turns.
    expect(typeof (globalThis as { gc?: unknown }).gc).toBe('function');
    expect(turns[19]!.heap - turns[4]!.heap).toBeLessThan(4 * 2 ** 20);
  });
});
