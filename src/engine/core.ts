import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { WeightCache, type HashResume } from '../cache/weight-cache.js';
import type { KeyValueStore } from '../cache/store.js';
import { StopMatcher } from '../chat/stop.js';
import { validateChatRequest, validateCompletionRequest, validateGenerateRequest, type StreamPlan } from '../chat/request.js';
import type { ChatMessage } from '../chat/messages.js';
import { chatTokenLogprob, CompletionLogprobsBuilder } from '../chat/logprobs.js';
import { promptOpensThinking, ReplyParser, type ReplyPart } from '../chat/reply.js';
import { encodeChat } from '../chat/template.js';
import { templateFeatures, toolCallConstraint, toolCallTrigger, toolFormat, type OutputConstraint } from '../chat/tool-format.js';
import { embeddingPrefixes, type EmbeddingPrefixes } from '../embedding-prefixes.js';
import { finishEmbedding, embeddingToBase64, validateEmbeddingRequest, type EmbeddingRequest, type EmbeddingResponse } from '../embeddings.js';
import { WebGGUFError } from '../errors.js';
import { generate, seed32, type ConstraintTrigger, type FinishReason, type GenerateOptions, type GeneratedToken } from '../generate.js';
import { GrammarEngine, type Constraint } from '../grammar/constraint.js';
import { checkConstraintSpec } from '../grammar/spec.js';
import { typeName } from '../gguf/ggml-types.js';
import { readGGUF, type GGUFFile, type MetadataValue } from '../gguf/gguf.js';
import { createGpuContext, type GpuContext } from '../gpu/context.js';
import { openModel } from '../gguf/split.js';
import { blobSource, bytesSource, type ByteSource } from '../io/byte-source.js';
import { sha256Source } from '../io/sha256-source.js';
import { readConfig } from '../model/config.js';
import { EncoderModel, isEncoder, planEncoderWeights, readEncoderConfig } from '../model/encoder.js';
import { LlamaModel, type LoadOptions } from '../model/llama.js';
import { fitProblems, planMemory, planTotals } from '../model/memory-plan.js';
import { predictSpeed, type SpeedEstimate } from '../model/speed-probe.js';
import { planWeights } from '../model/weights.js';
import { GGUFTokenizer } from '../tokenizer/tokenizer.js';
import type {
  ChatCompletion, ChatCompletionChoice, ChatCompletionChunk, ChatCompletionMessageToolCall, ChatCompletionTokenLogprob, ChatCompletionRequest, Completion, CompletionChunk, CompletionLogprobs, CompletionRequest, CoreLoadOptions, GenerateParams,
  EstimateOptions, LoadProgress, ModelEstimate, ModelInfo, ModelSource, Usage,
} from './types.js';

export interface CoreOptions {
  /** Where repacked weights are cached; null turns caching off. */
  store: KeyValueStore | null;
  /** How to get a GPU (defaults to navigator.gpu). */
  gpu?: () => Promise<GpuContext>;
  /** KV cache length for loaded models (capped by the model's own). */
  contextLength?: number;
  /** How the KV cache stores keys and values: 'f16' (default) or 'f32' (LoadOptions.kvCache). */
  kvCache?: 'f16' | 'f32';
  /** A download that receives nothing for this long fails (default 30 s). */
  stallTimeoutMs?: number;
  /**
   * What a chat that outgrows the context does: 'error' (default) fails with context-overflow;
   * 'shift' drops the oldest turns, keeping the system prompt.
   */
  contextPolicy?: 'error' | 'shift';
  /** The most GPU memory a model may take; larger ones are refused before download (default: no limit). */
  maxGpuBytes?: number;
}

interface Loaded {
  /** A text model, or an embedding model (encoder). */
  model: LlamaModel | EncoderModel;
  tokenizer: GGUFTokenizer;
  info: ModelInfo;
  /** An embedding model's query and document prefixes, where its family has them. */
  prefixes: EmbeddingPrefixes | undefined;
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
  private readonly onUncapturedError = (e: Event) => {
    this.uncaptured = (e as GPUUncapturedErrorEvent).error.message;
  };
  private loaded: Loaded | undefined;
  /** Tokens whose keys and values are in the KV cache, positions 0..n-1. */
  private context: number[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  private readonly controllers = new Map<string, AbortController>();
  private readonly cache: WeightCache | null;
  /** Speed estimates measured in this session, by adapter and model shape. */
  private readonly speeds = new Map<string, SpeedEstimate>();
  /** The load running now, so deleting its model can cancel it first. */
  private loading: { id: string; requestId: string; settled: Promise<void> } | undefined;

  constructor(private readonly options: CoreOptions) {
    this.cache = options.store ? new WeightCache(options.store) : null;
  }

  /** Answers at once unless the thread is busy: the main thread's liveness check. */
  async ping(): Promise<void> {}

  /** Aborts a request, queued or running. Not queued itself. */
  async abort(requestId: string): Promise<void> {
    this.controller(requestId).abort();
  }

  load(source: ModelSource, requestId: string, options: CoreLoadOptions = {}): Promise<ModelInfo> {
    return this.serial(requestId, (signal) => this.doLoad(source, requestId, signal, options));
  }

  /**
   * Will the model run here: its memory from the GGUF header alone (the cached header for a
   * listed model; otherwise a few range requests), checked against this device's limits and the
   * budget, and its speed measured on a sample of its layers (see predictSpeed).
   */
  estimate(source: ModelSource, requestId: string, options: Omit<EstimateOptions, 'signal' | 'fetch'> & { fetch?: typeof fetch } = {}): Promise<ModelEstimate> {
    return this.serial(requestId, async (signal) => {
      const gpu = (this.gpu ??= await this.acquireGpu());
      const { file, fileBytes, name } = await this.header(source, signal, options);
      const plan = planMemory(file, { contextLength: options.contextLength ?? this.options.contextLength, kvCache: this.options.kvCache });
      const totals = planTotals(plan);
      const budget = this.options.maxGpuBytes;
      const reasons = fitProblems(plan, gpu.limits, budget);
      let speed: ModelEstimate['speed'] = null;
      // predictSpeed samples a decoder's layers; an encoder's speed is not predicted.
      if (options.speed !== false && reasons.length === 0 && !isEncoder(file)) {
        const { promptTokens, ...rest } = await this.measuredSpeed(gpu, file, plan.contextLength, options.promptTokens, signal);
        speed = { ...rest, promptTokens };
      }
      return {
        model: name, architecture: plan.config.architecture, contextLength: plan.contextLength, fileBytes,
        weightBytes: totals.weightBytes, contextBytes: totals.contextBytes, workBytes: totals.workBytes,
        peakGpuBytes: totals.totalBytes, largestBufferBytes: totals.largest.bytes, budgetBytes: budget ?? null,
        fits: reasons.length === 0, reasons, speed,
      };
    });
  }

  /** The GGUF header of a source: the stored one for a cached model, else read from the source. */
  private async header(source: ModelSource, signal: AbortSignal, options: { headers?: Record<string, string>; fetch?: typeof fetch }): Promise<{ file: GGUFFile; fileBytes: number; name: string }> {
    const id = await sourceId(source);
    const manifest = id && this.cache ? await this.cache.manifest(id) : undefined;
    if (manifest) {
      const header = await this.cache!.header(manifest);
      return { file: await readGGUF(bytesSource(header, manifest.source), manifest.fileBytes), fileBytes: manifest.fileBytes, name: manifest.source };
    }
    if (typeof source === 'object' && 'cached' in source) throw new WebGGUFError('not-found', `no cached model "${source.cached}"`);
    const fetched = await openModel(typeof source === 'object' && !(source instanceof Blob) && !Array.isArray(source) ? source.url : source, {
      signal, stallTimeoutMs: this.options.stallTimeoutMs, headers: options.headers, fetch: options.fetch,
    });
    return { file: await readGGUF(fetched), fileBytes: fetched.size, name: fetched.name };
  }

  /** predictSpeed, remembered per adapter and model shape (in the store, where there is one). */
  private async measuredSpeed(gpu: GpuContext, file: GGUFFile, contextLength: number, promptTokens: number | undefined, signal: AbortSignal): Promise<SpeedEstimate> {
    // v3: layers weighted by their bytes and the head sampled by its bytes (v2 counted layers, and
    // extrapolated the head from 4096 rows; v1's deeper sample had 4 layers).
    const key = `speed/v3/${gpu.adapterName}/${speedSignature(file, contextLength, promptTokens)}`;
    const known = this.speeds.get(key) ?? (await this.options.store?.get<SpeedEstimate>(key).catch(() => undefined));
    if (known) return known;
    const measured = await predictSpeed(gpu, file, { contextLength, promptTokens, signal });
    this.speeds.set(key, measured);
    await this.options.store?.setMany([[key, measured]]).catch(() => undefined);
    return measured;
  }

  /** Raw completion: tokens and text of the continuation of `prompt`. */
  async generate(prompt: string, params: GenerateParams, requestId: string, onToken: (t: GeneratedToken) => unknown): Promise<{ finishReason: FinishReason; usage: Usage }> {
    const received = performance.now();
    const checked = validateGenerateRequest(prompt, params);
    return this.serial(requestId, async (signal) => {
      const { tokenizer, model } = this.require();
      return this.run(encodePrompt(tokenizer, model.contextLength, prompt), checked, signal, onToken, received);
    });
  }

  /** OpenAI's chat completion; `onChunk` gets the stream's chunks when the request streams. */
  async chatCompletion(request: Omit<ChatCompletionRequest, 'signal'>, requestId: string, onChunk?: (c: ChatCompletionChunk) => unknown): Promise<ChatCompletion> {
    const received = performance.now();
    const { messages, params, tools, toolChoice, parallelToolCalls, templateKwargs, n, ...plan } = validateChatRequest(request);
    return this.serial(requestId, async (signal) => {
      const { tokenizer, info, model } = this.require();
      const template = tokenizer.chatTemplate;
      const features = templateFeatures(template);
      const format = toolFormat(template);
      // tool_choice 'required' or a named function: the reply starts with the call's opener (put
      // after the prompt, as the model's own text), and the rest is constrained to a call that
      // validates against the functions' schemas (and the name given), then the closer. This
      // takes the place of a response_format, which would apply to an answer, not to a call.
      const call = tools && toolCallConstraint(format, tools, toolChoice, parallelToolCalls);
      const prefill = call ? call.prefix : '';
      // tool_choice 'auto': free text until the reply opens a call; the rest of the call is then
      // constrained the same way (see generate's trigger). A call schema with keywords constrained
      // decoding does not support leaves the call free, as it was before.
      const opened = tools && toolChoice === 'auto' ? toolCallTrigger(format, tools) : undefined;
      const auto = opened && supportedCall(opened) ? opened : undefined;
      const callParams: GenerateParams = call ? { ...params, constraint: { type: 'tool_call', schema: call.schema, suffix: call.suffix } } : params;
      // Message text becomes control tokens only on request (a user could forge turns).
      const allowSpecial = (request as { allow_special_tokens?: boolean }).allow_special_tokens === true;
      const encode = (msgs: ChatMessage[]) => encodeChat(tokenizer, msgs, { allowSpecial, tools, kwargs: templateKwargs, prefill });
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
      const thinkingOpen = features.thinking && !prefill && promptOpensThinking(tokenizer.decode(prompt.slice(-8), { keepSpecial: true }));
      // Markers the reply is split at, kept in the decoded text where they are control tokens.
      const markers = [...(tools ? format.markers : []), ...(features.thinking ? ['<think>', '</think>'] : [])];
      const keepControl = controlTokenIds(tokenizer, markers);
      const names = new Set((tools ?? []).map((t) => t.name));

      const id = `chatcmpl-${requestId}`;
      const created = Math.floor(Date.now() / 1000);
      const chunk = (choices: ChatCompletionChunk['choices'], usage?: Usage): ChatCompletionChunk => ({
        id, object: 'chat.completion.chunk', created, model: info.id, choices, ...usageField(plan, usage),
      });
      // With logprobs, each chunk carries the entries of the tokens generated since the last one.
      const withLogprobs = params.logprobs !== undefined;
      let unsent: ChatCompletionTokenLogprob[] = [];
      const delta = (d: ChatCompletionChunk['choices'][0]['delta'], finish: ChatCompletionChunk['choices'][0]['finish_reason']) => {
        const logprobs = withLogprobs && (unsent.length || finish) ? { content: unsent, refusal: null } : null;
        unsent = [];
        return chunk([{ index: 0, delta: d, finish_reason: finish, logprobs }]);
      };
      // The role goes with the first delta, as OpenAI streams it: with `content: null` and the
      // call when the reply starts with a tool call, else in a chunk of its own with `content: ''`.
      let roleSent = false;
      const emit = plan.stream && onChunk ? async (c: ChatCompletionChunk) => {
        const first = c.choices[0];
        if (!roleSent && first) {
          roleSent = true;
          if (first.delta.tool_calls) first.delta = { role: 'assistant', content: null, ...first.delta };
          else await onChunk(chunk([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null, logprobs: null }]));
        }
        await onChunk(c);
      } : undefined;

      // A recurrent state (Qwen3.5) is kept where the conversation so far ends, before the
      // generation prompt: a follow-up turn's prompt extends that part (its rendering of this
      // reply need not repeat the generation prompt), so it can resume there.
      let checkpointAt: number | undefined;
      if (model.recurrentState) {
        const history = encodeChat(tokenizer, messages, { allowSpecial, tools, kwargs: templateKwargs, generationPrompt: false });
        if (history.length < prompt.length && history.every((t, i) => t === prompt[i])) checkpointAt = history.length;
      }
      const choices: ChatCompletionChoice[] = [];
      let total: Usage | undefined;
      for (let index = 0; index < n; index++) {
        const parser = new ReplyParser({ thinking: features.thinking, thinkingOpen, tools: tools && { format, names } });
        let reasoning = '';
        let content = '';
        const calls: ChatCompletionMessageToolCall[] = [];
        const logprobs: ChatCompletionTokenLogprob[] = [];
        const take = async (part: ReplyPart) => {
          reasoning += part.reasoning;
          content += part.content;
          if (part.reasoning) await emit?.(delta({ reasoning_content: part.reasoning }, null));
          if (part.content) await emit?.(delta({ content: part.content }, null));
          for (const c of part.calls) {
            const call: ChatCompletionMessageToolCall = { id: toolCallId(), type: 'function', function: { name: c.name, arguments: JSON.stringify(c.arguments) } };
            const at = calls.push(call) - 1;
            await emit?.(delta({ tool_calls: [{ index: at, id: call.id, type: 'function', function: { name: call.function.name, arguments: '' } }] }, null));
            await emit?.(delta({ tool_calls: [{ index: at, function: { arguments: call.function.arguments } }] }, null));
          }
        };
        if (signal.aborted && index > 0) {
          choices.push({ index, message: { role: 'assistant', content: '', refusal: null }, finish_reason: 'abort', logprobs: withLogprobs ? { content: [], refusal: null } : null });
          continue;
        }
        // The prefilled opener is the reply's first text; inside a call, the parser holds it.
        await take(parser.push(prefill));
        const onToken = async ({ text, logprobs: step }: GeneratedToken) => {
          if (step) {
            const entry = chatTokenLogprob(tokenizer, step);
            logprobs.push(entry);
            if (emit) unsent.push(entry);
          }
          await take(parser.push(text));
        };
        const result = await this.run(prompt, { ...callParams, seed: choiceSeed(params.seed, index) }, signal, onToken, received, keepControl, checkpointAt, auto && { ...auto, parallel: parallelToolCalls });
        await take(parser.finish());
        const finishReason = calls.length && result.finishReason === 'stop' ? 'tool_calls' : result.finishReason;
        await emit?.(delta({}, finishReason));
        const message: ChatCompletionChoice['message'] = { role: 'assistant', content: calls.length && !content ? null : content, refusal: null };
        if (calls.length) message.tool_calls = calls;
        if (reasoning) message.reasoning_content = reasoning;
        choices.push({ index, message, finish_reason: finishReason, logprobs: withLogprobs ? { content: logprobs, refusal: null } : null });
        total = total ? addCompletion(total, result.usage, received) : result.usage;
      }
      const usage = total!;
      if (plan.includeUsage) await emit?.(chunk([], usage));
      return { id, object: 'chat.completion', created, model: info.id, choices, usage };
    });
  }

  /** OpenAI's legacy text completion; `onChunk` gets the stream's chunks when the request streams. */
  async completion(request: Omit<CompletionRequest, 'signal'>, requestId: string, onChunk?: (c: CompletionChunk) => unknown): Promise<Completion> {
    const received = performance.now();
    const { prompt: given, echo, params, n, ...plan } = validateCompletionRequest(request);
    return this.serial(requestId, async (signal) => {
      const { tokenizer, info, model } = this.require();
      let prompt: number[];
      if (typeof given === 'string') {
        prompt = encodePrompt(tokenizer, model.contextLength, given, { parseSpecial: params.allowSpecialTokens });
      } else {
        const bad = given.find((t) => t >= tokenizer.vocabSize);
        if (bad !== undefined) throw new WebGGUFError('invalid-argument', `prompt has token id ${bad}, outside the vocabulary (${tokenizer.vocabSize} tokens)`);
        prompt = given;
      }
      const id = `cmpl-${requestId}`;
      const created = Math.floor(Date.now() / 1000);
      const chunk = (choices: CompletionChunk['choices'], usage?: Usage): CompletionChunk => ({
        id, object: 'text_completion', created, model: info.id, choices, ...usageField(plan, usage),
      });
      const withLogprobs = params.logprobs !== undefined;
      const piece = (text: string, finish: FinishReason | null, logprobs: CompletionLogprobs | null = null) => chunk([{ index: 0, text, finish_reason: finish, logprobs }]);
      const emit = plan.stream ? onChunk : undefined;
      const echoed = echo ? (typeof given === 'string' ? given : tokenizer.decode(given)) : '';
      const choices: Completion['choices'] = [];
      let total: Usage | undefined;
      for (let index = 0; index < n; index++) {
        const logprobs = withLogprobs ? new CompletionLogprobsBuilder(tokenizer) : undefined;
        if (signal.aborted && index > 0) {
          choices.push({ index, text: echoed, finish_reason: 'abort', logprobs: logprobs?.logprobs ?? null });
          continue;
        }
        let text = echoed;
        if (text) await emit?.(piece(text, null));
        const result = await this.run(prompt, { ...params, seed: choiceSeed(params.seed, index) }, signal, async ({ text: t, logprobs: step }) => {
          const added = step && logprobs?.add(step, text.length);
          text += t;
          if (t || added) await emit?.(piece(t, null, added ?? null));
        }, received);
        await emit?.(piece('', result.finishReason));
        choices.push({ index, text, finish_reason: result.finishReason, logprobs: logprobs?.logprobs ?? null });
        total = total ? addCompletion(total, result.usage, received) : result.usage;
      }
      const usage = total!;
      if (plan.includeUsage) await emit?.(chunk([], usage));
      return { id, object: 'text_completion', created, model: info.id, choices, usage };
    });
  }

  /** OpenAI's embeddings: one pooled, unit-length vector per input, from an embedding model. */
  async embeddings(request: Omit<EmbeddingRequest, 'signal'>, requestId: string): Promise<EmbeddingResponse> {
    const { inputs: texts, dimensions, encoding, inputType } = validateEmbeddingRequest(request);
    return this.serial(requestId, async (signal) => {
      const { tokenizer, info, model, prefixes } = this.requireLoaded();
      const prefix = inputType && prefixes ? prefixes[inputType] : '';
      const inputs = texts.map((t) => prefix + t);
      if (!model.isEmbeddingModel) {
        throw new WebGGUFError('invalid-argument', `the loaded model (${info.architecture}) generates text, not embeddings; load an embedding model (such as a BERT GGUF) for embeddings.create`);
      }
      if (dimensions !== undefined && dimensions > model.config.dim) {
        throw new WebGGUFError('invalid-argument', `dimensions ${dimensions} is more than the model's ${model.config.dim}`);
      }
      const tooLong = (i: number, tokens: string) =>
        new WebGGUFError('context-overflow', `input[${i}] has ${tokens} tokens but the model takes at most ${model.contextLength}; shorten or split it`);
      const ids = inputs.map((text, i) => {
        // A cheap floor first: megabytes of text are refused before they are tokenized.
        const floor = tokenizer.minTokens(text);
        if (floor > model.contextLength) throw tooLong(i, `at least ${floor}`);
        // With the vocabulary's special tokens as llama.cpp adds them: BOS (CLS), and SEP or, where
        // tokenizer.ggml.add_eos_token says so (Qwen3-Embedding's pooled EOS), EOS.
        const tokens = tokenizer.encode(text, { addEos: true });
        if (tokens.length > model.contextLength) throw tooLong(i, String(tokens.length));
        return tokens;
      });
      const pooled = await model.embed(ids, signal);
      // The embedding passes overwrote the KV cache.
      this.context = [];
      const data = pooled.map((v, index) => {
        const vector = finishEmbedding(v, dimensions);
        return { object: 'embedding' as const, index, embedding: encoding === 'base64' ? embeddingToBase64(vector) : Array.from(vector) };
      });
      const tokens = ids.reduce((n, t) => n + t.length, 0);
      return { object: 'list', data, model: info.id, usage: { prompt_tokens: tokens, total_tokens: tokens } };
    });
  }

  async cacheList() {
    return this.cache ? this.cache.list() : [];
  }

  /** Deletes a cached model; a load of that model in progress is aborted first. */
  async cacheDelete(id: string): Promise<void> {
    const loading = this.loading;
    if (loading?.id === id) {
      this.abort(loading.requestId);
      await loading.settled;
    }
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
      // A device the app passed in outlives this engine: it keeps no listener of ours.
      this.gpu?.device.removeEventListener('uncapturederror', this.onUncapturedError);
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
    gpu.device.addEventListener('uncapturederror', this.onUncapturedError);
    return gpu;
  }

  private dropModel(): void {
    this.loaded?.model.dispose();
    this.loaded = undefined;
    this.context = [];
  }

  /** The loaded text model (generation, chat). */
  private require(): Loaded & { model: LlamaModel } {
    const loaded = this.requireLoaded();
    // An embedding model makes vectors; its LM head, where it has one, was never trained to talk.
    if (loaded.model.isEmbeddingModel) {
      throw new WebGGUFError('invalid-argument', `the loaded model (${loaded.info.architecture}) is an embedding model: it makes vectors, not text; use embeddings.create`);
    }
    return loaded as Loaded & { model: LlamaModel };
  }

  private requireLoaded(): Loaded {
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
    prompt: number[], params: GenerateParams, signal: AbortSignal, emit: (t: GeneratedToken) => unknown, received: number,
    keepControl?: ReadonlySet<number>, checkpointAt?: number, call?: OutputConstraint & { parallel: boolean },
  ): Promise<{ finishReason: FinishReason; usage: Usage }> {
    const started = performance.now();
    const { model, tokenizer } = this.require();
    if (prompt.length >= model.contextLength) {
      throw new WebGGUFError('context-overflow', `the prompt has ${prompt.length} tokens but the context holds ${model.contextLength}; shorten the conversation`);
    }
    let reuse = 0;
    while (reuse < this.context.length && reuse < prompt.length && this.context[reuse] === prompt[reuse]) reuse++;
    // At least the last prompt token runs; a recurrent state (Qwen3.5) resumes only where it is
    // or was saved, not at any position the KV cache could.
    reuse = model.resumablePrefix(Math.max(0, Math.min(reuse, prompt.length - 1)));
    const stops = typeof params.stop === 'string' ? [params.stop] : params.stop ?? [];
    const matcher = new StopMatcher(stops.filter((s) => s.length > 0));
    const { constraint: spec, ...rest } = params;
    // Compiled before the KV cache is touched: a grammar that does not compile changes nothing.
    const constraint = spec ? await (await GrammarEngine.for(tokenizer, model.config.vocabSize)).constraint(spec) : undefined;
    // A stop string found in the text ends generation through this controller.
    const local = new AbortController();
    const onAbort = () => local.abort();
    signal.addEventListener('abort', onAbort);
    let stoppedByString = false;
    let completion = 0;
    // A call opened in free text: XGrammar is loaded and the call compiled only then. After the
    // call the reply goes on free (parallel_tool_calls), or ends.
    const trigger: ConstraintTrigger | undefined = call?.triggers && {
      texts: call.triggers,
      constraint: async (prefix) => (await GrammarEngine.for(tokenizer, model.config.vocabSize)).constraint({ type: 'tool_call', schema: call.schema, suffix: call.suffix, prefix }, { untilComplete: call.parallel }),
    };
    const options: GenerateOptions & { cachedPrefix: number; checkpointAt?: number; constraint?: Constraint; trigger?: ConstraintTrigger } = {
      ...rest, signal: local.signal, cachedPrefix: reuse, checkpointAt, constraint, trigger,
    };
    let firstToken: number | undefined;
    const usageNow = (completion: number) => {
      const cached = Math.min(reuse, prompt.length - 1);
      return usage(prompt.length, completion, cached, { received, started, firstToken, ended: performance.now() });
    };
    this.context = []; // until generation ends cleanly, the KV cache's contents are unknown
    try {
      if (signal.aborted) return { finishReason: 'abort', usage: usageNow(0) };
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
          return { finishReason, usage: usageNow(completion) };
        }
        if (completion++ === 0) firstToken = performance.now();
        if (stoppedByString) continue;
        // Control tokens a chat reply is parsed at (tool-call and thinking markers) stay in its text.
        const piece = keepControl?.has(r.value.token) ? r.value.text + tokenizer.tokenText(r.value.token) : r.value.text;
        const { text, stopped } = matcher.push(piece);
        if (text || !stopped || r.value.logprobs) await emit({ ...r.value, text });
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
      constraint?.dispose();
    }
  }

  private async doLoad(source: ModelSource, requestId: string, signal: AbortSignal, options: CoreLoadOptions): Promise<ModelInfo> {
    this.dropModel();
    const gpu = (this.gpu ??= await this.acquireGpu());
    const id = await sourceId(source);
    if (!id) return this.loadFrom(source, undefined, gpu, signal, options);
    let settle = () => {};
    this.loading = { id, requestId, settled: new Promise<void>((r) => (settle = r)) };
    try {
      return await this.loadFrom(source, id, gpu, signal, options);
    } finally {
      this.loading = undefined;
      settle();
    }
  }

  /**
   * A load from the weight cache (a listed model: no network, no repacking), or from the source,
   * resuming the chunks an interrupted load stored when the source proves it is the same file.
   */
  private async loadFrom(source: ModelSource, id: string | undefined, gpu: GpuContext, signal: AbortSignal, options: CoreLoadOptions): Promise<ModelInfo> {
    const { onProgress } = options;
    const cache = id ? this.cache : null;
    const manifest = cache && id ? await cache.manifest(id) : undefined;
    const checkAbort = () => {
      if (signal.aborted) throw new WebGGUFError('aborted', 'the load was aborted');
    };
    let file: GGUFFile;
    let weights: LoadOptions['weights'];
    /** Chunks of this model in the store (so a failure before the first leaves nothing behind). */
    let kept = 0;
    /** Lists the model in the cache once it is on the GPU. */
    let list: ((architecture: string) => Promise<void>) | undefined;

    if (cache && id && manifest) {
      const header = await cache.header(manifest);
      file = await readGGUF(bytesSource(header, manifest.source), manifest.fileBytes);
      const meter = new LoadMeter(manifest.fileBytes, uploadBytes(file), onProgress);
      weights = () => (async function* () {
        let served = 0;
        for await (const c of cache.chunks(id, 0, manifest.chunks, manifest)) {
          checkAbort();
          served += c.words.byteLength;
          meter.file('cache', (manifest.fileBytes * served) / Math.max(1, manifest.storedBytes));
          meter.upload(c.words.byteLength);
          yield c;
        }
        if (served !== manifest.storedBytes || served !== meter.uploadBytes) {
          await cache.corrupt(id, `its chunks hold ${served} bytes where the model needs ${meter.uploadBytes}`, manifest.source);
        }
        meter.complete();
      })();
    } else {
      if (typeof source === 'object' && 'cached' in source) throw new WebGGUFError('cache', `no cached model "${source.cached}"`);
      const urlOptions = { signal, stallTimeoutMs: this.options.stallTimeoutMs, headers: options.headers, fetch: options.fetch };
      // One file, or a split model's parts as one virtual file (gguf/split.ts).
      const fetched = await openModel(typeof source === 'object' && 'url' in source ? source.url : source, urlOptions);
      // How far into the file reads have reached: the file's share of the progress.
      let cursor = 0;
      let meter: LoadMeter | undefined;
      const counted = cursorSource(fetched, (end) => {
        cursor = Math.max(cursor, end);
        meter?.file('download', cursor);
      });
      const expectedHash = typeof source === 'object' && 'sha256' in source && source.sha256 ? source.sha256.toLowerCase() : undefined;
      if (expectedHash && fetched.parts.length > 1) {
        throw new WebGGUFError('invalid-argument', `sha256 checks one file, and ${fetched.name} is the first of ${fetched.parts.length} parts of a split model; load it without sha256`);
      }
      const hashing = expectedHash ? sha256Source(counted) : undefined;
      file = await readGGUF(hashing ?? counted);
      const m = (meter = new LoadMeter(fetched.size, uploadBytes(file), onProgress));
      m.file('download', cursor);
      // Every byte of the file is hashed, whichever session fetched it (see HashingSource.resume).
      const verify = async () => {
        if (!hashing || !expectedHash) return;
        const actual = await hashing.finish();
        if (actual !== expectedHash) {
          if (cache && id) await cache.delete(id);
          throw new WebGGUFError('integrity', `the file's SHA-256 is ${actual}, not the expected ${expectedHash}; nothing was kept`);
        }
      };
      if (!cache || !id) {
        weights = (repack) => (async function* () {
          for await (const c of repack(0)) {
            checkAbort();
            m.upload(c.words.byteLength);
            yield c;
          }
          await verify();
          m.complete();
        })();
      } else {
        const proof = resumeProof(source, fetched, id);
        const partial = await cache.partial(id);
        let done = 0;
        let cachedTo = 0;
        if (partial && proof && partial.proof === proof && partial.fileBytes === fetched.size && equalBytes(partial.header, file.header)) {
          if (!hashing) {
            done = partial.chunks;
            cachedTo = partial.fileAt;
          } else if (partial.resume && partial.resume.chunk > 0) {
            done = partial.resume.chunk;
            cachedTo = partial.resume.hash.at;
            hashing.resume(partial.resume.hash);
          }
        }
        if (done === 0) await cache.start(id, file.header, proof, fetched.size);
        kept = done;
        const checks: number[] = [];
        let stored = 0;
        weights = (repack) => (async function* () {
          const from = cursor;
          for await (const c of cache.chunks(id, 0, done)) {
            checkAbort();
            checks.push(c.check);
            stored += c.words.byteLength;
            m.file('cache', from + ((cachedTo - from) * checks.length) / done);
            m.upload(c.words.byteLength);
            yield c;
          }
          let point = hashing?.checkpoint();
          let pointChunk = done;
          let n = done;
          for await (const c of repack(done)) {
            checkAbort();
            let resume: HashResume | undefined;
            if (hashing) {
              // The first chunk of the latest read that started on a clean checkpoint.
              const now = hashing.checkpoint();
              if (now !== point) [point, pointChunk] = [now, n];
              resume = { chunk: pointChunk, hash: now };
            }
            checks[n] = await cache.putChunk(id, n, c, cursor, resume);
            kept = ++n;
            stored += c.words.byteLength;
            m.upload(c.words.byteLength);
            yield c;
          }
          await verify();
          m.complete();
        })();
        const nameOf = (s: string | Blob) => (typeof s === 'string' ? s : (s as File).name ?? 'blob');
        const name = Array.isArray(source) ? source.map(nameOf).join(' + ') : typeof source === 'string' || source instanceof Blob ? nameOf(source) : source.url;
        list = (architecture) => cache.finish({ id, source: name, fileBytes: fetched.size, storedBytes: stored, architecture, createdAt: Date.now() }, file.header, checks);
      }
    }

    const tokenizer = GGUFTokenizer.fromGGUF(file);
    let model: LlamaModel | EncoderModel;
    try {
      const loadOptions = { contextLength: this.options.contextLength, maxGpuBytes: this.options.maxGpuBytes, kvCache: this.options.kvCache, weights };
      model = isEncoder(file) ? await EncoderModel.load(gpu, file, loadOptions) : await LlamaModel.load(gpu, file, loadOptions);
    } catch (e) {
      // Keep stored chunks for a resume; a failure before the first one leaves nothing behind.
      if (cache && id && !manifest && kept === 0) await cache.delete(id);
      throw e;
    }
    try {
      checkAbort();
      await list?.(model.config.architecture);
      checkAbort();
    } catch (e) {
      model.dispose();
      throw e;
    }
    const matrices = file.tensors.filter((t) => t.dims.length > 1);
    const info: ModelInfo = {
      id: id ?? file.source.name,
      architecture: model.config.architecture,
      kind: model.isEmbeddingModel ? 'embedding' : 'text',
      parameters: file.tensors.reduce((s, t) => s + t.elements, 0),
      quantTypes: [...new Set(matrices.map((t) => typeName(t.type)))],
      contextLength: model.contextLength,
      bytesOnGpu: model.bytesOnGpu,
      bytesOnCpu: model instanceof LlamaModel ? model.bytesOnCpu : 0,
      adapter: gpu.adapterName,
      features: gpu.features,
      fromCache: Boolean(manifest),
    };
    this.loaded = { model, tokenizer, info, prefixes: embeddingPrefixes(file) };
    return info;
  }
}

/**
 * Encodes a raw prompt, refusing at once one whose text cannot fit the context whatever its
 * tokens (no token stands for more than the vocabulary's longest), before tokenizing megabytes.
 */
function encodePrompt(tokenizer: GGUFTokenizer, contextLength: number, text: string, options?: { parseSpecial?: boolean }): number[] {
  const floor = tokenizer.minTokens(text);
  if (floor >= contextLength) {
    throw new WebGGUFError('context-overflow', `the prompt has at least ${floor} tokens but the context holds ${contextLength}; shorten it`);
  }
  return tokenizer.encode(text, options);
}

/** Whether constrained decoding supports every keyword of a call's schema. */
function supportedCall(call: OutputConstraint): boolean {
  try {
    checkConstraintSpec({ type: 'tool_call', schema: call.schema, suffix: call.suffix });
    return true;
  } catch {
    return false;
  }
}

/** The ids of those `markers` that are control tokens (which decoding drops). */
function controlTokenIds(tokenizer: GGUFTokenizer, markers: string[]): ReadonlySet<number> | undefined {
  const ids = new Set<number>();
  for (const m of markers) {
    const encoded = tokenizer.encode(m, { addBos: false });
    if (encoded.length === 1 && tokenizer.decode(encoded) === '') ids.add(encoded[0]!);
  }
  return ids.size ? ids : undefined;
}

/** OpenAI-style call ids: call_ and 24 random letters and digits. */
function toolCallId(): string {
  const digits = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
  return `call_${Array.from(crypto.getRandomValues(new Uint8Array(24)), (b) => digits[b % 62]).join('')}`;
}

/**
 * The seed of choice `index` of an n-choice request: the request's own for the first (so n: 1
 * and the first of n agree), then a distinct safe integer per choice; random stays random.
 */
export function choiceSeed(seed: number | undefined, index: number): number | undefined {
  return seed === undefined || index === 0 ? seed : seed32(seed) + index * 2 ** 32;
}

/** Usage over choices: the prompt once, completions summed, latency to the end of the last. */
function addCompletion(total: Usage, next: Usage, received: number): Usage {
  const completion = total.completion_tokens + next.completion_tokens;
  return {
    ...total, completion_tokens: completion, total_tokens: total.prompt_tokens + completion,
    extra: { ...total.extra, e2e_latency_s: Math.max((performance.now() - received) / 1000, total.extra.e2e_latency_s) },
  };
}

/**
 * The `shift` context policy: drops the oldest turns (never the system or developer prompt, never the last
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
  const droppable = messages.flatMap((m, i) => (m.role !== 'system' && m.role !== 'developer' && i < messages.length - 1 ? [i] : []));
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

/** performance.now() times of a request: called, out of the queue, first token, done. */
interface Timing {
  received: number;
  started: number;
  firstToken: number | undefined;
  ended: number;
}

function usage(prompt: number, completion: number, cached: number, t: Timing): Usage {
  const seconds = (ms: number) => Math.max(ms, 0) / 1000;
  const first = t.firstToken ?? t.ended;
  // Clocks coarsened for privacy can read 0 ms; a microsecond floor keeps rates finite.
  const prefill = Math.max(seconds(first - t.started), 1e-6);
  const decode = Math.max(seconds(t.ended - first), 1e-6);
  const decoded = Math.max(completion - 1, 0);
  return {
    prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, prompt_tokens_details: { cached_tokens: cached },
    extra: {
      e2e_latency_s: seconds(t.ended - t.received),
      time_to_first_token_s: seconds(first - t.received),
      prefill_tokens_per_s: (prompt - cached) / prefill,
      decode_tokens_per_s: decoded / decode,
      time_per_output_token_s: decoded ? decode / decoded : 0,
    },
  };
}

/** OpenAI's usage field on stream chunks: null until the usage chunk, absent unless asked for. */
function usageField(plan: StreamPlan, usage: Usage | undefined): { usage?: Usage | null } {
  return plan.includeUsage ? { usage: usage ?? null } : {};
}

/**
 * The cache key of a source. A File's includes a fingerprint of its content, so two files with the
 * same name, size and date differ; plain Blobs have no name and are not cached.
 */
export async function sourceId(source: ModelSource): Promise<string | undefined> {
  if (typeof source === 'string') return source;
  if (Array.isArray(source)) {
    const ids = await Promise.all(source.map((s) => sourceId(s)));
    return ids.every((i) => i !== undefined) ? ids.join(' + ') : undefined;
  }
  if (source instanceof Blob) {
    const f = source as File;
    return typeof f.name === 'string' && f.name ? `file:${f.name}:${f.size}:${f.lastModified}:${await fingerprint(f)}` : undefined;
  }
  if ('cached' in source) return source.cached;
  return source.sha256 ? `${source.url}#sha256=${source.sha256}` : source.url;
}

const FINGERPRINT_SAMPLES = 16;
const FINGERPRINT_SAMPLE_BYTES = 64 << 10;

/** SHA-256 of a GGUF's header and of 64 KiB at 16 offsets spread over the file (about 1 MiB read). */
async function fingerprint(blob: Blob): Promise<string> {
  const { header } = await readGGUF(blobSource(blob));
  const hash = sha256.create();
  hash.update(header);
  const span = Math.max(0, blob.size - FINGERPRINT_SAMPLE_BYTES);
  for (let i = 0; i < FINGERPRINT_SAMPLES; i++) {
    const at = Math.floor((span * i) / (FINGERPRINT_SAMPLES - 1));
    hash.update(new Uint8Array(await blob.slice(at, at + FINGERPRINT_SAMPLE_BYTES).arrayBuffer()));
  }
  return bytesToHex(hash.digest()).slice(0, 32);
}

/**
 * What lets a later session resume this source's stored chunks: a File's id (it holds the content
 * fingerprint), or a URL's strong ETag or Last-Modified, with the size. A weak ETag (`W/`, which
 * byte-source.ts prefers to Last-Modified) or none proves nothing: such a load starts over.
 */
function resumeProof(source: ModelSource, fetched: ByteSource, id: string): string | undefined {
  if (source instanceof Blob) return id;
  const v = fetched.validator;
  return v && !v.startsWith('W/') ? `${v} ${fetched.size}` : undefined;
}

/** Bytes of repacked weights the model uploads (what LlamaModel.load plans). */
function uploadBytes(file: GGUFFile): number {
  const plans = isEncoder(file) ? planEncoderWeights(file, readEncoderConfig(file)) : planWeights(file, readConfig(file));
  return plans.reduce((s, p) => s + p.words * 4, 0);
}

/**
 * The one progress count of a load (LoadProgress): file bytes, as far as reads have reached or
 * cached chunks stand in for, plus bytes uploaded. Only increases are reported; `complete` ends
 * at the total.
 */
class LoadMeter {
  readonly total: number;
  private fileDone = 0;
  private uploaded = 0;
  private reported = -1;

  constructor(private readonly fileBytes: number, readonly uploadBytes: number, private readonly emit?: (p: LoadProgress) => void) {
    this.total = fileBytes + uploadBytes;
  }

  file(phase: LoadProgress['phase'], position: number): void {
    const at = Math.floor(Math.min(this.fileBytes, position));
    if (at <= this.fileDone) return;
    this.fileDone = at;
    this.report(phase);
  }

  upload(bytes: number): void {
    this.uploaded = Math.min(this.uploadBytes, this.uploaded + bytes);
    this.report('upload');
  }

  /** Every byte is in: what is left is compiling the kernels. */
  complete(): void {
    this.fileDone = this.fileBytes;
    this.uploaded = this.uploadBytes;
    this.reported = -1;
    this.report('compile');
  }

  private report(phase: LoadProgress['phase']): void {
    const loaded = this.fileDone + this.uploaded;
    if (loaded <= this.reported) return;
    this.reported = loaded;
    this.emit?.({ phase, loaded, total: this.total });
  }
}

/** A ByteSource that reports the end of each read. */
function cursorSource(source: ByteSource, reached: (end: number) => void): ByteSource {
  return {
    size: source.size,
    name: source.name,
    validator: source.validator,
    read: async (offset, length) => {
      const bytes = await source.read(offset, length);
      reached(offset + bytes.byteLength);
      return bytes;
    },
  };
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && a.every((v, i) => v === b[i]);
}

/**
 * What a speed estimate depends on: the architecture, every hyperparameter, the shapes and types of
 * every tensor (the samples hold the first layers and the head; the rest scale them), the context
 * and the prompt.
 */
function speedSignature(file: GGUFFile, contextLength: number, promptTokens?: number): string {
  const arch = String(file.metadata.get('general.architecture'));
  // Every layer's tensors and every value of the architecture's keys (arrays too: Gemma 4's per-layer
  // shapes): the prediction scales the samples by the bytes of all the layers.
  const value = (v: MetadataValue) => (typeof v === 'object' ? Array.from(v as ArrayLike<unknown>).join(',') : String(v));
  const params = [...file.metadata].filter(([k]) => k.startsWith(`${arch}.`)).map(([k, v]) => `${k}=${value(v)}`);
  const tensors = file.tensors.map((t) => `${t.name}:${t.dims.join('x')}:${t.type}`);
  return bytesToHex(sha256(new TextEncoder().encode([arch, contextLength, promptTokens ?? '', ...params, ...tensors].join('\n')))).slice(0, 32);
}
