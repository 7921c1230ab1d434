import type { FinishReason, GenerateOptions } from '../generate.js';

/**
 * A model to load: a URL, a File or Blob, a URL with its expected SHA-256, or a cached id. A
 * split model (llama.cpp's gguf-split, NAME-00001-of-0000N.gguf): its first part's URL, or all
 * its parts as a list of URLs or Files.
 */
export type ModelSource = string | Blob | (string | Blob)[] | { url: string; sha256?: string } | { cached: string };

/** How EngineCore.load downloads: progress, and the requests' headers or own fetch. */
export interface CoreLoadOptions {
  onProgress?: (p: LoadProgress) => void;
  /** Sent with every request for the model, e.g. `{ Authorization: 'Bearer hf_…' }` for a gated one. */
  headers?: Record<string, string>;
  /** Makes the model's requests in place of the global fetch. */
  fetch?: typeof fetch;
}

/** engine.load's options. */
export interface EngineLoadOptions extends CoreLoadOptions {
  signal?: AbortSignal;
}

/**
 * One shape for the whole load. `loaded` and `total` count bytes over all phases together: the
 * file's bytes (downloaded or read from a File, or stood in for by cached chunks) plus the
 * repacked bytes uploaded to the GPU. `total` is fixed for the load, `loaded` never goes back nor
 * past it, and the last event (`compile`: pipelines are built, no bytes left) has loaded === total.
 */
export interface LoadProgress {
  /** What is happening now: fetching the file, reading stored chunks, uploading, compiling. */
  phase: 'download' | 'cache' | 'upload' | 'compile';
  loaded: number;
  total: number;
}

/**
 * Options of one load. (The `loading` work adds `headers` and `fetch` here; this one only needs
 * the progress callback.)
 */
export interface ModelInfo {
  /** The cache id (the URL, or a file's name, size, date and content fingerprint). */
  id: string;
  architecture: string;
  parameters: number;
  quantTypes: string[];
  contextLength: number;
  bytesOnGpu: number;
  /**
   * Weight bytes kept in CPU memory instead (Gemma 4's per-layer embedding table, of which a step
   * uploads only its tokens' rows); 0 for other models.
   */
  bytesOnCpu: number;
  adapter: string;
  features: string[];
  fromCache: boolean;
}

/**
 * Sampling and length options of a request, plus stop strings and `allowSpecialTokens` (user
 * text that spells a control token is encoded as plain text unless this is true).
 */
export type GenerateParams = Omit<GenerateOptions, 'signal'> & { stop?: string | string[]; allowSpecialTokens?: boolean };

/** A text content part; the only kind a text model takes. */
export interface ChatCompletionContentPartText {
  type: 'text';
  text: string;
}

/** A message of a chat request: text content, as a string or as text parts (joined). */
export interface ChatCompletionMessageParam {
  role: 'system' | 'developer' | 'user' | 'assistant';
  content: string | ChatCompletionContentPartText[];
  name?: string;
  /** Assistant turns as OpenAI returns them; accepted when empty (no tool calls). */
  refusal?: null;
  tool_calls?: [];
}

/** Fields that mean nothing to a local engine, accepted as OpenAI accepts them. */
interface InformationalFields {
  model?: string | null;
  user?: string | null;
  metadata?: Record<string, string> | null;
  /** Nothing is stored: only false is accepted. */
  store?: false | null;
  service_tier?: 'auto' | 'default' | null;
  prompt_cache_key?: string | null;
  safety_identifier?: string | null;
}

/** The sampling fields shared by chat and legacy completion requests. */
interface SamplingFields {
  temperature?: number | null;
  top_p?: number | null;
  /** One choice per request: only 1. */
  n?: 1 | null;
  /** A safe integer; hashed to the sampler's 32-bit seed, so different seeds stay different. */
  seed?: number | null;
  stop?: string | string[] | null;
  frequency_penalty?: number | null;
  presence_penalty?: number | null;
  /** Not implemented: only empty. */
  logit_bias?: Record<string, never> | null;
  stream?: boolean | null;
  /** With `stream: true` only; include_usage adds a last chunk with `choices: []` and the usage. */
  stream_options?: { include_usage?: boolean | null; include_obfuscation?: false | null } | null;
  /** Extensions (llama.cpp's samplers). */
  top_k?: number | null;
  min_p?: number | null;
  repetition_penalty?: number | null;
  /** Extension: encode control-token text in messages/prompt as control tokens (default false). */
  allow_special_tokens?: boolean | null;
}

/**
 * OpenAI's chat request. Every field is honoured or, where this engine cannot honour it (tools,
 * structured output, log-probs, audio, n > 1), rejected with invalid-argument naming it; unknown
 * fields are rejected too.
 */
export interface ChatCompletionRequest extends InformationalFields, SamplingFields {
  messages: ChatCompletionMessageParam[];
  max_tokens?: number | null;
  max_completion_tokens?: number | null;
  logprobs?: false | null;
  top_logprobs?: null;
  response_format?: { type: 'text' } | null;
  tools?: [] | null;
  tool_choice?: 'none' | 'auto' | null;
  parallel_tool_calls?: boolean | null;
  modalities?: ['text'] | null;
  audio?: null;
  prediction?: null;
  reasoning_effort?: null;
  verbosity?: null;
  functions?: [] | null;
  function_call?: 'none' | 'auto' | null;
  web_search_options?: null;
  signal?: AbortSignal;
}

/** OpenAI's legacy completion request (`engine.completions.create`). */
export interface CompletionRequest extends InformationalFields, SamplingFields {
  /** Text, or token ids; an array of one of either is taken as that one. */
  prompt: string | [string] | number[] | [number[]];
  /** Default 16, as OpenAI's. */
  max_tokens?: number | null;
  /** The reply starts with the prompt's text. */
  echo?: boolean | null;
  best_of?: 1 | null;
  logprobs?: null;
  suffix?: null;
  signal?: AbortSignal;
}

/** Speed of the request (WebLLM's `usage.extra`); times in seconds from when the call was made. */
export interface UsageExtra {
  e2e_latency_s: number;
  time_to_first_token_s: number;
  /** Prompt tokens computed (not reused from the KV cache) per second of prefill. */
  prefill_tokens_per_s: number;
  /** Tokens after the first, per second; 0 with fewer than two. */
  decode_tokens_per_s: number;
  time_per_output_token_s: number;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** Prompt tokens whose KV entries were reused from the previous request (not prefilled). */
  prompt_tokens_details: { cached_tokens: number };
  extra: UsageExtra;
}

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: { index: 0; message: { role: 'assistant'; content: string; refusal: null }; finish_reason: FinishReason; logprobs: null }[];
  usage: Usage;
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  /** Empty in the usage chunk. */
  choices: { index: 0; delta: { role?: 'assistant'; content?: string }; finish_reason: FinishReason | null; logprobs: null }[];
  /**
   * Only with `stream_options.include_usage`: null on every chunk but the last, which has
   * `choices: []` and the usage.
   */
  usage?: Usage | null;
}

export interface Completion {
  id: string;
  object: 'text_completion';
  created: number;
  model: string;
  choices: { index: 0; text: string; finish_reason: FinishReason; logprobs: null }[];
  usage: Usage;
}

/** A streamed piece of a legacy completion: same shape, `finish_reason` null until the last. */
export interface CompletionChunk {
  id: string;
  object: 'text_completion';
  created: number;
  model: string;
  choices: { index: 0; text: string; finish_reason: FinishReason | null; logprobs: null }[];
  usage?: Usage | null;
}

export interface CacheEntry {
  id: string;
  source: string;
  fileBytes: number;
  storedBytes: number;
  architecture: string;
  createdAt: number;
}

export interface CacheUsage {
  /** navigator.storage.estimate(), where available. */
  usage?: number;
  quota?: number;
  persisted: boolean;
  models: number;
  modelBytes: number;
}
