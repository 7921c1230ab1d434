import * as Comlink from 'comlink';
import { WebGGUFError } from '../errors.js';
import type { EngineCore, CoreOptions } from './core.js';
import { importFetch, type RemoteFetch } from '../io/remote-fetch.js';
import type { EstimateOptions, LoadProgress, ModelEstimate, ModelInfo, ModelSource } from './types.js';
import { installErrorTransfer } from './errors-transfer.js';

/**
 * What the main thread calls on the engine, wherever it runs. `load` takes its callbacks as
 * arguments of their own: Comlink proxies only top-level arguments (engine/worker.ts).
 */
export type CoreApi = Pick<
  EngineCore,
  'ping' | 'abort' | 'generate' | 'chatCompletion' | 'completion' | 'embeddings' | 'cacheList' | 'cacheDelete' | 'cacheUsage' | 'bytesOnGpu' | 'unload' | 'dispose'
> & {
  load(
    source: ModelSource, requestId: string, options: { headers?: Record<string, string> }, onProgress?: (p: LoadProgress) => void, fetch?: RemoteFetch,
  ): Promise<ModelInfo>;
  estimate(source: ModelSource, requestId: string, options: Omit<EstimateOptions, 'signal' | 'fetch'>, fetch?: RemoteFetch): Promise<ModelEstimate>;
};

/** Options the worker's `init` takes: the core's, less what cannot cross the boundary. */
export type WorkerInit = Omit<CoreOptions, 'store' | 'gpu'> & { cache: boolean };

/**
 * Where the engine runs: a module Worker, or this thread. Every call goes through `call`, which
 * settles when the call does, or when the host fails or is closed, whichever comes first: a
 * terminated worker answers nothing, so its callers must be told.
 */
export interface EngineHost {
  /** True when calls cross a worker boundary (callbacks must be proxied). */
  readonly remote: boolean;
  call<T>(run: (core: CoreApi) => Promise<T>): Promise<T>;
  /** Whether the engine answers within `ms` (a worker stuck in synchronous work does not). */
  responsive(ms: number): Promise<boolean>;
  /** Ends the worker now (if any) and rejects every pending call with `error`. */
  kill(error: WebGGUFError): void;
  /** kill, then a fresh worker; in-thread hosts cannot be restarted (returns false). */
  restart(error: WebGGUFError): Promise<boolean>;
}

/** Calls in flight, so a host that dies can reject them. */
class Pending {
  private readonly rejects = new Set<(e: unknown) => void>();

  track<T>(promise: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.rejects.add(reject);
      promise.then(resolve, reject).finally(() => this.rejects.delete(reject));
    });
  }

  failAll(error: WebGGUFError): void {
    for (const reject of [...this.rejects]) reject(error);
    this.rejects.clear();
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function workerFailed(url: string, detail: string): WebGGUFError {
  return new WebGGUFError(
    'worker-failed',
    `the engine's worker script did not start (${url}: ${detail}). Usually a bundler did not copy webgguf's ` +
      `worker file next to the bundle: copy node_modules/webgguf/dist/worker.js there, or pass ` +
      `createEngine({ workerUrl }) with its URL; with Vite's dev server, add optimizeDeps: { exclude: ['webgguf'] }.`,
  );
}

/**
 * Starts the engine in a module Worker and waits for it to answer. A script that fails to load
 * or to evaluate (a 404, a bundler that did not copy the file, a MIME type error) fires `error`
 * on the Worker: that, or no answer within `startTimeoutMs`, rejects with `worker-failed`.
 */
export async function workerHost(init: WorkerInit, options: { workerUrl?: string | URL; startTimeoutMs?: number }): Promise<EngineHost> {
  if (typeof Worker === 'undefined') {
    throw new WebGGUFError(
      'worker-failed',
      'this environment has no Worker: in Node, import { createEngine } from "webgguf/node"; elsewhere pass createEngine({ worker: false })',
    );
  }
  installErrorTransfer();
  const url = options.workerUrl ?? 'worker.js, next to the library';
  const pending = new Pending();
  let worker: Worker;
  let core: Comlink.Remote<CoreApi & { init(o: WorkerInit): void }>;

  const start = async () => {
    let failed!: (e: WebGGUFError) => void;
    const failure = new Promise<never>((_, reject) => (failed = reject));
    try {
      // Written out in full, as bundlers recognise it: Vite and webpack then ship the worker file. The
      // build turns './worker.ts' into the published './worker.js' (scripts/build.mjs).
      worker = options.workerUrl
        ? new Worker(options.workerUrl, { type: 'module', name: 'webgguf' })
        : new Worker(new URL('./worker.ts', import.meta.url), { type: 'module', name: 'webgguf' });
    } catch (e) {
      throw workerFailed(String(url), (e as Error).message);
    }
    const onError = (e: Event) => {
      e.preventDefault?.();
      failed(workerFailed(String(url), (e as ErrorEvent).message || 'the script failed to load or threw while starting'));
    };
    worker.addEventListener('error', onError);
    core = Comlink.wrap(worker);
    const timeout = options.startTimeoutMs ?? 30_000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(workerFailed(String(url), `no answer within ${Math.round(timeout / 1000)} s`)), timeout);
    });
    try {
      await Promise.race([core.init(init), failure, late]);
    } catch (e) {
      worker.terminate();
      throw e;
    } finally {
      clearTimeout(timer);
      // Errors after start are uncaught exceptions inside a live worker, not a failed start.
      worker.removeEventListener('error', onError);
    }
  };
  await start();

  let restarting: Promise<boolean> | undefined;
  const host: EngineHost = {
    remote: true,
    call: async (run) => {
      if (restarting) await restarting;
      return pending.track(run(core as unknown as CoreApi));
    },
    responsive: (ms) => Promise.race([core.ping().then(() => true, () => false), sleep(ms).then(() => false)]),
    kill: (error) => {
      worker.terminate();
      pending.failAll(error);
    },
    restart: (error) => {
      host.kill(error);
      restarting = start().then(() => true, () => false).finally(() => (restarting = undefined));
      return restarting;
    },
  };
  return host;
}

/**
 * The engine in this thread (Node, tests): nothing to terminate, but pending calls can be failed.
 * The engine's code is imported here, so a page that uses the worker never loads it.
 */
export async function inThreadHost(cache: boolean, options: CoreOptions): Promise<EngineHost> {
  const [{ EngineCore }, { indexedDBStore }] = await Promise.all([import('./core.js'), import('../cache/store.js')]);
  const core = new EngineCore({ ...options, store: cache ? options.store ?? indexedDBStore() : options.store });
  const pending = new Pending();
  const api: CoreApi = {
    ping: () => core.ping(),
    abort: (id) => core.abort(id),
    load: (source, id, options, onProgress, fetch) => core.load(source, id, { ...options, onProgress, fetch: fetch && importFetch(fetch) }),
    estimate: (source, id, options, fetch) => core.estimate(source, id, { ...options, fetch: fetch && importFetch(fetch) }),
    generate: (...a) => core.generate(...a),
    chatCompletion: (...a) => core.chatCompletion(...a),
    completion: (...a) => core.completion(...a),
    embeddings: (...a) => core.embeddings(...a),
    cacheList: () => core.cacheList(),
    cacheDelete: (id) => core.cacheDelete(id),
    cacheUsage: () => core.cacheUsage(),
    bytesOnGpu: () => core.bytesOnGpu(),
    unload: () => core.unload(),
    dispose: () => core.dispose(),
  };
  return {
    remote: false,
    call: (run) => pending.track(run(api)),
    responsive: async () => true,
    kill: (error) => pending.failAll(error),
    restart: async (error) => {
      pending.failAll(error);
      return false;
    },
  };
}
