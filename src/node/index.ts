/// <reference types="@webgpu/types" preserve="true" />
/**
 * webgguf/node: the engine in Node, on Dawn (the optional peer dependency `webgpu`). Same API as
 * the browser's createEngine; it runs in this thread, finds the GPU itself, and takes a file path
 * (or a file: URL) as a model source besides http(s) URLs.
 */
import { stat } from 'node:fs/promises';
import { openAsBlob } from 'node:fs';
import { basename, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createEngine as createEngineIn, type Engine, type EngineOptions } from '../engine/engine.js';
import { WebGGUFError } from '../errors.js';
import type { GpuContext } from '../gpu/context.js';
import type { ModelSource } from '../engine/types.js';
import { nodeGpuContext } from './gpu.js';

export { WebGGUFError, isWebGGUFError, type ErrorCode } from '../errors.js';
export type { Engine } from '../engine/engine.js';
export type * from '../engine/types.js';
export type { ChatMessage } from '../chat/messages.js';
export { cosineSimilarity, type Embedding, type EmbeddingRequest, type EmbeddingResponse } from '../embeddings.js';
export { nodeGpuContext };

/** createEngine's options in Node: in-thread always; no weight cache unless a store is given. */
export type NodeEngineOptions = Omit<EngineOptions, 'worker' | 'workerUrl' | 'startTimeoutMs'>;

/** A string with a scheme other than file: is a URL; anything else names a file. */
const isWebUrl = (s: string) => /^[a-z][a-z0-9+.-]+:/i.test(s) && !/^file:/i.test(s) && !/^[a-z]:[\\/]/i.test(s);

/** A local file as a File backed by the disk: bytes are read as the loader asks for them. */
export async function fileAsBlob(path: string): Promise<File> {
  const full = resolve(/^file:/i.test(path) ? fileURLToPath(path) : path);
  let info;
  try {
    info = await stat(full);
  } catch (e) {
    throw new WebGGUFError('not-found', `no such model file: ${full}`, { cause: e });
  }
  if (!info.isFile()) throw new WebGGUFError('not-found', `not a file: ${full}`);
  return new File([await openAsBlob(full)], basename(full), { lastModified: info.mtimeMs });
}

async function nodeSource(source: ModelSource): Promise<ModelSource> {
  if (typeof source === 'string' && !isWebUrl(source)) return fileAsBlob(source);
  // A split model's parts, as paths or URLs.
  if (Array.isArray(source)) return Promise.all(source.map((part) => (typeof part === 'string' && !isWebUrl(part) ? fileAsBlob(part) : part)));
  return source;
}

/** Creates the engine in Node: `await (await createEngine()).load('model.gguf')`. */
export async function createEngine(options: NodeEngineOptions = {}): Promise<Engine> {
  // A server's engine takes the server's model names, not file paths, and needs no GPU.
  if (options.remote) return createEngineIn(options);
  let made: GpuContext | undefined;
  const gpu = options.gpu ?? (async () => (made = await nodeGpuContext()));
  const engine = await createEngineIn({ ...options, worker: false, cache: options.cache ?? options.store !== undefined, gpu });
  return {
    ...engine,
    load: async (source, o) => engine.load(await nodeSource(source), o),
    estimate: async (source, o) => engine.estimate(await nodeSource(source), o),
    dispose: async () => {
      await engine.dispose();
      made?.device.destroy();
    },
  };
}
