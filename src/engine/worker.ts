// The engine's module Worker: owns the GPU device, the model, its KV cache and the weight cache.
import * as Comlink from 'comlink';
import { indexedDBStore } from '../cache/store.js';
import { EngineCore, type CoreOptions } from './core.js';
import { installErrorTransfer } from './errors-transfer.js';
import { importFetch, type RemoteFetch } from '../io/remote-fetch.js';
import type { CoreLoadOptions, EstimateOptions, ModelSource } from './types.js';

installErrorTransfer();

/** What the main thread calls; `init` comes first, once. */
export class WorkerEngine {
  private core: EngineCore | undefined;

  init(options: Omit<CoreOptions, 'store' | 'gpu'> & { cache: boolean }): void {
    const { cache, ...rest } = options;
    this.core = new EngineCore({ ...rest, store: cache ? indexedDBStore() : null });
  }

  get api(): EngineCore {
    if (!this.core) throw new Error('engine worker not initialised');
    return this.core;
  }
}

const engine = new WorkerEngine();
const api = {
  init: (options: Parameters<WorkerEngine['init']>[0]) => engine.init(options),
  ping: () => undefined,
  abort: (id: string) => engine.api.abort(id),
  // The load options' functions come as proxies of their own (see createEngine).
  load: (source: ModelSource, id: string, options: { headers?: Record<string, string> }, onProgress?: CoreLoadOptions['onProgress'], fetch?: RemoteFetch) =>
    engine.api.load(source, id, { ...options, onProgress, fetch: fetch && importFetch(fetch) }),
  estimate: (source: ModelSource, id: string, options: Omit<EstimateOptions, 'signal' | 'fetch'>, fetch?: RemoteFetch) =>
    engine.api.estimate(source, id, { ...options, fetch: fetch && importFetch(fetch) }),
  generate: (...a: Parameters<EngineCore['generate']>) => engine.api.generate(...a),
  chatCompletion: (...a: Parameters<EngineCore['chatCompletion']>) => engine.api.chatCompletion(...a),
  completion: (...a: Parameters<EngineCore['completion']>) => engine.api.completion(...a),
  embeddings: (...a: Parameters<EngineCore['embeddings']>) => engine.api.embeddings(...a),
  cacheList: () => engine.api.cacheList(),
  cacheDelete: (id: string) => engine.api.cacheDelete(id),
  cacheUsage: () => engine.api.cacheUsage(),
  bytesOnGpu: () => engine.api.bytesOnGpu(),
  unload: () => engine.api.unload(),
  dispose: () => engine.api.dispose(),
};
export type WorkerApi = typeof api;
Comlink.expose(api);
