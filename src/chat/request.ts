/**
 * Checks OpenAI-shaped requests (chat and legacy completions) and engine.generate's options from
 * untrusted callers, before they are queued. Every field is either honoured or rejected with an
 * invalid-argument error that names it; unknown (misspelt) fields are rejected too, so nothing a
 * caller asks for is silently ignored.
 */
import type { GenerateParams } from '../engine/types.js';
import { WebGGUFError } from '../errors.js';
import { checkGenerateOptions, describeValue, GENERATE_OPTION_NAMES, MAX_TOP_LOGPROBS, type GenerateOptions } from '../generate-options.js';
import { checkConstraintSpec, type ConstraintSpec } from '../grammar/spec.js';
import { validateMessages, type ChatMessage } from './messages.js';
import type { FunctionDefinition, ToolChoice } from './tool-format.js';

/** What a streamed request asked for beyond its params. */
export interface StreamPlan {
  stream: boolean;
  /** stream_options.include_usage: a last chunk with `choices: []` and the usage. */
  includeUsage: boolean;
}

export interface ChatPlan extends StreamPlan {
  messages: ChatMessage[];
  params: GenerateParams;
  /** The functions offered; absent when there are none or tool_choice is 'none'. */
  tools?: FunctionDefinition[];
  /** 'auto' when not given (OpenAI's default with tools). */
  toolChoice: ToolChoice;
  /** parallel_tool_calls (default true): more than one call per reply. */
  parallelToolCalls: boolean;
  /** chat_template_kwargs: extra template variables. */
  templateKwargs?: Record<string, unknown>;
  /** Choices to generate (n). */
  n: number;
}

/** Most functions one request may offer (OpenAI's limit). */
export const MAX_TOOLS = 128;
/** Most choices one request may ask for (each is a whole generation). */
export const MAX_CHOICES = 16;

export interface CompletionPlan extends StreamPlan {
  /** Text to encode, or token ids as given. */
  prompt: string | number[];
  echo: boolean;
  params: GenerateParams;
  /** Choices to generate (n). */
  n: number;
}

/** A field's check: throws on a value it cannot honour (never called for undefined or null). */
type FieldCheck = (value: unknown, name: string) => void;

const invalid = (message: string) => new WebGGUFError('invalid-argument', message);

const isString: FieldCheck = (v, name) => {
  if (typeof v !== 'string') throw invalid(`${name} must be a string, got ${describeValue(v)}`);
};
const isBoolean: FieldCheck = (v, name) => {
  if (typeof v !== 'boolean') throw invalid(`${name} must be a boolean, got ${describeValue(v)}`);
};
const isNumber: FieldCheck = (v, name) => {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw invalid(`${name} must be a finite number, got ${describeValue(v)}`);
};
/** Only the value that asks for nothing (false, an empty list...) is accepted. */
const only = (accepted: unknown[], why: string): FieldCheck => (v, name) => {
  const empty = Array.isArray(v) && v.length === 0 && accepted.some((a) => Array.isArray(a) && a.length === 0);
  const emptyObject = typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0 && accepted.some((a) => typeof a === 'object' && a !== null && !Array.isArray(a));
  if (!accepted.includes(v) && !empty && !emptyObject) throw invalid(`${name} ${describeValue(v)} is not supported: ${why}`);
};
const notSupported = (why: string): FieldCheck => (v, name) => {
  throw invalid(`${name} ${describeValue(v)} is not supported: ${why}`);
};

/** Fields that change nothing in a local engine, checked for type as OpenAI checks them. */
const INFORMATIONAL: Record<string, FieldCheck> = {
  model: isString,
  user: isString,
  prompt_cache_key: isString,
  safety_identifier: isString,
  metadata: (v, name) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v) || !Object.values(v).every((x) => typeof x === 'string')) {
      throw invalid(`${name} must be an object of strings`);
    }
  },
  store: only([false], 'nothing is stored; only false'),
  service_tier: only(['auto', 'default'], "a local engine has one tier; only 'auto' or 'default'"),
};

/** Fields whose values become GenerateParams, shared by chat and completions. */
const SAMPLING: Record<string, FieldCheck> = {
  temperature: (v, name) => {
    isNumber(v, name);
    if ((v as number) < 0 || (v as number) > 2) throw invalid(`${name} must be in [0, 2], got ${describeValue(v)}`);
  },
  top_p: isNumber,
  top_k: isNumber,
  min_p: isNumber,
  repetition_penalty: isNumber,
  frequency_penalty: isNumber,
  presence_penalty: isNumber,
  seed: isNumber,
  stop: (v, name) => {
    if (typeof v !== 'string' && !(Array.isArray(v) && v.every((s) => typeof s === 'string'))) {
      throw invalid(`${name} must be a string or an array of strings`);
    }
  },
  logit_bias: () => {}, // checked with the sampling options, in samplingParams
  response_format: () => {}, // constraintSpec
  grammar: () => {}, // constraintSpec
  stream: isBoolean,
  stream_options: () => {}, // checked with stream, in streamPlan
  allow_special_tokens: isBoolean,
  max_prefill_ms: isNumber,
  signal: (v, name) => {
    if (!(v instanceof AbortSignal)) throw invalid(`${name} must be an AbortSignal`);
  },
};

/** OpenAI's names for GenerateOptions fields, for error messages. */
const OPENAI_NAMES = {
  maxTokens: 'max_tokens', logitBias: 'logit_bias', topK: 'top_k', topP: 'top_p', minP: 'min_p', repetitionPenalty: 'repetition_penalty',
  frequencyPenalty: 'frequency_penalty', presencePenalty: 'presence_penalty', maxPrefillMs: 'max_prefill_ms',
} as const;

const CHAT_FIELDS: Record<string, FieldCheck> = {
  ...INFORMATIONAL,
  ...SAMPLING,
  messages: () => {}, // validateMessages
  max_tokens: isNumber,
  max_completion_tokens: isNumber,
  logprobs: isBoolean,
  top_logprobs: () => {}, // logprobsOption
  tools: () => {}, // validateTools
  tool_choice: () => {}, // validateToolChoice
  parallel_tool_calls: isBoolean,
  functions: only([[]], 'the deprecated functions field is not supported; use tools'),
  function_call: only(['none', 'auto'], "the deprecated function_call field is not supported; use tool_choice"),
  chat_template_kwargs: () => {}, // validateTemplateKwargs
  n: () => {}, // checked with stream, in validateChatRequest
  modalities: (v, name) => {
    if (!Array.isArray(v) || !v.every((m) => m === 'text')) throw invalid(`${name} ${JSON.stringify(v)} is not supported: text output only`);
  },
  audio: notSupported('text output only'),
  prediction: notSupported('predicted outputs are not implemented'),
  reasoning_effort: notSupported('not a reasoning-effort model API'),
  verbosity: notSupported('not implemented'),
  web_search_options: notSupported('there is no web search'),
};

const COMPLETION_FIELDS: Record<string, FieldCheck> = {
  ...INFORMATIONAL,
  ...SAMPLING,
  prompt: () => {}, // completionPrompt
  max_tokens: isNumber,
  response_format: () => {}, // constraintSpec (an extension here, as llama.cpp's server takes it)
  echo: isBoolean,
  n: () => {}, // choiceCount
  best_of: only([1], 'one candidate per request; only best_of: 1'),
  logprobs: () => {}, // logprobsOption
  suffix: only([''], 'insertion (suffix) is not supported'),
};

/** Checks `request`'s fields against `fields`; null and undefined mean "default" throughout. */
function checkFields(request: unknown, fields: Record<string, FieldCheck>, what: string): Record<string, unknown> {
  if (typeof request !== 'object' || request === null || Array.isArray(request)) throw invalid(`${what} must be an object`);
  const r = request as Record<string, unknown>;
  for (const [key, value] of Object.entries(r)) {
    const check = fields[key];
    if (!check) throw unknownField(key, Object.keys(fields), what);
    if (value !== undefined && value !== null) check(value, key);
  }
  return r;
}

function unknownField(key: string, known: string[], what: string): WebGGUFError {
  const near = known.map((k) => [k, editDistance(key, k)] as const).sort((a, b) => a[1] - b[1])[0];
  const hint = near && near[1] <= Math.max(2, Math.floor(key.length / 4)) ? ` (did you mean ${near[0]}?)` : '';
  return invalid(`${key} is not a known ${what} field${hint}`);
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 3 || a.length > 64 || b.length > 64) return Infinity;
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length]!;
}

const opt = <T>(v: T | null | undefined): T | undefined => (v === null ? undefined : v);

function streamPlan(r: Record<string, unknown>): StreamPlan {
  const stream = r.stream === true;
  const options = opt(r.stream_options);
  if (options === undefined) return { stream, includeUsage: false };
  if (!stream) throw invalid('stream_options is only allowed with stream: true');
  const o = checkFields(options, { include_usage: isBoolean, include_obfuscation: only([false], 'only false') }, 'stream_options');
  return { stream, includeUsage: o.include_usage === true };
}

/**
 * GenerateOptions.logprobs from a request's field `name` (chat's top_logprobs, completions'
 * logprobs): an integer from 0 to 20, or undefined for none.
 */
function logprobsOption(r: Record<string, unknown>, name: string): number | undefined {
  const v = opt(r[name]);
  if (v !== undefined && (!Number.isSafeInteger(v) || (v as number) < 0 || (v as number) > MAX_TOP_LOGPROBS)) {
    throw invalid(`${name} must be an integer from 0 to ${MAX_TOP_LOGPROBS}, got ${describeValue(v)}`);
  }
  return v as number | undefined;
}

/** The GenerateParams of an OpenAI request, range-checked under OpenAI's field names. */
function samplingParams(r: Record<string, unknown>, maxTokens: number | undefined, logprobs?: number): GenerateParams {
  const num = (k: string) => opt(r[k]) as number | undefined;
  const params: GenerateParams = {
    maxTokens,
    // OpenAI's defaults: temperature 1, top_p 1, no top-k or min-p unless asked.
    temperature: num('temperature') ?? 1,
    topP: num('top_p') ?? 1,
    topK: num('top_k') ?? 0,
    minP: num('min_p') ?? 0,
    repetitionPenalty: num('repetition_penalty') ?? 1,
    frequencyPenalty: num('frequency_penalty') ?? 0,
    presencePenalty: num('presence_penalty') ?? 0,
    seed: num('seed'),
    maxPrefillMs: num('max_prefill_ms'),
    stop: opt(r.stop) as string | string[] | undefined,
    allowSpecialTokens: r.allow_special_tokens === true,
  };
  const logitBias = opt(r.logit_bias) as Record<string, number> | undefined;
  // An empty object asks for nothing; anything else is checked with the sampling options.
  const empty = typeof logitBias === 'object' && !Array.isArray(logitBias) && Object.keys(logitBias).length === 0;
  if (logitBias !== undefined && !empty) params.logitBias = logitBias;
  const constraint = constraintSpec(r);
  if (constraint) params.constraint = constraint;
  if (logprobs !== undefined) params.logprobs = logprobs;
  checkGenerateOptions(params, OPENAI_NAMES);
  return params;
}

/**
 * The constraint of response_format (json_object, json_schema) or of the `grammar` extension
 * (GBNF), checked (every schema keyword supported); at most one of them.
 */
function constraintSpec(r: Record<string, unknown>): ConstraintSpec | undefined {
  const format = opt(r.response_format);
  const grammar = opt(r.grammar);
  let spec: ConstraintSpec | undefined;
  if (format !== undefined) {
    const type = (format as { type?: unknown }).type;
    if (typeof format !== 'object' || typeof type !== 'string') throw invalid('response_format must be an object with a type');
    const fields = checkFields(format, { type: () => {}, json_schema: () => {} }, 'response_format');
    if (type === 'json_schema') {
      const js = checkFields(fields.json_schema, { name: isString, description: isString, schema: () => {}, strict: isBoolean }, 'response_format.json_schema');
      if (typeof js.name !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(js.name)) throw invalid('response_format.json_schema.name must be 1 to 64 letters, digits, _ or -');
      // OpenAI's default when no schema is given: any JSON object.
      spec = js.schema === undefined || js.schema === null ? { type: 'json_object' } : { type: 'json_schema', schema: js.schema };
    } else if (fields.json_schema !== undefined) {
      throw invalid(`response_format.json_schema goes with type 'json_schema', not ${describeValue(type)}`);
    } else if (type === 'json_object') {
      spec = { type: 'json_object' };
    } else if (type !== 'text') {
      throw invalid(`response_format type ${describeValue(type)} is not supported: 'text', 'json_object' or 'json_schema'`);
    }
  }
  if (grammar !== undefined) {
    if (spec) throw invalid('grammar and a JSON response_format both constrain the output; give one');
    isString(grammar, 'grammar');
    spec = { type: 'grammar', grammar: grammar as string };
  }
  if (spec) checkConstraintSpec(spec, spec.type === 'grammar' ? 'grammar' : 'response_format');
  return spec;
}

function positiveInteger(r: Record<string, unknown>, name: string): number | undefined {
  const v = opt(r[name]) as number | undefined;
  if (v !== undefined && (!Number.isSafeInteger(v) || v < 1)) throw invalid(`${name} must be a positive integer, got ${describeValue(v)}`);
  return v;
}

export function validateChatRequest(request: unknown): ChatPlan {
  const r = checkFields(request, CHAT_FIELDS, 'chat completion request');
  const messages = validateMessages(r.messages);
  const maxTokens = positiveInteger(r, 'max_tokens');
  const maxCompletionTokens = positiveInteger(r, 'max_completion_tokens');
  if (maxTokens !== undefined && maxCompletionTokens !== undefined && maxTokens !== maxCompletionTokens) {
    throw invalid(`max_tokens (${maxTokens}) and max_completion_tokens (${maxCompletionTokens}) disagree; give one`);
  }
  const plan = streamPlan(r);
  const n = choiceCount(r, plan);
  const tools = validateTools(opt(r.tools));
  const toolChoice = validateToolChoice(opt(r.tool_choice), tools);
  const templateKwargs = validateTemplateKwargs(opt(r.chat_template_kwargs));
  // OpenAI's pairing: top_logprobs only with logprobs: true (which alone lists no alternatives).
  const topLogprobs = logprobsOption(r, 'top_logprobs');
  if (topLogprobs !== undefined && r.logprobs !== true) throw invalid('top_logprobs needs logprobs: true');
  const logprobs = r.logprobs === true ? topLogprobs ?? 0 : undefined;
  return {
    ...plan, messages, params: samplingParams(r, maxCompletionTokens ?? maxTokens, logprobs),
    ...(tools.length && toolChoice !== 'none' ? { tools } : {}),
    toolChoice, parallelToolCalls: r.parallel_tool_calls !== false, n,
    ...(templateKwargs ? { templateKwargs } : {}),
  };
}

/** n: 1 to MAX_CHOICES choices, more than one only without stream. */
function choiceCount(r: Record<string, unknown>, plan: StreamPlan): number {
  const n = positiveInteger(r, 'n') ?? 1;
  if (n > MAX_CHOICES) throw invalid(`n must be at most ${MAX_CHOICES}, got ${n}`);
  if (n > 1 && plan.stream) throw invalid(`n ${n} is not supported with stream: true; stream one choice per request, or set stream: false`);
  return n;
}

const FUNCTION_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** OpenAI's tools: function tools with unique names; parameters a JSON Schema object. */
function validateTools(tools: unknown): FunctionDefinition[] {
  if (tools === undefined) return [];
  if (!Array.isArray(tools)) throw invalid(`tools must be an array of {type: 'function', function}, got ${describeValue(tools)}`);
  if (tools.length > MAX_TOOLS) throw invalid(`tools has ${tools.length} entries; at most ${MAX_TOOLS}`);
  const names = new Set<string>();
  return tools.map((t: unknown, i) => {
    const at = `tools[${i}]`;
    if (!isPlainObject(t)) throw invalid(`${at} must be an object`);
    if (t.type !== 'function') throw invalid(`${at}.type ${describeValue(t.type)} is not supported: only 'function' tools`);
    for (const key of Object.keys(t)) if (key !== 'type' && key !== 'function') throw invalid(`${at}.${key} is not a known tool field`);
    const f = t.function;
    if (!isPlainObject(f)) throw invalid(`${at}.function must be an object with a name`);
    for (const key of Object.keys(f)) {
      if (!['name', 'description', 'parameters', 'strict'].includes(key)) throw invalid(`${at}.function.${key} is not a known function field`);
    }
    if (typeof f.name !== 'string' || !FUNCTION_NAME.test(f.name)) throw invalid(`${at}.function.name must be 1-64 letters, digits, _ or -, got ${describeValue(f.name)}`);
    if (names.has(f.name)) throw invalid(`${at}.function.name "${f.name}" is given twice`);
    names.add(f.name);
    const out: FunctionDefinition = { name: f.name };
    if (f.description !== undefined && f.description !== null) {
      if (typeof f.description !== 'string') throw invalid(`${at}.function.description must be a string`);
      out.description = f.description;
    }
    if (f.parameters !== undefined && f.parameters !== null) {
      if (!isPlainObject(f.parameters)) throw invalid(`${at}.function.parameters must be a JSON Schema object`);
      try {
        out.parameters = JSON.parse(JSON.stringify(f.parameters)) as Record<string, unknown>;
      } catch {
        throw invalid(`${at}.function.parameters must be plain JSON`);
      }
    }
    if (f.strict !== undefined && f.strict !== null) {
      isBoolean(f.strict, `${at}.function.strict`);
      out.strict = f.strict as boolean;
    }
    return out;
  });
}

function validateToolChoice(choice: unknown, tools: FunctionDefinition[]): ToolChoice {
  if (choice === undefined) return 'auto';
  if (choice === 'auto' || choice === 'none') return choice;
  if (choice === 'required') {
    if (!tools.length) throw invalid("tool_choice 'required' needs tools");
    return choice;
  }
  if (isPlainObject(choice) && choice.type === 'function' && isPlainObject(choice.function) && typeof choice.function.name === 'string') {
    const name = choice.function.name;
    if (!tools.some((t) => t.name === name)) throw invalid(`tool_choice names function "${name}", which is not in tools`);
    return { type: 'function', function: { name } };
  }
  throw invalid(`tool_choice must be 'auto', 'none', 'required' or {type: 'function', function: {name}}, got ${describeValue(choice)}`);
}

/** Variables the engine sets itself: a request cannot replace them. */
const TEMPLATE_OWN = new Set(['messages', 'tools', 'add_generation_prompt', 'bos_token', 'eos_token', 'raise_exception', 'range', 'strftime_now', 'true', 'false', 'none', 'True', 'False', 'None']);

/** chat_template_kwargs: plain JSON values under identifier names (enable_thinking a boolean). */
function validateTemplateKwargs(kwargs: unknown): Record<string, unknown> | undefined {
  if (kwargs === undefined) return undefined;
  if (!isPlainObject(kwargs)) throw invalid(`chat_template_kwargs must be an object, got ${describeValue(kwargs)}`);
  for (const [key, value] of Object.entries(kwargs)) {
    if (!/^[A-Za-z_]\w*$/.test(key)) throw invalid(`chat_template_kwargs.${key} is not a template variable name`);
    if (TEMPLATE_OWN.has(key)) throw invalid(`chat_template_kwargs.${key} is set by the engine; it cannot be given`);
    if (key === 'enable_thinking' && typeof value !== 'boolean') throw invalid(`chat_template_kwargs.enable_thinking must be a boolean, got ${describeValue(value)}`);
  }
  try {
    return JSON.parse(JSON.stringify(kwargs)) as Record<string, unknown>;
  } catch {
    throw invalid('chat_template_kwargs must be plain JSON');
  }
}

/** OpenAI's default max_tokens for legacy completions. */
export const COMPLETION_DEFAULT_MAX_TOKENS = 16;

export function validateCompletionRequest(request: unknown): CompletionPlan {
  const r = checkFields(request, COMPLETION_FIELDS, 'completion request');
  const plan = streamPlan(r);
  const logprobs = logprobsOption(r, 'logprobs');
  // Echo with log-probs would list the prompt's tokens too, which no step samples.
  if (logprobs !== undefined && r.echo === true) throw invalid('logprobs with echo is not supported: the prompt has no log-probs here; leave out echo');
  return {
    ...plan,
    n: choiceCount(r, plan),
    prompt: completionPrompt(r.prompt),
    echo: r.echo === true,
    params: samplingParams(r, positiveInteger(r, 'max_tokens') ?? COMPLETION_DEFAULT_MAX_TOKENS, logprobs),
  };
}

/** A string or token ids; an array holding one of these is that one (more would be a batch). */
function completionPrompt(prompt: unknown): string | number[] {
  if (typeof prompt === 'string') return prompt;
  if (Array.isArray(prompt) && prompt.length === 1 && (typeof prompt[0] === 'string' || Array.isArray(prompt[0]))) return completionPrompt(prompt[0]);
  if (Array.isArray(prompt) && prompt.length > 0 && prompt.every((t) => Number.isSafeInteger(t) && t >= 0)) return prompt as number[];
  if (Array.isArray(prompt) && prompt.length > 1 && prompt.every((p) => typeof p === 'string' || Array.isArray(p))) {
    throw invalid(`prompt: a batch of ${prompt.length} prompts is not supported; send one per request`);
  }
  throw invalid('prompt must be a string or an array of token ids (non-negative integers)');
}

const GENERATE_FIELDS = new Set<string>([...GENERATE_OPTION_NAMES, 'stop', 'allowSpecialTokens', 'constraint']);

/** engine.generate's arguments: a string prompt and known options in range. */
export function validateGenerateRequest(prompt: unknown, options: unknown): GenerateParams & { signal?: AbortSignal } {
  if (typeof prompt !== 'string') throw invalid(`generate's prompt must be a string, got ${describeValue(prompt)}`);
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object' || Array.isArray(options)) throw invalid(`generate's options must be an object, got ${describeValue(options)}`);
  const o = options as Record<string, unknown>;
  for (const key of Object.keys(o)) if (!GENERATE_FIELDS.has(key)) throw unknownField(key, [...GENERATE_FIELDS], 'generate option');
  const { stop, allowSpecialTokens } = o;
  if (stop !== undefined && typeof stop !== 'string' && !(Array.isArray(stop) && stop.every((s) => typeof s === 'string'))) {
    throw invalid('stop must be a string or an array of strings');
  }
  if (allowSpecialTokens !== undefined) isBoolean(allowSpecialTokens, 'allowSpecialTokens');
  if (o.constraint !== undefined) checkConstraintSpec(o.constraint);
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw invalid('signal must be an AbortSignal');
  checkGenerateOptions(o as GenerateOptions);
  return o as GenerateParams & { signal?: AbortSignal };
}
