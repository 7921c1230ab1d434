import { WebGGUFError } from './errors.js';
import type { LlamaModel, SamplingParams } from './model/llama.js';
import { StreamDecoder } from './tokenizer/stream.js';
import type { GGUFTokenizer } from './tokenizer/tokenizer.js';

export interface GenerateOptions {
  maxTokens?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repetitionPenalty?: number;
  /** OpenAI-style penalties over the last 64 tokens. */
  frequencyPenalty?: number;
  presencePenalty?: number;
  /** Makes sampled output reproducible; random when omitted. */
  seed?: number;
  /** Keep going past end-of-generation tokens until maxTokens (benchmarks want fixed lengths). */
  ignoreEos?: boolean;
  signal?: AbortSignal;
}

export interface GeneratedToken {
  token: number;
  /** The text this token completes; empty while a multi-byte character is still incomplete. */
  text: string;
}

/** The most decode steps between readbacks: more saves round trips, fewer stops sooner. */
export const DECODE_BATCH = 8;

export type FinishReason = 'stop' | 'length' | 'abort';

/** llama.cpp's defaults, so the same flags mean the same thing. */
export const DEFAULT_SAMPLING = { temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05, repetitionPenalty: 1 } as const;

export function samplingParams(o: GenerateOptions): SamplingParams {
  const p: SamplingParams = {
    temperature: o.temperature ?? DEFAULT_SAMPLING.temperature,
    topK: o.topK ?? DEFAULT_SAMPLING.topK,
    topP: o.topP ?? DEFAULT_SAMPLING.topP,
    minP: o.minP ?? DEFAULT_SAMPLING.minP,
    repetitionPenalty: o.repetitionPenalty ?? DEFAULT_SAMPLING.repetitionPenalty,
    penaltyLastN: 64,
    frequencyPenalty: o.frequencyPenalty ?? 0,
    presencePenalty: o.presencePenalty ?? 0,
    seed: o.seed ?? Math.floor(Math.random() * 2 ** 32),
  };
  const check = (ok: boolean, what: string) => {
    if (!ok) throw new WebGGUFError('invalid-argument', what);
  };
  check(Number.isFinite(p.temperature) && p.temperature >= 0, `temperature must be a number >= 0, got ${p.temperature}`);
  check(Number.isInteger(p.topK) && p.topK >= 0, `topK must be an integer >= 0, got ${p.topK}`);
  check(Number.isFinite(p.topP) && p.topP > 0 && p.topP <= 1, `topP must be in (0, 1], got ${p.topP}`);
  check(Number.isFinite(p.minP) && p.minP >= 0 && p.minP <= 1, `minP must be in [0, 1], got ${p.minP}`);
  check(Number.isFinite(p.repetitionPenalty) && p.repetitionPenalty > 0, `repetitionPenalty must be > 0, got ${p.repetitionPenalty}`);
  check(Number.isFinite(p.frequencyPenalty) && Math.abs(p.frequencyPenalty) <= 2, `frequencyPenalty must be in [-2, 2], got ${p.frequencyPenalty}`);
  check(Number.isFinite(p.presencePenalty) && Math.abs(p.presencePenalty) <= 2, `presencePenalty must be in [-2, 2], got ${p.presencePenalty}`);
  check(Number.isInteger(p.seed), `seed must be an integer, got ${p.seed}`);
  return p;
}

export interface GenerateResult {
  finishReason: FinishReason;
  /** The tokens now in the KV cache, in order: what a follow-up can reuse as `cachedPrefix`. */
  context: number[];
}

/**
 * Generates from `prompt` (token ids, BOS included if wanted). The first `cachedPrefix` prompt
 * tokens must already be in the KV cache from an earlier call; only the rest is prefilled. Yields
 * each new token with its text and returns why it stopped. End-of-generation tokens are not
 * yielded.
 */
export async function* generate(
  model: LlamaModel,
  tokenizer: GGUFTokenizer,
  prompt: number[],
  options: GenerateOptions & { cachedPrefix?: number } = {},
): AsyncGenerator<GeneratedToken, GenerateResult> {
  const maxTokens = options.maxTokens ?? model.contextLength - prompt.length;
  if (!Number.isInteger(maxTokens) || maxTokens < 0) throw new WebGGUFError('invalid-argument', `maxTokens must be an integer >= 0, got ${maxTokens}`);
  if (prompt.length === 0) throw new WebGGUFError('invalid-argument', 'the prompt has no tokens (and the model adds no BOS)');
  if (prompt.length >= model.contextLength) {
    throw new WebGGUFError('context-overflow', `the prompt has ${prompt.length} tokens; the context holds ${model.contextLength}`);
  }
  // At least one prompt token must run, to produce logits.
  const reuse = Math.max(0, Math.min(options.cachedPrefix ?? 0, prompt.length - 1));
  model.setSampler(samplingParams(options), prompt);
  const context = prompt.slice();
  if (maxTokens === 0) return { finishReason: 'length', context: prompt.slice(0, reuse) };
  const decoder = new StreamDecoder(tokenizer, prompt);
  let token = await model.step(prompt.slice(reuse), reuse);
  // Tokens chosen on the GPU but not yet yielded. Decode runs in batches of steps per readback,
  // growing from 1 (so the first tokens come at once) to DECODE_BATCH; whatever a stop leaves
  // unread was never part of the output, and later steps overwrite its KV entries.
  let pending: number[] = [];
  let batch = 1;
  for (let produced = 1; ; produced++) {
    if (options.signal?.aborted) return { finishReason: 'abort', context };
    // Bytes still pending at a stop token never formed a character: they are dropped.
    if (!options.ignoreEos && tokenizer.endOfGeneration.has(token)) return { finishReason: 'stop', context };
    const last = produced >= maxTokens || context.length >= model.contextLength;
    yield { token, text: decoder.push(token) + (last ? decoder.flush() : '') };
    if (last) return { finishReason: 'length', context };
    // Feed the token just yielded (the sampler left it on the GPU) and sample the next ones.
    if (!pending.length) {
      pending = await model.decode(Math.min(batch, maxTokens - produced, model.contextLength - context.length), context.length);
      batch = Math.min(2 * batch, DECODE_BATCH);
    }
    context.push(token);
    token = pending.shift()!;
  }
}
