/**
 * The sampling and length options of a request and their checks: plain data, no engine code, so
 * the page's thin client can check requests before they cross to the worker.
 */
import { WebGGUFError } from './errors.js';

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
  /**
   * The longest the prompt may take to process (its time to first token), in milliseconds: a
   * prefill that will not finish in time fails with `timeout` as soon as its pace shows it,
   * instead of running on (long prompts on slow phones). Default: no limit.
   */
  maxPrefillMs?: number;
  /** OpenAI's logit_bias: token id -> a bias in [-100, 100] added to its logit before sampling. */
  logitBias?: Record<string, number>;
  /**
   * Report each generated token's log-probability and those of this many most likely tokens
   * (0 to 20): log-softmax of the model's logits plus logitBias, computed on the GPU. Absent: none
   * (and no cost).
   */
  logprobs?: number;
  signal?: AbortSignal;
}

/** The most alternatives a token's log-probs may list (OpenAI's top_logprobs limit). */
export const MAX_TOP_LOGPROBS = 20;

/** The option names of GenerateOptions, for callers that reject unknown fields. */
export const GENERATE_OPTION_NAMES = [
  'maxTokens', 'temperature', 'topK', 'topP', 'minP', 'repetitionPenalty', 'frequencyPenalty', 'presencePenalty', 'seed', 'ignoreEos', 'maxPrefillMs', 'logitBias',
  'logprobs', 'signal',
] as const satisfies readonly (keyof GenerateOptions)[];

/**
 * Checks the sampling and length options (absent ones are fine), naming a bad field by
 * `names[field]` (callers with OpenAI's field names pass them) or by its own name.
 */
export function checkGenerateOptions(o: GenerateOptions, names: Partial<Record<keyof GenerateOptions, string>> = {}): void {
  const check = (field: keyof GenerateOptions, ok: (v: number) => boolean, what: string) => {
    const v = o[field];
    if (v === undefined) return;
    if (typeof v !== 'number' || !ok(v)) throw new WebGGUFError('invalid-argument', `${names[field] ?? field} must be ${what}, got ${describeValue(v)}`);
  };
  const finite = Number.isFinite;
  check('maxTokens', (v) => Number.isSafeInteger(v) && v >= 0, 'an integer >= 0');
  check('temperature', (v) => finite(v) && v >= 0, 'a number >= 0');
  check('topK', (v) => Number.isSafeInteger(v) && v >= 0, 'an integer >= 0 (0: no limit)');
  check('topP', (v) => finite(v) && v > 0 && v <= 1, 'a number in (0, 1]');
  check('minP', (v) => finite(v) && v >= 0 && v <= 1, 'a number in [0, 1]');
  check('repetitionPenalty', (v) => finite(v) && v > 0, 'a number > 0');
  check('frequencyPenalty', (v) => finite(v) && Math.abs(v) <= 2, 'a number in [-2, 2]');
  check('presencePenalty', (v) => finite(v) && Math.abs(v) <= 2, 'a number in [-2, 2]');
  check('seed', Number.isSafeInteger, 'a safe integer (|seed| < 2^53)');
  check('maxPrefillMs', (v) => v > 0, 'a number of milliseconds > 0');
  check('logprobs', (v) => Number.isSafeInteger(v) && v >= 0 && v <= MAX_TOP_LOGPROBS, `an integer from 0 to ${MAX_TOP_LOGPROBS}`);
  if (o.logitBias !== undefined) checkLogitBias(o.logitBias, names.logitBias ?? 'logitBias');
  if (o.ignoreEos !== undefined && typeof o.ignoreEos !== 'boolean') {
    throw new WebGGUFError('invalid-argument', `${names.ignoreEos ?? 'ignoreEos'} must be a boolean, got ${describeValue(o.ignoreEos)}`);
  }
}

/** The most entries a logit bias may have (OpenAI's limit). */
export const MAX_LOGIT_BIAS_ENTRIES = 300;

/** Token ids (decimal strings, as JSON keys are) to numbers in [-100, 100], as OpenAI takes them. */
function checkLogitBias(v: unknown, name: string): void {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new WebGGUFError('invalid-argument', `${name} must be an object of token id -> bias, got ${describeValue(v)}`);
  const entries = Object.entries(v);
  if (entries.length > MAX_LOGIT_BIAS_ENTRIES) throw new WebGGUFError('invalid-argument', `${name} has ${entries.length} entries; at most ${MAX_LOGIT_BIAS_ENTRIES}`);
  for (const [token, bias] of entries) {
    if (!/^(0|[1-9][0-9]{0,9})$/.test(token)) throw new WebGGUFError('invalid-argument', `${name}: ${describeValue(token)} is not a token id`);
    if (typeof bias !== 'number' || !Number.isFinite(bias) || Math.abs(bias) > 100) throw new WebGGUFError('invalid-argument', `${name}[${token}] must be a number in [-100, 100], got ${describeValue(bias)}`);
  }
}

/** A value as an error message shows it: short, whatever its type. */
export function describeValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'object' && v !== null) return Array.isArray(v) ? 'an array' : 'an object';
  return String(v);
}
