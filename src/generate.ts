import { WebGGUFError } from './errors.js';
import { checkGenerateOptions, type GenerateOptions } from './generate-options.js';
import type { Constraint } from './grammar/constraint.js';
import type { LlamaModel, SampledLogprobs, SamplingParams } from './model/llama.js';
import { StreamDecoder } from './tokenizer/stream.js';
import { TokenType, type GGUFTokenizer } from './tokenizer/tokenizer.js';

export type { GenerateOptions, SampledLogprobs };

export interface GeneratedToken {
  token: number;
  /** The text this token completes; empty while a multi-byte character is still incomplete. */
  text: string;
  /** With the `logprobs` option: this token's log-prob and the most likely tokens' at its step. */
  logprobs?: SampledLogprobs;
}

/** The most decode steps between readbacks: more saves round trips, fewer stops sooner. */
export const DECODE_BATCH = 8;

/** The most grammar-forced tokens fed in one step (they are prefilled together). */
const MAX_FORCED_TOKENS = 64;
/** onlyToken's answer for a mask with no token set. */
const NONE = -1;

/** The one token a packed mask allows; NONE if none, undefined if several. */
function onlyToken(mask: Uint32Array): number | undefined {
  let found: number = NONE;
  for (let w = 0; w < mask.length; w++) {
    const bits = mask[w]!;
    if (bits === 0) continue;
    if (found !== NONE || (bits & (bits - 1)) !== 0) return undefined;
    found = w * 32 + (31 - Math.clz32(bits));
  }
  return found;
}

export type FinishReason = 'stop' | 'length' | 'abort';

/**
 * A constraint that starts mid-output (tool_choice 'auto'): the output is free until it writes one
 * of `texts`; from there on it is held to `constraint(rest)`. `rest` is '' when the text ended at
 * a token's end; when it ended inside a token, that token is drawn again and `rest` is its text
 * up to the text's end, which the constrained output writes first.
 */
export interface ConstraintTrigger {
  texts: string[];
  constraint(rest: string): Promise<Constraint>;
}

/** The first of `texts` to end inside `piece` (continuing `tail`), and where in `piece` it ends (`at`). */
export function findTrigger(tail: string, piece: string, texts: string[]): { text: string; at: number } | undefined {
  const all = tail + piece;
  let best: { text: string; at: number } | undefined;
  for (const text of texts) {
    const start = all.indexOf(text, Math.max(0, tail.length - text.length + 1));
    if (start < 0) continue;
    const at = start + text.length - tail.length;
    if (!best || at < best.at) best = { text, at };
  }
  return best;
}

/** llama.cpp's defaults, so the same flags mean the same thing. */
export const DEFAULT_SAMPLING = { temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05, repetitionPenalty: 1 } as const;

/**
 * The GPU sampler's parameters. Its seed and top-k are 32-bit: a seed is hashed into 32 bits
 * from its whole value (so seeds 0 and 2^32 differ, where truncation would make them equal),
 * and a top-k at or above the vocabulary size is no limit (0), never truncated.
 */
export function samplingParams(o: GenerateOptions, vocabSize: number): SamplingParams {
  checkGenerateOptions(o);
  const topK = o.topK ?? DEFAULT_SAMPLING.topK;
  return {
    temperature: o.temperature ?? DEFAULT_SAMPLING.temperature,
    topK: topK >= vocabSize ? 0 : topK,
    topP: o.topP ?? DEFAULT_SAMPLING.topP,
    minP: o.minP ?? DEFAULT_SAMPLING.minP,
    repetitionPenalty: o.repetitionPenalty ?? DEFAULT_SAMPLING.repetitionPenalty,
    penaltyLastN: 64,
    frequencyPenalty: o.frequencyPenalty ?? 0,
    presencePenalty: o.presencePenalty ?? 0,
    seed: o.seed === undefined ? Math.floor(Math.random() * 2 ** 32) : seed32(o.seed),
    logitBias: o.logitBias ? new Map(Object.entries(o.logitBias).map(([token, bias]) => [Number(token), bias])) : undefined,
    ...(o.logprobs !== undefined ? { topLogprobs: Math.min(o.logprobs, vocabSize) } : {}),
  };
}

/**
 * A safe integer hashed to 32 bits: the sign, the high bits and the low 32 bits all mixed in
 * (murmur3's finalizer over each word in turn), so nearby or 2^32-apart seeds do not collide.
 */
export function seed32(seed: number): number {
  const magnitude = Math.abs(seed);
  const high = Math.floor(magnitude / 2 ** 32);
  const low = magnitude - high * 2 ** 32;
  const mix = (h: number) => {
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    return (h ^ (h >>> 16)) >>> 0;
  };
  return mix(mix(mix(low ^ 0x9e3779b9) ^ high) ^ (seed < 0 ? 0x5bd1e995 : 0));
}

export interface GenerateResult {
  finishReason: FinishReason;
  /** The tokens now in the KV cache, in order: what a follow-up can reuse as `cachedPrefix`. */
  context: number[];
}

/**
 * Generates from `prompt` (token ids, BOS included if wanted). The first `cachedPrefix` prompt
 * tokens must already be in the KV cache from an earlier call; only the rest is prefilled. A model
 * with a recurrent state (LlamaModel.recurrentState) saves a checkpoint at `checkpointAt`. Yields
 * each new token with its text and returns why it stopped. End-of-generation tokens are not
 * yielded.
 *
 * With a `constraint`, each token is sampled only among those it allows (the mask goes to the GPU
 * sampler before each step, so these steps run one per readback), tokens it forces (the only
 * choice) are appended without sampling, and generation stops ('stop') when it is finished; end-of-generation tokens come only where it allows them, so `ignoreEos`
 * does not apply. The caller owns the constraint (and disposes of it). With `logprobs`, forced
 * tokens go through the sampler too (their mask allows only them), so each has its step's
 * log-probs.
 */
export async function* generate(
  model: LlamaModel,
  tokenizer: GGUFTokenizer,
  prompt: number[],
  options: GenerateOptions & { cachedPrefix?: number; checkpointAt?: number; constraint?: Constraint; trigger?: ConstraintTrigger } = {},
): AsyncGenerator<GeneratedToken, GenerateResult> {
  // The constraints of calls opened by a trigger, which this call owns.
  const triggered: Constraint[] = [];
  try {
    return yield* generateTokens(model, tokenizer, prompt, options, (c) => triggered.push(c));
  } finally {
    for (const c of triggered) c.dispose();
  }
}

async function* generateTokens(
  model: LlamaModel,
  tokenizer: GGUFTokenizer,
  prompt: number[],
  options: GenerateOptions & { cachedPrefix?: number; checkpointAt?: number; constraint?: Constraint; trigger?: ConstraintTrigger },
  own: (c: Constraint) => unknown,
): AsyncGenerator<GeneratedToken, GenerateResult> {
  let constraint = options.constraint;
  const trigger = constraint ? undefined : options.trigger;
  // A triggered call's constraint is finished when the call is complete: the output goes on
  // free (no mask) and may open another call.
  const endCall = () => {
    constraint = undefined;
    complete = false;
    tail = '';
    model.setAllowedTokens(null);
  };
  // The output's last characters (control tokens as their text), where a trigger may begin.
  let tail = '';
  const tailLength = Math.max(0, ...(trigger?.texts.map((t) => t.length - 1) ?? []));
  // The sampled token the GPU holds is not the one to feed next (a trigger dropped tokens after it).
  let feedFromHost = false;
  // Constrained: the output ends after the pending tokens.
  let complete = false;
  const sampling = samplingParams(options, model.config.vocabSize);
  const maxTokens = options.maxTokens ?? model.contextLength - prompt.length;
  if (prompt.length === 0) throw new WebGGUFError('invalid-argument', 'the prompt has no tokens (and the model adds no BOS)');
  if (prompt.length >= model.contextLength) {
    throw new WebGGUFError('context-overflow', `the prompt has ${prompt.length} tokens; the context holds ${model.contextLength}`);
  }
  // At least one prompt token must run, to produce logits; a recurrent state resumes only where
  // it is or was saved (LlamaModel.resumablePrefix).
  const reuse = model.resumablePrefix(Math.max(0, Math.min(options.cachedPrefix ?? 0, prompt.length - 1)));
  model.setSampler(sampling, prompt);
  const context = prompt.slice();
  if (maxTokens === 0) return { finishReason: 'length', context: prompt.slice(0, reuse) };
  const decoder = new StreamDecoder(tokenizer, prompt);
  // Log-probs come with each step's tokens; none are read (nor computed) unless asked for.
  const withLogprobs = sampling.topLogprobs !== undefined;
  const logprobsRead = (): SampledLogprobs[] => (withLogprobs ? model.takeLogprobs() : []);
  const forcedRoom = (room: number) => (withLogprobs ? 0 : Math.min(room, MAX_FORCED_TOKENS));
  // Constrained: the tokens the grammar forces next (the only one allowed, and not an end token),
  // accepted, at most `room`; then the mask of the token after them goes to the GPU sampler.
  // `complete`: nothing may follow them (the output is complete and the vocabulary has no end
  // token the grammar could take).
  const forcedRun = async (room: number): Promise<{ forced: number[]; complete: boolean }> => {
    const forced: number[] = [];
    for (;;) {
      // A triggered call complete in its forced tokens: the step samples the token after it free.
      if (constraint!.finished) {
        endCall();
        return { forced, complete: false };
      }
      const allowed = await constraint!.allowedTokens();
      const only = onlyToken(allowed);
      if (only === undefined || only === NONE || forced.length >= room || tokenizer.endOfGeneration.has(only)) {
        if (only !== NONE) model.setAllowedTokens(allowed);
        return { forced, complete: only === NONE };
      }
      constraint!.accept(only);
      forced.push(only);
    }
  };
  // Tokens chosen but not yet yielded: by the GPU sampler or, constrained, forced by the grammar.
  // Decode runs in batches of steps per readback, growing from 1 (so the first tokens come at
  // once) to DECODE_BATCH; whatever a stop leaves unread was never part of the output, and later
  // steps overwrite its KV entries. Constrained decoding runs one sampled token per readback
  // (its mask depends on the token before), with the forced tokens before it fed in the same step.
  let pending: number[] = [];
  // The log-probs of `token` and of the pending tokens (with the logprobs option).
  let pendingLogprobs: SampledLogprobs[] = [];
  // How many of the tokens from `token` on the constraint has accepted already (forced ones).
  let ahead = 0;
  let token: number;
  // A recurrent state cannot be rolled back: keep a copy where a follow-up turn can resume,
  // `checkpointAt` (where the conversation before the generation prompt ends) or the prompt's end.
  const at = options.checkpointAt;
  let from = reuse;
  if (model.recurrentState && at !== undefined && at > reuse && at < prompt.length) {
    model.prefill(prompt.slice(reuse, at), reuse);
    model.saveCheckpoint();
    from = at;
  }
  if (constraint) {
    const run = await forcedRun(forcedRoom(Math.min(maxTokens - 1, model.contextLength - prompt.length - 2)));
    if (run.complete && !run.forced.length) return { finishReason: 'stop', context: prompt.slice(0, reuse) };
    model.extendHistory(run.forced, prompt.length);
    const sampled = await model.step([...prompt.slice(from), ...run.forced], from, options.maxPrefillMs);
    ({ complete } = run);
    pending = complete ? run.forced : [...run.forced, sampled];
    pendingLogprobs = logprobsRead();
    ahead = run.forced.length;
    token = pending.shift()!;
  } else {
    token = await model.step(prompt.slice(from), from, options.maxPrefillMs);
    pendingLogprobs = logprobsRead();
  }
  if (model.recurrentState && from === reuse) model.saveCheckpoint();
  let batch = 1;
  for (let produced = 1; ; produced++) {
    if (options.signal?.aborted) return { finishReason: 'abort', context };
    // Bytes still pending at a stop token never formed a character: they are dropped.
    // Tokens a grammar forced belong to its output (a call), where no trigger is looked for.
    const forcedToken = ahead > 0;
    if (ahead > 0) ahead--;
    else if (constraint) {
      constraint.accept(token);
      if (constraint.finished) {
        // The end token of the output (not yielded), or the last token of a triggered call
        // whose constraint lets the output go on.
        if (constraint === options.constraint || tokenizer.endOfGeneration.has(token)) return { finishReason: 'stop', context };
        endCall();
      }
    } else if (!options.ignoreEos && tokenizer.endOfGeneration.has(token)) return { finishReason: 'stop', context };
    if (trigger && !constraint && !forcedToken) {
      const piece = tokenizer.spec.tokenTypes?.[token] === TokenType.CONTROL ? tokenizer.tokenText(token) : tokenizer.decode([token]);
      let found = findTrigger(tail, piece, trigger.texts);
      // Mid-token, the token is sampled again under the constraint: a recurrent state cannot
      // step back to do that, so there the output stays free.
      if (found && found.at < piece.length && model.recurrentState) found = undefined;
      tail = tailLength ? (tail + piece).slice(-tailLength) : '';
      if (found) {
        // Tokens decoded after this one (in the same batch) are dropped, never yielded.
        pending = [];
        pendingLogprobs = pendingLogprobs.slice(0, 1);
        if (found.at === piece.length) {
          // The text ends with this token: it is output, and the constraint takes the next one.
          own((constraint = await trigger.constraint('')));
          model.extendHistory([token], context.length);
          feedFromHost = true;
        } else {
          // The text ends inside this token: the token is drawn again, from the same logits,
          // under a constraint that begins with the token's text up to the trigger's end.
          own((constraint = await trigger.constraint(piece.slice(0, found.at))));
          const lastFed = context.at(-1)!;
          model.extendHistory([lastFed], context.length - 1);
          const run = await forcedRun(forcedRoom(Math.min(maxTokens - produced, model.contextLength - context.length - 1)));
          if (run.complete && !run.forced.length) return { finishReason: 'stop', context };
          model.extendHistory(run.forced, context.length);
          const sampled = await model.step([lastFed, ...run.forced], context.length - 1);
          ({ complete } = run);
          pending = complete ? run.forced : [...run.forced, sampled];
          pendingLogprobs = logprobsRead();
          ahead = run.forced.length;
          token = pending.shift()!;
          produced--;
          continue;
        }
      }
    }
    const last = produced >= maxTokens || context.length >= model.contextLength;
    const text = decoder.push(token) + (last ? decoder.flush() : '');
    const logprobs = pendingLogprobs.shift();
    yield logprobs ? { token, text, logprobs } : { token, text };
    if (last) return { finishReason: 'length', context };
    // Feed the token just yielded (the sampler left it on the GPU) and sample the next ones.
    if (constraint && !pending.length) {
      if (complete) return { finishReason: 'stop', context };
      const run = await forcedRun(forcedRoom(Math.min(maxTokens - produced - 1, model.contextLength - context.length - 2)));
      if (run.complete && !run.forced.length) return { finishReason: 'stop', context };
      // The sampler's history holds the context and `token`; the forced tokens follow them.
      model.extendHistory(run.forced, context.length + 1);
      const sampled = run.forced.length || feedFromHost ? await model.step([token, ...run.forced], context.length) : (await model.decode(1, context.length))[0]!;
      feedFromHost = false;
      ({ complete } = run);
      pending = complete ? run.forced : [...run.forced, sampled];
      pendingLogprobs = logprobsRead();
      ahead = run.forced.length;
    } else if (!pending.length) {
      pending = await model.decode(Math.min(batch, maxTokens - produced, model.contextLength - context.length), context.length);
      pendingLogprobs = logprobsRead();
      // A recurrent state cannot take back tokens decoded past a trigger: one at a time there.
      if (!(trigger && model.recurrentState)) batch = Math.min(2 * batch, DECODE_BATCH);
    }
    context.push(token);
    token = pending.shift()!;
  }
}
