/**
 * OpenAI request fidelity without a model or GPU: every request field is honoured or rejected
 * with invalid-argument naming it, ranges are checked, and engine.generate's arguments too. All
 * of it happens before a request is queued, so no model needs to be loaded.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { validateChatRequest, validateCompletionRequest } from '../src/chat/request.js';
import { createEngine, type Engine } from '../src/engine/engine.js';
import { WebGGUFError } from '../src/errors.js';
import { samplingParams, seed32 } from '../src/generate.js';

const MESSAGES = [{ role: 'user', content: 'Hi' }];

/** The typed error `run` throws (or rejects with). */
async function failure(run: () => unknown): Promise<WebGGUFError> {
  let caught: unknown;
  try {
    await run();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(WebGGUFError);
  expect((caught as WebGGUFError).code).toBe('invalid-argument');
  return caught as WebGGUFError;
}

describe('chat request fields', () => {
  const rejects = async (fields: object, named: string | RegExp) => {
    const e = await failure(() => validateChatRequest({ messages: MESSAGES, ...fields }));
    expect(e.message).toMatch(named);
  };

  test('misspelt and unknown fields are rejected by name, with a suggestion', async () => {
    await rejects({ max_token: 5 }, /max_token is not a known.*did you mean max_tokens/);
    await rejects({ temprature: 0 }, /temprature is not a known.*did you mean temperature/);
    await rejects({ frobnicate: true }, /frobnicate is not a known/);
  });

  test('fields this engine cannot honour are rejected by name', async () => {
    await rejects({ n: 2, stream: true }, /^n 2 is not supported with stream/);
    await rejects({ response_format: { type: 'yaml' } }, /^response_format/);
    await rejects({ tools: [{ type: 'code_interpreter' }] }, /^tools\[0\]\.type .*not supported/);
    await rejects({ tool_choice: 'required' }, /^tool_choice/);
    await rejects({ tool_choice: { type: 'function', function: { name: 'f' } } }, /^tool_choice/);
    await rejects({ functions: [{ name: 'f' }] }, /^functions/);
    await rejects({ function_call: { name: 'f' } }, /^function_call/);
    await rejects({ store: true }, /^store/);
    await rejects({ service_tier: 'flex' }, /^service_tier/);
    await rejects({ modalities: ['text', 'audio'] }, /^modalities/);
    await rejects({ audio: { voice: 'alloy', format: 'mp3' } }, /^audio/);
    await rejects({ prediction: { type: 'content', content: 'x' } }, /^prediction/);
    await rejects({ reasoning_effort: 'low' }, /^reasoning_effort/);
    await rejects({ web_search_options: {} }, /^web_search_options/);
    await rejects({ verbosity: 'low' }, /^verbosity/);
    await rejects({ metadata: { a: 1 } }, /^metadata/);
    await rejects({ user: 7 }, /^user/);
    await rejects({ allow_special_tokens: 'yes' }, /^allow_special_tokens/);
  });

  test('stream_options needs stream: true and known fields', async () => {
    await rejects({ stream_options: { include_usage: true } }, /stream_options is only allowed with stream: true/);
    await rejects({ stream: false, stream_options: { include_usage: true } }, /stream_options/);
    await rejects({ stream: true, stream_options: { include_usage: 'yes' } }, /include_usage must be a boolean/);
    await rejects({ stream: true, stream_options: { include_usage: true, extra: 1 } }, /extra is not a known stream_options field/);
    expect(validateChatRequest({ messages: MESSAGES, stream: true, stream_options: { include_usage: true } })).toMatchObject({ stream: true, includeUsage: true });
    expect(validateChatRequest({ messages: MESSAGES, stream: true })).toMatchObject({ stream: true, includeUsage: false });
  });

  test('informational fields and the values that ask for nothing are accepted', () => {
    const plan = validateChatRequest({
      messages: MESSAGES, model: 'any', user: 'u1', metadata: { k: 'v' }, store: false, service_tier: 'auto', n: 1,
      response_format: { type: 'text' }, tools: [], tool_choice: 'none', parallel_tool_calls: false, logprobs: false, top_logprobs: null,
      logit_bias: {}, modalities: ['text'], functions: [], function_call: 'none', audio: null, prediction: null, seed: null,
      max_tokens: null, max_completion_tokens: 7, allow_special_tokens: true, top_k: 5, min_p: 0.1, repetition_penalty: 1.1,
    });
    expect(plan.params).toMatchObject({ maxTokens: 7, topK: 5, minP: 0.1, repetitionPenalty: 1.1, allowSpecialTokens: true });
    expect(validateChatRequest({ messages: MESSAGES }).params.allowSpecialTokens).toBe(false);
  });

  test('ranges: each bad value is rejected naming its field', async () => {
    const cases: [object, RegExp][] = [
      [{ seed: 1.5 }, /^seed/], [{ seed: 2 ** 53 }, /^seed/], [{ seed: 1e300 }, /^seed/], [{ seed: '1' }, /^seed/],
      [{ top_k: -1 }, /^top_k/], [{ top_k: 2.5 }, /^top_k/], [{ top_k: 2 ** 53 }, /^top_k/],
      [{ temperature: -0.1 }, /^temperature/], [{ temperature: 2.1 }, /^temperature/], [{ temperature: Number.NaN }, /^temperature/],
      [{ top_p: 0 }, /^top_p/], [{ top_p: 1.01 }, /^top_p/], [{ min_p: -0.1 }, /^min_p/], [{ min_p: 1.5 }, /^min_p/],
      [{ frequency_penalty: 2.5 }, /^frequency_penalty/], [{ presence_penalty: -2.5 }, /^presence_penalty/],
      [{ repetition_penalty: 0 }, /^repetition_penalty/], [{ max_tokens: 0 }, /^max_tokens/], [{ max_tokens: 1.5 }, /^max_tokens/],
      [{ max_completion_tokens: -3 }, /^max_completion_tokens/], [{ max_tokens: 5, max_completion_tokens: 6 }, /disagree/],
      [{ stop: [1] }, /^stop/],
      [{ logprobs: 'yes' }, /^logprobs must be a boolean/], [{ logprobs: true, top_logprobs: 21 }, /^top_logprobs must be an integer from 0 to 20/],
      [{ logprobs: true, top_logprobs: -1 }, /^top_logprobs/], [{ logprobs: true, top_logprobs: 1.5 }, /^top_logprobs/],
      [{ logprobs: true, top_logprobs: '3' }, /^top_logprobs/], [{ top_logprobs: 3 }, /top_logprobs needs logprobs: true/],
      [{ logprobs: false, top_logprobs: 3 }, /top_logprobs needs logprobs: true/],
    ];
    for (const [fields, named] of cases) await rejects(fields, named);
    // OpenAI's seeds are any integer: negative and large ones are fine.
    expect(validateChatRequest({ messages: MESSAGES, seed: -5 }).params.seed).toBe(-5);
    expect(validateChatRequest({ messages: MESSAGES, seed: 2 ** 40, top_k: 2 ** 32 }).params).toMatchObject({ seed: 2 ** 40, topK: 2 ** 32 });
    // logprobs: true alone reports the chosen tokens (0 alternatives); top_logprobs adds up to 20.
    expect(validateChatRequest({ messages: MESSAGES, logprobs: true }).params.logprobs).toBe(0);
    expect(validateChatRequest({ messages: MESSAGES, logprobs: true, top_logprobs: 20 }).params.logprobs).toBe(20);
    expect(validateChatRequest({ messages: MESSAGES, logprobs: false }).params.logprobs).toBeUndefined();
  });

  test('messages: text only, other parts and tool turns named', async () => {
    await rejects({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }, /messages\[0\]\.content\[0\]\.type "image_url" is not supported/);
    await rejects({ messages: [{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'input_audio' }] }] }, /content\[1\]\.type "input_audio"/);
    await rejects({ messages: [{ role: 'function', content: 'x', name: 'f' }] }, /messages\[0\]\.role "function" is not supported/);
    await rejects({ messages: [{ role: 'user', contnet: 'x' }] }, /messages\[0\]\.contnet is not a known/);
    await rejects({ messages: [{ role: 'assistant', content: null, tool_calls: [{ id: '1' }] }] }, /messages\[0\]\.tool_calls/);
    await rejects({ messages: [{ role: 'user', content: 'x', name: 3 }] }, /messages\[0\]\.name/);
    const plan = validateChatRequest({
      messages: [
        { role: 'developer', content: 'Be brief.' },
        { role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }], name: 'ann' },
        { role: 'assistant', content: 'ok', refusal: null, tool_calls: [] },
      ],
    });
    expect(plan.messages).toEqual([{ role: 'developer', content: 'Be brief.' }, { role: 'user', content: 'ab', name: 'ann' }, { role: 'assistant', content: 'ok' }]);
  });
});

describe('legacy completion request fields', () => {
  const rejects = async (fields: object, named: RegExp) => {
    const e = await failure(() => validateCompletionRequest({ prompt: 'Once', ...fields }));
    expect(e.message).toMatch(named);
  };
  test('unsupported legacy fields are rejected by name', async () => {
    await rejects({ suffix: 'end' }, /^suffix/);
    await rejects({ best_of: 2 }, /^best_of/);
    await rejects({ logprobs: 21 }, /^logprobs must be an integer from 0 to 20/);
    await rejects({ logprobs: -1 }, /^logprobs/);
    await rejects({ logprobs: true }, /^logprobs/);
    await rejects({ logprobs: 2, echo: true }, /logprobs with echo/);
    await rejects({ echo: 'yes' }, /^echo/);
    await rejects({ n: 3, stream: true }, /^n 3 is not supported with stream/);
    await rejects({ n: 0 }, /^n must be a positive integer/);
    await rejects({ max_tokns: 3 }, /max_tokns is not a known.*did you mean max_tokens/);
    await rejects({ messages: MESSAGES }, /messages is not a known completion request field/);
    await rejects({ prompt: ['a', 'b'] }, /batch of 2 prompts/);
    await rejects({ prompt: [1, -2] }, /^prompt/);
    await rejects({ prompt: 5 }, /^prompt/);
    await rejects({ prompt: [] }, /^prompt/);
    await rejects({ stream_options: { include_usage: true } }, /stream_options/);
  });
  test('prompts: a string, token ids, or an array of one; OpenAI\'s max_tokens default of 16', () => {
    expect(validateCompletionRequest({ prompt: ['x'] })).toMatchObject({ prompt: 'x', echo: false, params: { maxTokens: 16 } });
    expect(validateCompletionRequest({ prompt: [[1, 2]], echo: true, best_of: 1, suffix: null, logprobs: null })).toMatchObject({ prompt: [1, 2], echo: true });
    expect(validateCompletionRequest({ prompt: [3, 4], max_tokens: 3 })).toMatchObject({ prompt: [3, 4], params: { maxTokens: 3 } });
    expect(validateCompletionRequest({ prompt: 'x', logprobs: 5 }).params.logprobs).toBe(5);
  });
});

describe('the GPU sampler\'s 32-bit seed and top-k', () => {
  test('seeds are hashed from their whole value: 0, 2^32, -0 and 2^32+1 do not collide', () => {
    const seeds = [0, 1, -1, 2 ** 32, 2 ** 32 + 1, 2 ** 33, 2 ** 53 - 1, -(2 ** 32)];
    const mapped = seeds.map(seed32);
    expect(new Set(mapped).size).toBe(seeds.length);
    for (const m of mapped) expect(Number.isInteger(m) && m >= 0 && m < 2 ** 32).toBe(true);
    expect(samplingParams({ seed: 2 ** 32 }, 100).seed).not.toBe(samplingParams({ seed: 0 }, 100).seed);
  });
  test('a top-k at or above the vocabulary means no limit, never a wrapped 32-bit value', () => {
    expect(samplingParams({ topK: 2 ** 32 + 5 }, 512).topK).toBe(0);
    expect(samplingParams({ topK: 512 }, 512).topK).toBe(0);
    expect(samplingParams({ topK: 40 }, 512).topK).toBe(40);
    expect(() => samplingParams({ seed: 1e300 }, 512)).toThrow(WebGGUFError);
  });
});

describe('engine entry points check their arguments before any model is needed', () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await createEngine({ worker: false, cache: false, gpu: () => Promise.reject(new Error('no GPU in this test')) });
  });
  afterAll(async () => engine?.dispose());

  const firstStep = (iterable: AsyncIterable<unknown>) => iterable[Symbol.asyncIterator]().next();

  test('engine.generate with a bad prompt or options gives a typed invalid-argument', async () => {
    for (const prompt of [123, {}, null, undefined, ['a']]) {
      const e = await failure(() => firstStep(engine.generate(prompt as never)));
      expect(e.message).toMatch(/prompt must be a string/);
    }
    expect((await failure(() => firstStep(engine.generate('x', 5 as never)))).message).toMatch(/options must be an object/);
    expect((await failure(() => firstStep(engine.generate('x', { topK: -1 })))).message).toMatch(/^topK/);
    expect((await failure(() => firstStep(engine.generate('x', { seed: 2 ** 53 })))).message).toMatch(/^seed/);
    expect((await failure(() => firstStep(engine.generate('x', { maxTokens: 1.5 })))).message).toMatch(/^maxTokens/);
    expect((await failure(() => firstStep(engine.generate('x', { logprobs: 21 })))).message).toMatch(/^logprobs must be an integer from 0 to 20/);
    expect((await failure(() => firstStep(engine.generate('x', { temprature: 1 } as never)))).message).toMatch(/temprature.*did you mean temperature/);
    expect((await failure(() => firstStep(engine.generate('x', { stop: 3 } as never)))).message).toMatch(/^stop/);
    // for await sees the same typed error.
    await failure(async () => {
      for await (const _ of engine.generate(null as never)) break;
    });
  });

  test('a bad streamed request rejects create() itself', async () => {
    await failure(() => engine.chat.completions.create({ messages: MESSAGES, stream: true, n: 2 } as never));
    await failure(() => engine.chat.completions.create(null as never));
    await failure(() => engine.completions.create({ prompt: 'x', stream: true, suffix: 'y' } as never));
    await failure(() => engine.completions.create({ prompt: 'x', temprature: 1 } as never));
  });

  test('a valid request without a model gets the no-model error, not a field error', async () => {
    const e = await failure(() => engine.completions.create({ prompt: 'x', max_tokens: 2 }));
    expect(e.message).toMatch(/no model is loaded/);
  });
});
