import * as Comlink from 'comlink';

/**
 * A caller's own `fetch` used from the engine's worker. Neither a function nor a Response can be
 * cloned across the worker boundary, so the main thread exports the function (its half runs the
 * real fetch) and the worker imports it as a `typeof fetch` that rebuilds each Response from
 * plain data and the body stream, which is transferred (in-thread it is passed as it is).
 */

/** A request as it crosses: what a range request needs. */
export interface RemoteRequest {
  method: string;
  headers: [string, string][];
}

/** A response as it crosses: plain data and a transferable body. */
export interface RemoteResponse {
  status: number;
  statusText: string;
  headers: [string, string][];
  body: ReadableStream<Uint8Array> | null;
}

/** The main thread's half. `id` names a request so the worker can abort it. */
export interface RemoteFetch {
  fetch(url: string, init: RemoteRequest, id: number): Promise<RemoteResponse>;
  abort(id: number): void;
}

/** Main thread: wraps `f` for the worker (pass the result through `Comlink.proxy`). */
export function exportFetch(f: typeof fetch): RemoteFetch {
  const pending = new Map<number, AbortController>();
  return {
    async fetch(url, init, id) {
      const controller = new AbortController();
      pending.set(id, controller);
      try {
        const res = await f(url, { method: init.method, headers: init.headers, signal: controller.signal });
        const out: RemoteResponse = { status: res.status, statusText: res.statusText, headers: [...res.headers], body: res.body };
        // The body moves to the worker; the worker cancelling it cancels this download.
        return res.body ? Comlink.transfer(out, [res.body as unknown as Transferable]) : out;
      } finally {
        pending.delete(id);
      }
    },
    abort(id) {
      pending.get(id)?.abort();
    },
  };
}

/** Worker: a `typeof fetch` that makes its requests through the main thread's half. */
export function importFetch(remote: RemoteFetch): typeof fetch {
  let nextId = 0;
  return async (input, init = {}) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const signal = init.signal ?? undefined;
    const aborted = () => signal?.reason ?? new DOMException('The request was aborted', 'AbortError');
    if (signal?.aborted) throw aborted();
    const id = nextId++;
    const request: RemoteRequest = { method: init.method ?? 'GET', headers: [...new Headers(init.headers)] };
    const answer = Promise.resolve(remote.fetch(url, request, id));
    let abandoned = false;
    // The answer may still come after an abort (a fetch that ignores its signal): drop its body.
    answer.then((r) => (abandoned ? r.body?.cancel() : undefined), () => undefined).catch(() => undefined);
    let onAbort: (() => void) | undefined;
    const abortedFirst = new Promise<never>((_, reject) => {
      onAbort = () => {
        abandoned = true;
        void Promise.resolve(remote.abort(id)).catch(() => undefined);
        reject(aborted());
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    let r: RemoteResponse;
    try {
      r = await Promise.race([answer, abortedFirst]);
    } finally {
      signal?.removeEventListener('abort', onAbort!);
    }
    if (r.status < 200 || r.status > 599) {
      void r.body?.cancel();
      throw new TypeError(`the custom fetch answered with status ${r.status} (an opaque or failed response)`);
    }
    return new Response(r.body && signal ? abortable(r.body, signal, aborted) : r.body, { status: r.status, statusText: r.statusText, headers: r.headers });
  };
}

/** A body that errors when `signal` aborts, as a real fetch's body does, cancelling the source. */
function abortable(body: ReadableStream<Uint8Array>, signal: AbortSignal, reason: () => unknown): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let onAbort: (() => void) | undefined;
  const settle = () => signal.removeEventListener('abort', onAbort!);
  return new ReadableStream<Uint8Array>({
    start(controller) {
      onAbort = () => {
        controller.error(reason());
        void reader.cancel().catch(() => undefined);
      };
      signal.addEventListener('abort', onAbort, { once: true });
    },
    async pull(controller) {
      const { value, done } = await reader.read();
      if (signal.aborted) return; // errored already
      if (done) {
        settle();
        controller.close();
      } else {
        controller.enqueue(value);
      }
    },
    cancel(why) {
      settle();
      return reader.cancel(why);
    },
  }, { highWaterMark: 0 });
}
