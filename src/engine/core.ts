import { WeightCache } from '../cache/weight-cache.js';
import type { KeyValueStore } from '../cache/store.js';
import { StopMatcher } from '../chat/stop.js';
import { encodeChat, validateMessages, type ChatMessage } from '../chat/template.js';
import { WebGGUFError } from '../errors.js';
import { generate, type FinishReason, type GenerateOptions } from '../generate.js';
import { typeName } from '../gguf/ggml-types.js';
import { readGGUF, type GGUFFile } from '../gguf/gguf.js';
import { createGpuContext, type GpuContext } from '../gpu/context.js';
import { blobSource, bytesSource, urlSource, type ByteSource } from '../io/byte-source.js';
import { sha256Source } from '../io/sha256-source.js';
import { LlamaModel } from '../model/llama.js';
import type { WeightChunk } from '../model/weights.js';
import { GGUFTokenizer } from '../tokenizer/tokenizer.js';
import type {
  ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, GenerateParams, LoadProgress, ModelInfo, ModelSource, Usage,
} from './types.js';

export interface CoreOptions {
  /** Where repacked weights are cached; null turns caching off. */
  store: KeyValueStore | null;
  /** How to get a GPU (defaults to navigator.gpu). */
  gpu?: () => Promise<GpuContext>;
  /** KV cache length for loaded models (capped by the model's own). */
  contextLength?: number;
  /** A download that receives nothing for this long fails (default 30 s). */
  stallTimeoutMs?: number;
  /**
   * What a chat that outgrows the context does: 'error' (default) fails with context-overflow;
   * 'shift' drops the oldest turns, keeping the system prompt.
   */
  contextPolicy?: 'error' | 'shift';
}

interface Loaded {
  model: LlamaModel;
  tokenizer: GGUFTokenizer;
  info: ModelInfo;
}

/**
 * The engine proper: owns the GPU device, the model, its KV cache and the weight cache. It runs
 * inside the worker (or in-thread with `worker: false`); every request goes through one queue, so
 * requests never interleave on the KV cache.
 */
export class EngineCore {
  private gpu: GpuContext | undefined;
  /** Why the device was lost, until the next load makes a new one. */
  private lostReason: string | undefined;
  /** A WebGPU error nobody caught, reported with the next request. */
  private uncaptured: string | undefined;
  private loaded: Loaded | undefined;
  /** Tokens whose keys and values are in the KV cache, positions 0..n-1. */
  private context: number[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  private readonly controllers = new Map<string, AbortController>();
  private readonly cache: WeightCache | null;

  constructor(private readonly options: CoreOptions) {
    this.cache = options.store ? new WeightCache(options.store) : null;
  }

  /** Aborts a request, queued or running. Not queued itself. */
  abort(requestId: string): void {
    this.controller(requestId).abort();
  }

  load(source: ModelSource, requestId: string, onProgress?: (p: LoadProgress) => void): Promise<ModelInfo> {
    return this.serial(requestId, (signal) => this.doLoad(source, signal, onProgress));
  }

  /** Raw completion: tokens and text of the continuation of `prompt`. */
  generate(prompt: string, params: GenerateParams, requestId: string, onToken: (t: { token: number; text: string }) => unknown): Promise<{ finishReason: FinishReason; usage: Usage }> {
    return this.serial(requestId, async (signal) => {
      const { tokenizer } = this.require();
      return this.run(tokenizer.encode(prompt), params, signal, onToken);
    });
  }

  chatCompletion(request: Omit<ChatCompletionRequest, 'signal'>, requestId: string, onChunk?: (c: ChatCompletionChunk) => unknown): Promise<ChatCompletion> {
    const messages = validateMessages(request.messages);
    const params = chatParams(request);
    return this.serial(requestId, async (signal) => {
      const { tokenizer, info, model } = this.require();
      // Message text becomes control tokens only on request (a user could forge turns).
      const allowSpecial = (request as { allow_special_tokens?: boolean }).allow_special_tokens === true;
      const encode = (msgs: ChatMessage[]) => encodeChat(tokenizer, msgs, { allowSpecial });
      // A cheap floor on the prompt's length refuses text that cannot fit before it is tokenized.
      const minTokens = (m: ChatMessage) => tokenizer.minTokens(m.content);
      const kept = this.options.contextPolicy === 'shift' ? messages.filter((m, i) => m.role === 'system' || i === messages.length - 1) : messages;
      const floor = kept.reduce((n, m) => n + minTokens(m), 0);
      if (floor >= model.contextLength) {
        throw new WebGGUFError('context-overflow', `the prompt has at least ${floor} tokens but the context holds ${model.contextLength}; shorten the conversation`);
      }
      let prompt: number[];
      if (this.options.contextPolicy === 'shift') {
        // Room for the reply too: what was asked for, or a quarter of the context.
        const room = model.contextLength - Math.min(params.maxTokens ?? Math.floor(model.contextLength / 4), model.contextLength - 1);
        prompt = await shiftToFit(messages, encode, room, { minTokens, signal });
      } else {
        prompt = encode(messages);
      }
      const id = `chatcmpl-${requestId}`;
      const created = Math.floor(Date.now() / 1000);
      const chunk = (delta: ChatCompletionChunk['choices'][0]['delta'], finish: FinishReason | null, usage?: Usage): ChatCompletionChunk => ({
        id, object: 'chat.completion.chunk', created, model: info.id, choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }], ...(usage ? { usage } : {}),
      });
      await onChunk?.(chunk({ role: 'assistant', content: '' }, null));
      let content = '';
      const result = await this.run(prompt, params, signal, async ({ text: piece }) => {
        content += piece;
        if (piece) await onChunk?.(chunk({ content: piece }, null));
      });
      await onChunk?.(chunk({}, result.finishReason, result.usage));
      return {
        id, object: 'chat.completion', created, model: info.id,
        choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: result.finishReason, logprobs: null }],
        usage: result.usage,
      };
    });
  }

  async cacheList() {
    return this.cache ? this.cache.list() : [];
  }

  async cacheDelete(id: string): Promise<void> {
    await this.cache?.delete(id);
  }

  async cacheUsage() {
    const models = await this.cacheList();
    const storage = (globalThis.navigator as Navigator | undefined)?.storage;
    const estimate = storage?.estimate ? await storage.estimate() : {};
    return {
      usage: estimate.usage, quota: estimate.quota,
      persisted: storage?.persisted ? await storage.persisted() : false,
      models: models.length, modelBytes: models.reduce((s, m) => s + m.storedBytes, 0),
    };
  }

  /** Frees the model's GPU memory; the device stays for the next load. */
  unload(): Promise<void> {
    return this.serial(undefined, async () => this.dropModel());
  }

  /** Frees everything, the device too unless the caller supplied it. */
  dispose(): Promise<void> {
    return this.serial(undefined, async () => {
      this.dropModel();
      if (!this.options.gpu) this.gpu?.device.destroy();
      this.gpu = undefined;
    });
  }

  /** Bytes of GPU memory held by the loaded model (0 when none). */
  async bytesOnGpu(): Promise<number> {
    return this.loaded?.model.bytesOnGpu ?? 0;
  }

  /**
   * A new device, watched: when it is lost the model goes with it (its buffers are gone) and
   * the next load makes a new device and uploads again, from the weight cache.
   */
  private async acquireGpu(): Promise<GpuContext> {
    const gpu = await (this.options.gpu ? this.options.gpu() : createGpuContext(globalThis.navigator?.gpu));
    this.lostReason = undefined;
    void gpu.device.lost.then((info) => {
      if (this.gpu !== gpu) return;
      this.lostReason = info.message || info.reason || 'unknown reason';
      this.loaded?.model.dispose();
      this.loaded = undefined;
      this.context = [];
      this.gpu = undefined;
    });
    gpu.device.addEventListener('uncapturederror', (e) => {
      this.uncaptured = (e as GPUUncapturedErrorEvent).error.message;
    });
    return gpu;
  }

  private dropModel(): void {
    this.loaded?.model.dispose();
    this.loaded = undefined;
    this.context = [];
  }

  private require(): Loaded {
    if (this.uncaptured) {
      const message = this.uncaptured;
      this.uncaptured = undefined;
      throw new WebGGUFError('gpu', `WebGPU reported an error: ${message}`);
    }
    if (!this.loaded && this.lostReason) {
      throw new WebGGUFError('device-lost', `the GPU device was lost (${this.lostReason}); load the model again to recover`);
    }
    if (!this.loaded) throw new WebGGUFError('invalid-argument', 'no model is loaded: call engine.load() first');
    return this.loaded;
  }

  private controller(requestId: string): AbortController {
    let c = this.controllers.get(requestId);
    if (!c) this.controllers.set(requestId, (c = new AbortController()));
    return c;
  }

  /** Runs `task` after every earlier request, with the request's abort signal. */
  private serial<T>(requestId: string | undefined, task: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const signal = requestId ? this.controller(requestId).signal : new AbortController().signal;
    const result = this.queue.then(() => task(signal));
    this.queue = result.catch(() => undefined);
    return result.finally(() => requestId && this.controllers.delete(requestId));
  }

  /**
   * Generates from prompt tokens, reusing the longest prefix already in the KV cache, and
   * applies stop strings to the text stream.
   */
  private async run(
    prompt: number[], params: GenerateParams, signal: AbortSignal, emit: (t: { token: number; text: string }) => unknown,
  ): Promise<{ finishReason: FinishReason; usage: Usage }> {
    const { model, tokenizer } = this.require();
    if (prompt.length >= model.contextLength) {
      throw new WebGGUFError('context-overflow', `the prompt has ${prompt.length} tokens but the context holds ${model.contextLength}; shorten the conversation`);
    }
    let reuse = 0;
    while (reuse < this.context.length && reuse < prompt.length && this.context[reuse] === prompt[reuse]) reuse++;
    const stops = typeof params.stop === 'string' ? [params.stop] : params.stop ?? [];
    const matcher = new StopMatcher(stops.filter((s) => s.length > 0));
    // A stop string found in the text ends generation through this controller.
    const local = new AbortController();
    const onAbort = () => local.abort();
    signal.addEventListener('abort', onAbort);
    let stoppedByString = false;
    let completion = 0;
    const options: GenerateOptions & { cachedPrefix: number } = { ...params, signal: local.signal, cachedPrefix: reuse };
    this.context = []; // until generation ends cleanly, the KV cache's contents are unknown
    try {
      if (signal.aborted) return { finishReason: 'abort', usage: usage(prompt.length, 0, 0) };
      const it = generate(model, tokenizer, prompt, options);
      for (;;) {
        const r = await it.next();
        if (r.done) {
          this.context = r.value.context;
          const finishReason = stoppedByString ? 'stop' : r.value.finishReason;
          if (!stoppedByString) {
            const tail = matcher.flush();
            if (tail) await emit({ token: -1, text: tail });
          }
          return { finishReason, usage: usage(prompt.length, completion, Math.min(reuse, prompt.length - 1)) };
        }
        completion++;
        if (stoppedByString) continue;
        const { text, stopped } = matcher.push(r.value.text);
        if (text || !stopped) await emit({ token: r.value.token, text });
        if (stopped) {
          stoppedByString = true;
          local.abort();
        }
      }
    } catch (e) {
      if (this.lostReason || !this.gpu) {
        throw new WebGGUFError('device-lost', `the GPU device was lost during generation (${this.lostReason ?? 'destroyed'}); load the model again to recover`, { cause: e });
      }
      throw e;
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  private async doLoad(source: ModelSource, signal: AbortSignal, onProgress?: (p: LoadProgress) => void): Promise<ModelInfo> {
    this.dropModel();
    const gpu = (this.gpu ??= await this.acquireGpu());
    const id = sourceId(source);
    const cache = id ? this.cache : null;
    const manifest = cache && id ? await cache.manifest(id) : undefined;
    let file: GGUFFile;
    let weights: ((repack: (skip: number) => AsyncIterable<WeightChunk>) => AsyncIterable<WeightChunk>) | undefined;
    let stored = 0;
    let hashing: ReturnType<typeof sha256Source> | undefined;
    let verify = async () => {};
    const checkAbort = () => {
      if (signal.aborted) throw new WebGGUFError('aborted', 'the load was aborted');
    };

    if (manifest && cache) {
      const header = await cache.header(manifest.id);
      if (!header) throw new WebGGUFError('cache', `cached model ${manifest.id} has no header; delete it and load again`);
      file = await readGGUF(bytesSource(header, manifest.source), manifest.fileBytes);
      let read = 0;
      weights = () => progressOf(cache.chunks(manifest.id, 0, manifest.chunks), () => {
        checkAbort();
        onProgress?.({ phase: 'cache', loaded: ++read, total: manifest.chunks });
      });
    } else {
      if (typeof source === 'object' && 'cached' in source) throw new WebGGUFError('cache', `no cached model "${source.cached}"`);
      const urlOptions = { signal, stallTimeoutMs: this.options.stallTimeoutMs };
      const fetched = typeof source === 'string' ? await urlSource(source, urlOptions) : source instanceof Blob ? blobSource(source) : await urlSource(source.url, urlOptions);
      const expectedHash = typeof source === 'object' && 'sha256' in source && source.sha256 ? source.sha256.toLowerCase() : undefined;
      hashing = expectedHash ? sha256Source(fetched) : undefined;
      verify = async () => {
        if (!hashing || !expectedHash) return;
        const actual = await hashing.finish();
        if (actual !== expectedHash) {
          if (cache && id) await cache.delete(id);
          throw new WebGGUFError('integrity', `the file's SHA-256 is ${actual}, not the expected ${expectedHash}; nothing was kept`);
        }
      };
      const raw = hashing ?? fetched;
      const network = countingSource(raw, (loaded) => onProgress?.({ phase: 'download', loaded, total: raw.size }));
      file = await readGGUF(network);
      if (cache && id) {
        // Resume only the same file: same header bytes and the same validator (ETag).
        const header = file.header;
        const storedHeader = await cache.header(id);
        const same = storedHeader !== undefined && equalBytes(storedHeader, header) && (await cache.validator(id)) === raw.validator;
        let done = same ? await cache.progress(id) : 0;
        if (!done) {
          await cache.delete(id);
          await cache.putHeader(id, header, raw.validator);
        }
        weights = (repack) => {
          const resumed = cache.chunks(id, 0, done);
          return (async function* () {
            for await (const c of resumed) {
              checkAbort();
              stored += c.words.byteLength;
              yield c;
            }
            for await (const c of repack(done)) {
              checkAbort();
              await cache.putChunk(id, done++, c);
              stored += c.words.byteLength;
              yield c;
            }
          })();
        };
      } else {
        weights = (repack) => progressOf(repack(0), checkAbort);
      }
    }

    const tokenizer = GGUFTokenizer.fromGGUF(file);
    let model: LlamaModel;
    try {
      model = await LlamaModel.load(gpu, file, {
        contextLength: this.options.contextLength,
        weights,
        onProgress: (loaded, total) => onProgress?.({ phase: 'upload', loaded, total }),
      });
    } catch (e) {
      // Keep stored chunks for a resume; a failure before the first one leaves nothing behind.
      if (cache && id && !manifest && (await cache.progress(id)) === 0) await cache.delete(id);
      throw e;
    }
    try {
      await verify();
      onProgress?.({ phase: 'compile', loaded: 1, total: 1 });
      if (cache && id && !manifest) {
        await cache.finish({
          id, source: typeof source === 'string' ? source : source instanceof Blob ? (source as File).name ?? 'blob' : 'url' in source ? source.url : id,
          fileBytes: file.source.size, storedBytes: stored, chunks: await cache.progress(id), architecture: model.config.architecture, createdAt: Date.now(),
        });
      }
    } catch (e) {
      model.dispose();
      throw e;
    }
    const matrices = file.tensors.filter((t) => t.dims.length > 1);
    const info: ModelInfo = {
      id: id ?? file.source.name,
      architecture: model.config.architecture,
      parameters: file.tensors.reduce((s, t) => s + t.elements, 0),
      quantTypes: [...new Set(matrices.map((t) => typeName(t.type)))],
      contextLength: model.contextLength,
      bytesOnGpu: model.bytesOnGpu,
      adapter: gpu.adapterName,
      features: gpu.features,
      fromCache: Boolean(manifest),
    };
    this.loaded = { model, tokenizer, info };
    return info;
  }
}

/**
 * The `shift` context policy: drops the oldest turns (never the system prompt, never the last
 * message) until the rendered prompt has at most `limit` tokens; if even that is too long, the
 * caller gets it as it is and the usual context error follows. Fewer turns never render longer,
 * so the number to drop is found by binary search: O(log n) renders, not one per dropped turn.
 * Turns whose text alone (`minTokens`) cannot fit are dropped without rendering. Between
 * renders the event loop runs, so an abort lands; it ends the search with `aborted`.
 */
export async function shiftToFit(
  messages: ChatMessage[], encode: (m: ChatMessage[]) => number[], limit: number,
  options: { minTokens?: (m: ChatMessage) => number; signal?: AbortSignal } = {},
): Promise<number[]> {
  const droppable = messages.flatMap((m, i) => (m.role !== 'system' && i < messages.length - 1 ? [i] : []));
  const encodeDropping = async (k: number) => {
    await new Promise((resolve) => setTimeout(resolve, 0));
    if (options.signal?.aborted) throw new WebGGUFError('aborted', 'the request was aborted');
    const dropped = new Set(droppable.slice(0, k));
    return encode(messages.filter((_, i) => !dropped.has(i)));
  };
  let fewest = 0;
  if (options.minTokens) {
    let floor = messages.reduce((n, m) => n + options.minTokens!(m), 0);
    while (fewest < droppable.length && floor > limit) floor -= options.minTokens(messages[droppable[fewest++]!]!);
  }
  const first = await encodeDropping(fewest);
  if (first.length <= limit || fewest === droppable.length) return first;
  // Invariant: dropping `lo` does not fit, dropping `hi` does (or nothing fits).
  let lo = fewest;
  let hi = droppable.length;
  let best = await encodeDropping(hi);
  if (best.length > limit) return best;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    const tokens = await encodeDropping(mid);
    if (tokens.length <= limit) [hi, best] = [mid, tokens];
    else lo = mid;
  }
  return best;
}

function usage(prompt: number, completion: number, cached: number): Usage {
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, prompt_tokens_details: { cached_tokens: cached } };
}

/** The cache key of a source; plain Blobs have no stable identity and are not cached. */
export function sourceId(source: ModelSource): string | undefined {
  if (typeof source === 'string') return source;
  if (source instanceof Blob) {
    const f = source as File;
    return typeof f.name === 'string' && f.name ? `file:${f.name}:${f.size}:${f.lastModified}` : undefined;
  }
  if ('cached' in source) return source.cached;
  return source.sha256 ? `${source.url}#sha256=${source.sha256}` : source.url;
}

function chatParams(r: Omit<ChatCompletionRequest, 'signal'>): GenerateParams {
  const opt = <T>(v: T | null | undefined) => (v === null ? undefined : v);
  const maxTokens = opt(r.max_completion_tokens) ?? opt(r.max_tokens);
  if (maxTokens !== undefined && (!Number.isInteger(maxTokens) || maxTokens < 1)) {
    throw new WebGGUFError('invalid-argument', `max_tokens must be a positive integer, got ${maxTokens}`);
  }
  const stop = opt(r.stop);
  if (stop !== undefined && typeof stop !== 'string' && !(Array.isArray(stop) && stop.every((s) => typeof s === 'string'))) {
    throw new WebGGUFError('invalid-argument', 'stop must be a string or an array of strings');
  }
  const num = (name: string, v: number | null | undefined) => {
    if (v !== undefined && v !== null && (typeof v !== 'number' || !Number.isFinite(v))) {
      throw new WebGGUFError('invalid-argument', `${name} must be a finite number, got ${String(v)}`);
    }
    return opt(v);
  };
  return {
    maxTokens,
    // OpenAI's defaults: temperature 1, top_p 1, no top-k or min-p unless asked.
    temperature: num('temperature', r.temperature) ?? 1,
    topP: num('top_p', r.top_p) ?? 1,
    topK: num('top_k', r.top_k) ?? 0,
    minP: num('min_p', r.min_p) ?? 0,
    repetitionPenalty: num('repetition_penalty', r.repetition_penalty) ?? 1,
    frequencyPenalty: num('frequency_penalty', r.frequency_penalty) ?? 0,
    presencePenalty: num('presence_penalty', r.presence_penalty) ?? 0,
    seed: num('seed', r.seed),
    stop,
  };
}

/** Calls `tick` before each item passes. */
async function* progressOf<T>(items: AsyncIterable<T>, tick: () => void): AsyncGenerator<T> {
  for await (const item of items) {
    tick();
    yield item;
  }
}

/** A ByteSource that reports the bytes it has read. */
function countingSource(source: ByteSource, report: (loaded: number) => void): ByteSource {
  let loaded = 0;
  return {
    size: source.size,
    name: source.name,
    validator: source.validator,
    read: async (offset, length) => {
      const bytes = await source.read(offset, length);
      loaded += bytes.byteLength;
      report(Math.min(loaded, source.size));
      return bytes;
    },
  };
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && a.every((v, i) => v === b[i]);
}
