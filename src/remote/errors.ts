import { WebGGUFError, type ErrorCode } from '../errors.js';

/** How much of an error body is read and quoted. */
export const MAX_ERROR_BODY_CHARS = 64 * 1024;
const QUOTED_CHARS = 500;

/** The code for an HTTP status: 401/403 auth, 429 rate-limited, 404 not-found, 408 timeout, other 4xx invalid-argument, the rest server. */
export function codeForStatus(status: number): ErrorCode {
  if (status === 401 || status === 403) return 'auth';
  if (status === 429) return 'rate-limited';
  if (status === 404) return 'not-found';
  if (status === 408) return 'timeout';
  if (status >= 400 && status < 500) return 'invalid-argument';
  return 'server';
}

/**
 * What servers put in an error body. OpenAI, llama.cpp, Ollama, newer vLLM and SGLang:
 * `{ error: { message, type, code } }`; older vLLM and SGLang: `{ object: 'error', message, type,
 * code }`; FastAPI's validation: `{ detail: '…' | [{ msg }] }`; llama.cpp's `error:` event: the
 * inner object itself; anything else: the text.
 */
function describe(body: unknown): { message?: string; type?: string; code?: unknown } {
  if (typeof body === 'string') return { message: body };
  if (typeof body !== 'object' || body === null) return {};
  const b = body as Record<string, unknown>;
  if (b.error !== undefined && b.error !== null) {
    const inner = describe(b.error);
    // text-generation-inference: { error: '…', error_type: 'validation' }.
    const type = inner.type ?? (typeof b.error_type === 'string' ? b.error_type : undefined);
    return { ...inner, type, message: inner.message ?? (typeof b.message === 'string' ? b.message : undefined) };
  }
  const detail = Array.isArray(b.detail)
    ? b.detail.map((d) => (typeof d === 'object' && d !== null && 'msg' in d ? String((d as { msg: unknown }).msg) : JSON.stringify(d))).join('; ')
    : typeof b.detail === 'string' ? b.detail : undefined;
  return {
    message: typeof b.message === 'string' ? b.message : detail,
    type: typeof b.type === 'string' ? b.type : undefined,
    code: b.code,
  };
}

/** A prompt longer than the model's context, in the words the servers use. */
const CONTEXT_OVERFLOW = /context.?length|context.?size|context.?window|maximum context|exceed_context/i;

/** This library's own codes that `webgguf serve` puts in an error body's `code`, kept as they are. */
const OWN_CODES = new Set<string>(['context-overflow', 'invalid-argument', 'not-found', 'timeout']);

function codeFor(status: number | undefined, type: string | undefined, code: unknown, message: string): ErrorCode {
  if (typeof code === 'string' && OWN_CODES.has(code) && (status === undefined || (status >= 400 && status < 500))) return code as ErrorCode;
  const words = `${type ?? ''} ${typeof code === 'string' ? code : ''}`;
  const numeric = typeof code === 'number' ? code : typeof code === 'string' && /^\d{3}$/.test(code) ? Number(code) : undefined;
  const byStatus = status ?? numeric;
  if ((byStatus === undefined || byStatus === 400 || byStatus === 413) && CONTEXT_OVERFLOW.test(`${words} ${message}`)) return 'context-overflow';
  if (byStatus !== undefined) return codeForStatus(byStatus);
  if (/auth|permission|api.?key/i.test(words)) return 'auth';
  if (/rate.?limit|quota/i.test(words)) return 'rate-limited';
  if (/invalid|bad.?request|not.?supported|validation/i.test(words)) return 'invalid-argument';
  return 'server';
}

function quote(text: string): string {
  const flat = text.trim().replace(/\s+/g, ' ');
  return flat.length > QUOTED_CHARS ? `${flat.slice(0, QUOTED_CHARS)}…` : flat;
}

/** The error for an HTTP answer that is not 2xx, carrying the server's message. */
export function errorFromResponse(status: number, statusText: string, bodyText: string, url: string): WebGGUFError {
  let body: unknown = bodyText;
  try {
    body = JSON.parse(bodyText);
  } catch {
    // not JSON: the text is the message
  }
  const { message, type, code } = describe(body);
  const said = quote(message || bodyText || statusText || '');
  const hint = status === 401 || status === 403 ? ' (check the apiKey)' : '';
  return new WebGGUFError(codeFor(status, type, code, said), `${url} answered ${status}${hint}${said ? `: ${said}` : ''}`);
}

/**
 * A failure the server reported inside a stream or a 200 body (`{ error: … }`, `{ object:
 * 'error', … }`, or an `error` event), or undefined when `payload` is not one.
 */
export function errorFromPayload(payload: unknown, isErrorEvent = false): WebGGUFError | undefined {
  if (typeof payload !== 'object' || payload === null) {
    return isErrorEvent ? new WebGGUFError('server', `the server reported an error: ${quote(String(payload))}`) : undefined;
  }
  const p = payload as Record<string, unknown>;
  if (!isErrorEvent && (p.error === undefined || p.error === null) && p.object !== 'error') return undefined;
  const { message, type, code } = describe(p);
  const said = quote(message ?? JSON.stringify(payload));
  return new WebGGUFError(codeFor(undefined, type, code, said), `the server reported an error: ${said}`);
}

/**
 * Retry-After in ms: delay-seconds or an HTTP date (RFC 9110); undefined when absent or
 * unreadable. A date in the past is 0.
 */
export function retryAfterMs(header: string | null | undefined, now = Date.now()): number | undefined {
  if (!header) return undefined;
  const value = header.trim();
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
