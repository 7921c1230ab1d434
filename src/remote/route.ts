/**
 * createEngine({ fallback }): the local engine, answering from an OpenAI-compatible server when
 * this device cannot run the model. The route is decided by the load (WebGPU missing, the fit
 * check's `insufficient-memory`), or per request (`model` naming the server's model); the app's
 * calls and what they return keep their shape, with `webgguf.route` (and `model`) saying which
 * engine answered.
 */
import type { Engine } from '../engine/engine.js';
import type { FallbackOptions, RouteInfo } from '../engine/types.js';
import { WebGGUFError } from '../errors.js';
import { createRemoteEngine } from './engine.js';

const LOCAL: RouteInfo = { route: 'local' };

/** Load failures that mean "this device cannot", per `when`. */
const FALLS_BACK: Record<NonNullable<FallbackOptions['when']>, ReadonlySet<string>> = {
  'no-webgpu': new Set(['no-webgpu']),
  'does-not-fit': new Set(['no-webgpu', 'insufficient-memory']),
  always: new Set(),
};

const tag = <T extends object>(value: T): T => ({ ...value, webgguf: LOCAL });

/** A local stream whose chunks say they are local. */
function tagStream<T extends object>(stream: AsyncIterable<T>): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator]() {
      const inner = stream[Symbol.asyncIterator]();
      return {
        next: async () => {
          const step = await inner.next();
          return step.done ? step : { done: false, value: tag(step.value) };
        },
        return: async () => (await inner.return?.()) ?? { done: true, value: undefined },
      };
    },
  };
}

const tagged = <T extends object>(result: T | AsyncIterable<T>): T | AsyncIterable<T> =>
  Symbol.asyncIterator in result ? tagStream(result as AsyncIterable<T>) : tag(result as T);

export function createRoutedEngine(local: Engine, options: FallbackOptions): Engine {
  const when = options.when ?? 'does-not-fit';
  if (!(when in FALLS_BACK)) throw new WebGGUFError('invalid-argument', `fallback.when must be 'no-webgpu', 'does-not-fit' or 'always', not ${JSON.stringify(when)}`);
  const remote = createRemoteEngine(options.remote);
  const remoteModel = options.remote.model;
  /** Where requests go: set by each load ('always': the server from the start). */
  let route: RouteInfo['route'] | undefined = when === 'always' ? 'remote' : undefined;

  /** The engine for a request: the server when the load chose it or the request names its model. */
  const toRemote = (request: unknown) =>
    route === 'remote' || (typeof request === 'object' && request !== null && (request as { model?: unknown }).model === remoteModel);
  /** On the server, the server's model answers, whatever local name the request carried. */
  const forRemote = <R extends object>(request: R): R => ({ ...request, model: remoteModel });

  type Create = (request: never, options?: { signal?: AbortSignal }) => Promise<object | AsyncIterable<object>>;
  const routed = <C extends Create>(localCreate: C, remoteCreate: C): C => (async (request: object, o?: { signal?: AbortSignal }) =>
    toRemote(request) ? remoteCreate(forRemote(request) as never, o) : tagged(await localCreate(request as never, o))) as unknown as C;

  return {
    load: async (source, o = {}) => {
      if (when === 'always') return remote.load(remoteModel, { signal: o.signal });
      try {
        const info = await local.load(source, o);
        route = 'local';
        return { ...info, route: 'local' };
      } catch (e) {
        if (!(e instanceof WebGGUFError && FALLS_BACK[when].has(e.code))) throw e;
        const info = await remote.load(remoteModel, { signal: o.signal });
        route = 'remote';
        return info;
      }
    },
    estimate: (source, o) => local.estimate(source, o),
    generate: (prompt, o) => (route === 'remote' ? remote : local).generate(prompt, o),
    chat: { completions: { create: routed(local.chat.completions.create, remote.chat.completions.create) } },
    completions: { create: routed(local.completions.create, remote.completions.create) },
    embeddings: {
      create: async (request, o) => (toRemote(request) ? remote.embeddings.create(forRemote(request), o) : tag(await local.embeddings.create(request, o))),
    },
    cache: local.cache,
    bytesOnGpu: () => local.bytesOnGpu(),
    unload: async () => {
      await local.unload();
      route = when === 'always' ? 'remote' : undefined;
    },
    dispose: async () => {
      await Promise.all([local.dispose(), remote.dispose()]);
    },
  };
}
