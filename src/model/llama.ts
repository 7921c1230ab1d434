import { WebGGUFError } from '../errors.js';
import type { GGUFFile } from '../gguf/gguf.js';
import { GpuAllocator, uniformData } from '../gpu/allocator.js';
import type { GpuContext } from '../gpu/context.js';
import { Kernels, timedPass, type Kernel } from '../gpu/kernels.js';
import type { GpuLayout } from '../quant/formats.js';
import { layerWindow, readConfig, ropeFactorTensor, type ModelConfig } from './config.js';
import { planWeights, repackWeights, type TensorPlan, type WeightChunk } from './weights.js';

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

/** A weight matrix on the GPU: one buffer, or several holding consecutive runs of rows. */
type GpuMatrix = { buffer: GPUBuffer; layout: GpuLayout; rowStart: number }[];

/**
 * One recorded dispatch of the forward pass. `grid` maps the step's token count to workgroups.
 * Decode (a step of one token) runs fused kernels where prefill runs several plain ones; `phase`
 * says which of the two lists an op belongs to.
 */
interface Op {
  kernel: Kernel | ((n: number) => Kernel);
  bindGroup: GPUBindGroup;
  grid: (n: number) => [number, number, number];
  phase: 'both' | 'decode' | 'prefill';
}

const STATE_BYTES = 16;
/** The step uniform (shaders/common.wgsl's Step, padded): pos, n_tokens. */
const STEP_BYTES = 16;
/** Where the sampler state holds the chosen token (shaders/sample.wgsl's SampleState.token). */
const TOKEN_OFFSET = 8;
/** The most decode steps recorded before one readback. */
export const MAX_DECODE_STEPS = 16;

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
  private logitsBuffer!: GPUBuffer;
  private samplerParams!: GPUBuffer;
  private samplerState!: GPUBuffer;
  private historyBuffer!: GPUBuffer;
  private readback!: GPUBuffer;
  private disposed = false;

  private constructor(
    readonly gpu: GpuContext,
    readonly config: ModelConfig,
    readonly contextLength: number,
    readonly maxBatch: number,
  ) {
    this.kernels = new Kernels(gpu.device, gpu.subgroups);
    this.alloc = new GpuAllocator(gpu.device, gpu.limits.maxStorageBufferBindingSize);
  }

  get bytesOnGpu(): number {
    return this.alloc.bytesInUse;
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

  static async load(gpu: GpuContext, file: GGUFFile, options: LoadOptions = {}): Promise<LlamaModel> {
    const config = readConfig(file);
    const contextLength = Math.min(config.contextLength, options.contextLength ?? 4096);
    const model = new LlamaModel(gpu, config, contextLength, options.maxBatch ?? 64);
    // Before a single weight byte is read: does every buffer fit this device's limits?
    const plans = planWeights(file, config, options.maxPartBytes);
    checkFit(planBuffers(plans, config, contextLength, model.maxBatch), gpu.limits);
    gpu.device.pushErrorScope('out-of-memory');
    gpu.device.pushErrorScope('validation');
    let failure: unknown;
    try {
      await model.build(file, plans, options);
    } catch (e) {
      failure = e;
    }
    const validation = await gpu.device.popErrorScope();
    const oom = await gpu.device.popErrorScope();
    if (!failure && oom) failure = new WebGGUFError('gpu', `Out of GPU memory while loading: ${oom.message}`);
    if (!failure && validation) failure = new WebGGUFError('gpu', `WebGPU rejected the model's setup: ${validation.message}`);
    if (failure) {
      model.dispose();
      throw failure;
    }
    return model;
  }

  /** Uploads the weights and records the forward pass, top to bottom as it runs. */
  private async build(file: GGUFFile, plans: TensorPlan[], options: LoadOptions): Promise<void> {
    const c = this.config;
    const a = this.alloc;
    const f32 = 4;
    const B = this.maxBatch;
    const qDim = c.nHeads * c.headDim;
    const kvDim = c.nKvHeads * c.headDim;

    // Weights first: one buffer per tensor, filled from the chunk stream.
    const buffers = new Map(plans.map((p) => [p.name, a.storage(p.name, p.words * 4)]));
    const total = plans.reduce((s, p) => s + p.words, 0);
    const repack = (skip: number) => repackWeights(file, plans, skip);
    let loaded = 0;
    // RoPE frequency divisors (Llama 3, Phi-3.5) shape the angle table made on the CPU; they come
    // through the chunk stream like any weight, so a cached load has them too.
    const factorTensor = ropeFactorTensor(c, this.contextLength);
    let freqFactors: Float32Array | undefined;
    for await (const chunk of options.weights ? options.weights(repack) : repack(0)) {
      if (chunk.tensor === factorTensor) freqFactors = new Float32Array(chunk.words.slice().buffer);
      const target = buffers.get(chunk.tensor);
      const plan = plans.find((p) => p.name === chunk.tensor);
      if (!target || !plan || chunk.wordOffset + chunk.words.length > plan.words) {
        throw new WebGGUFError('malformed', `weight chunk for ${chunk.tensor} does not fit its tensor`);
      }
      a.device.queue.writeBuffer(target, chunk.wordOffset * 4, chunk.words);
      loaded += chunk.words.length;
      options.onProgress?.(loaded, total);
    }
    this.weightBytes = plans.reduce((sum, p) => sum + p.words * 4, 0);
    this.kvCacheBytes = 2 * c.nLayers * this.contextLength * kvDim * f32;
    for (const p of plans) {
      const embeddingOnly = p.matrix === 'token_embd.weight' && !c.tiedOutput;
      this.weightBytesPerToken += embeddingOnly ? (p.words * 4) / (p.layout?.rows ?? 1) : p.words * 4;
    }
    const matrix = (name: string): GpuMatrix =>
      plans.filter((p) => p.matrix === name).map((p) => ({ buffer: buffers.get(p.name)!, layout: p.layout!, rowStart: p.rowStart }));
    const vector = (name: string): GPUBuffer => buffers.get(name)!;

    // Activations, per step of up to B tokens.
    this.stepBuffer = a.create('step', STEP_BYTES, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
    this.decodeStepsBuffer = a.create('decode_steps', MAX_DECODE_STEPS * STEP_BYTES, GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST);
    this.tokensBuffer = a.storage('tokens', B * 4);
    const x = a.storage('x', B * c.dim * f32);
    const xb = a.storage('xb', B * c.dim * f32);
    const q = a.storage('q', B * qDim * f32);
    const attnOut = a.storage('attn_out', B * qDim * f32);
    const gate = a.storage('gate', B * c.ffnDim * f32);
    const xLast = a.storage('x_last', c.dim * f32);
    this.logitsBuffer = a.storage('logits', c.vocabSize * f32);

    const S = this.stepBuffer;
    const k = this.kernels;
    // GPUs: the decode GEMVs' workgroup size, timed on a feed-forward matrix of this model.
    const up = matrix('blk.0.ffn_up.weight')[0]!;
    if (!this.gpu.cpuEmulated) this.decodeWorkgroup = await tuneDecodeWorkgroup(this.gpu, k, up, xb, gate, S);
    const decodeSize: Record<string, number> = this.decodeWorkgroup ? { WG: this.decodeWorkgroup } : {};
    const ops: Op[] = [];
    // The phase of the ops pushed next (see Op).
    let phase: Op['phase'] = 'both';
    const push = (op: Omit<Op, 'phase'>) => ops.push({ ...op, phase });
    const matmul = (w: GpuMatrix, input: GPUBuffer, output: GPUBuffer, how: { mode?: keyof typeof MATMUL_MODES; cap?: number; yAtPos?: boolean; oneToken?: boolean } = {}) => {
      const totalRows = w.reduce((n, part) => n + part.layout.rows, 0);
      for (const part of w) {
        const l = part.layout;
        const params = a.uniform('matmul', matmulParams(l, { yStride: totalRows, mode: how.mode, yAtPos: how.yAtPos, yOffset: part.rowStart, cap: how.cap }));
        const { name, grid: gemvGrid } = decodeGemv(this.gpu.cpuEmulated, l.rows, l.cols);
        const gemv = k.get(name, l.kind, decodeSize);
        // Prefill: 16x16 tiles through workgroup memory on GPUs; a thread per 4 rows and 4 tokens,
        // with no barriers, on CPU adapters (shaders/matmul.wgsl).
        const gemm = k.get(this.gpu.cpuEmulated ? 'gemm_rows' : 'gemm', l.kind);
        const gemmGrid = (n: number): [number, number, number] =>
          this.gpu.cpuEmulated ? [Math.ceil(l.rows / 4 / ROWS_WORKGROUP), Math.ceil(n / 4), 1] : [Math.ceil(l.rows / 16), Math.ceil(n / 16), 1];
        const decode = (n: number) => n === 1 || how.oneToken === true;
        push({
          kernel: (n) => (decode(n) ? gemv : gemm),
          bindGroup: k.bindGroup(gemv, [part.buffer, input, output, params, S]),
          grid: (n) => (decode(n) ? gemvGrid : gemmGrid(n)),
        });
      }
    };
    const rmsnorm = (input: GPUBuffer, weight: GPUBuffer, output: GPUBuffer, how: { lastOnly?: boolean; accumulate?: boolean } = {}) => {
      const kernel = k.get('rmsnorm', undefined, barrierWorkgroup(this.gpu.cpuEmulated, 'rmsnorm'));
      const lastOnly = how.lastOnly === true;
      const params = a.uniform('rmsnorm', uniformData([{ u: c.dim }, { f: c.normEps }, { u: lastOnly ? 1 : 0 }, { u: how.accumulate ? 1 : 0 }]));
      push({ kernel, bindGroup: k.bindGroup(kernel, [input, weight, output, params, S]), grid: (n) => [lastOnly ? 1 : n, 1, 1] });
    };
    // The model's constants, read by RoPE and the fused decode projection: the (cos, sin) table,
    // then (Qwen2) each layer's q, k and v biases.
    const tableBytes = this.contextLength * c.ropeDim * f32;
    const biasFloats = qDim + 2 * kvDim;
    const constants = a.storage('constants', tableBytes + (c.qkvBias ? c.nLayers * biasFloats * f32 : 0));
    if (factorTensor && freqFactors?.length !== c.ropeDim / 2) throw new WebGGUFError('malformed', `${factorTensor} did not arrive whole`);
    a.device.queue.writeBuffer(constants, 0, ropeAngles(this.contextLength, c.ropeDim, c.ropeTheta, freqFactors, c.ropeAttnFactor));
    const copies = a.device.createCommandEncoder();
    const ropeParams = a.uniform('rope', uniformData([
      { u: c.nHeads }, { u: c.nKvHeads }, { u: c.headDim }, { u: c.ropeDim }, { u: c.ropeStyle === 'neox' ? 1 : 0 },
    ]));
    const rope = (queries: GPUBuffer, keyCache: GPUBuffer) => {
      const kernel = k.get('rope');
      push({
        kernel,
        bindGroup: k.bindGroup(kernel, [queries, keyCache, constants, ropeParams, S]),
        grid: (n) => [Math.ceil(((c.nHeads + c.nKvHeads) * c.ropeDim) / 2 / 64), n, 1],
      });
    };

    const addBias = (target: GPUBuffer, bias: GPUBuffer, n: number, rowsAtPos: boolean) => {
      const kernel = k.get('add_bias');
      const params = a.uniform('bias', uniformData([{ u: n }, { u: n }, { u: rowsAtPos ? 1 : 0 }]));
      push({ kernel, bindGroup: k.bindGroup(kernel, [target, bias, params, S]), grid: (t) => [Math.ceil(n / 64), t, 1] });
    };

    // token embedding
    const embedding = matrix('token_embd.weight');
    const vocabRows = embedding.reduce((n, part) => n + part.layout.rows, 0);
    for (const part of embedding) {
      const embed = k.get('embed', part.layout.kind);
      const embedParams = a.uniform('embed', uniformData([
        ...weightDesc(part.layout), { u: part.rowStart }, { u: vocabRows },
        { f: c.scaleEmbedding ? Math.sqrt(c.dim) : 1 },
      ]));
      push({
        kernel: embed,
        bindGroup: k.bindGroup(embed, [part.buffer, this.tokensBuffer, x, embedParams, S]),
        grid: (n) => [Math.ceil(c.dim / 8 / 64), n, 1],
      });
    }

    const attnPartial = a.storage('attention_partial', attentionPartialBytes(c, B));
    for (let l = 0; l < c.nLayers; l++) {
      const p = `blk.${l}.`;
      const keyCache = a.storage(`k_cache.${l}`, this.contextLength * kvDim * f32);
      const slidingWindow = layerWindow(c, l);
      const attnParams = a.uniform('attention', uniformData([
        { u: c.nHeads }, { u: c.nKvHeads }, { u: c.headDim }, { f: 1 / Math.sqrt(c.headDim) }, { f: c.attnSoftcap }, { u: slidingWindow },
      ]));
      const valueCache = a.storage(`v_cache.${l}`, this.contextLength * kvDim * f32);

      // attention: x += Wo · attention(rope(Wq·norm(x)), cache ← rope(Wk·norm(x)), cache ← Wv·norm(x))
      rmsnorm(x, vector(p + 'attn_norm.weight'), xb);
      const [wq, wk, wv] = [matrix(p + 'attn_q.weight'), matrix(p + 'attn_k.weight'), matrix(p + 'attn_v.weight')];
      if (fusable(wq, wk, wv) && c.headDim % 2 === 0 && (c.headDim - c.ropeDim) % 2 === 0) {
        // Decode: projections, biases and RoPE in one dispatch (shaders/gemv_qkv.wgsl).
        if (c.qkvBias) {
          const at = tableBytes + l * biasFloats * f32;
          copies.copyBufferToBuffer(vector(p + 'attn_q.bias'), 0, constants, at, qDim * f32);
          copies.copyBufferToBuffer(vector(p + 'attn_k.bias'), 0, constants, at + qDim * f32, kvDim * f32);
          copies.copyBufferToBuffer(vector(p + 'attn_v.bias'), 0, constants, at + (qDim + kvDim) * f32, kvDim * f32);
        }
        const kernel = k.get(this.gpu.cpuEmulated ? 'gemv_qkv_rows' : 'gemv_qkv', [wq[0]!.layout.kind, wk[0]!.layout.kind, wv[0]!.layout.kind], decodeSize);
        const params = a.uniform('qkv', uniformData([
          ...[wq, wk, wv].flatMap(([w]) => weightDesc(w!.layout)),
          { u: c.headDim }, { u: c.ropeDim }, { u: c.ropeStyle === 'neox' ? 1 : 0 }, { u: c.qkvBias ? 1 : 0 }, { u: (tableBytes / f32) + l * biasFloats },
        ]));
        const pairs = (qDim + 2 * kvDim) / 2;
        // CPU adapters: a thread takes two pairs of one matrix at a time.
        const pairGroups = Math.ceil(qDim / 4) + 2 * Math.ceil(kvDim / 4);
        phase = 'decode';
        push({
          kernel,
          bindGroup: k.bindGroup(kernel, [wq[0]!.buffer, wk[0]!.buffer, wv[0]!.buffer, xb, q, keyCache, valueCache, constants, params, S]),
          grid: () => (this.gpu.cpuEmulated ? cpuGrid(pairGroups, 4 * c.dim) : rowsGrid(Math.ceil(pairs / 2))),
        });
        phase = 'prefill';
      }
      matmul(wq, xb, q);
      matmul(wk, xb, keyCache, { yAtPos: true });
      matmul(wv, xb, valueCache, { yAtPos: true });
      if (c.qkvBias) {
        addBias(q, vector(p + 'attn_q.bias'), qDim, false);
        addBias(keyCache, vector(p + 'attn_k.bias'), kvDim, true);
        addBias(valueCache, vector(p + 'attn_v.bias'), kvDim, true);
      }
      rope(q, keyCache);
      phase = 'both';
      const attention = k.get('attention', undefined, { MAX_HEAD_DIM: c.headDim, ...barrierWorkgroup(this.gpu.cpuEmulated, 'attention') });
      push({
        kernel: attention,
        bindGroup: k.bindGroup(attention, [q, keyCache, valueCache, attnPartial, attnOut, attnParams, S]),
        grid: (n) => [c.nHeads, n, 1],
      });
      // Gemma 2 normalizes each block's output before the residual add.
      const residual = (w: GpuMatrix, input: GPUBuffer, postNorm: string) => {
        if (!c.postNorms) return matmul(w, input, x, { mode: 'accumulate' });
        matmul(w, input, xb);
        rmsnorm(xb, vector(p + postNorm), x, { accumulate: true });
      };
      residual(matrix(p + 'attn_output.weight'), attnOut, 'post_attention_norm.weight');

      // feed-forward: x += Wdown · (act(Wgate·norm(x)) * Wup·norm(x)), act = silu or gelu
      rmsnorm(x, vector(p + 'ffn_norm.weight'), xb);
      const [wGate, wUp] = [matrix(p + 'ffn_gate.weight'), matrix(p + 'ffn_up.weight')];
      if (fusable(wGate, wUp)) {
        // Decode: both projections and the GLU in one dispatch (shaders/gemv_swiglu.wgsl).
        const kernel = k.get(this.gpu.cpuEmulated ? 'gemv_swiglu_rows' : 'gemv_swiglu', [wGate[0]!.layout.kind, wUp[0]!.layout.kind], decodeSize);
        const params = a.uniform('swiglu', uniformData([
          ...[wGate, wUp].flatMap(([w]) => weightDesc(w!.layout)),
          { u: c.activation === 'gelu' ? 1 : 0 },
        ]));
        phase = 'decode';
        push({
          kernel,
          bindGroup: k.bindGroup(kernel, [wGate[0]!.buffer, wUp[0]!.buffer, xb, gate, params, S]),
          grid: () => (this.gpu.cpuEmulated ? cpuGrid(Math.ceil(c.ffnDim / 4), 8 * c.dim) : rowsGrid(Math.ceil(c.ffnDim / 2))),
        });
        phase = 'prefill';
      }
      // Prefill: SwiGLU fused into the up projection's output.
      matmul(wGate, xb, gate);
      matmul(wUp, xb, gate, { mode: c.activation === 'gelu' ? 'geglu' : 'swiglu' });
      phase = 'both';
      residual(matrix(p + 'ffn_down.weight'), gate, 'post_ffw_norm.weight');
    }
    a.device.queue.submit([copies.finish()]);

    // head: logits of the last token, then the sampler (skipped for all but a prompt's last chunk)
    const opsBeforeHead = ops.length;
    rmsnorm(x, vector('output_norm.weight'), xLast, { lastOnly: true });
    const head = c.finalSoftcap ? { mode: 'softcap', cap: c.finalSoftcap } as const : {};
    matmul(c.tiedOutput ? embedding : matrix('output.weight'), xLast, this.logitsBuffer, { oneToken: true, ...head });

    this.samplerParams = a.create('sampler_params', 48, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
    const counts = a.storage('sampler_counts', c.vocabSize * 4);
    this.samplerState = a.storage('sampler_state', STATE_BYTES);
    this.historyBuffer = a.storage('history', (this.contextLength + 1) * 4);
    const work = a.storage('sampler_work', c.vocabSize * f32);
    const sample = k.get('sample', undefined, barrierWorkgroup(this.gpu.cpuEmulated, 'sample'));
    push({
      kernel: sample,
      bindGroup: k.bindGroup(sample, [this.logitsBuffer, work, this.historyBuffer, this.samplerState, this.tokensBuffer, this.samplerParams, counts]),
      grid: () => [1, 1, 1],
    });
    this.headOps = ops.length - opsBeforeHead;
    this.decodeOps = ops.filter((op) => op.phase !== 'prefill');
    this.prefillOps = ops.filter((op) => op.phase !== 'decode');
    this.readback = a.create('readback', Math.max(STATE_BYTES, MAX_DECODE_STEPS * 4, c.vocabSize * f32), GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
    this.setSampler(GREEDY, []);
  }

  /** Sets the sampling parameters and the tokens in context (for the repetition penalty). */
  setSampler(s: SamplingParams, history: ArrayLike<number>): void {
    this.assertLive();
    const q = this.gpu.device.queue;
    q.writeBuffer(this.samplerParams, 0, uniformData([
      { u: this.config.vocabSize }, { u: s.topK }, { f: s.topP }, { f: s.minP }, { f: s.temperature },
      { f: s.repetitionPenalty }, { u: s.penaltyLastN }, { u: s.seed >>> 0 }, { f: s.frequencyPenalty }, { f: s.presencePenalty },
    ]));
    q.writeBuffer(this.samplerState, 0, new Uint32Array([history.length, 0, 0, 0]));
    if (history.length) q.writeBuffer(this.historyBuffer, 0, Uint32Array.from(history));
  }

  /**
   * Runs `tokens` at positions [pos, pos + tokens.length) and returns the sampled next token.
   * The sampler's history must already end with these tokens (see setSampler).
   */
  async step(tokens: ArrayLike<number>, pos: number): Promise<number> {
    const n = tokens.length;
    this.checkRange(pos, n);
    for (let at = 0; at < n; at += this.maxBatch) {
      const chunk = Array.from(tokens).slice(at, at + this.maxBatch);
      this.encodeStep(chunk, pos + at, at + this.maxBatch >= n, 'state');
    }
    return (await this.read(STATE_BYTES, (b) => new Uint32Array(b)[2]!))!;
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
    const device = this.gpu.device;
    const steps = new Uint32Array((count * STEP_BYTES) / 4);
    for (let i = 0; i < count; i++) steps.set([pos + i, 1], (i * STEP_BYTES) / 4);
    device.queue.writeBuffer(this.decodeStepsBuffer, 0, steps);
    const encoder = device.createCommandEncoder();
    for (let i = 0; i < count; i++) {
      encoder.copyBufferToBuffer(this.decodeStepsBuffer, i * STEP_BYTES, this.stepBuffer, 0, STEP_BYTES);
      this.recordPass(encoder, this.decodeOps, 1);
      encoder.copyBufferToBuffer(this.samplerState, TOKEN_OFFSET, this.readback, i * 4, 4);
    }
    device.queue.submit([encoder.finish()]);
    return this.read(count * 4, (b) => Array.from(new Uint32Array(b)));
  }

  /** Like step, but returns the last token's logits (tests and tools; decode never needs them). */
  async logits(tokens: ArrayLike<number>, pos: number): Promise<Float32Array> {
    this.checkRange(pos, tokens.length);
    for (let at = 0; at < tokens.length; at += this.maxBatch) {
      const chunk = Array.from(tokens).slice(at, at + this.maxBatch);
      this.encodeStep(chunk, pos + at, at + this.maxBatch >= tokens.length, 'logits');
    }
    return this.read(this.config.vocabSize * 4, (b) => new Float32Array(b).slice());
  }

  /** Submits one step of `tokens`; with `head`, what the host reads afterwards lands in the readback buffer. */
  private encodeStep(tokens: number[], pos: number, head: boolean, read: 'state' | 'logits'): void {
    const device = this.gpu.device;
    const n = tokens.length;
    device.queue.writeBuffer(this.stepBuffer, 0, new Uint32Array([pos, n, 0, 0]));
    device.queue.writeBuffer(this.tokensBuffer, 0, Uint32Array.from(tokens));
    const encoder = device.createCommandEncoder();
    const list = n === 1 ? this.decodeOps : this.prefillOps;
    this.recordPass(encoder, head ? list : list.slice(0, list.length - this.headOps), n);
    if (head) {
      if (read === 'logits') encoder.copyBufferToBuffer(this.logitsBuffer, 0, this.readback, 0, this.config.vocabSize * 4);
      else encoder.copyBufferToBuffer(this.samplerState, 0, this.readback, 0, STATE_BYTES);
    }
    device.queue.submit([encoder.finish()]);
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

/** Workgroup size of the kernels for CPU adapters (the *_rows kernels): shaders/common.wgsl's ROWS_WG. */
export const ROWS_WORKGROUP = 8;

/** Keys are split into at most this many chunks per (token, head); shaders/attention.wgsl's CHUNKS. */
const ATTENTION_CHUNKS = 16;

/**
 * Smaller workgroups for the kernels that wait at barriers, on CPU adapters: there a workgroup
 * that reaches a barrier costs time growing faster than its size (SwiftShader, one barrier: about
 * 2 µs at 8 invocations, 20 µs at 64, 280 µs at 256), and the work of these kernels is small
 * enough for few invocations. The names are the shaders' own constants.
 */
export function barrierWorkgroup(cpuEmulated: boolean, kernel: 'rmsnorm' | 'sample' | 'attention'): Record<string, number> {
  if (!cpuEmulated) return {};
  return kernel === 'attention' ? { CHUNKS: 4 } : { WG: 16 };
}

/** Scratch for the split attention: per (token, head, chunk) a max, a sum and head_dim sums. */
function attentionPartialBytes(c: ModelConfig, maxBatch: number): number {
  return maxBatch * c.nHeads * ATTENTION_CHUNKS * (c.headDim + 2) * 4;
}

/** shaders/matmul.wgsl's output modes. */
const MATMUL_MODES = { set: 0, accumulate: 1, swiglu: 2, geglu: 3, softcap: 4 } as const;

/** A layout as shaders/weights.wgsl's WeightDesc, for uniform data. */
function weightDesc(l: GpuLayout): { u: number }[] {
  return [{ u: l.rows }, { u: l.cols }, { u: l.rowWords }, { u: l.scaleOffset }];
}

/** shaders/matmul.wgsl's MatmulParams for a matrix (or a part of one) and how its result lands. */
export function matmulParams(
  l: GpuLayout,
  how: { yStride?: number; mode?: keyof typeof MATMUL_MODES; yAtPos?: boolean; yOffset?: number; cap?: number } = {},
): ArrayBuffer {
  return uniformData([
    ...weightDesc(l), { u: l.cols }, { u: how.yStride ?? l.rows }, { u: MATMUL_MODES[how.mode ?? 'set'] }, { u: how.yAtPos ? 1 : 0 },
    { u: how.yOffset ?? 0 }, { f: how.cap ?? 0 },
  ]);
}

/**
 * The decode GEMV this adapter runs and its grid for a matrix of `rows` x `cols`: a workgroup per
 * row on GPUs; on CPU adapters, where barriers are emulated, threads taking 4 rows at a time
 * (shaders/matmul.wgsl, cpuGrid).
 */
export function decodeGemv(cpuEmulated: boolean, rows: number, cols: number): { name: 'gemv' | 'gemv_rows'; grid: [number, number, number] } {
  return cpuEmulated ? { name: 'gemv_rows', grid: cpuGrid(Math.ceil(rows / 4), 4 * cols) } : { name: 'gemv', grid: rowsGrid(Math.ceil(rows / 4)) };
}

/** The workgroup sizes the GPU decode GEMVs (gemv, gemv_qkv, gemv_swiglu: their `WG`) can take. */
export const DECODE_WORKGROUPS = [64, 128, 256] as const;

/** tuneDecodeWorkgroup's results, by adapter, reduction and matrix. */
const tunedWorkgroups = new Map<string, number>();

/**
 * The fastest of DECODE_WORKGROUPS for `gemv` on this adapter, timed on one matrix (the best of
 * two runs of a few dispatches each, after a warm-up that compiles the pipeline). Which size
 * suits a GPU depends on its cores and memory system, so it is measured rather than guessed; the
 * result is remembered for later loads in the same page or process. `x` and `y` are scratch: at
 * least `cols` and `rows` floats.
 */
export async function tuneDecodeWorkgroup(gpu: GpuContext, kernels: Kernels, m: { buffer: GPUBuffer; layout: GpuLayout }, x: GPUBuffer, y: GPUBuffer, step: GPUBuffer): Promise<number> {
  const l = m.layout;
  const key = [gpu.adapterName, gpu.subgroups, l.kind, l.rows, l.cols].join('|');
  const known = tunedWorkgroups.get(key);
  if (known) return known;
  const device = gpu.device;
  const data = matmulParams(l);
  const params = device.createBuffer({ size: data.byteLength, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(params, 0, data);
  const grid = decodeGemv(false, l.rows, l.cols).grid;
  let best: number = DECODE_WORKGROUPS[0];
  let bestMs = Infinity;
  try {
    for (const size of DECODE_WORKGROUPS) {
      const kernel = kernels.get('gemv', l.kind, { WG: size });
      const bindGroup = kernels.bindGroup(kernel, [m.buffer, x, y, params, step]);
      const time = (dispatches: number) => timedPass(device, kernel, Array.from({ length: dispatches }, (): [GPUBindGroup, [number, number, number]] => [bindGroup, grid]));
      await time(1);
      const ms = Math.min(await time(TUNE_DISPATCHES), await time(TUNE_DISPATCHES));
      if (ms < bestMs) [best, bestMs] = [size, ms];
    }
  } finally {
    params.destroy();
  }
  tunedWorkgroups.set(key, best);
  return best;
}

/** Dispatches per timed run in tuneDecodeWorkgroup: long enough to dwarf the submit on a GPU. */
const TUNE_DISPATCHES = 20;

/** About this many weights per thread of a decode kernel on a CPU adapter (cpuGrid). */
const CPU_THREAD_WEIGHTS = 8192;

/**
 * At least this many workgroups per decode kernel on a CPU adapter (when the matrix has rows for
 * them): a CPU implementation runs a workgroup on one core, and Chromium's GPU process spreads a
 * dispatch's workgroups over two cores (stories260K q4_0 in Chromium on SwiftShader: 272-294 ->
 * 313-362 tok/s). Larger matrices already get more from CPU_THREAD_WEIGHTS.
 */
const CPU_MIN_WORKGROUPS = 2;

/**
 * The grid of a decode kernel for CPU adapters (the *_rows kernels) that loops over `units` (groups
 * of rows, pairs of rows) of `weightsPerUnit` weights each: about CPU_THREAD_WEIGHTS weights per
 * thread, but at least CPU_MIN_WORKGROUPS workgroups, and at most a thread per unit; each thread
 * strides over the units. Every group of invocations a dispatch starts pays a prologue that grows
 * with the shader (shaders/common.wgsl's ROWS_WG), so a small matrix gets few threads; a large one
 * still gets enough to keep every core busy.
 */
export function cpuGrid(units: number, weightsPerUnit: number): [number, number, number] {
  const threads = Math.min(units, Math.max(CPU_MIN_WORKGROUPS * ROWS_WORKGROUP, Math.ceil((units * weightsPerUnit) / CPU_THREAD_WEIGHTS)));
  return rowsGrid(Math.ceil(threads / ROWS_WORKGROUP));
}

/** Every GPU buffer a model needs and its size in bytes, from the weight plan (the header alone). */
export function planBuffers(weights: TensorPlan[], c: ModelConfig, contextLength: number, maxBatch: number): { name: string; bytes: number }[] {
  const kvDim = c.nKvHeads * c.headDim;
  const qDim = c.nHeads * c.headDim;
  // The buffers build() creates, each on its own (binding limits are per buffer).
  return [
    ...weights.map((p) => ({ name: p.name, bytes: p.words * 4 })),
    ...Array.from({ length: c.nLayers * 2 }, (_, i) => ({ name: `${i % 2 ? 'v' : 'k'}_cache.${i >> 1}`, bytes: contextLength * kvDim * 4 })),
    { name: 'x', bytes: maxBatch * c.dim * 4 },
    { name: 'xb', bytes: maxBatch * c.dim * 4 },
    { name: 'q', bytes: maxBatch * qDim * 4 },
    { name: 'attn_out', bytes: maxBatch * qDim * 4 },
    { name: 'gate', bytes: maxBatch * c.ffnDim * 4 },
    { name: 'attention_partial', bytes: attentionPartialBytes(c, maxBatch) },
    { name: 'logits', bytes: c.vocabSize * 4 },
    { name: 'sampler_work', bytes: c.vocabSize * 4 },
    { name: 'sampler_counts', bytes: c.vocabSize * 4 },
    { name: 'history', bytes: (contextLength + 1) * 4 },
    { name: 'constants', bytes: contextLength * c.ropeDim * 4 + (c.qkvBias ? c.nLayers * (qDim + 2 * kvDim) * 4 : 0) },
  ];
}

/**
 * Refuses a model that cannot fit before anything is downloaded or allocated: each buffer must
 * fit the device's storage binding and buffer size limits.
 */
export function checkFit(buffers: { name: string; bytes: number }[], limits: GpuContext['limits']): void {
  const limit = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
  const biggest = buffers.reduce((a, b) => (b.bytes > a.bytes ? b : a));
  if (biggest.bytes > limit) {
    const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
    throw new WebGGUFError(
      'insufficient-memory',
      `this model does not fit this device: ${biggest.name} needs ${mib(biggest.bytes)} in one buffer, and the GPU allows ${mib(limit)} (total ${mib(buffers.reduce((s, b) => s + b.bytes, 0))})`,
    );
  }
}

/**
 * (cos, sin) of pos * theta^(-2i/ropeDim) / factors[i] for every position and pair, computed in
 * doubles and scaled by `scale`. `factors` are ggml's freq_factors (Llama 3's rope_freqs, Phi-3.5's
 * LongRoPE factors); none means 1. `scale` is LongRoPE's attention factor (ggml's mscale).
 */
export function ropeAngles(positions: number, ropeDim: number, theta: number, factors?: ArrayLike<number>, scale = 1): Float32Array<ArrayBuffer> {
  const pairs = ropeDim / 2;
  const table = new Float32Array(positions * pairs * 2);
  for (let i = 0; i < pairs; i++) {
    const freq = Math.pow(theta, (-2 * i) / ropeDim) / (factors?.[i] ?? 1);
    for (let pos = 0; pos < positions; pos++) {
      table[(pos * pairs + i) * 2] = scale * Math.cos(pos * freq);
      table[(pos * pairs + i) * 2 + 1] = scale * Math.sin(pos * freq);
    }
  }
  return table;
}

/** Matrices a fused decode kernel can take: each in one buffer, all with the same columns. */
function fusable(...matrices: GpuMatrix[]): boolean {
  return matrices.every((m) => m.length === 1 && m[0]!.layout.cols === matrices[0]![0]!.layout.cols);
}

/** Workgroups for one-row-per-workgroup kernels, folded into 2D beyond the 65535 limit. */
function rowsGrid(rows: number): [number, number, number] {
  return rows <= 65535 ? [rows, 1, 1] : [65535, Math.ceil(rows / 65535), 1];
}
