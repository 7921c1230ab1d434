import type { RemoteOptions } from '../engine/types.js';
import { WebGGUFError } from '../errors.js';
import { errorFromResponse, MAX_ERROR_BODY_CHARS, retryAfterMs } from './errors.js';
import { SseParser, type ServerSentEvent } from './sse.js';

/** Statuses worth another try: the server is busy or a proxy could not reach it. */
const RETRY_STATUSES = new Set([429, 502, 503, 504]);
const DEFAULTS = { maxRetries: 2, baseDelayMs: 500, maxDelayMs: 30_000, stallTimeoutMs: 120_000 };
/** The largest whole answer read (an embeddings answer for 2048 long vectors is some tens of MB). */
const MAX_ANSWER_CHARS = 256 * 2 ** 20;

const abortedError = () => new WebGGUFError('aborted', 'the request was aborted');

/**
 * One HTTP exchange's lifetime: its own AbortController, fired by the caller's signal or by the
 * stall timer, which runs only while a byte is awaited (never while the caller holds a chunk).
 */
class Exchange {
  readonly controller = new AbortController();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stalled = false;
  private readonly onAbort = () => this.controller.abort();

  constructor(private readonly signal: AbortSignal | undefined, private readonly stallMs: number, private readonly url: string) {
    if (signal?.aborted) this.controller.abort();
    signal?.addEventListener('abort', this.onAbort);
  }

  arm(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.stalled = true;
      this.controller.abort();
    }, this.stallMs);
  }

  disarm(): void {
    clearTimeout(this.timer);
  }

  /**
   * `work`, or a rejection as soon as the exchange is aborted: a caller's fetch (or its body)
   * that ignores the signal cannot keep a call from settling.
   */
  guard<T>(work: Promise<T>): Promise<T> {
    const signal = this.controller.signal;
    if (signal.aborted) {
      // `work` has started (a read on an aborted body rejects too): its outcome is not wanted.
      work.catch(() => undefined);
      return Promise.reject(new DOMException('aborted', 'AbortError'));
    }
    let onAbort!: () => void;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(new DOMException('aborted', 'AbortError'));
      signal.addEventListener('abort', onAbort, { once: true });
    });
    return Promise.race([work, aborted]).finally(() => signal.removeEventListener('abort', onAbort));
  }

  /** The typed error for a fetch or read that threw. */
  failure(cause: unknown, what: string): WebGGUFError {
    if (cause instanceof WebGGUFError) return cause;
    if (this.signal?.aborted) return abortedError();
    if (this.stalled) return new WebGGUFError('network', `${what}: ${this.url} sent nothing for ${this.stallMs / 1000} s (stallTimeoutMs)`, { cause });
    const reason = cause instanceof Error ? (cause.cause instanceof Error ? `${cause.message} (${cause.cause.message})` : cause.message) : String(cause);
    // Browsers say only "Failed to fetch" for an unreachable server and for one that refuses the page's origin alike.
    const hint = /failed to fetch|networkerror|load failed/i.test(reason) ? " (the server is unreachable, or does not allow this page's origin: CORS)" : '';
    return new WebGGUFError('network', `${what}: ${this.url}: ${reason}${hint}`, { cause });
  }

  /** Ends the exchange: timer off, the connection closed if it is still open. */
  close(): void {
    clearTimeout(this.timer);
    this.signal?.removeEventListener('abort', this.onAbort);
    this.controller.abort();
  }
}

/** An answered request whose body is still to read. */
export interface Opened {
  response: Response;
  exchange: Exchange;
}

/** Waits `ms`, or rejects with `aborted` when the signal fires first. */
function wait(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortedError());
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortedError());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * HTTP to an OpenAI-compatible server: JSON requests with the key and headers, retries of what
 * is safe to retry, every failure a WebGGUFError, streamed bodies as server-sent events.
 */
export class RemoteClient {
  readonly baseURL: string;
  private readonly retry: typeof DEFAULTS;

  constructor(private readonly options: RemoteOptions) {
    let url: URL;
    try {
      url = new URL(String(options.baseURL));
    } catch {
      throw new WebGGUFError('invalid-argument', `remote.baseURL must be an absolute http(s) URL, not ${JSON.stringify(String(options.baseURL))}`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new WebGGUFError('invalid-argument', `remote.baseURL must be http(s), not ${url.protocol}`);
    this.baseURL = url.href.replace(/\/+$/, '');
    const r = { ...options.retry };
    for (const [name, value] of Object.entries({ ...r, stallTimeoutMs: options.stallTimeoutMs })) {
      if (value !== undefined && !(typeof value === 'number' && value >= 0)) throw new WebGGUFError('invalid-argument', `remote ${name} must be a number >= 0, not ${String(value)}`);
    }
    this.retry = {
      maxRetries: Math.floor(r.maxRetries ?? DEFAULTS.maxRetries),
      baseDelayMs: r.baseDelayMs ?? DEFAULTS.baseDelayMs,
      maxDelayMs: r.maxDelayMs ?? DEFAULTS.maxDelayMs,
      stallTimeoutMs: options.stallTimeoutMs ?? DEFAULTS.stallTimeoutMs,
    };
  }

  private headers(json: boolean): Record<string, string> {
    return {
      ...(json ? { 'Content-Type': 'application/json' } : {}),
      Accept: 'application/json, text/event-stream',
      ...(this.options.apiKey ? { Authorization: `Bearer ${this.options.apiKey}` } : {}),
      ...this.options.headers,
    };
  }

  /** Exponential backoff with full jitter in its upper half: base·2^attempt·[0.5, 1). */
  private backoff(attempt: number): number {
    return this.retry.baseDelayMs * 2 ** attempt * (0.5 + Math.random() / 2);
  }

  /**
   * Sends a request and returns once a 2xx answer's headers are in, retrying a request that got
   * no answer at all, or 429/502/503/504, up to `maxRetries` times; other answers fail with the
   * server's message. The body is left to read (`json`, `events`).
   */
  async open(method: 'GET' | 'POST', path: string, body: unknown, signal: AbortSignal | undefined): Promise<Opened> {
    const url = `${this.baseURL}${path}`;
    const fetchImpl = this.options.fetch ?? globalThis.fetch;
    for (let attempt = 0; ; attempt++) {
      const exchange = new Exchange(signal, this.retry.stallTimeoutMs, url);
      const last = attempt >= this.retry.maxRetries;
      let response: Response;
      try {
        exchange.arm();
        response = await exchange.guard(fetchImpl(url, {
          method, headers: this.headers(body !== undefined), body: body === undefined ? undefined : JSON.stringify(body), signal: exchange.controller.signal,
        }));
        exchange.disarm();
      } catch (e) {
        exchange.close();
        const error = exchange.failure(e, `no answer from ${method} ${path}`);
        // No byte came back, so the server did not answer this request: safe to send again. A
        // stall is not retried: the server may still be working on it.
        if (error.code !== 'network' || last || /sent nothing for/.test(error.message)) throw error;
        await wait(this.backoff(attempt), signal);
        continue;
      }
      if (response.ok) return { response, exchange };
      const text = await this.readText({ response, exchange }, MAX_ERROR_BODY_CHARS).catch(() => '');
      exchange.close();
      const error = errorFromResponse(response.status, response.statusText, text, url);
      if (!RETRY_STATUSES.has(response.status)) throw error;
      const asked = retryAfterMs(response.headers.get('retry-after'));
      const delay = asked ?? this.backoff(attempt);
      if (last) throw new WebGGUFError(error.code, `${error.message} (after ${attempt + 1} attempts)`);
      if (delay > this.retry.maxDelayMs) {
        throw new WebGGUFError(error.code, `${error.message} (it asks to retry after ${Math.ceil(delay / 1000)} s, longer than retry.maxDelayMs)`);
      }
      await wait(delay, signal);
    }
  }

  /** The body as text; at most `limit` characters are kept (the rest is not read). */
  async readText(opened: Opened, limit = MAX_ANSWER_CHARS): Promise<string> {
    let text = '';
    for await (const piece of this.texts(opened, 'the answer broke off')) {
      text += piece;
      if (text.length >= limit) break;
    }
    return text.slice(0, limit);
  }

  /**
   * The body's text as it arrives, each read under the stall timer (not the caller's time between
   * reads); leaving early closes the connection.
   */
  private async *texts({ response, exchange }: Opened, brokeOff: string): AsyncGenerator<string> {
    if (!response.body) return;
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        exchange.arm();
        let read: ReadableStreamReadResult<Uint8Array>;
        try {
          read = await exchange.guard(reader.read());
        } catch (e) {
          throw exchange.failure(e, brokeOff);
        }
        exchange.disarm();
        if (read.done) break;
        yield decoder.decode(read.value, { stream: true });
      }
      yield decoder.decode();
    } finally {
      exchange.close();
      void reader.cancel().catch(() => undefined);
    }
  }

  /** A whole JSON answer. */
  async json(method: 'GET' | 'POST', path: string, body: unknown, signal: AbortSignal | undefined): Promise<unknown> {
    const opened = await this.open(method, path, body, signal);
    const text = await this.readText(opened, MAX_ANSWER_CHARS + 1);
    if (text.length > MAX_ANSWER_CHARS) throw new WebGGUFError('server', `${this.baseURL}${path} answered with more than ${MAX_ANSWER_CHARS} characters`);
    try {
      return JSON.parse(text);
    } catch {
      throw new WebGGUFError('server', `${this.baseURL}${path} answered with something that is not JSON: ${text.slice(0, 200)}`);
    }
  }

  /**
   * A streamed body's events as they come. Leaving the loop early closes the connection (the
   * server sees the client go and, for a generation, stops it).
   */
  async *events(opened: Opened): AsyncGenerator<ServerSentEvent> {
    if (!opened.response.body) throw new WebGGUFError('server', 'the server answered a streamed request without a body');
    const parser = new SseParser();
    for await (const text of this.texts(opened, 'the stream broke off')) yield* parser.push(text);
    yield* parser.end();
  }
}
