/**
 * Every failure the library reports is a WebGGUFError with a stable `code`, so callers (and the
 * worker boundary) can branch on it without parsing messages.
 */
export type ErrorCode =
  | 'not-gguf'
  | 'unsupported-version'
  | 'truncated'
  | 'malformed'
  | 'unsupported-tensor-type'
  | 'unsupported-architecture'
  | 'shape-mismatch'
  | 'missing-tensor'
  | 'network'
  | 'cache'
  | 'cache-corrupt'
  | 'quota-exceeded'
  | 'integrity'
  | 'no-webgpu'
  | 'device-lost'
  | 'gpu'
  | 'insufficient-memory'
  | 'context-overflow'
  | 'invalid-argument'
  | 'aborted'
  | 'timeout'
  | 'worker-failed'
  | 'disposed'
  | 'not-found'
  // An OpenAI-compatible server's answers (remote engines): 401/403, 429, 5xx or a broken reply.
  | 'auth'
  | 'rate-limited'
  | 'server';

export class WebGGUFError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WebGGUFError';
    this.code = code;
  }
}

/** Problems with the bytes of a model file. */
export class ModelFormatError extends WebGGUFError {
  constructor(code: ErrorCode, message: string) {
    super(code, message);
    this.name = 'ModelFormatError';
  }
}

export function isWebGGUFError(e: unknown): e is WebGGUFError {
  return e instanceof WebGGUFError;
}
