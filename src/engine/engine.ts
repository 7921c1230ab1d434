import * as Comlink from 'comlink';
import { indexedDBStore, type KeyValueStore } from '../cache/store.js';
import type { GpuContext } from '../gpu/context.js';
import { EngineCore } from './core.js';
import { installErrorTransfer } from './errors-transfer.js';
import { exportFetch } from '../io/remote-fetch.js';
import type { WorkerApi } from './worker.js';
import type {
  CacheEntry, CacheUsage, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, GenerateParams, LoadOptions, ModelInfo, ModelSource,
} from './types.js';

export interface EngineOptions {
  /** Run the engine in a module Worker (default) or in this thread (tests, Node). */
  worker?: boolean;
  /** Cache repacked weights in IndexedDB (default: true where IndexedDB exists). */
  cache?: boolean;
  /** KV cache length (default: the model's, capped at 4096). */
  contextLength?: number;
  /** A download that receives nothing for this long fails with a network error (default 30 s). */
  stallTimeoutMs?: number;
  /** 'error' (default): a chat longer than the context fails; 'shift': the oldest turns are dropped, the system prompt kept. */
  contextPolicy?: 'error' | 'shift';
  /** In-thread only: the GPU to use and the store for the weight cache. */
  gpu?: () => Promise<GpuContext>;
  store?: KeyValueStore;
}

type CoreApi = Pick<EngineCore, 'abort' | 'load' | 'generate' | 'chatCompletion' | 'cacheList' | 'cacheDelete' | 'cacheUsage' | 'bytesOnGpu' | 'unload' | 'dispose'>;

export interface Engine {
  load(source: ModelSource, options?: LoadOptions): Promise<ModelInfo>;
  generate(prompt: string, options?: GenerateParams & { signal?: AbortSignal }): AsyncIterable<{ token: number; text: string }>;
  chat: {
    completions: {
      create(request: ChatCompletionRequest & { stream: true }, options?: { signal?: AbortSignal }): Promise<AsyncIterable<ChatCompletionChunk>>;
      create(request: ChatCompletionRequest & { stream?: false | null }, options?: { signal?: AbortSignal }): Promise<ChatCompletion>;
      create(request: ChatCompletionRequest, options?: { signal?: AbortSignal }): Promise<ChatCompletion | AsyncIterable<ChatCompletionChunk>>;
    };
  };
  cache: {
    list(): Promise<CacheEntry[]>;
    delete(id: string): Promise<void>;
    usage(): Promise<CacheUsage>;
  };
  /** GPU bytes held by the loaded model. */
  bytesOnGpu(): Promise<number>;
  unload(): Promise<void>;
  dispose(): Promise<void>;
}

let requestCounter = 0;
const nextId = () => `${Date.now().toString(36)}-${(requestCounter++).toString(36)}`;

/**
 * Creates the engine. By default it runs in a module Worker, so loading and generating never
 * block the page; the API is the same either way.
 */
export async function createEngine(options: EngineOptions = {}): Promise<Engine> {
  const useCache = options.cache ?? typeof indexedDB !== 'undefined';
  // Ask the browser not to evict cached weights under storage pressure (a Window-only API; a
  // refusal is fine, cache.usage() reports it).
  if (useCache) await globalThis.navigator?.storage?.persist?.().catch(() => false);
  let core: CoreApi;
  let load: CoreApi['load'] = (...a) => core.load(...a);
  let worker: Worker | undefined;
  if (options.worker ?? true) {
    installErrorTransfer();
    worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module', name: 'webgguf' });
    const remote = Comlink.wrap<WorkerApi>(worker);
    await remote.init({ cache: useCache, contextLength: options.contextLength, stallTimeoutMs: options.stallTimeoutMs, contextPolicy: options.contextPolicy });
    core = remote as unknown as CoreApi;
    // Functions cannot be cloned inside an options object: they cross as proxies of their own.
    load = (source, id, o = {}) => remote.load(source, id, { headers: o.headers }, o.onProgress && Comlink.proxy(o.onProgress), o.fetch && Comlink.proxy(exportFetch(o.fetch)));
  } else {
    core = new EngineCore({
      store: useCache ? options.store ?? indexedDBStore() : options.store ?? null,
      gpu: options.gpu, contextLength: options.contextLength, stallTimeoutMs: options.stallTimeoutMs, contextPolicy: options.contextPolicy,
    });
  }
  // Callbacks cross the worker boundary as proxies; in-thread they are plain functions.
  const callback = <F extends (...args: never[]) => unknown>(f: F): F => (worker ? (Comlink.proxy(f) as unknown as F) : f);
  const withAbort = <T>(signal: AbortSignal | undefined, run: (id: string) => Promise<T>): Promise<T> => {
    const id = nextId();
    const onAbort = () => void core.abort(id);
    if (signal?.aborted) onAbort();
    signal?.addEventListener('abort', onAbort);
    return run(id).finally(() => signal?.removeEventListener('abort', onAbort));
  };

  const create = async (request: ChatCompletionRequest, opts: { signal?: AbortSignal } = {}) => {
    const { signal: requestSignal, ...rest } = request;
    const signal = opts.signal ?? requestSignal;
    if (!rest.stream) return withAbort(signal, (id) => core.chatCompletion(rest, id));
    return stream<ChatCompletionChunk>(signal, (id, push) => core.chatCompletion(rest, id, push));
  };
  /** A streamed request; leaving the loop early aborts it. */
  const stream = <T>(signal: AbortSignal | undefined, run: (id: string, push: (item: T) => Promise<void>) => Promise<unknown>) =>
    pushStream<T>((push, cancelled) => {
      const local = new AbortController();
      cancelled.then(() => local.abort());
      signal?.addEventListener('abort', () => local.abort());
      if (signal?.aborted) local.abort();
      return withAbort(local.signal, (id) => run(id, callback(push)));
    });

  return {
    load: (source, o = {}) => withAbort(o.signal, (id) => load(source, id, { onProgress: o.onProgress, headers: o.headers, fetch: o.fetch })),
    generate: (prompt, o = {}) => {
      const { signal, ...params } = o;
      return stream<{ token: number; text: string }>(signal, (id, push) => core.generate(prompt, params, id, push));
    },
    chat: { completions: { create: create as Engine['chat']['completions']['create'] } },
    cache: {
      list: () => core.cacheList(),
      delete: (id) => core.cacheDelete(id),
      usage: () => core.cacheUsage(),
    },
    bytesOnGpu: () => core.bytesOnGpu(),
    unload: () => core.unload(),
    dispose: async () => {
      await core.dispose();
      worker?.terminate();
    },
  };
}

/**
 * Turns a producer that calls `push` for each item into an async iterable. `push` resolves when
 * the consumer has taken the item, so the producer never runs ahead of the reader. Errors and the
 * end of the producer end the iteration; a consumer that stops early resolves `cancelled`, and
 * every pending and later push resolves at once.
 */
function pushStream<T>(produce: (push: (item: T) => Promise<void>, cancelled: Promise<void>) => Promise<unknown>): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator]() {
      const items: { item: T; taken: () => void }[] = [];
      let wake: (() => void) | undefined;
      let done = false;
      let stopped = false;
      let failure: unknown;
      let cancel!: () => void;
      const cancelled = new Promise<void>((r) => (cancel = r));
      const push = (item: T) =>
        new Promise<void>((taken) => {
          if (stopped) return taken();
          items.push({ item, taken });
          wake?.();
        });
      const finished = produce(push, cancelled).then(
        () => { done = true; wake?.(); },
        (e: unknown) => { failure = e ?? new Error('failed'); done = true; wake?.(); },
      );
      return {
        async next(): Promise<IteratorResult<T>> {
          for (;;) {
            const first = items.shift();
            if (first) {
              first.taken();
              return { value: first.item, done: false };
            }
            if (failure) throw failure;
            if (done) return { value: undefined, done: true };
            await new Promise<void>((r) => (wake = r));
            wake = undefined;
          }
        },
        async return(): Promise<IteratorResult<T>> {
          stopped = true;
          cancel();
          for (const { taken } of items.splice(0)) taken();
          await finished;
          return { value: undefined, done: true };
        },
      };
    },
  };
}
