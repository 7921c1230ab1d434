import type { ConstraintSpec } from '../grammar/spec.js';
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

/** engine.estimate's options. */
export interface EstimateOptions {
  /** The context the load would use (default: the engine's, else the model's capped at 4096). */
  contextLength?: number;
  /** The prompt length the time to first token is predicted for (default 128). */
  promptTokens?: number;
  /**
   * Measure the speed on this device (default true): the model's kernels run over a sample of its
   * first layers with random weights (a second or so; remembered per device and model shape).
   */
  speed?: boolean;
  /** As for load: sent with every request for the header. */
  headers?: Record<string, string>;
  fetch?: typeof fetch;
  /** Aborts the header's requests, or the speed measurement between its steps: the estimate rejects with `aborted`. */
  signal?: AbortSignal;
}

/**
 * Will a model run here, and how fast: from its GGUF header alone (a few range requests, never
 * the weights), against this device's limits and the engine's memory budget.
 */
export interface ModelEstimate {
  /** The file's name or URL. */
  model: string;
  architecture: string;
  /** The context the numbers are for. */
  contextLength: number;
  /** Bytes of the file (all its parts). */
  fileBytes: number;
  /** GPU bytes of the weights as uploaded. */
  weightBytes: number;
  /** GPU bytes of the per-sequence state at `contextLength`: the KV cache (and any recurrent state). */
  contextBytes: number;
  /** GPU bytes of the work buffers (activations, logits, sampler). */
  workBytes: number;
  /** Every buffer at once: what the load allocates. */
  peakGpuBytes: number;
  /** The largest single buffer, which the device's binding limit must hold. */
  largestBufferBytes: number;
  /** The engine's memory budget (maxGpuBytes), or null for none. */
  budgetBytes: number | null;
  /** Whether it fits the device's limits and the budget; `reasons` says why not. */
  fits: boolean;
  reasons: string[];
  /** Predicted speed on this device; null when it does not fit, was not asked for, or (BERT-family encoders) is not predicted. */
  speed: { decodeTokS: number; prefillTokS: number; ttftMs: number; promptTokens: number } | null;
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
  /**
   * What it answers: `text` (chat and completions) or `embedding` vectors (an encoder, or a
   * decoder whose file names its pooling, such as Qwen3-Embedding). Absent on remote engines:
   * the server decides.
   */
  kind?: 'text' | 'embedding';
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
  /**
   * Remote and routed engines only: where requests are answered, on this device (`local`) or by
   * the server (`remote`, where the numbers above are what the server reports, 0 when it does not).
   */
  route?: RouteInfo['route'];
}

/**
 * Sampling and length options of a request, plus stop strings and `allowSpecialTokens` (user
 * text that spells a control token is encoded as plain text unless this is true).
 */
export type GenerateParams = Omit<GenerateOptions, 'signal'> & {
  stop?: string | string[];
  allowSpecialTokens?: boolean;
  /** Constrained decoding: the output must match this JSON schema, JSON mode or GBNF grammar. */
  constraint?: ConstraintSpec;
};

/** A text content part; the only kind a text model takes. */
export interface ChatCompletionContentPartText {
  type: 'text';
  text: string;
}

/** A call the assistant made: `arguments` is the JSON text of an object. Ids start with `call_`. */
export interface ChatCompletionMessageToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

/**
 * A message of a chat request: text content, as a string or as text parts (joined). Assistant
 * turns may carry the `tool_calls` they made (content then may be null); `role: 'tool'` turns
 * answer one call by its `tool_call_id`.
 */
export interface ChatCompletionMessageParam {
  role: 'system' | 'developer' | 'user' | 'assistant' | 'tool';
  content: string | ChatCompletionContentPartText[] | null;
  name?: string;
  /** Assistant turns as OpenAI returns them. */
  refusal?: null;
  tool_calls?: ChatCompletionMessageToolCall[] | null;
  /** Tool turns: the id of the call this is the result of. */
  tool_call_id?: string;
  /** Assistant turns: earlier thinking, for templates that render it. */
  reasoning_content?: string | null;
}

/** A function the model may call; `parameters` is a JSON Schema object. */
export interface ChatCompletionTool {
  type: 'function';
  function: { name: string; description?: string | null; parameters?: Record<string, unknown> | null; strict?: boolean | null };
}

/** Which calls the model may make: none, its choice (default), at least one, or this function. */
export type ChatCompletionToolChoice = 'none' | 'auto' | 'required' | { type: 'function'; function: { name: string } };

/** Why a chat choice ended: generation's reasons, or 'tool_calls' when the reply called tools. */
export type ChatFinishReason = FinishReason | 'tool_calls';

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

export type ResponseFormat =
  | { type: 'text' }
  | { type: 'json_object' }
  | { type: 'json_schema'; json_schema: { name: string; description?: string; schema?: Record<string, unknown> | boolean; strict?: boolean | null } };

/** The sampling fields shared by chat and legacy completion requests. */
interface SamplingFields {
  temperature?: number | null;
  top_p?: number | null;
  /** A safe integer; hashed to the sampler's 32-bit seed, so different seeds stay different. */
  seed?: number | null;
  stop?: string | string[] | null;
  frequency_penalty?: number | null;
  presence_penalty?: number | null;
  /** Token id (as a string key) -> a bias in [-100, 100] added to its logit; at most 300 entries. */
  logit_bias?: Record<string, number> | null;
  /**
   * Structured output: `json_object` (any JSON object) or `json_schema` (JSON that validates
   * against `schema`; unsupported keywords are invalid-argument errors naming them). Tokens are
   * masked on the GPU at each step, so the output cannot be invalid (it can end short, at max_tokens).
   */
  response_format?: ResponseFormat | null;
  /** Extension (llama.cpp's): a GBNF grammar the output must match, rule `root` first. */
  grammar?: string | null;
  stream?: boolean | null;
  /** With `stream: true` only; include_usage adds a last chunk with `choices: []` and the usage. */
  stream_options?: { include_usage?: boolean | null; include_obfuscation?: false | null } | null;
  /** Extensions (llama.cpp's samplers). */
  top_k?: number | null;
  min_p?: number | null;
  repetition_penalty?: number | null;
  /** Extension: encode control-token text in messages/prompt as control tokens (default false). */
  allow_special_tokens?: boolean | null;
  /**
   * Extension: the longest the prompt may take to process, in ms; a prefill whose pace shows it
   * will take longer fails at once with `timeout` (see engine.estimate for the time beforehand).
   */
  max_prefill_ms?: number | null;
}

/**
 * OpenAI's chat request. Every field is honoured or, where this engine cannot honour it (audio,
 * predicted outputs, n > 1 with stream), rejected with invalid-argument naming it; unknown fields
 * are rejected too.
 */
export interface ChatCompletionRequest extends InformationalFields, SamplingFields {
  messages: ChatCompletionMessageParam[];
  /** Choices, each sampled on its own (seeds derived per choice); more than 1 only without stream. */
  n?: number | null;
  max_tokens?: number | null;
  max_completion_tokens?: number | null;
  /**
   * Each generated token's log-probability in `choices[i].logprobs.content` (and in stream chunks):
   * log-softmax of the model's logits plus logit_bias, before temperature, penalties, truncation
   * and any grammar mask (as OpenAI and llama.cpp report them). Every generated token is listed,
   * reasoning and tool-call text included.
   */
  logprobs?: boolean | null;
  /** With logprobs: this many most likely tokens at each step too (0 to 20). */
  top_logprobs?: number | null;
  /** Rendered through the model's own chat template (its `tools` variable). */
  tools?: ChatCompletionTool[] | null;
  tool_choice?: ChatCompletionToolChoice | null;
  parallel_tool_calls?: boolean | null;
  /** Extra variables for the chat template, e.g. `{ enable_thinking: false }` (Qwen 3). */
  chat_template_kwargs?: Record<string, unknown> | null;
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
  /** Choices, each sampled on its own (as in chat); more than 1 only without stream. */
  n?: number | null;
  /** Text, or token ids; an array of one of either is taken as that one. */
  prompt: string | [string] | number[] | [number[]];
  /** Default 16, as OpenAI's. */
  max_tokens?: number | null;
  /** The reply starts with the prompt's text. */
  echo?: boolean | null;
  best_of?: 1 | null;
  /**
   * Log-probs of each generated token and of the N most likely (0 to 20), in OpenAI's legacy
   * shape (see ChatCompletionRequest.logprobs for what they are); not with echo.
   */
  logprobs?: number | null;
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
  choices: ChatCompletionChoice[];
  usage: Usage;
  /** Extension: which engine answered (remote and routed engines only). */
  webgguf?: RouteInfo;
}

/** A token in a log-prob list: its text (`bytes:\xNN…` for part of a character), log-prob and UTF-8 bytes. */
export interface ChatCompletionTopLogprob {
  token: string;
  logprob: number;
  bytes: number[] | null;
}

/** A generated token's log-prob and its step's most likely tokens, most likely first. */
export interface ChatCompletionTokenLogprob extends ChatCompletionTopLogprob {
  top_logprobs: ChatCompletionTopLogprob[];
}

/** `choices[i].logprobs` of a request with `logprobs: true`; null otherwise. */
export interface ChatCompletionLogprobs {
  content: ChatCompletionTokenLogprob[] | null;
  refusal: null;
}

/** Legacy completions' log-probs: one entry per token in each list; top_logprobs maps token text to log-prob. */
export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: number[];
  top_logprobs: Record<string, number>[];
  /** Where each token's text starts in the choice's text (UTF-16 code units). */
  text_offset: number[];
}

/**
 * One reply. `content` is null when the reply only called tools (as OpenAI sends it); `tool_calls` and
 * `reasoning_content` (the thinking of models that think in <think>) are there only when the reply has them.
 */
export interface ChatCompletionChoice {
  index: number;
  message: {
    role: 'assistant';
    content: string | null;
    refusal: null;
    tool_calls?: ChatCompletionMessageToolCall[];
    reasoning_content?: string;
  };
  finish_reason: ChatFinishReason;
  logprobs: ChatCompletionLogprobs | null;
}

/**
 * A streamed piece of a tool call: the first for a call has its `id`, `type` and `function.name`
 * (with `arguments: ''`), the next ones add `function.arguments` text; `index` says which call.
 */
export interface ChatCompletionChunkToolCall {
  index: number;
  id?: string;
  type?: 'function';
  function: { name?: string; arguments: string };
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  /** Empty in the usage chunk. */
  choices: {
    index: 0;
    /**
     * The first chunk has the role: with `content: ''`, or, when the reply starts with a tool
     * call, with `content: null` and that call (as OpenAI streams them).
     */
    delta: { role?: 'assistant'; content?: string | null; reasoning_content?: string; tool_calls?: ChatCompletionChunkToolCall[] };
    finish_reason: ChatFinishReason | null;
    /** With logprobs: the tokens generated since the last chunk (whose text this chunk may hold only part of). */
    logprobs: ChatCompletionLogprobs | null;
  }[];
  /**
   * Only with `stream_options.include_usage`: null on every chunk but the last, which has
   * `choices: []` and the usage.
   */
  usage?: Usage | null;
  /** Extension: which engine answered (remote and routed engines only). */
  webgguf?: RouteInfo;
}

export interface Completion {
  id: string;
  object: 'text_completion';
  created: number;
  model: string;
  choices: { index: number; text: string; finish_reason: FinishReason; logprobs: CompletionLogprobs | null }[];
  usage: Usage;
  /** Extension: which engine answered (remote and routed engines only). */
  webgguf?: RouteInfo;
}

/** A streamed piece of a legacy completion: same shape, `finish_reason` null until the last. */
export interface CompletionChunk {
  id: string;
  object: 'text_completion';
  created: number;
  model: string;
  choices: { index: 0; text: string; finish_reason: FinishReason | null; logprobs: CompletionLogprobs | null }[];
  usage?: Usage | null;
  /** Extension: which engine answered (remote and routed engines only). */
  webgguf?: RouteInfo;
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

/**
 * An OpenAI-compatible server (vLLM, SGLang, llama.cpp's server, Ollama's /v1, OpenAI,
 * `webgguf serve`): `createEngine({ remote })` speaks to it with the engine's own API.
 */
export interface RemoteOptions {
  /** The API's root, e.g. `http://localhost:8000/v1` (paths such as `/chat/completions` are appended). */
  baseURL: string | URL;
  /** Sent as `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** The server's name for the model, sent as `model` in every request that names none. */
  model: string;
  /** Sent with every request. */
  headers?: Record<string, string>;
  /** Makes the requests in place of the global fetch. */
  fetch?: typeof fetch;
  /**
   * Retries of a request that got no response (connection refused or dropped before any byte),
   * or 429, 502, 503 or 504: exponential backoff with jitter from `baseDelayMs`, or the server's
   * `Retry-After` where it gives one; a wait longer than `maxDelayMs` is not made (the error comes
   * at once). Never once streamed output has reached the caller. Default 2 retries, 500 ms, 30 s.
   */
  retry?: { maxRetries?: number; baseDelayMs?: number; maxDelayMs?: number };
  /**
   * A request that receives nothing for this long (no response, or no byte of a streamed body,
   * where servers send keep-alive comments) fails with `network`. Default 120 s.
   */
  stallTimeoutMs?: number;
}

/** When a local engine answers from the server instead. */
export type FallbackWhen = 'no-webgpu' | 'does-not-fit' | 'always';

/**
 * createEngine's `fallback`: a local engine that loads the model on this device when it can, and
 * otherwise answers from `remote`. `when`: 'no-webgpu' (this device has no WebGPU),
 * 'does-not-fit' (default: that, or the load's fit check refuses the model: `insufficient-memory`),
 * 'always' (every request goes to the server).
 */
export interface FallbackOptions {
  remote: RemoteOptions;
  when?: FallbackWhen;
}

/**
 * Extension field on responses and chunks of a remote or routed engine: which one answered, the
 * model on this device (`local`) or the server (`remote`). The `model` field names the model too.
 */
export interface RouteInfo {
  route: 'local' | 'remote';
}
