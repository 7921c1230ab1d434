import type { RouteInfo } from './engine/types.js';
import { WebGGUFError } from './errors.js';

/** OpenAI's embeddings request (POST /v1/embeddings), as engine.embeddings.create takes it. */
export interface EmbeddingRequest {
  /** One text or several; each becomes one vector. */
  input: string | string[];
  /** Accepted for OpenAI compatibility; the loaded model answers. */
  model?: string;
  /** Keep only the first `dimensions` values, renormalized (Matryoshka-trained models). */
  dimensions?: number;
  /** 'float' (default): number arrays; 'base64': each vector's little-endian float32 bytes in base64. */
  encoding_format?: 'float' | 'base64';
  /**
   * What the inputs are, for models trained with a prefix for each (nomic-embed's "search_query: ",
   * EmbeddingGemma's, Qwen3-Embedding's instruction, bge's query instruction): each input gets the
   * model's prefix for it, known from the file's name (general.basename, general.name; GGUF has no
   * key for them). Absent, or a model without prefixes: the inputs as they are.
   */
  input_type?: 'query' | 'document';
  /** Accepted for OpenAI compatibility; unused. */
  user?: string;
  signal?: AbortSignal;
}

export interface Embedding {
  object: 'embedding';
  index: number;
  embedding: number[] | string;
}

export interface EmbeddingResponse {
  object: 'list';
  data: Embedding[];
  model: string;
  usage: { prompt_tokens: number; total_tokens: number };
  /** Extension: which engine answered (remote and routed engines only). */
  webgguf?: RouteInfo;
}

/** Inputs one request may hold (OpenAI's limit). */
export const MAX_EMBEDDING_INPUTS = 2048;

/** Checks a request's fields (OpenAI's rules); returns the inputs as a list. */
export function validateEmbeddingRequest(request: unknown): { inputs: string[]; dimensions: number | undefined; encoding: 'float' | 'base64'; inputType: 'query' | 'document' | undefined } {
  const bad = (message: string) => new WebGGUFError('invalid-argument', message);
  if (typeof request !== 'object' || request === null) throw bad('embeddings.create takes a request object: { input }');
  const r = request as Record<string, unknown>;
  const inputs = typeof r.input === 'string' ? [r.input] : r.input;
  if (!Array.isArray(inputs) || inputs.some((t) => typeof t !== 'string')) throw bad('input must be a string or an array of strings');
  if (inputs.length === 0) throw bad('input must not be an empty array');
  if (inputs.length > MAX_EMBEDDING_INPUTS) throw bad(`input has ${inputs.length} texts; at most ${MAX_EMBEDDING_INPUTS} per request`);
  const empty = inputs.findIndex((t) => t === '');
  if (empty >= 0) throw bad(`input[${empty}] is empty; every input needs some text`);
  const dimensions = r.dimensions;
  if (dimensions !== undefined && !(Number.isInteger(dimensions) && (dimensions as number) >= 1)) throw bad(`dimensions must be a positive integer, not ${String(dimensions)}`);
  const encoding = r.encoding_format ?? 'float';
  if (encoding !== 'float' && encoding !== 'base64') throw bad(`encoding_format must be 'float' or 'base64', not ${String(encoding)}`);
  if (r.model !== undefined && typeof r.model !== 'string') throw bad('model must be a string');
  const inputType = r.input_type;
  if (inputType !== undefined && inputType !== 'query' && inputType !== 'document') throw bad(`input_type must be 'query' or 'document', not ${String(inputType)}`);
  return { inputs: inputs as string[], dimensions: dimensions as number | undefined, encoding, inputType };
}

/** The first `dimensions` values of a pooled vector (all when undefined), scaled to length 1. */
export function finishEmbedding(pooled: ArrayLike<number>, dimensions?: number): Float32Array {
  const n = Math.min(dimensions ?? pooled.length, pooled.length);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += pooled[i]! * pooled[i]!;
  // A zero vector stays zero (llama.cpp's normalisation does the same).
  const scale = sum > 0 ? 1 / Math.sqrt(sum) : 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = pooled[i]! * scale;
  return out;
}

/** A vector as OpenAI's base64 encoding: its little-endian float32 bytes. */
export function embeddingToBase64(v: Float32Array): string {
  const bytes = new Uint8Array(v.length * 4);
  const view = new DataView(bytes.buffer);
  v.forEach((x, i) => view.setFloat32(i * 4, x, true));
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

/**
 * The cosine of the angle between two vectors: 1 same direction, 0 unrelated, -1 opposite. For
 * the unit vectors embeddings.create returns, this is their dot product. Vectors of different
 * lengths, or base64 strings, are refused.
 */
export function cosineSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (typeof a === 'string' || typeof b === 'string') throw new WebGGUFError('invalid-argument', 'cosineSimilarity takes number arrays; request encoding_format "float"');
  if (a.length !== b.length) throw new WebGGUFError('invalid-argument', `cosineSimilarity of vectors of ${a.length} and ${b.length} values`);
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : 0;
}
