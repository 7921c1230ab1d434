/**
 * OpenAI response shapes on a real model (stories260K, in-thread engine on Dawn), and
 * tool_choice 'auto' on a generated model with Qwen 2.5's chat template.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { makeModel } from '../scripts/make-model.js';
import { createEngine, type Engine } from '../src/engine/engine.js';
import type { ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, CompletionChunk, Usage } from '../src/engine/types.js';
import { readGGUF } from '../src/gguf/gguf.js';
import { bytesSource } from '../src/io/byte-source.js';
import { testGpu } from './helpers/gpu.js';
import { validateJson } from './helpers/json-schema.js';
import { HAVE_MODELS, storiesPath } from './helpers/models.js';

const MESSAGES = [{ role: 'user' as const, content: 'Once upon a time, a little girl' }];

function expectSpeed(usage: Usage) {
  const x = usage.extra;
  for (const v of [x.e2e_latency_s, x.time_to_first_token_s, x.prefill_tokens_per_s, x.decode_tokens_per_s, x.time_per_output_token_s]) {
    expect(Number.isFinite(v) && v > 0).toBe(true);
  }
  expect(x.time_to_first_token_s).toBeLessThanOrEqual(x.e2e_latency_s);
}

describe.skipIf(!HAVE_MODELS)('OpenAI shapes', () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await createEngine({ worker: false, cache: false, gpu: testGpu });
    await engine.load(new Blob([readFileSync(storiesPath('q4_0'))]));
  });
  afterAll(async () => engine?.unload());

  test('chat usage carries the request speed (usage.extra)', async () => {
    const r = await engine.chat.completions.create({ messages: MESSAGES, temperature: 0, max_tokens: 12 });
    expect(r.usage.completion_tokens).toBe(12);
    expect(r.choices[0]!.message).toEqual({ role: 'assistant', content: expect.any(String), refusal: null });
    expectSpeed(r.usage);
  });

  test('stream_options.include_usage: usage: null on content chunks, then one chunk with choices [] and the usage', async () => {
    const chunks: ChatCompletionChunk[] = [];
    for await (const c of await engine.chat.completions.create({ messages: MESSAGES, temperature: 0, max_tokens: 10, stream: true, stream_options: { include_usage: true } })) chunks.push(c);
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toMatchObject({ completion_tokens: 10, total_tokens: last.usage!.prompt_tokens + 10 });
    expectSpeed(last.usage!);
    const rest = chunks.slice(0, -1);
    for (const c of rest) {
      expect(c.usage).toBeNull();
      expect(c.choices).toHaveLength(1);
    }
    expect(rest.at(-1)!.choices[0]!.finish_reason).toBe('length');
  });

  test('without include_usage no chunk has a usage field', async () => {
    const chunks: ChatCompletionChunk[] = [];
    for await (const c of await engine.chat.completions.create({ messages: MESSAGES, temperature: 0, max_tokens: 10, stream: true })) chunks.push(c);
    expect(chunks.every((c) => !('usage' in c))).toBe(true);
    expect(chunks.every((c) => c.choices.length === 1)).toBe(true);
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe('length');
  });

  test('seeds 2^32 apart sample differently', async () => {
    const reply = async (seed: number) => (await engine.chat.completions.create({ messages: MESSAGES, temperature: 1.5, max_tokens: 24, seed })).choices[0]!.message.content;
    const zero = await reply(0);
    expect(await reply(0)).toBe(zero);
    expect(await reply(2 ** 32)).not.toBe(zero);
  });

  test('legacy completions: text_completion shape, stream deltas join to the same text, usage', async () => {
    const prompt = 'Lily and Ben';
    const full = await engine.completions.create({ prompt, max_tokens: 15, temperature: 0 });
    expect(full).toMatchObject({ object: 'text_completion', id: expect.stringMatching(/^cmpl-/), choices: [{ index: 0, finish_reason: 'length', logprobs: null }] });
    expect(full.choices[0]!.text.length).toBeGreaterThan(0);
    expect(full.usage.completion_tokens).toBe(15);
    expectSpeed(full.usage);

    const chunks: CompletionChunk[] = [];
    for await (const c of await engine.completions.create({ prompt, max_tokens: 15, temperature: 0, stream: true, stream_options: { include_usage: true } })) chunks.push(c);
    expect(chunks.every((c) => c.object === 'text_completion')).toBe(true);
    const text = chunks.flatMap((c) => c.choices.map((ch) => ch.text)).join('');
    expect(text).toBe(full.choices[0]!.text);
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe('length');
    expect(chunks.at(-1)!).toMatchObject({ choices: [], usage: { completion_tokens: 15 } });

    // OpenAI's default max_tokens is 16; echo puts the prompt first.
    const echoed = await engine.completions.create({ prompt: [prompt], temperature: 0, echo: true });
    expect(echoed.usage.completion_tokens).toBeLessThanOrEqual(16);
    expect(echoed.choices[0]!.text.startsWith(prompt)).toBe(true);
  });

  test('legacy completions take token ids; ids outside the vocabulary are a typed error', async () => {
    const r = await engine.completions.create({ prompt: [1, 400, 300], max_tokens: 3, temperature: 0 });
    expect(r.usage.prompt_tokens).toBe(3);
    const e = await engine.completions.create({ prompt: [1, 10 ** 6], max_tokens: 3 }).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'invalid-argument', message: expect.stringMatching(/token id 1000000/) });
  });

  test('tools on a model without a chat template: a round trip with a tool result, streamed and whole alike; n choices', async () => {
    const tools = [{ type: 'function' as const, function: { name: 'get_weather', description: 'Weather in a city', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
    const messages = [
      ...MESSAGES,
      { role: 'assistant' as const, content: null, tool_calls: [{ id: 'call_1', type: 'function' as const, function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
      { role: 'tool' as const, content: 'Sunny, 21 C', tool_call_id: 'call_1' },
    ];
    const whole = await engine.chat.completions.create({ messages, tools, temperature: 0, max_tokens: 12 });
    const plain = await engine.chat.completions.create({ messages: MESSAGES, temperature: 0, max_tokens: 12 });
    // The tools, the call and its result are in the prompt (the generic tool instructions).
    expect(whole.usage.prompt_tokens).toBeGreaterThan(plain.usage.prompt_tokens + 50);
    expect(whole.choices[0]!.finish_reason).toBe('length');
    let content = '';
    for await (const c of await engine.chat.completions.create({ messages, tools, temperature: 0, max_tokens: 12, stream: true })) content += c.choices[0]?.delta.content ?? '';
    expect(content).toBe(whole.choices[0]!.message.content);
    // A named call and 'required' are constrained (XGrammar): a model never tuned for tools still
    // answers with a call to the function, its arguments valid against the parameters' schema.
    // (A model that never learnt to stop a string is held to the schema's maxLength.)
    const short = [{ ...tools[0]!, function: { ...tools[0]!.function, parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 12 } }, required: ['city'] } } }];
    for (const [tool_choice, seed] of [[{ type: 'function', function: { name: 'get_weather' } }, 1], ['required', 2], ['required', 3]] as const) {
      const forced = await engine.chat.completions.create({ messages: MESSAGES, tools: short, tool_choice, temperature: 1, seed, max_tokens: 120 });
      const c = forced.choices[0]!;
      expect(c.finish_reason, c.message.content ?? '').toBe('tool_calls');
      expect(c.message.tool_calls).toHaveLength(1);
      expect(c.message.tool_calls![0]!.function.name).toBe('get_weather');
      const args = JSON.parse(c.message.tool_calls![0]!.function.arguments) as Record<string, unknown>;
      expect(typeof args).toBe('object');
      expect(Object.keys(args)).toEqual(['city']);
      expect(typeof args.city).toBe('string');
      expect((args.city as string).length).toBeLessThanOrEqual(12);
    }
    const three = await engine.chat.completions.create({ messages: MESSAGES, n: 3, temperature: 1.5, seed: 7, max_tokens: 10 });
    expect(three.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(three.choices[0]!.message.content).toBe((await engine.chat.completions.create({ messages: MESSAGES, temperature: 1.5, seed: 7, max_tokens: 10 })).choices[0]!.message.content);
    expect(new Set(three.choices.map((c) => c.message.content)).size).toBeGreaterThan(1);
  });
});

/**
 * tool_choice 'auto': free text until the reply opens a call; from the opener on, the call is
 * constrained to the offered functions' schemas. A random-weight model with Qwen 2.5's template
 * (its <tool_call> tokens as Qwen's added tokens) is steered to open a call with logit_bias on the
 * opener; the call that follows always parses and validates, which random weights alone never write.
 */
describe.skipIf(!HAVE_MODELS)("tool_choice 'auto' on a generated Qwen 2.5-template model", () => {
  const PARAMETERS = {
    type: 'object',
    properties: { city: { enum: ['Paris', 'Lyon'] }, metric: { type: 'boolean' } },
    required: ['city'],
    additionalProperties: false,
  };
  const tools = [{ type: 'function' as const, function: { name: 'weather', description: 'Weather in a city', parameters: PARAMETERS } }];
  const ASK = [{ role: 'user' as const, content: 'Weather in Paris?' }];
  let engine: Engine;
  let opener: number;
  beforeAll(async () => {
    const bytes = await makeModel({
      arch: 'qwen3', shape: 'tiny-256-qwen3', quant: 'f32', seed: 4, context: 1024,
      tokenizer: {
        specials: [{ text: '<tool_call>', id: 151657, type: 4 }, { text: '</tool_call>', id: 151658, type: 4 }],
        chatTemplate: readFileSync(new URL('./fixtures/chat-templates/qwen2.5.jinja', import.meta.url), 'utf8'),
      },
    });
    const tokens = (await readGGUF(bytesSource(bytes, 'qwen-tools.gguf'))).metadata.get('tokenizer.ggml.tokens') as string[];
    opener = tokens.indexOf('<tool_call>');
    engine = await createEngine({ worker: false, cache: false, gpu: testGpu, contextLength: 1024 });
    await engine.load(new Blob([bytes as Uint8Array<ArrayBuffer>]));
  });
  afterAll(async () => engine?.unload());

  test('an opened call always parses and validates, greedy and sampled; streamed alike; a tool result goes back in for a text answer', async () => {
    const steered = { messages: ASK, tools, logit_bias: { [opener]: 100 }, parallel_tool_calls: false, max_tokens: 160 } satisfies ChatCompletionRequest;
    // (The 512-token vocabulary spells the call's JSON in about 40 tokens.)
    let whole: ChatCompletion | undefined;
    for (const sampling of [{ temperature: 0 }, { temperature: 1.5, seed: 2 }]) {
      const r = await engine.chat.completions.create({ ...steered, ...sampling });
      whole ??= r;
      const c = r.choices[0]!;
      expect(c.finish_reason, JSON.stringify(c.message)).toBe('tool_calls');
      expect(c.message.content).toBeNull();
      expect(c.message.tool_calls).toHaveLength(1);
      expect(c.message.tool_calls![0]!.function.name).toBe('weather');
      expect(validateJson(PARAMETERS, JSON.parse(c.message.tool_calls![0]!.function.arguments))).toBeUndefined();
    }
    const calls: string[] = [];
    for await (const chunk of await engine.chat.completions.create({ ...steered, temperature: 0, stream: true })) {
      for (const t of chunk.choices[0]?.delta.tool_calls ?? []) calls.push(t.function.arguments);
    }
    expect(calls.join('')).toBe(whole!.choices[0]!.message.tool_calls![0]!.function.arguments);

    // The call and its result go back in; steered away from another call, the model answers in text.
    const call = whole!.choices[0]!.message.tool_calls![0]!;
    const answer = await engine.chat.completions.create({
      messages: [...ASK, { role: 'assistant', content: null, tool_calls: [call] }, { role: 'tool', content: 'Sunny, 21 C', tool_call_id: call.id }],
      tools, logit_bias: { [opener]: -100 }, temperature: 0, max_tokens: 8,
    });
    expect(answer.usage.prompt_tokens).toBeGreaterThan(whole!.usage.prompt_tokens + 10);
    expect(answer.choices[0]!.message.tool_calls).toBeUndefined();
    expect(typeof answer.choices[0]!.message.content).toBe('string');
    expect(answer.choices[0]!.finish_reason).not.toBe('tool_calls');
  }, 120_000);
});
