import type { ChatMessage } from '../chat/template.js';
import type { FinishReason, GenerateOptions } from '../generate.js';

/** A model to load: a URL, a File or Blob, a URL with its expected SHA-256, or a cached id. */
export type ModelSource = string | Blob | { url: string; sha256?: string } | { cached: string };

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
export interface CoreLoadOptions {
  onProgress?: (p: LoadProgress) => void;
}

export interface ModelInfo {
  /** The cache id (the URL, or a file's name, size, date and content fingerprint). */
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
