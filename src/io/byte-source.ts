import { WebGGUFError } from '../errors.js';
import { readAhead } from './read-ahead.js';
import { RequestSlots } from './request-slots.js';

/**
 * Random access to the bytes of a model file. Readers ask for bounded ranges, so a file never has
 * to sit in memory whole.
 */
export interface ByteSource {
  /** Total size in bytes. */
  readonly size: number;
  /** A short name for messages (file name or URL). */
  readonly name: string;
  /** Identifies this version of the content (an HTTP ETag), where the source knows one. */
  readonly validator?: string;
  /** Reads [offset, offset + length), clipped to the end of the source. */
  read(offset: number, length: number): Promise<Uint8Array>;
}

/** A source over bytes already in memory (tests, small files). */
export function bytesSource(bytes: Uint8Array, name = 'bytes'): ByteSource {
  return {
    size: bytes.byteLength,
    name,
    read: async (offset, length) => bytes.subarray(offset, Math.min(bytes.byteLength, offset + length)),
  };
}

/** A File or Blob: slices are read lazily by the browser. */
export function blobSource(blob: Blob, name = (blob as File).name ?? 'blob'): ByteSource {
  return {
    size: blob.size,
    name,
    read: async (offset, length) =>
      new Uint8Array(await blob.slice(offset, Math.min(blob.size, offset + length)).arrayBuffer()),
  };
}

export interface UrlSourceOptions {
  signal?: AbortSignal;
  /** A request that receives no bytes for this long fails (default 30 s). */
  stallTimeoutMs?: number;
  /** Sent with every request, e.g. `Authorization: Bearer …` for a gated model. */
  headers?: Record<string, string>;
  /** Makes the requests in place of the global fetch (a proxy, signed URLs, a test double). */
  fetch?: typeof fetch;
  /** Bounds the range requests in flight; the parts of a split model share one (default: 4 of its own). */
  slots?: RequestSlots;
}

/**
 * A URL. Where the server honours Range, reads are range requests, up to 4 at a time (a reader
 * going front to back is read ahead, see readAhead), and the file's validator (ETag or
 * Last-Modified) must stay the same across them. Where it does not, the one response body is
 * read forward only, which suits a loader that reads in file order.
 */
export async function urlSource(url: string, options: UrlSourceOptions = {}): Promise<ByteSource> {
  const request: RequestContext = { url, stall: options.stallTimeoutMs ?? 30_000, headers: options.headers, fetch: options.fetch ?? globalThis.fetch };
  // The probe's link stays up for a server that ignores Range: abort then cuts its one stream.
  const link = linkedAbort(options.signal);
  const probe = await fetchOk(request, 0, 1, link);
  if (/text\/html/i.test(probe.headers.get('content-type') ?? '')) {
    await probe.body?.cancel();
    throw new WebGGUFError('network', `${url}: the server answered with a web page, not a model file; check the URL`);
  }
  const validator = validatorOf(probe);
  if (probe.status === 200) return forwardOnlySource(url, probe, request.stall);
  link.done();
  const range = probe.headers.get('content-range');
  const total = range ? Number(range.split('/')[1]) : NaN;
  await probe.body?.cancel();
  if (probe.status !== 206 || !Number.isSafeInteger(total)) {
    throw new WebGGUFError('network', `${url}: the server answered ${probe.status} without a usable Content-Range`);
  }
  const slots = options.slots ?? new RequestSlots(4);
  const fetchRange = async (start: number, end: number, signal: AbortSignal): Promise<Uint8Array> => {
    const release = await slots.acquire(signal);
    const link = linkedAbort(signal);
    try {
      const res = await fetchOk(request, start, end - start, link);
      const now = validatorOf(res);
      if (res.status !== 206 || now !== validator) {
        await res.body?.cancel();
        throw new WebGGUFError('network', `${url}: the file changed on the server during the download (validator ${validator} → ${now}); load it again`);
      }
      return await readBody(url, res, end - start, request.stall, signal);
    } finally {
      link.done();
      release();
    }
  };
  return { size: total, name: url, validator, read: readAhead(total, fetchRange, { signal: options.signal, depth: slots.limit }) };
}

function validatorOf(res: Response): string | undefined {
  return res.headers.get('etag') ?? res.headers.get('last-modified') ?? undefined;
}

/**
 * A whole-file response read front to back. The bytes from the start of the latest read onwards
 * are kept, so a reader may go back within its last range (a header parser re-reading a value
 * that straddled its window); anything earlier is gone, and bytes skipped over are discarded.
 */
function forwardOnlySource(url: string, res: Response, stall: number): ByteSource {
  const size = Number(res.headers.get('content-length'));
  if (!Number.isSafeInteger(size) || size <= 0) {
    void res.body?.cancel();
    throw new WebGGUFError('network', `${url}: the server supports neither range requests nor Content-Length`);
  }
  const reader = res.body!.getReader();
  let kept = new Uint8Array(0);
  let keptStart = 0; // kept holds bytes [keptStart, keptStart + kept.length), which ends at the stream position
  return {
    size,
    name: url,
    validator: validatorOf(res),
    read: async (offset, length) => {
      const end = Math.min(size, offset + length);
      if (offset < keptStart) throw new WebGGUFError('network', `${url}: the server ignores range requests, and the loader needed bytes it had passed`);
      while (keptStart + kept.byteLength < end) {
        const { value, done } = await withStallTimeout(url, reader.read(), stall, () => reader.cancel());
        if (done) throw new WebGGUFError('network', `${url}: the download ended after ${keptStart + kept.byteLength} of ${size} bytes`);
        const position = keptStart + kept.byteLength;
        if (position + value.byteLength <= offset) {
          keptStart = position + value.byteLength; // wholly before this read: discard
          kept = new Uint8Array(0);
          continue;
        }
        const joined = new Uint8Array(kept.byteLength + value.byteLength);
        joined.set(kept);
        joined.set(value, kept.byteLength);
        kept = joined;
      }
      const out = kept.slice(offset - keptStart, end - keptStart);
      kept = kept.subarray(offset - keptStart);
      keptStart = offset;
      return out;
    },
  };
}

async function readBody(url: string, res: Response, expected: number, stall: number, signal: AbortSignal): Promise<Uint8Array> {
  const out = new Uint8Array(expected);
  const reader = res.body!.getReader();
  let at = 0;
  try {
    for (;;) {
      const { value, done } = await withStallTimeout(url, reader.read(), stall, () => reader.cancel());
      if (done) break;
      if (at + value.byteLength > expected) throw new WebGGUFError('network', `${url}: the server sent more than the ${expected} bytes asked for`);
      out.set(value, at);
      at += value.byteLength;
    }
  } catch (e) {
    if (e instanceof WebGGUFError) throw e;
    if (signal.aborted) throw new WebGGUFError('aborted', `${url}: the download was aborted`, { cause: e });
    throw new WebGGUFError('network', `${url}: the download broke off (${(e as Error).message})`, { cause: e });
  }
  if (at !== expected) throw new WebGGUFError('network', `${url}: the download broke off after ${at} of ${expected} bytes`);
  return out;
}

function withStallTimeout<T>(url: string, read: Promise<T>, ms: number, cancel: () => Promise<void>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stalled = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      void cancel().catch(() => undefined);
      reject(new WebGGUFError('network', `${url}: no data for ${Math.round(ms / 1000)} s; the download stalled`));
    }, ms);
  });
  return Promise.race([read, stalled]).finally(() => clearTimeout(timer));
}
interface RequestContext {
  url: string;
  stall: number;
  headers?: Record<string, string>;
  fetch: typeof fetch;
}

/** An AbortController that follows `parent` until `done` (a request and its body, not longer). */
function linkedAbort(parent: AbortSignal | undefined): { signal: AbortSignal; abort(): void; done(): void } {
  const controller = new AbortController();
  const abort = () => controller.abort();
  parent?.addEventListener('abort', abort);
  if (parent?.aborted) abort();
  return { signal: controller.signal, abort, done: () => parent?.removeEventListener('abort', abort) };
}

async function fetchOk(request: RequestContext, offset: number, length: number, link: ReturnType<typeof linkedAbort>): Promise<Response> {
  const { url, stall, fetch: get } = request; // called unbound: browsers' fetch refuses another `this`
  const headers = new Headers(request.headers);
  headers.set('Range', `bytes=${offset}-${offset + length - 1}`);
  let res: Response;
  try {
    // A server that does not answer within the stall timeout is treated like one that stalls mid-body.
    res = await withStallTimeout(url, get(url, { headers, signal: link.signal }), stall, async () => link.abort());
  } catch (e) {
    if (e instanceof WebGGUFError) throw e;
    if (link.signal.aborted) throw new WebGGUFError('aborted', `${url}: the download was aborted`, { cause: e });
    throw new WebGGUFError('network', `${url}: ${(e as Error).message}`, { cause: e });
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new WebGGUFError('network', `${url}: HTTP ${res.status} ${res.statusText}`);
  }
  return res;
}
