import type { ChatMessage } from '../chat/template.js';
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

export interface LoadOptions extends CoreLoadOptions {
  signal?: AbortSignal;
}

export interface LoadProgress {
  phase: 'download' | 'cache' | 'upload' | 'compile';
  loaded: number;
  total: number;
}

export interface ModelInfo {
  /** The cache id (the URL, or a file's name, size and date). */
  id: string;
  architecture: string;
  parameters: number;
  quantTypes: string[];
  contextLength: number;
  bytesOnGpu: number;
  adapter: string;
  features: string[];
  fromCache: boolean;
}

/** Sampling and length options of a request, plus stop strings. */
export type GenerateParams = Omit<GenerateOptions, 'signal'> & { stop?: string | string[] };

export interface ChatCompletionRequest {
  messages: ChatMessage[];
  model?: string;
  stream?: boolean;
  max_tokens?: number | null;
  max_completion_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  seed?: number | null;
  stop?: string | string[] | null;
  frequency_penalty?: number | null;
  presence_penalty?: number | null;
  /** Extensions. */
  top_k?: number | null;
  min_p?: number | null;
  repetition_penalty?: number | null;
  signal?: AbortSignal;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** Prompt tokens whose KV entries were reused from the previous request (not prefilled). */
  prompt_tokens_details: { cached_tokens: number };
}


export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: { index: 0; message: { role: 'assistant'; content: string }; finish_reason: FinishReason; logprobs: null }[];
  usage: Usage;
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: { index: 0; delta: { role?: 'assistant'; content?: string }; finish_reason: FinishReason | null; logprobs: null }[];
  /** On the last chunk only. */
  usage?: Usage;
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
