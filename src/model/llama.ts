import { WebGGUFError } from '../errors.js';
import { MAX_TOP_LOGPROBS } from '../generate-options.js';
import type { GGUFFile } from '../gguf/gguf.js';
import { GpuAllocator, uniformData } from '../gpu/allocator.js';
import { buildChecked, type GpuContext } from '../gpu/context.js';
import { Kernels } from '../gpu/kernels.js';
import { AttentionBlocks, kvCacheBytes, type KvCacheType } from './blocks/attention.js';
import { DeltaNetBlocks, type RecurrentState } from './blocks/delta-net.js';
import { recordEmbedding } from './blocks/embedding.js';
import { FeedForwardBlocks } from './blocks/feed-forward.js';
import {
  FILTER_BIAS, FILTER_MASK, FILTERS_OFFSET, LOGPROB_RECORD_BYTES, maskBytes, recordOutputHead, SAMPLER_STATE_BYTES, TOKEN_OFFSET, type OutputHead,
} from './blocks/output-head.js';
import { PerLayerEmbeddingBlocks, recordOutputScale } from './blocks/per-layer-embedding.js';
import { recordPoolingHead, type PoolingHead } from './blocks/pooling.js';
import { isAttentionLayer, layerPlans, PER_LAYER_TABLE, ropeFactorTensor, type ModelConfig } from './config.js';
import { checkFit, planMemory, residualBytes, runsWhole } from './memory-plan.js';
import { tuneDecodeWorkgroup } from './kernel-shapes.js';
import { ForwardRecorder, type Op, type ResidualStream } from './recorder.js';
import { repackWeights, uploadWeights, type TensorPlan, type WeightChunk } from './weights.js';

// Kept importable from here, where bench and the kernel tests look for them.
export { barrierWorkgroup, cpuGrid, DECODE_WORKGROUPS, decodeGemv, matmulParams, ROWS_WORKGROUP, tuneDecodeWorkgroup } from './kernel-shapes.js';
export { ropeAngles } from './blocks/attention.js';

export interface SamplingParams {
  /** 0 means greedy. */
  temperature: number;
  /** 0 disables. */
  topK: number;
  /** 1 disables. */
  topP: number;
  /** 0 disables. */
  minP: number;
  /** 1 disables. */
  repetitionPenalty: number;
  /** How many recent tokens the penalties consider. */
  penaltyLastN: number;
  /** OpenAI-style: subtracted per occurrence in the window. 0 disables. */
  frequencyPenalty: number;
  /** OpenAI-style: subtracted once for tokens in the window. 0 disables. */
  presencePenalty: number;
  seed: number;
  /** OpenAI's logit_bias: token id -> added to its logit (on the GPU). Empty or absent: none. */
  logitBias?: ReadonlyMap<number, number>;
  /**
   * Log-probs of each chosen token and of this many most likely ones (0 to 20), computed on the
   * GPU after each draw (see takeLogprobs). Absent: none, and no work for them.
   */
  topLogprobs?: number;
}

/**
 * A step's log-probs: log-softmax of the logits plus the logit bias (not the temperature,
 * penalties, truncation or allowed-token mask the draw used), as OpenAI and llama.cpp report them.
 */
export interface SampledLogprobs {
  token: number;
  logprob: number;
  /** The most likely tokens, most likely first (lower id first on ties). */
  top: { token: number; logprob: number }[];
}

export const GREEDY: SamplingParams = {
  temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, penaltyLastN: 64, frequencyPenalty: 0, presencePenalty: 0, seed: 0,
};

export interface LoadOptions {
  /** KV cache length; defaults to the model's context length, capped at 4096. */
  contextLength?: number;
  /** Prompt tokens processed per step. */
  maxBatch?: number;
  /**
   * The most GPU memory the model may take (weights, KV cache and work buffers at
   * `contextLength`); a model over it is refused before its weights are read. Default: no limit.
   */
  maxGpuBytes?: number;
  /**
   * How the KV cache stores keys and values: 'f16' (the default: half the memory; shapes whose
   * head or rotary size is not a multiple of 4 keep f32) or 'f32' (exact, for reference tests).
   */
  kvCache?: KvCacheType;
  /**
   * Matrices larger than this are split by rows across buffers. The default, 128 MiB, is what
   * every WebGPU device can bind (and keeps cached chunks valid across devices); tests lower it.
   */
  maxPartBytes?: number;
  /** Called as weights reach the GPU, in u32 words. */
  onProgress?: (loaded: number, total: number) => void;
  /**
   * Where the repacked weights come from: by default they are repacked from the GGUF's tensor
   * data (`repack(skip)` streams them, leaving out the first `skip` chunks); a cache serves its
   * stored chunks and tees the rest into storage.
   */
  weights?: (repack: (skip: number) => AsyncIterable<WeightChunk>) => AsyncIterable<WeightChunk>;
}

/** The step uniform (shaders/common.wgsl's Step, padded): pos, n_tokens. */
const STEP_BYTES = 16;
/** The most decode steps recorded before one readback. */
export const MAX_DECODE_STEPS = 16;
/** Where the readback buffer holds the steps' log-prob records, after the sampled tokens (or sampler state). */
const LOGPROBS_AT = MAX_DECODE_STEPS * 4;

/**
 * A Llama-family model on the GPU. All buffers, bind groups and the list of dispatches are made
 * once at load; a step only writes the 8-byte step uniform and records the dispatches, and a batch
 * of decode steps goes to the GPU as one command buffer with one readback of the sampled token ids.
 */
export class LlamaModel {
  private decodeOps: Op[] = [];
  private prefillOps: Op[] = [];
  /** The tail of both op lists that turns the last hidden state into a token (skipped mid-prompt). */
  private headOps = 0;
  private readonly kernels: Kernels;
  private readonly alloc: GpuAllocator;
  private stepBuffer!: GPUBuffer;
  /** The step values of a decode batch, copied into stepBuffer on the GPU before each step. */
  private decodeStepsBuffer!: GPUBuffer;
  private tokensBuffer!: GPUBuffer;
  /** The logits and the sampler's buffers. */
  private head!: OutputHead;
  /** An embedding model's pooling head (config.pooling), run instead of `head` by embed. */
  private poolingHead: PoolingHead | undefined;
  /** SampleParams.filters as last written (FILTER_MASK, FILTER_BIAS). */
  private samplerFilters = 0;
  /** SamplingParams.topLogprobs of the current sampler: the log-prob dispatch runs after each draw. */
  private topLogprobs: number | undefined;
  /** The log-probs of the tokens the last step or decode chose (see takeLogprobs). */
  private logprobs: SampledLogprobs[] = [];
  private readback!: GPUBuffer;
  /** Gemma 4's per-layer embeddings, whose rows each step uploads. */
  private perLayer: PerLayerEmbeddingBlocks | undefined;
  /** The last token the sampler chose, as far as the host knows (per-layer embedding rows are picked on the host). */
  private lastSampled: number | undefined;
  private disposed = false;
  /**
   * Qwen3.5's recurrent state (each DeltaNet layer's conv and delta-rule state), empty for other
   * models. Unlike the KV cache it cannot be rolled back to an earlier position: it holds the
   * first `stateTokens` tokens run, and `checkpoint` a copy of it at an earlier position.
   */
  private recurrent: RecurrentState[] = [];
  private stateTokens = 0;
  private checkpoint: { tokens: number; state: RecurrentState[] } | undefined;

  private constructor(
    readonly gpu: GpuContext,
    readonly config: ModelConfig,
    readonly contextLength: number,
    readonly maxBatch: number,
    /** Bits per value in the KV cache: 16 (f16 pairs) or 32. */
    readonly kvBits: 16 | 32,
  ) {
    this.kernels = Kernels.forDevice(gpu.device, gpu.subgroups);
    this.alloc = new GpuAllocator(gpu.device, gpu.limits.maxStorageBufferBindingSize);
  }

  get bytesOnGpu(): number {
    return this.alloc.bytesInUse;
  }

  /** Whether the model makes embeddings, not text: its file names a pooling (Qwen3-Embedding, EmbeddingGemma). */
  get isEmbeddingModel(): boolean {
    return this.config.pooling !== undefined;
  }

  /** The most GPU memory this model has held at once. */
  get peakBytesOnGpu(): number {
    return this.alloc.peakBytes;
  }

  /** Dispatches recorded for one decode step (embedding to sampled token). */
  get dispatchesPerToken(): number {
    return this.decodeOps.length;
  }

  /**
   * Workgroup size of the decode GEMVs on GPUs, timed at load (tuneDecodeWorkgroup); undefined on
   * CPU adapters, whose decode kernels have none to choose.
   */
  decodeWorkgroup: number | undefined;

  /** Weight bytes a decode step reads: every matrix once, but one row of the embedding. */
  weightBytesPerToken = 0;
  /** Bytes of the weights and of the KV cache on the GPU (what the memory target is measured against). */
  weightBytes = 0;
  kvCacheBytes = 0;
  /** Bytes of the recurrent state (and its checkpoint) on the GPU (Qwen3.5). */
  recurrentStateBytes = 0;
  /** Bytes of weights kept in CPU memory instead (Gemma 4's per-layer embedding table), not on the GPU. */
  bytesOnCpu = 0;

  static async load(gpu: GpuContext, file: GGUFFile, options: LoadOptions = {}): Promise<LlamaModel> {
    // Before a single weight byte is read: does every buffer fit this device's limits and the budget?
    const memory = planMemory(file, options);
    checkFit(memory, gpu.limits, options.maxGpuBytes);
    const { config, contextLength, weights: plans } = memory;
    const model = new LlamaModel(gpu, config, contextLength, memory.maxBatch, memory.kvBits);
    await buildChecked(gpu.device, () => model.build(file, plans, options), () => model.dispose());
    return model;
  }

  /** Uploads the weights and records the forward pass, top to bottom as it runs. */
  private async build(file: GGUFFile, plans: TensorPlan[], options: LoadOptions): Promise<void> {
    const c = this.config;
    const a = this.alloc;
    const B = this.maxBatch;

    // RoPE frequency divisors (Llama 3, Phi-3.5) shape the angle table made on the CPU.
    const factorTensor = ropeFactorTensor(c, this.contextLength);
    const repack = (skip: number) => repackWeights(file, plans, skip);
    const chunks = options.weights ? options.weights(repack) : repack(0);
    const { buffers, cpuValues: freqFactors, host } = await uploadWeights(a, plans, chunks, options.onProgress, factorTensor);
    if (factorTensor && freqFactors?.length !== c.ropeDim / 2) throw new WebGGUFError('malformed', `${factorTensor} did not arrive whole`);
    this.weightBytes = plans.reduce((sum, p) => sum + (p.host ? 0 : p.words * 4), 0);
    this.bytesOnCpu = plans.reduce((sum, p) => sum + (p.host ? p.words * 4 : 0), 0);
    const plansOfLayers = layerPlans(c);
    // Only attention layers with a KV cache of their own: not DeltaNet layers (Qwen3.5), nor
    // layers that read another's cache (Gemma 4).
    this.kvCacheBytes = kvCacheBytes(c, this.contextLength, this.kvBits);
    for (const p of plans.filter((plan) => !plan.host)) {
      const embeddingOnly = p.matrix === 'token_embd.weight' && !c.tiedOutput;
      this.weightBytesPerToken += embeddingOnly ? (p.words * 4) / (p.layout?.rows ?? 1) : p.words * 4;
    }

    this.stepBuffer = a.create('step', STEP_BYTES, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
    this.decodeStepsBuffer = a.create('decode_steps', MAX_DECODE_STEPS * STEP_BYTES, GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST);
    this.tokensBuffer = a.storage('tokens', B * 4);
    const r = new ForwardRecorder(this.gpu, c, this.kernels, a, this.stepBuffer, plans, buffers);
    const residual: ResidualStream = { x: a.storage('x', residualBytes(c, B)), normed: a.storage('xb', residualBytes(c, B)) };
    const attention = new AttentionBlocks(r, this.contextLength, B, freqFactors, this.kvBits);
    const feedForward = new FeedForwardBlocks(r, B);
    const deltaNet = c.deltaNet ? new DeltaNetBlocks(r, B) : undefined;
    const table = host.get(PER_LAYER_TABLE);
    if (table) this.perLayer = new PerLayerEmbeddingBlocks(r, B, table, file.tensors.find((t) => t.name === PER_LAYER_TABLE)!.type);
    // GPUs: the decode GEMVs' workgroup size, timed on a feed-forward matrix of this model.
    if (!this.gpu.cpuEmulated) {
      this.decodeWorkgroup = await tuneDecodeWorkgroup(this.gpu, this.kernels, r.matrix('blk.0.ffn_up.weight')[0]!, residual.normed, feedForward.hidden, this.stepBuffer);
      r.decodeSize = { WG: this.decodeWorkgroup };
    }

    // The forward pass (llama2.c's forward()): embed the tokens, run each layer's blocks on the
    // residual stream, then the head (skipped for all but a prompt's last chunk).
    recordEmbedding(r, this.tokensBuffer, residual.x);
    this.perLayer?.recordInputs(residual);
    for (const layer of plansOfLayers) {
      if (isAttentionLayer(layer)) attention.record(layer, residual);
      else deltaNet!.record(layer, residual);
      feedForward.record(layer, residual);
      if (layer.perLayerEmbedding) this.perLayer!.record(layer, residual);
      if (layer.outputScale) recordOutputScale(r, layer, residual);
    }
    if (deltaNet) {
      this.recurrent = deltaNet.states;
      this.checkpoint = {
        tokens: -1,
        state: this.recurrent.map((s, i) => ({ conv: a.storage(`conv_checkpoint.${i}`, s.conv.size), matrix: a.storage(`delta_checkpoint.${i}`, s.matrix.size) })),
      };
      this.recurrentStateBytes = 2 * this.recurrent.reduce((sum, s) => sum + s.conv.size + s.matrix.size, 0);
    }
    attention.finish();
    if (c.pooling) this.poolingHead = recordPoolingHead(r, residual, c.pooling);
    const opsBeforeHead = r.decode.length;
    this.head = recordOutputHead(r, residual.x, this.tokensBuffer, this.contextLength);
    this.headOps = r.decode.length - opsBeforeHead;
    this.decodeOps = r.decode;
    this.prefillOps = r.prefill;
    this.readback = a.create('readback', Math.max(LOGPROBS_AT + MAX_DECODE_STEPS * LOGPROB_RECORD_BYTES, SAMPLER_STATE_BYTES, c.vocabSize * 4, c.dim * 4), GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
    this.setSampler(GREEDY, []);
  }

  /**
   * Sets the sampling parameters and the tokens in context (for the repetition penalty). The
   * allowed-token mask is off until setAllowedTokens.
   */
  setSampler(s: SamplingParams, history: ArrayLike<number>): void {
    this.assertLive();
    const q = this.gpu.device.queue;
    this.samplerFilters = 0;
    const top = s.topLogprobs;
    if (top !== undefined && (!Number.isInteger(top) || top < 0 || top > Math.min(MAX_TOP_LOGPROBS, this.config.vocabSize))) {
      throw new WebGGUFError('invalid-argument', `top log-probs must be an integer from 0 to ${Math.min(MAX_TOP_LOGPROBS, this.config.vocabSize)}, not ${top}`);
    }
    this.topLogprobs = top;
    this.logprobs = [];
    if (s.logitBias?.size) {
      const bias = new Float32Array(this.config.vocabSize);
      for (const [token, b] of s.logitBias) {
        if (!Number.isInteger(token) || token < 0 || token >= bias.length) throw new WebGGUFError('invalid-argument', `logit_bias: token ${token} is not in the vocabulary (0 to ${bias.length - 1})`);
        bias[token] = b;
      }
      q.writeBuffer(this.head.bias, 0, bias);
      this.samplerFilters |= FILTER_BIAS;
    }
    q.writeBuffer(this.head.samplerParams, 0, uniformData([
      { u: this.config.vocabSize }, { u: s.topK }, { f: s.topP }, { f: s.minP }, { f: s.temperature },
      { f: s.repetitionPenalty }, { u: s.penaltyLastN }, { u: s.seed >>> 0 }, { f: s.frequencyPenalty }, { f: s.presencePenalty },
      { u: this.samplerFilters }, { u: top ?? 0 },
    ]));
    q.writeBuffer(this.head.samplerState, 0, new Uint32Array([history.length, 0, 0, 0]));
    if (history.length) q.writeBuffer(this.head.history, 0, Uint32Array.from(history));
  }

  /**
   * Constrained decoding: the sampler chooses the next token only among those `allowed` sets
   * (packed: token i is bit i % 32 of word i / 32), until the next call or setSampler; null lifts it.
   */
  setAllowedTokens(allowed: Uint32Array<ArrayBuffer> | null): void {
    this.assertLive();
    const q = this.gpu.device.queue;
    if (allowed) {
      const words = maskBytes(this.config.vocabSize) / 4;
      if (allowed.length < words) throw new WebGGUFError('invalid-argument', `the allowed-token mask has ${allowed.length} words; the vocabulary needs ${words}`);
      q.writeBuffer(this.head.allowed, 0, allowed, 0, words);
    }
    const filters = allowed ? this.samplerFilters | FILTER_MASK : this.samplerFilters & ~FILTER_MASK;
    if (filters !== this.samplerFilters) q.writeBuffer(this.head.samplerParams, FILTERS_OFFSET, new Uint32Array([filters]));
    this.samplerFilters = filters;
  }

  /**
   * Puts tokens the host chose (a grammar forced them; the sampler never saw them) into the
   * sampler's history at `at`, where the penalties look, and continues the history after them.
   */
  extendHistory(tokens: readonly number[], at: number): void {
    this.assertLive();
    if (!tokens.length) return;
    const q = this.gpu.device.queue;
    q.writeBuffer(this.head.history, at * 4, Uint32Array.from(tokens));
    q.writeBuffer(this.head.samplerState, 0, new Uint32Array([at + tokens.length]));
  }

  /**
   * Runs `tokens` at positions [pos, pos + tokens.length) and returns the sampled next token.
   * The sampler's history must already end with these tokens (see setSampler).
   */
  async step(tokens: ArrayLike<number>, pos: number, deadlineMs?: number): Promise<number> {
    const n = tokens.length;
    this.checkRange(pos, n);
    const started = performance.now();
    this.resumeState(pos, n);
    for (let at = 0; at < n; at += this.maxBatch) {
      const chunk = Array.from(tokens).slice(at, at + this.maxBatch);
      this.encodeStep(chunk, pos + at, at + this.maxBatch >= n, 'state');
      // With a deadline, chunks go one at a time, so the pace shows early: the ones left take at
      // least as long each as those done (attention only grows along the prompt).
      if (deadlineMs !== undefined && at + this.maxBatch < n) {
        await this.gpu.device.queue.onSubmittedWorkDone();
        const done = at + this.maxBatch;
        const elapsed = performance.now() - started;
        const projected = (elapsed * n) / done;
        if (projected > deadlineMs) {
          throw new WebGGUFError(
            'timeout',
            `the prompt of ${n} tokens would take about ${Math.round(projected)} ms to process here (${done} took ${Math.round(elapsed)} ms), over max_prefill_ms ${deadlineMs}; shorten it`,
          );
        }
      }
    }
    this.lastSampled = (await this.read(this.readBytes(1), (b) => {
      this.logprobs = this.records(b, 1);
      return new Uint32Array(b)[2]!;
    }))!;
    return this.lastSampled;
  }

  /**
   * Runs `count` decode steps at positions pos, pos + 1, ..., each feeding the token the sampler
   * chose in the step before (the first feeds the last one chosen), with one readback at the end:
   * the tokens chosen, in order. Tokens never pass through the host between these steps, and the
   * steps go to the GPU in one submit: each step's position is copied into the step uniform on the
   * GPU, between the steps' passes (a submit costs far more than a copy, above all in a browser,
   * where each one crosses to the GPU process).
   */
  async decode(count: number, pos: number): Promise<number[]> {
    if (!Number.isInteger(count) || count < 1 || count > MAX_DECODE_STEPS) throw new WebGGUFError('invalid-argument', `decode takes 1 to ${MAX_DECODE_STEPS} steps, not ${count}`);
    this.checkRange(pos, count);
    this.resumeState(pos, count);
    if (this.perLayer) return this.decodeWithPerLayerRows(count, pos);
    const device = this.gpu.device;
    const steps = new Uint32Array((count * STEP_BYTES) / 4);
    for (let i = 0; i < count; i++) steps.set([pos + i, 1], (i * STEP_BYTES) / 4);
    device.queue.writeBuffer(this.decodeStepsBuffer, 0, steps);
    const encoder = device.createCommandEncoder();
    for (let i = 0; i < count; i++) {
      encoder.copyBufferToBuffer(this.decodeStepsBuffer, i * STEP_BYTES, this.stepBuffer, 0, STEP_BYTES);
      this.recordPass(encoder, this.withLogprobs(this.decodeOps), 1);
      encoder.copyBufferToBuffer(this.head.samplerState, TOKEN_OFFSET, this.readback, i * 4, 4);
      this.copyLogprobs(encoder, i);
    }
    device.queue.submit([encoder.finish()]);
    const tokens = await this.read(this.readBytes(count), (b) => {
      this.logprobs = this.records(b, count);
      return Array.from(new Uint32Array(b, 0, count));
    });
    this.lastSampled = tokens.at(-1);
    return tokens;
  }

  /**
   * decode() for a model with per-layer embeddings: each step needs its token's table rows, which
   * the host uploads, so every token comes back to the host before the next step.
   */
  private async decodeWithPerLayerRows(count: number, pos: number): Promise<number[]> {
    const device = this.gpu.device;
    let token = this.lastSampled ?? (await this.readSampledToken());
    const tokens: number[] = [];
    const logprobs: SampledLogprobs[] = [];
    for (let i = 0; i < count; i++) {
      this.perLayer!.upload([token]);
      device.queue.writeBuffer(this.stepBuffer, 0, new Uint32Array([pos + i, 1, 0, 0]));
      const encoder = device.createCommandEncoder();
      this.recordPass(encoder, this.withLogprobs(this.decodeOps), 1);
      encoder.copyBufferToBuffer(this.head.samplerState, TOKEN_OFFSET, this.readback, 0, 4);
      this.copyLogprobs(encoder, 0);
      device.queue.submit([encoder.finish()]);
      token = await this.read(this.readBytes(1), (b) => {
        logprobs.push(...this.records(b, 1));
        return new Uint32Array(b)[0]!;
      });
      tokens.push(token);
    }
    this.logprobs = logprobs;
    this.lastSampled = token;
    return tokens;
  }

  /** The token the sampler chose last, read from the GPU. */
  private async readSampledToken(): Promise<number> {
    const encoder = this.gpu.device.createCommandEncoder();
    encoder.copyBufferToBuffer(this.head.samplerState, TOKEN_OFFSET, this.readback, 0, 4);
    this.gpu.device.queue.submit([encoder.finish()]);
    return this.read(4, (b) => new Uint32Array(b)[0]!);
  }

  /** Runs `tokens` at positions [pos, pos + tokens.length) without choosing a next token (a prompt's first part). */
  prefill(tokens: ArrayLike<number>, pos: number): void {
    const n = tokens.length;
    this.checkRange(pos, n);
    this.resumeState(pos, n);
    for (let at = 0; at < n; at += this.maxBatch) this.encodeStep(Array.from(tokens).slice(at, at + this.maxBatch), pos + at, false, 'state');
  }

  /** Like step, but returns the last token's logits (tests and tools; decode never needs them). */
  async logits(tokens: ArrayLike<number>, pos: number): Promise<Float32Array> {
    this.checkRange(pos, tokens.length);
    this.resumeState(pos, tokens.length);
    this.lastSampled = undefined;
    for (let at = 0; at < tokens.length; at += this.maxBatch) {
      const chunk = Array.from(tokens).slice(at, at + this.maxBatch);
      this.encodeStep(chunk, pos + at, at + this.maxBatch >= tokens.length, 'logits');
    }
    return this.read(this.config.vocabSize * 4, (b) => new Float32Array(b).slice());
  }

  /**
   * An embedding model's pooled output vector of each input (token ids, special tokens included),
   * not normalized: each input runs from position 0 (in steps for last-token pooling, as one step
   * where the pooling or the attention needs every row), then the pooling head instead of the
   * output head. Overwrites the KV cache: a conversation's cached prefix is gone.
   */
  async embed(inputs: number[][], signal?: AbortSignal): Promise<Float32Array[]> {
    this.assertLive();
    const head = this.poolingHead;
    if (!head) throw new WebGGUFError('invalid-argument', `this ${this.config.architecture} model has no pooling_type: it generates text, not embeddings`);
    const whole = runsWhole(this.config) ? this.maxBatch : this.contextLength;
    for (const ids of inputs) {
      if (ids.length < 1) throw new WebGGUFError('invalid-argument', 'an input needs at least one token');
      if (ids.length > whole) throw new WebGGUFError('context-overflow', `an input of ${ids.length} tokens does not fit the context of ${whole}`);
    }
    const out: Float32Array[] = [];
    const device = this.gpu.device;
    for (const ids of inputs) {
      if (signal?.aborted) throw new WebGGUFError('aborted', 'the request was aborted');
      this.resumeState(0, ids.length);
      this.lastSampled = undefined;
      for (let at = 0; at < ids.length; at += this.maxBatch) {
        const chunk = ids.slice(at, at + this.maxBatch);
        const last = at + this.maxBatch >= ids.length;
        device.queue.writeBuffer(this.stepBuffer, 0, new Uint32Array([at, chunk.length, 0, 0]));
        device.queue.writeBuffer(this.tokensBuffer, 0, Uint32Array.from(chunk));
        this.perLayer?.upload(chunk);
        const encoder = device.createCommandEncoder();
        this.recordPass(encoder, this.prefillOps.slice(0, this.prefillOps.length - this.headOps), chunk.length);
        if (last) {
          device.queue.writeBuffer(head.spans, 0, new Uint32Array([0, chunk.length]));
          this.recordPass(encoder, head.ops, chunk.length);
          encoder.copyBufferToBuffer(head.pooled, 0, this.readback, 0, this.config.dim * 4);
        }
        device.queue.submit([encoder.finish()]);
      }
      out.push(await this.read(this.config.dim * 4, (b) => new Float32Array(b).slice()));
    }
    return out;
  }

  /** Whether the model keeps a recurrent state (Qwen3.5), which steps must continue in order. */
  get recurrentState(): boolean {
    return this.recurrent.length > 0;
  }

  /**
   * Where a step may start, given that the first `cached` tokens of the sequence are the ones run
   * before: `cached` itself for attention-only models (the KV cache keeps every position); with a
   * recurrent state, the later of the live state and the checkpoint that is not past `cached`,
   * else 0 (run from the start).
   */
  resumablePrefix(cached: number): number {
    if (!this.recurrentState) return cached;
    const at = [this.stateTokens, this.checkpoint?.tokens ?? -1].filter((t) => t >= 0 && t <= cached);
    return Math.max(0, ...at);
  }

  /** Copies the recurrent state aside, as it is after the tokens run so far (restored by a step at that position). */
  saveCheckpoint(): void {
    this.assertLive();
    if (!this.checkpoint) return;
    this.copyState(this.recurrent, this.checkpoint.state);
    this.checkpoint.tokens = this.stateTokens;
  }

  /**
   * Brings the recurrent state to position `pos` before a step of `n` tokens: zeros at 0, the live
   * state where it already is, the checkpoint where it was saved; anything else cannot be had.
   */
  private resumeState(pos: number, n: number): void {
    if (!this.recurrentState) return;
    if (pos === 0) {
      const encoder = this.gpu.device.createCommandEncoder();
      for (const s of this.recurrent) {
        encoder.clearBuffer(s.conv);
        encoder.clearBuffer(s.matrix);
      }
      this.gpu.device.queue.submit([encoder.finish()]);
    } else if (pos !== this.stateTokens) {
      if (this.checkpoint?.tokens !== pos) {
        throw new WebGGUFError('invalid-argument', `this model's recurrent state holds ${this.stateTokens} tokens and cannot resume at position ${pos}`);
      }
      this.copyState(this.checkpoint.state, this.recurrent);
    }
    this.stateTokens = pos + n;
  }

  private copyState(from: RecurrentState[], to: RecurrentState[]): void {
    const encoder = this.gpu.device.createCommandEncoder();
    from.forEach((s, i) => {
      encoder.copyBufferToBuffer(s.conv, 0, to[i]!.conv, 0, s.conv.size);
      encoder.copyBufferToBuffer(s.matrix, 0, to[i]!.matrix, 0, s.matrix.size);
    });
    this.gpu.device.queue.submit([encoder.finish()]);
  }

  /** Submits one step of `tokens`; with `head`, what the host reads afterwards lands in the readback buffer. */
  private encodeStep(tokens: number[], pos: number, head: boolean, read: 'state' | 'logits'): void {
    const device = this.gpu.device;
    const n = tokens.length;
    device.queue.writeBuffer(this.stepBuffer, 0, new Uint32Array([pos, n, 0, 0]));
    device.queue.writeBuffer(this.tokensBuffer, 0, Uint32Array.from(tokens));
    this.perLayer?.upload(tokens);
    const encoder = device.createCommandEncoder();
    const list = n === 1 ? this.decodeOps : this.prefillOps;
    this.recordPass(encoder, !head ? list.slice(0, list.length - this.headOps) : read === 'state' ? this.withLogprobs(list) : list, n);
    if (head) {
      if (read === 'logits') encoder.copyBufferToBuffer(this.head.logits, 0, this.readback, 0, this.config.vocabSize * 4);
      else {
        encoder.copyBufferToBuffer(this.head.samplerState, 0, this.readback, 0, SAMPLER_STATE_BYTES);
        this.copyLogprobs(encoder, 0);
      }
    }
    device.queue.submit([encoder.finish()]);
  }

  /**
   * The log-probs of the tokens chosen by the last step or decode, in order (empty unless the
   * sampler was set with topLogprobs); each call hands them over once.
   */
  takeLogprobs(): SampledLogprobs[] {
    const taken = this.logprobs;
    this.logprobs = [];
    return taken;
  }

  /** A step's ops, with the log-prob dispatch after the sampler when log-probs are asked for. */
  private withLogprobs(ops: Op[]): Op[] {
    return this.topLogprobs === undefined ? ops : [...ops, this.head.logprobs];
  }

  /** Copies the step's log-prob record into the readback, as record `i` of the batch (when asked for). */
  private copyLogprobs(encoder: GPUCommandEncoder, i: number): void {
    if (this.topLogprobs !== undefined) encoder.copyBufferToBuffer(this.head.logprobRecord, 0, this.readback, LOGPROBS_AT + i * LOGPROB_RECORD_BYTES, LOGPROB_RECORD_BYTES);
  }

  /** The readback bytes of `steps` sampled steps: their tokens (or the sampler state), and their log-prob records if asked for. */
  private readBytes(steps: number): number {
    return this.topLogprobs === undefined ? Math.max(steps * 4, SAMPLER_STATE_BYTES) : LOGPROBS_AT + steps * LOGPROB_RECORD_BYTES;
  }

  /** The log-prob records of `steps` steps in the readback's bytes (none unless asked for). */
  private records(b: ArrayBuffer, steps: number): SampledLogprobs[] {
    const top = this.topLogprobs;
    if (top === undefined) return [];
    const words = LOGPROB_RECORD_BYTES / 4;
    const u = new Uint32Array(b, LOGPROBS_AT, steps * words);
    const f = new Float32Array(b, LOGPROBS_AT, steps * words);
    return Array.from({ length: steps }, (_, i) => ({
      token: u[i * words + 1]!,
      logprob: f[i * words]!,
      top: Array.from({ length: top }, (_, j) => ({ token: u[i * words + 2 + 2 * j]!, logprob: f[i * words + 3 + 2 * j]! })),
    }));
  }

  /** Records `ops` for a step of `n` tokens as one compute pass. */
  private recordPass(encoder: GPUCommandEncoder, ops: Op[], n: number): void {
    const pass = encoder.beginComputePass();
    for (const op of ops) {
      const kernel = typeof op.kernel === 'function' ? op.kernel(n) : op.kernel;
      pass.setPipeline(kernel.pipeline);
      pass.setBindGroup(0, op.bindGroup);
      const [gx, gy, gz] = op.grid(n);
      pass.dispatchWorkgroups(gx, gy, gz);
    }
    pass.end();
  }

  private async read<T>(bytes: number, decode: (b: ArrayBuffer) => T): Promise<T> {
    try {
      await this.readback.mapAsync(GPUMapMode.READ, 0, bytes);
    } catch (e) {
      throw new WebGGUFError('device-lost', `Reading results from the GPU failed: ${(e as Error).message}`, { cause: e });
    }
    const out = decode(this.readback.getMappedRange(0, bytes));
    this.readback.unmap();
    return out;
  }

  private checkRange(pos: number, n: number): void {
    this.assertLive();
    if (n < 1) throw new WebGGUFError('invalid-argument', 'a step needs at least one token');
    if (pos + n > this.contextLength) {
      throw new WebGGUFError('context-overflow', `${pos + n} tokens do not fit the context of ${this.contextLength}`);
    }
  }

  private assertLive(): void {
    if (this.disposed) throw new WebGGUFError('invalid-argument', 'this model has been disposed');
  }

  /** Frees every GPU buffer the model holds. */
  dispose(): void {
    this.disposed = true;
    this.alloc.destroyAll();
  }
}
