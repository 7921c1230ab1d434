import * as Comlink from 'comlink';
import type { KeyValueStore } from '../cache/store.js';
import { WebGGUFError } from '../errors.js';
import type { GpuContext } from '../gpu/context.js';
import type { GeneratedToken } from '../generate.js';
import { validateEmbeddingRequest, type EmbeddingRequest, type EmbeddingResponse } from '../embeddings.js';
import { validateChatRequest, validateCompletionRequest, validateGenerateRequest } from '../chat/request.js';
import { inThreadHost, workerHost, type CoreApi, type EngineHost } from './host.js';
import { pushStream } from './push-stream.js';
import { exportFetch, type RemoteFetch } from '../io/remote-fetch.js';
import type {
  CacheEntry, CacheUsage, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, Completion, CompletionChunk, CompletionRequest, GenerateParams,
  EngineLoadOptions, EstimateOptions, FallbackOptions, ModelEstimate, ModelInfo, ModelSource, RemoteOptions,
} from './types.js';

export interface EngineOptions {
  /** Run the engine in a module Worker (default) or in this thread (tests, Node). */
  worker?: boolean;
  /**
   * The worker script, where a bundler did not put it next to the library (esbuild, for one, does
   * not copy it: serve node_modules/webgguf/dist/worker.js and give its URL here).
   */
  workerUrl?: string | URL;
  /** A worker that has not answered within this long fails createEngine with `worker-failed` (default 30 s). */
  startTimeoutMs?: number;
  /** Cache repacked weights in IndexedDB (default: true where IndexedDB exists). */
  cache?: boolean;
  /** KV cache length (default: the model's, capped at 4096). */
  contextLength?: number;
  /** How the KV cache stores keys and values: 'f16' (default, half the memory) or 'f32'. */
  kvCache?: 'f16' | 'f32';
  /** A download that receives nothing for this long fails with a network error (default 30 s). */
  stallTimeoutMs?: number;
  /** 'error' (default): a chat longer than the context fails; 'shift': the oldest turns are dropped, the system prompt kept. */
  contextPolicy?: 'error' | 'shift';
  /**
   * The most GPU memory a model may take (weights, KV cache and work buffers); a larger one is
   * refused with `insufficient-memory`, saying by how much, before its weights are downloaded.
   * Default: a conservative share of the device's memory on phones and small machines
   * (defaultGpuBudget), no limit elsewhere; `Infinity` turns it off.
   */
  maxGpuBytes?: number;
  /** In-thread only: the GPU to use and the store for the weight cache. */
  gpu?: () => Promise<GpuContext>;
  store?: KeyValueStore;
  /**
   * An OpenAI-compatible server instead of this device: the engine's calls become its HTTP API
   * (the other options do not apply). See RemoteOptions.
   */
  remote?: RemoteOptions;
  /**
   * The local engine, answering from a server when this device cannot run the model (see
   * FallbackOptions); responses say which answered in `webgguf.route`.
   */
  fallback?: FallbackOptions;
}

export interface Engine {
  load(source: ModelSource, options?: EngineLoadOptions): Promise<ModelInfo>;
  /**
   * Will a model run here, and how fast, before downloading it: GPU memory from its header alone
   * (a few range requests), whether it fits this device and the memory budget (and why not), and
   * its decode and prefill speed measured on this device over a sample of its layers.
   */
  estimate(source: ModelSource, options?: EstimateOptions): Promise<ModelEstimate>;
  generate(prompt: string, options?: GenerateParams & { signal?: AbortSignal }): AsyncIterable<GeneratedToken>;
  chat: {
    completions: {
      create(request: ChatCompletionRequest & { stream: true }, options?: { signal?: AbortSignal }): Promise<AsyncIterable<ChatCompletionChunk>>;
      create(request: ChatCompletionRequest & { stream?: false | null }, options?: { signal?: AbortSignal }): Promise<ChatCompletion>;
      create(request: ChatCompletionRequest, options?: { signal?: AbortSignal }): Promise<ChatCompletion | AsyncIterable<ChatCompletionChunk>>;
    };
  };
  /** OpenAI's legacy text completions. */
  completions: {
    create(request: CompletionRequest & { stream: true }, options?: { signal?: AbortSignal }): Promise<AsyncIterable<CompletionChunk>>;
    create(request: CompletionRequest & { stream?: false | null }, options?: { signal?: AbortSignal }): Promise<Completion>;
    create(request: CompletionRequest, options?: { signal?: AbortSignal }): Promise<Completion | AsyncIterable<CompletionChunk>>;
  };
  /** OpenAI's embeddings, from an embedding model (BERT, EmbeddingGemma, Qwen3-Embedding...): a unit-length vector per input. */
  embeddings: {
    create(request: EmbeddingRequest, options?: { signal?: AbortSignal }): Promise<EmbeddingResponse>;
  };
  cache: {
    list(): Promise<CacheEntry[]>;
    delete(id: string): Promise<void>;
    usage(): Promise<CacheUsage>;
    /**
     * Asks the browser not to evict stored models under storage pressure
     * (navigator.storage.persist(); browsers may ask the user or decide by themselves).
     */
    persist(): Promise<boolean>;
  };
  /** GPU bytes held by the loaded model. */
  bytesOnGpu(): Promise<number>;
  unload(): Promise<void>;
  /**
   * Ends the engine: running requests are aborted, the worker is terminated after a short grace
   * period whatever it is doing, and every pending and later call rejects with `disposed`.
   */
  dispose(): Promise<void>;
}

/** How long an aborted request may take to stop before the worker is checked for being stuck. */
const ABORT_GRACE_MS = 2_000;
/** How long dispose() lets the engine free its GPU memory before the worker is terminated. */
const DISPOSE_GRACE_MS = 2_000;

let requestCounter = 0;
const nextId = () => `${Date.now().toString(36)}-${(requestCounter++).toString(36)}`;

/**
 * Relative model URLs name files next to the page, not next to the worker script (which lives
 * in the library's folder), so they are resolved here, before they cross.
 */
function resolveSource(source: ModelSource): ModelSource {
  const base = (globalThis as { document?: { baseURI?: string } }).document?.baseURI ?? globalThis.location?.href;
  if (!base) return source;
  const resolve = (url: string) => {
    try {
      return new URL(url, base).href;
    } catch {
      throw new WebGGUFError('invalid-argument', `not a URL: ${JSON.stringify(url)}`);
    }
  };
  if (typeof source === 'string') return resolve(source);
  if (Array.isArray(source)) return source.map((part) => (typeof part === 'string' ? resolve(part) : part));
  if (typeof source === 'object' && source !== null && !(source instanceof Blob) && 'url' in source && typeof source.url === 'string') {
    return { ...source, url: resolve(source.url) };
  }
  return source;
}

/**
 * Creates the engine. By default it runs in a module Worker, so loading and generating never
 * block the page; the API is the same either way.
 */
export async function createEngine(options: EngineOptions = {}): Promise<Engine> {
  // The server's client is its own chunk, imported only by pages that ask for a server.
  if (options.remote) {
    if (options.fallback) throw new WebGGUFError('invalid-argument', 'createEngine takes remote (the server only) or fallback (this device, else the server), not both');
    const { createRemoteEngine } = await import('../remote/engine.js');
    return createRemoteEngine(options.remote);
  }
  if (options.fallback) {
    const { fallback, ...local } = options;
    const { createRoutedEngine } = await import('../remote/route.js');
    const engine = await createEngine(local);
    try {
      return createRoutedEngine(engine, fallback);
    } catch (e) {
      await engine.dispose();
      throw e;
    }
  }
  const useCache = options.cache ?? typeof indexedDB !== 'undefined';
  const budget = options.maxGpuBytes ?? defaultGpuBudget(globalThis.navigator);
  if (!(budget > 0)) throw new WebGGUFError('invalid-argument', `maxGpuBytes must be a positive number of bytes (or Infinity), not ${options.maxGpuBytes}`);
  // Infinity cannot cross to the worker as a number the same way on every path: none is no limit.
  const maxGpuBytes = Number.isFinite(budget) ? budget : undefined;
  const host: EngineHost = (options.worker ?? true)
    ? await workerHost(
      { cache: useCache, contextLength: options.contextLength, kvCache: options.kvCache, stallTimeoutMs: options.stallTimeoutMs, contextPolicy: options.contextPolicy, maxGpuBytes },
      options,
    )
    : await inThreadHost(useCache, {
      store: options.store ?? null,
      gpu: options.gpu, contextLength: options.contextLength, kvCache: options.kvCache, stallTimeoutMs: options.stallTimeoutMs, contextPolicy: options.contextPolicy, maxGpuBytes,
    });

  let disposed: Promise<void> | undefined;
  const disposedError = () => new WebGGUFError('disposed', 'the engine was disposed; create a new one with createEngine()');
  /** Requests in flight, so dispose() can abort them. */
  const active = new Set<string>();
  /** The last model loaded, to load again if the worker has to be restarted. */
  let lastLoad: { source: ModelSource; headers?: Record<string, string>; fetch?: RemoteFetch } | undefined;

  const call = <T>(run: (core: CoreApi) => Promise<T>): Promise<T> => (disposed ? Promise.reject(disposedError()) : host.call(run));
  // Callbacks cross the worker boundary as proxies; in-thread they are plain functions.
  const callback = <F extends object>(f: F): F => (host.remote ? (Comlink.proxy(f) as unknown as F) : f);

  /**
   * Runs a request with an id the engine can abort it by. An abort that the engine does not
   * honour within ABORT_GRACE_MS, from a worker that does not answer either, means the worker is
   * stuck in synchronous work (a hostile template, a huge vocabulary): it is restarted, and the
   * last model is loaded again (from the weight cache where it is stored).
   */
  const withAbort = <T>(signal: AbortSignal | undefined, run: (id: string, core: CoreApi) => Promise<T>): Promise<T> => {
    if (disposed) return Promise.reject(disposedError());
    const id = nextId();
    let settled = false;
    let watchdog: ReturnType<typeof setTimeout> | undefined;
    const onAbort = () => {
      void call((core) => core.abort(id)).catch(() => undefined);
      watchdog ??= setTimeout(async () => {
        if (settled || disposed || (await host.responsive(ABORT_GRACE_MS)) || settled || disposed) return;
        const restarted = await host.restart(new WebGGUFError(
          'aborted',
          'a request was aborted while the engine worker was stuck in synchronous work, so the worker was restarted ' +
            'and the requests in flight were cancelled' + (lastLoad ? '; the model is being loaded again' : ''),
        ));
        if (restarted && lastLoad) {
          const { source, headers, fetch } = lastLoad;
          void call((core) => core.load(source, nextId(), { headers }, undefined, fetch)).catch(() => (lastLoad = undefined));
        }
      }, ABORT_GRACE_MS);
    };
    active.add(id);
    if (signal?.aborted) onAbort();
    signal?.addEventListener('abort', onAbort);
    // A request that dispose() cut short ends with `disposed`, not with what was left of it.
    const ended = <V>(value: V): V => {
      if (disposed) throw disposedError();
      return value;
    };
    return call((core) => run(id, core)).then(ended).finally(() => {
      settled = true;
      clearTimeout(watchdog);
      active.delete(id);
      signal?.removeEventListener('abort', onAbort);
    });
  };

  /** A streamed request; leaving the loop early aborts it. */
  const stream = <T>(signal: AbortSignal | undefined, run: (id: string, core: CoreApi, push: (item: T) => void) => Promise<unknown>) =>
    pushStream<T>((push, cancelled) => {
      const local = new AbortController();
      const onAbort = () => local.abort();
      void cancelled.then(onAbort);
      if (signal?.aborted) onAbort();
      signal?.addEventListener('abort', onAbort);
      return withAbort(local.signal, (id, core) => run(id, core, callback(push))).finally(() => signal?.removeEventListener('abort', onAbort));
    });

  /**
   * An OpenAI-style create(): whole or streamed. Requests are checked here too, so a bad streamed
   * request rejects create() itself.
   */
  const openAICreate = <R extends { signal?: AbortSignal }, Whole, Chunk>(
    validate: (request: R) => { stream: boolean },
    run: (core: CoreApi, request: Omit<R, 'signal'>, id: string, push?: (chunk: Chunk) => void) => Promise<Whole>,
  ) => async (request: R, opts: { signal?: AbortSignal } = {}): Promise<Whole | AsyncIterable<Chunk>> => {
    const { stream: streamed } = validate(request);
    const { signal: requestSignal, ...rest } = request;
    const signal = opts.signal ?? requestSignal;
    if (!streamed) return withAbort(signal, (id, core) => run(core, rest, id));
    if (disposed) throw disposedError();
    return stream<Chunk>(signal, (id, core, push) => run(core, rest, id, push));
  };
  const create = openAICreate<ChatCompletionRequest, ChatCompletion, ChatCompletionChunk>(
    validateChatRequest, (core, request, id, push) => core.chatCompletion(request, id, push));
  const createCompletion = openAICreate<CompletionRequest, Completion, CompletionChunk>(
    validateCompletionRequest, (core, request, id, push) => core.completion(request, id, push));

  return {
    load: async (source, o = {}) => {
      const resolved = resolveSource(source);
      // Functions cannot be cloned inside an options object: they cross as arguments of their own.
      const onProgress = o.onProgress && callback(o.onProgress);
      const fetch = o.fetch && callback(exportFetch(o.fetch));
      return withAbort(o.signal, (id, core) => core.load(resolved, id, { headers: o.headers }, onProgress, fetch)).then((info) => {
        lastLoad = { source: resolved, headers: o.headers, fetch };
        return info;
      });
    },
    estimate: (source, o = {}) => {
      const resolved = resolveSource(source);
      const fetch = o.fetch && callback(exportFetch(o.fetch));
      const { signal, fetch: _, ...rest } = o;
      return withAbort(signal, (id, core) => core.estimate(resolved, id, rest, fetch));
    },
    generate: (prompt, o) => {
      let checked: ReturnType<typeof validateGenerateRequest>;
      try {
        checked = validateGenerateRequest(prompt, o);
      } catch (e) {
        return failedStream(e);
      }
      const { signal, ...params } = checked;
      return stream<GeneratedToken>(signal, (id, core, push) => core.generate(prompt, params, id, push));
    },
    chat: { completions: { create: create as Engine['chat']['completions']['create'] } },
    completions: { create: createCompletion as Engine['completions']['create'] },
    embeddings: {
      create: async (request, o = {}) => {
        validateEmbeddingRequest(request);
        const { signal, ...rest } = request;
        return withAbort(o.signal ?? signal, (id, core) => core.embeddings(rest, id));
      },
    },
    cache: {
      list: () => call((core) => core.cacheList()),
      delete: (id) => call((core) => core.cacheDelete(id)),
      usage: () => call((core) => core.cacheUsage()),
      persist: async () => {
        if (disposed) throw disposedError();
        return (await globalThis.navigator?.storage?.persist?.().catch(() => false)) ?? false;
      },
    },
    bytesOnGpu: () => call((core) => core.bytesOnGpu()),
    unload: () => call((core) => core.unload()).then(() => void (lastLoad = undefined)),
    dispose: () => {
      if (disposed) return disposed;
      const ids = [...active];
      // Ask the engine to stop and free the GPU; whatever it is doing, the worker ends after the grace period.
      const graceful = host.call(async (core) => {
        await Promise.all(ids.map((id) => core.abort(id)));
        await core.dispose();
      }).catch(() => undefined);
      disposed = Promise.race([graceful, new Promise<void>((r) => setTimeout(r, DISPOSE_GRACE_MS))]).then(() => host.kill(disposedError()));
      return disposed;
    },
  };
}

/** An iterable whose first step throws `error` (a generate call with bad arguments). */
function failedStream<T>(error: unknown): AsyncIterable<T> {
  return { [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(error) }) };
}

/**
 * The memory budget createEngine uses unless told otherwise, from what the platform says: on a
 * phone or tablet (a mobile user agent), half of the device's memory (navigator.deviceMemory,
 * which browsers round and cap at 8 GiB; 4 GiB where it is not given), since the GPU shares it
 * with the system and the tab is killed rather than told; on other machines that report under
 * 8 GiB, half of it too; otherwise no limit.
 */
export function defaultGpuBudget(nav: { userAgent?: string; deviceMemory?: number; userAgentData?: { mobile?: boolean } } | undefined): number {
  const gib = 2 ** 30;
  const memory = typeof nav?.deviceMemory === 'number' && nav.deviceMemory > 0 ? nav.deviceMemory : undefined;
  const mobile = nav?.userAgentData?.mobile ?? /Android|iPhone|iPad|iPod|Mobile/i.test(nav?.userAgent ?? '');
  if (mobile) return ((memory ?? 4) * gib) / 2;
  if (memory !== undefined && memory < 8) return (memory * gib) / 2;
  return Infinity;
}
