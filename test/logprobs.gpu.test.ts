/**
 * Log-probs computed on the GPU after each draw, against the f32 CPU reference on stories260K:
 * each step's chosen token's log-prob and its top 20 equal the log-softmax of the reference's
 * logits (plus logit_bias) within 1e-4, greedy, sampled with penalties, and constrained by a
 * grammar (where forced tokens still get their own step), through engine.generate; then the
 * OpenAI shapes: chat's `logprobs.content` whole and streamed, legacy completions' lists.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createEngine, type Engine } from '../src/engine/engine.js';
import type { ChatCompletionTokenLogprob } from '../src/engine/types.js';
import type { GenerateParams } from '../src/engine/types.js';
import type { SampledLogprobs } from '../src/generate.js';
import { openGGUF } from '../src/node/load.js';
import { GGUFTokenizer } from '../src/tokenizer/tokenizer.js';
import { ReferenceModel } from './helpers/reference.js';
import { testGpu } from './helpers/gpu.js';
import { HAVE_MODELS, storiesPath } from './helpers/models.js';

const TOLERANCE = 1e-4;

function logSoftmax(logits: Float32Array, bias: Record<string, number> = {}): Float64Array {
  const x = Float64Array.from(logits, (l, i) => l + (bias[i] ?? 0));
  const m = Math.max(...x);
  const logZ = m + Math.log(x.reduce((s, v) => s + Math.exp(v - m), 0));
  return x.map((v) => v - logZ);
}

describe.skipIf(!HAVE_MODELS)('log-probs on the GPU vs the CPU reference (stories260K f32)', () => {
  let engine: Engine;
  let ref: ReferenceModel;
  let tokenizer: GGUFTokenizer;
  beforeAll(async () => {
    engine = await createEngine({ worker: false, cache: false, gpu: testGpu, contextLength: 128, kvCache: 'f32' });
    await engine.load(new Blob([readFileSync(storiesPath('f32'))]));
    const { file, close } = await openGGUF(storiesPath('f32'));
    ref = await ReferenceModel.load(file);
    tokenizer = GGUFTokenizer.fromGGUF(file);
    await close();
  });
  afterAll(async () => engine?.unload());

  /** Generates with log-probs, then checks every step against the reference run over the same tokens. */
  async function expectReferenceLogprobs(options: GenerateParams) {
    const prompt = tokenizer.encode('Once upon a time');
    const steps: { token: number; logprobs: SampledLogprobs }[] = [];
    for await (const t of engine.generate('Once upon a time', { maxTokens: 24, ...options })) {
      expect(t.logprobs, `token ${steps.length}`).toBeDefined();
      steps.push({ token: t.token, logprobs: t.logprobs! });
    }
    expect(steps.length).toBeGreaterThan(3);
    let logits: Float32Array = new Float32Array();
    for (let i = 0; i < prompt.length; i++) logits = ref.forward(prompt[i]!, i);
    let worst = 0;
    for (const [i, { token, logprobs }] of steps.entries()) {
      const expected = logSoftmax(logits, options.logitBias);
      expect(logprobs.token).toBe(token);
      worst = Math.max(worst, Math.abs(logprobs.logprob - expected[token]!));
      const top = logprobs.top;
      expect(top).toHaveLength(options.logprobs!);
      // Sorted, most likely first, and the true top entries (ties aside, within the tolerance).
      const order = Array.from(expected.keys()).sort((a, b) => expected[b]! - expected[a]! || a - b);
      for (const [j, entry] of top.entries()) {
        if (j > 0) expect(entry.logprob).toBeLessThanOrEqual(top[j - 1]!.logprob);
        worst = Math.max(worst, Math.abs(entry.logprob - expected[entry.token]!), Math.abs(entry.logprob - expected[order[j]!]!));
        if (entry.token === token) expect(entry.logprob).toBe(logprobs.logprob);
      }
      logits = ref.forward(token, prompt.length + i);
    }
    expect(worst).toBeLessThan(TOLERANCE);
    return steps;
  }

  test('greedy: every step of the batched decode (1, 2, 4, 8 steps per readback) reports the reference log-probs', async () => {
    const steps = await expectReferenceLogprobs({ temperature: 0, logprobs: 20 });
    // Greedy takes the most likely token.
    for (const s of steps) expect(s.logprobs.top[0]!.token).toBe(s.token);
  });

  test('sampled with penalties and logit_bias: log-softmax of the logits plus the bias (not the penalized, tempered draw)', async () => {
    const bias = { [tokenizer.encode('Once upon a time', { addBos: false })[0]!]: 3, 300: -2.5 };
    await expectReferenceLogprobs({ temperature: 1.3, seed: 5, repetitionPenalty: 1.3, frequencyPenalty: 0.5, logitBias: bias, logprobs: 5 });
  });

  // stories260K has no emoji: its four UTF-8 bytes are byte-fallback tokens the grammar forces.
  test('constrained: the model\'s log-probs, and grammar-forced tokens get a step each', async () => {
    const steps = await expectReferenceLogprobs({ temperature: 1, seed: 3, logprobs: 3, constraint: { type: 'grammar', grammar: 'root ::= "😀" [a-z ]{2,30} "."' } });
    expect(tokenizer.decode(steps.map((s) => s.token)).trimStart()).toMatch(/^😀[a-z ]+\.$/);
  });

  test('0 top entries: only the chosen token; without the option no log-probs at all', async () => {
    for await (const t of engine.generate('Lily', { maxTokens: 3, temperature: 0, logprobs: 0 })) {
      expect(t.logprobs!.top).toEqual([]);
      expect(t.logprobs!.logprob).toBeLessThanOrEqual(0);
    }
    for await (const t of engine.generate('Lily', { maxTokens: 3, temperature: 0 })) expect(t.logprobs).toBeUndefined();
  });

  test('chat: logprobs.content per token, streamed chunks carry the same entries; legacy completions lists', async () => {
    const request = { messages: [{ role: 'user' as const, content: 'Once upon a time' }], temperature: 0, max_tokens: 10, logprobs: true, top_logprobs: 2 };
    const whole = await engine.chat.completions.create(request);
    const content = whole.choices[0]!.logprobs!.content!;
    expect(content).toHaveLength(whole.usage.completion_tokens);
    for (const e of content) {
      expect(e.top_logprobs).toHaveLength(2);
      expect(e.top_logprobs[0]).toEqual({ token: e.token, logprob: e.logprob, bytes: e.bytes });
      expect(new TextDecoder().decode(new Uint8Array(e.bytes!))).toBe(e.token);
    }
    expect(content.map((e) => e.token).join('').trim()).toBe(whole.choices[0]!.message.content!.trim());
    const streamed: ChatCompletionTokenLogprob[] = [];
    for await (const c of await engine.chat.completions.create({ ...request, stream: true })) streamed.push(...(c.choices[0]?.logprobs?.content ?? []));
    // The same entries (the stream's prompt comes from the KV cache, so its last token runs
    // through decode's kernels rather than prefill's: the log-probs agree to rounding).
    expect(streamed.map((e) => e.token)).toEqual(content.map((e) => e.token));
    for (const [i, e] of streamed.entries()) {
      expect(Math.abs(e.logprob - content[i]!.logprob)).toBeLessThan(1e-4);
      expect(e.top_logprobs.map((t) => t.token)).toEqual(content[i]!.top_logprobs.map((t) => t.token));
    }
    expect((await engine.chat.completions.create({ ...request, logprobs: false, top_logprobs: undefined })).choices[0]!.logprobs).toBeNull();

    const legacy = await engine.completions.create({ prompt: 'Lily and Ben', max_tokens: 8, temperature: 0, logprobs: 3 });
    const lp = legacy.choices[0]!.logprobs!;
    expect(lp.tokens).toHaveLength(8);
    expect(lp.tokens.join('')).toBe(legacy.choices[0]!.text);
    expect(lp.text_offset).toEqual(lp.tokens.map((_, i) => lp.tokens.slice(0, i).join('').length));
    for (const [i, top] of lp.top_logprobs.entries()) {
      expect(Object.keys(top)).toHaveLength(3);
      expect(top[lp.tokens[i]!]).toBe(lp.token_logprobs[i]);
    }
  });
});
