import { ModelFormatError, WebGGUFError } from '../errors.js';
import { metaNumber, metaString, type GGUFFile } from '../gguf/gguf.js';
import { GpuAllocator, uniformData } from '../gpu/allocator.js';
import { buildChecked, type GpuContext } from '../gpu/context.js';
import { Kernels } from '../gpu/kernels.js';
import { readPooling, tensor, type ModelConfig, type Pooling } from './config.js';
import { ropeAngles } from './blocks/attention.js';
import { POOL_MODES } from './blocks/pooling.js';
import { barrierWorkgroup, weightDesc } from './kernel-shapes.js';
import type { LoadOptions } from './llama.js';
import { checkFit, type MemoryPlan, type PlannedBuffer } from './memory-plan.js';
import { ForwardRecorder, type GpuMatrix, type Op } from './recorder.js';
import { planWeights, repackWeights, uploadWeights, type TensorPlan } from './weights.js';

/** Architectures that run as encoders: a vector per input, no text generated. */
export const ENCODER_ARCHITECTURES = ['bert', 'nomic-bert'] as const;


export interface EncoderConfig extends ModelConfig {
  pooling: Pooling;
  /** Whether a token sees the tokens after it (false for BERT: `attention.causal` false). */
  causal: boolean;
  /** Rows of token_types (segment embeddings; 0: none); every token is of type 0, as in llama.cpp. */
  tokenTypes: number;
  /**
   * BERT: learned absolute positions (position_embd), separate q/k/v and every projection with a
   * bias, GELU feed-forward. nomic-bert: RoPE (NEOX) on q and k instead, fused attn_qkv, no
   * biases, SwiGLU feed-forward (ffn_gate); otherwise the same post-norm blocks (bert.cpp).
   */
  positions: 'absolute' | 'rope';
}

/** Whether the file is an embedding model this library runs as an encoder. */
export function isEncoder(file: GGUFFile): boolean {
  return (ENCODER_ARCHITECTURES as readonly string[]).includes(metaString(file, 'general.architecture') ?? '');
}

/**
 * A BERT's hyperparameters (llama.cpp's LLM_ARCH_BERT: layer_norm_epsilon and attention.causal
 * required, pooling_type optional), in ModelConfig's shape so the shared recorder and kernels
 * take it: q/k/v biases, GELU, no RoPE, heads as wide as dim / heads.
 */
export function readEncoderConfig(file: GGUFFile): EncoderConfig {
  const nomic = metaString(file, 'general.architecture') === 'nomic-bert';
  const name = file.source.name;
  const arch = metaString(file, 'general.architecture') ?? '';
  if (!isEncoder(file)) throw new ModelFormatError('unsupported-architecture', `${name}: architecture "${arch}" is not an embedding model this library runs`);
  const k = (key: string, fallback?: number) => metaNumber(file, `${arch}.${key}`, fallback);
  const dim = k('embedding_length');
  const nHeads = k('attention.head_count');
  const headDim = dim / nHeads;
  const causal = file.metadata.get(`${arch}.attention.causal`);
  if (typeof causal !== 'boolean') throw new ModelFormatError('malformed', `${name}: missing metadata ${arch}.attention.causal`);
  // Without pooling_type, the mean (llama.cpp leaves it to the caller).
  const pooling = readPooling(file) ?? 'mean';
  if (pooling === 'none' || pooling === 'rank') {
    throw new ModelFormatError(
      'unsupported-architecture',
      `${name}: pooling type ${pooling} gives ${pooling === 'rank' ? 'a relevance score (a reranker)' : 'no vector per input'}; embeddings need mean, cls or last pooling`,
    );
  }
  const embd = tensor(file, 'token_embd.weight');
  const contextLength = k('context_length');
  const config: EncoderConfig = {
    architecture: arch, dim, nLayers: k('block_count'), nHeads, nKvHeads: k('attention.head_count_kv', nHeads), headDim, ffnDim: k('feed_forward_length'),
    vocabSize: embd.dims[1] ?? 0, contextLength, normEps: k('attention.layer_norm_epsilon'),
    ropeTheta: k('rope.freq_base', 10000), ropeLinearScale: 1, ropeDim: headDim, tiedOutput: true, ropeFactors: undefined, ropeOriginalContext: contextLength, ropeAttnFactor: 1,
    attnSoftcap: 0, finalSoftcap: 0, attnScale: 1 / Math.sqrt(headDim), slidingWindow: 0, swaPattern: 0,
    qkvBias: !nomic, ropeStyle: 'neox', fusedQkv: nomic, fusedGateUp: false, activation: nomic ? 'silu' : 'gelu', scaleEmbedding: false, postNorms: false, softcapping: false,
    qkNorm: false, noRopeLayerStep: 0, windowRopeTheta: 0, window: null, hybridDeltaNet: false, deltaNet: undefined, ropeUnrotatedPairs: [],
    layers: Array.from({ length: k('block_count') }, () => ({ nHeads, nKvHeads: k('attention.head_count_kv', nHeads), headDim, ropeDim: headDim, ffnDim: k('feed_forward_length'), windowed: false })),
    gemma4: false, windowRopeDim: headDim, kvSharedFrom: k('block_count'), perLayerInput: 0, layerOutputScale: false, valueFromKey: false, valueNorm: false,
    bidirectional: !causal, denseOut: undefined,
    pooling, causal, positions: nomic ? 'rope' : 'absolute',
    tokenTypes: file.tensors.find((t) => t.name === 'token_types.weight')?.dims[1] ?? 0,
  };
  for (const key of ['dim', 'nLayers', 'nHeads', 'ffnDim', 'vocabSize', 'contextLength'] as const) {
    if (!Number.isInteger(config[key]) || config[key] <= 0 || config[key] > 1 << 24) throw new ModelFormatError('malformed', `${name}: invalid ${key} ${config[key]}`);
  }
  if (!Number.isInteger(headDim) || headDim > 256 || config.nKvHeads !== nHeads) {
    throw new ModelFormatError('shape-mismatch', `${name}: ${dim} dims do not split into ${nHeads} heads of at most 256`);
  }
  const tokens = file.metadata.get('tokenizer.ggml.tokens');
  if (typeof tokens === 'object' && tokens !== null && 'length' in tokens && tokens.length > config.vocabSize) {
    throw new ModelFormatError('shape-mismatch', `${name}: the vocabulary has ${tokens.length} tokens but token_embd.weight has ${config.vocabSize} rows`);
  }
  for (const [tname, shape] of encoderTensors(config)) {
    const t = tensor(file, tname);
    if (t.dims.length !== shape.length || t.dims.some((d, i) => d !== shape[i])) {
      throw new ModelFormatError('shape-mismatch', `${name}: tensor ${tname} has shape [${t.dims}], expected [${shape}]`);
    }
  }
  return config;
}

/** Every tensor a BERT reads, with its shape (ggml order: [cols, rows]). */
export function encoderTensors(c: EncoderConfig): Map<string, number[]> {
  const m = new Map<string, number[]>([
    ['token_embd.weight', [c.dim, c.vocabSize]],
    ['token_embd_norm.weight', [c.dim]],
    ['token_embd_norm.bias', [c.dim]],
  ]);
  if (c.tokenTypes) m.set('token_types.weight', [c.dim, c.tokenTypes]);
  if (c.positions === 'absolute') m.set('position_embd.weight', [c.dim, c.contextLength]);
  const bert = c.positions === 'absolute';
  for (let l = 0; l < c.nLayers; l++) {
    const p = `blk.${l}.`;
    if (c.fusedQkv) m.set(p + 'attn_qkv.weight', [c.dim, 3 * c.dim]);
    for (const t of c.fusedQkv ? ['attn_output'] : ['attn_q', 'attn_k', 'attn_v', 'attn_output']) {
      m.set(`${p}${t}.weight`, [c.dim, c.dim]);
      if (bert) m.set(`${p}${t}.bias`, [c.dim]);
    }
    m.set(p + 'ffn_up.weight', [c.dim, c.ffnDim]);
    if (!bert) m.set(p + 'ffn_gate.weight', [c.dim, c.ffnDim]);
    m.set(p + 'ffn_down.weight', [c.ffnDim, c.dim]);
    if (bert) {
      m.set(p + 'ffn_up.bias', [c.ffnDim]);
      m.set(p + 'ffn_down.bias', [c.dim]);
    }
    for (const t of ['attn_output_norm', 'layer_output_norm']) {
      m.set(`${p}${t}.weight`, [c.dim]);
      m.set(`${p}${t}.bias`, [c.dim]);
    }
  }
  return m;
}

/** The weight plan of an encoder (the header alone), as LlamaModel's planWeights is a decoder's. */
export function planEncoderWeights(file: GGUFFile, c: EncoderConfig, maxPartBytes?: number): TensorPlan[] {
  return planWeights(file, c, maxPartBytes, encoderTensors(c));
}

/**
 * Every GPU buffer an encoder makes (weights, then work buffers sized for its longest input), from
 * the header alone: what its load checks and what engine.estimate reports. An input runs whole, so
 * the scratch (attention's above all) grows with the longest input: 2048 tokens unless asked
 * (nomic-embed's 8192 would need 400 MiB of attention scratch).
 */
export function planEncoderMemory(file: GGUFFile, options: { contextLength?: number; maxPartBytes?: number } = {}): MemoryPlan & { config: EncoderConfig } {
  const config = readEncoderConfig(file);
  const contextLength = Math.min(config.contextLength, options.contextLength ?? DEFAULT_MAX_TOKENS);
  const weights = planEncoderWeights(file, config, options.maxPartBytes);
  const buffers: PlannedBuffer[] = [
    ...weights.map((p) => ({ name: p.name, bytes: p.words * 4, role: 'weights' as const })),
    ...encoderBuffers(config, contextLength).map((b) => ({ ...b, role: 'work' as const })),
  ];
  // No KV cache: attention reads the step's own f32 keys and values.
  return { config, contextLength, maxBatch: contextLength, kvBits: 32, weights, buffers };
}

/** Keys are split into at most this many chunks per (token, head); shaders/attention.wgsl's CHUNKS. */
const ATTENTION_CHUNKS = 16;
/** The longest input by default (LoadOptions.contextLength sets another). */
const DEFAULT_MAX_TOKENS = 2048;
/** The most inputs packed into one pass (bounds the pooled and readback buffers). */
const MAX_PACKED_INPUTS = 256;

/** The step uniform (shaders/common.wgsl's Step, padded). */
const STEP_BYTES = 16;

/** Every buffer an encoder makes besides its weights, and its size in bytes (for the fit check). */
function encoderBuffers(c: EncoderConfig, maxTokens: number): { name: string; bytes: number }[] {
  const rows = maxTokens * c.dim * 4;
  return [
    { name: 'x', bytes: rows }, { name: 'q', bytes: rows }, { name: 'k', bytes: rows }, { name: 'v', bytes: rows }, { name: 'attn_out', bytes: rows },
    { name: 'ffn_hidden', bytes: maxTokens * c.ffnDim * 4 },
    { name: 'attention_partial', bytes: maxTokens * c.nHeads * ATTENTION_CHUNKS * (c.headDim + 2) * 4 },
    { name: 'pooled', bytes: MAX_PACKED_INPUTS * c.dim * 4 },
    { name: 'readback', bytes: MAX_PACKED_INPUTS * c.dim * 4 },
  ];
}

/**
 * An encoder (BERT) on the GPU: inputs run whole, packed back to back into one prefill pass as
 * many as fit the scratch (contextLength tokens, MAX_PACKED_INPUTS inputs), each token attending
 * only to its own input's tokens (block-diagonal attention, `attention_spans`), each input's rows
 * pooled into one vector on the GPU. The pass is recorded once at load through the decoders'
 * recorder and kernels (matmuls, embedding lookups, bias adds, attention), with the encoder's own
 * LayerNorm, GELU and pooling (shaders/encoder*.wgsl). Packing changes no input's arithmetic: every
 * op but attention and pooling works row by row.
 */
export class EncoderModel {
  private ops: Op[] = [];
  private readonly kernels: Kernels;
  private readonly alloc: GpuAllocator;
  private stepBuffer!: GPUBuffer;
  private tokensBuffer!: GPUBuffer;
  private pooled!: GPUBuffer;
  private readback!: GPUBuffer;
  /** Per token of a pass: its position in its input, and the [start, end) of its input's rows. */
  private positions!: GPUBuffer;
  private tokenSpans!: GPUBuffer;
  /** Per input of a pass: the [start, end) of its rows. */
  private inputSpans!: GPUBuffer;
  /** nomic-bert: the (cos, sin) rows of positions 0..T-1, and the pass's rows, copied per token from them. */
  private ropeAngles: GPUBuffer | undefined;
  private ropeTable: GPUBuffer | undefined;
  /** Inputs in the pass being recorded (the pooling's grid). */
  private passInputs = 1;
  private disposed = false;
  weightBytes = 0;
  /** An encoder makes embeddings only. */
  readonly isEmbeddingModel = true;

  private constructor(
    readonly gpu: GpuContext,
    readonly config: EncoderConfig,
    /** The most tokens one input may have (the position table's rows, or less if asked). */
    readonly contextLength: number,
  ) {
    this.kernels = Kernels.forDevice(gpu.device, gpu.subgroups);
    this.alloc = new GpuAllocator(gpu.device, gpu.limits.maxStorageBufferBindingSize);
  }

  /** Width of the vectors it makes. */
  get dimensions(): number {
    return this.config.dim;
  }

  get bytesOnGpu(): number {
    return this.alloc.bytesInUse;
  }

  static async load(gpu: GpuContext, file: GGUFFile, options: LoadOptions = {}): Promise<EncoderModel> {
    const plan = planEncoderMemory(file, options);
    checkFit(plan, gpu.limits, options.maxGpuBytes);
    const model = new EncoderModel(gpu, plan.config, plan.contextLength);
    await buildChecked(gpu.device, () => model.build(file, plan.weights, options), () => model.dispose());
    return model;
  }

  /** Uploads the weights and records the pass, top to bottom as it runs (llama.cpp's bert.cpp). */
  private async build(file: GGUFFile, plans: TensorPlan[], options: LoadOptions): Promise<void> {
    const c = this.config;
    const a = this.alloc;
    const T = this.contextLength;
    const repack = (skip: number) => repackWeights(file, plans, skip);
    const { buffers } = await uploadWeights(a, plans, options.weights ? options.weights(repack) : repack(0), options.onProgress);
    this.weightBytes = plans.reduce((sum, p) => sum + p.words * 4, 0);

    this.stepBuffer = a.create('step', STEP_BYTES, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
    this.tokensBuffer = a.storage('tokens', T * 4);
    // Every token's type is 0 (llama.cpp hard-codes "sentence A"); positions and spans come per pass.
    const positions = (this.positions = a.storage('positions', T * 4));
    this.tokenSpans = a.storage('token_spans', T * 8);
    this.inputSpans = a.storage('input_spans', MAX_PACKED_INPUTS * 8);
    const types = a.storage('token_type_ids', T * 4);
    const buffer = (name: string) => a.storage(name, encoderBuffers(c, T).find((b) => b.name === name)!.bytes);
    const [x, q, keys, values, out, hidden, partial] = ['x', 'q', 'k', 'v', 'attn_out', 'ffn_hidden', 'attention_partial'].map(buffer) as [GPUBuffer, GPUBuffer, GPUBuffer, GPUBuffer, GPUBuffer, GPUBuffer, GPUBuffer];
    this.pooled = a.storage('pooled', MAX_PACKED_INPUTS * c.dim * 4);
    this.readback = a.create('readback', MAX_PACKED_INPUTS * c.dim * 4, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);

    const r = new ForwardRecorder(this.gpu, c, this.kernels, a, this.stepBuffer, plans, buffers);
    const k = this.kernels;
    const step = this.stepBuffer;
    const embed = (matrix: GpuMatrix, ids: GPUBuffer, into: GPUBuffer) => {
      const rows = matrix.reduce((n, part) => n + part.layout.rows, 0);
      for (const part of matrix) {
        const kernel = k.get('embed', part.layout.kind);
        const params = a.uniform('embed', uniformData([...weightDesc(part.layout), { u: part.rowStart }, { u: rows }, { f: 1 }]));
        r.add({ kernel, bindGroup: k.bindGroup(kernel, [part.buffer, ids, into, params, step]), grid: (n) => [Math.ceil(c.dim / 8 / 64), n, 1] });
      }
    };
    /** x ← LayerNorm(x + addA + addB) · norm.weight + norm.bias; an addend is a row per token or one vector for all. */
    const layerNorm = (norm: string, addA?: { buffer: GPUBuffer; rows: boolean }, addB?: { buffer: GPUBuffer; rows: boolean }): Op => {
      const kernel = k.get('layernorm', undefined, barrierWorkgroup(this.gpu.cpuEmulated, 'rmsnorm'));
      const mode = (add?: { rows: boolean }) => (add ? (add.rows ? 1 : 2) : 0);
      const params = a.uniform('layernorm', uniformData([{ u: c.dim }, { f: c.normEps }, { u: mode(addA) }, { u: mode(addB) }]));
      const weight = r.vector(`${norm}.weight`);
      return {
        kernel,
        bindGroup: k.bindGroup(kernel, [x, addA?.buffer ?? weight, addB?.buffer ?? weight, weight, r.vector(`${norm}.bias`), params, step]),
        grid: (n) => [n, 1, 1],
      };
    };
    const addBias = (target: GPUBuffer, bias: string, n: number): Op => {
      const kernel = k.get('add_bias');
      const params = a.uniform('bias', uniformData([{ u: n }, { u: n }]));
      return { kernel, bindGroup: k.bindGroup(kernel, [target, r.vector(bias), params, step]), grid: (t) => [Math.ceil(n / 64), t, 1] };
    };

    // Token, position and type embeddings, summed and normed (the position and type rows land in
    // scratch buffers free at this point).
    embed(r.matrix('token_embd.weight'), this.tokensBuffer, x);
    const absolute = c.positions === 'absolute';
    if (absolute) embed(r.matrix('position_embd.weight'), positions, out);
    if (c.tokenTypes) embed(r.matrix('token_types.weight'), types, q);
    r.add(layerNorm('token_embd_norm', absolute ? { buffer: out, rows: true } : undefined, c.tokenTypes ? { buffer: q, rows: true } : undefined));
    // nomic-bert: RoPE's (cos, sin) table, made on the CPU in doubles, as the decoders' is; the
    // pass reads row t for token t, copied from its position's row (embed).
    let rope: Op | undefined;
    if (c.positions === 'rope') {
      this.ropeAngles = a.create('rope_angles', T * c.headDim * 4, GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST);
      a.device.queue.writeBuffer(this.ropeAngles, 0, ropeAngles(T, c.headDim, c.ropeTheta));
      const table = (this.ropeTable = a.storage('rope_table', T * c.headDim * 4));
      const kernel = k.get('rope');
      const params = a.uniform('rope', uniformData([{ u: c.nHeads }, { u: c.nKvHeads }, { u: c.headDim }, { u: c.headDim }, { u: 1 }, { u: 0 }]));
      rope = { kernel, bindGroup: k.bindGroup(kernel, [q, keys, table, params, step]), grid: (n) => [Math.ceil(((c.nHeads + c.nKvHeads) * c.headDim) / 2 / 64), n, 1] };
    }

    const attention = k.get('attention_spans', undefined, { MAX_HEAD_DIM: c.headDim, ...barrierWorkgroup(this.gpu.cpuEmulated, 'attention') });
    const attentionParams = a.uniform('attention', uniformData([
      { u: c.nHeads }, { u: c.nKvHeads }, { u: c.headDim }, { f: c.attnScale }, { f: 0 }, { u: 0 }, { u: c.causal ? 0 : 1 },
    ]));
    for (let l = 0; l < c.nLayers; l++) {
      const p = `blk.${l}.`;
      // Attention: q, k, v with their biases, every query over every key, the output projection
      // added to x with its bias, then the post-norm.
      const projection = (name: string, into: GPUBuffer) => [...r.matmul(r.matrix(`${p}${name}.weight`), x, into), ...(absolute ? [addBias(into, `${p}${name}.bias`, c.dim)] : [])];
      r.add(
        ...projection('attn_q', q), ...projection('attn_k', keys), ...projection('attn_v', values), ...(rope ? [rope] : []),
        { kernel: attention, bindGroup: k.bindGroup(attention, [q, keys, values, partial, out, attentionParams, step, this.tokenSpans]), grid: (n) => [c.nHeads, n, 1] },
        ...r.matmul(r.matrix(p + 'attn_output.weight'), out, x, { mode: 'accumulate' }),
        layerNorm(p + 'attn_output_norm', absolute ? { buffer: r.vector(p + 'attn_output.bias'), rows: false } : undefined),
      );
      if (absolute) {
        // Feed-forward: GELU(up + bias), down added to x with its bias, then the post-norm.
        const gelu = k.get('bias_gelu');
        const geluParams = a.uniform('bias_gelu', uniformData([{ u: c.ffnDim }, { u: 0 }]));
        r.add(
          ...r.matmul(r.matrix(p + 'ffn_up.weight'), x, hidden),
          { kernel: gelu, bindGroup: k.bindGroup(gelu, [hidden, r.vector(p + 'ffn_up.bias'), geluParams, step]), grid: (n) => [Math.ceil(c.ffnDim / 64), n, 1] },
          ...r.matmul(r.matrix(p + 'ffn_down.weight'), hidden, x, { mode: 'accumulate' }),
          layerNorm(p + 'layer_output_norm', { buffer: r.vector(p + 'ffn_down.bias'), rows: false }),
        );
      } else {
        // SwiGLU: silu(gate) * up (the up projection's output mode), down added to x, the post-norm.
        r.add(
          ...r.matmul(r.matrix(p + 'ffn_gate.weight'), x, hidden),
          ...r.matmul(r.matrix(p + 'ffn_up.weight'), x, hidden, { mode: 'swiglu' }),
          ...r.matmul(r.matrix(p + 'ffn_down.weight'), hidden, x, { mode: 'accumulate' }),
          layerNorm(p + 'layer_output_norm'),
        );
      }
    }
    const pool = k.get('pool');
    const poolParams = a.uniform('pool', uniformData([{ u: c.dim }, { u: POOL_MODES[c.pooling] }]));
    r.add({ kernel: pool, bindGroup: k.bindGroup(pool, [this.pooled, x, poolParams, step, this.inputSpans]), grid: () => [Math.ceil(c.dim / 64), this.passInputs, 1] });
    this.ops = r.prefill;
  }

  /**
   * The pooled output vector of each input (token ids, special tokens included), not normalized.
   * Inputs are packed in order into passes of up to contextLength tokens and MAX_PACKED_INPUTS
   * inputs; each pass's vectors are read back together.
   */
  async embed(inputs: number[][], signal?: AbortSignal): Promise<Float32Array[]> {
    this.assertLive();
    const T = this.contextLength;
    for (const ids of inputs) {
      if (ids.length < 1) throw new WebGGUFError('invalid-argument', 'an input needs at least one token');
      if (ids.length > T) throw new WebGGUFError('context-overflow', `an input of ${ids.length} tokens does not fit the context of ${T}`);
    }
    const out: Float32Array[] = [];
    const device = this.gpu.device;
    const dim = this.config.dim;
    for (let at = 0; at < inputs.length;) {
      if (signal?.aborted) throw new WebGGUFError('aborted', 'the request was aborted');
      const batch: number[][] = [];
      let n = 0;
      while (at < inputs.length && batch.length < MAX_PACKED_INPUTS && n + inputs[at]!.length <= T) {
        n += inputs[at]!.length;
        batch.push(inputs[at++]!);
      }
      const tokens = new Uint32Array(n), positions = new Uint32Array(n), tokenSpans = new Uint32Array(2 * n), inputSpans = new Uint32Array(2 * batch.length);
      const encoder = device.createCommandEncoder();
      const rowBytes = this.config.headDim * 4;
      let start = 0;
      batch.forEach((ids, i) => {
        const end = start + ids.length;
        tokens.set(ids, start);
        for (let t = start; t < end; t++) {
          positions[t] = t - start;
          tokenSpans[2 * t] = start;
          tokenSpans[2 * t + 1] = end;
        }
        inputSpans[2 * i] = start;
        inputSpans[2 * i + 1] = end;
        if (this.ropeTable) encoder.copyBufferToBuffer(this.ropeAngles!, 0, this.ropeTable, start * rowBytes, ids.length * rowBytes);
        start = end;
      });
      device.queue.writeBuffer(this.stepBuffer, 0, new Uint32Array([0, n, 0, 0]));
      device.queue.writeBuffer(this.tokensBuffer, 0, tokens);
      device.queue.writeBuffer(this.positions, 0, positions);
      device.queue.writeBuffer(this.tokenSpans, 0, tokenSpans);
      device.queue.writeBuffer(this.inputSpans, 0, inputSpans);
      this.passInputs = batch.length;
      const pass = encoder.beginComputePass();
      for (const op of this.ops) {
        pass.setPipeline((typeof op.kernel === 'function' ? op.kernel(n) : op.kernel).pipeline);
        pass.setBindGroup(0, op.bindGroup);
        pass.dispatchWorkgroups(...op.grid(n));
      }
      pass.end();
      const bytes = batch.length * dim * 4;
      encoder.copyBufferToBuffer(this.pooled, 0, this.readback, 0, bytes);
      device.queue.submit([encoder.finish()]);
      try {
        await this.readback.mapAsync(GPUMapMode.READ, 0, bytes);
      } catch (e) {
        throw new WebGGUFError('device-lost', `Reading results from the GPU failed: ${(e as Error).message}`, { cause: e });
      }
      const values = new Float32Array(this.readback.getMappedRange(0, bytes).slice(0));
      this.readback.unmap();
      batch.forEach((_, i) => out.push(values.subarray(i * dim, (i + 1) * dim)));
    }
    return out;
  }

  private assertLive(): void {
    if (this.disposed) throw new WebGGUFError('invalid-argument', 'this model has been disposed');
  }

  dispose(): void {
    this.disposed = true;
    this.alloc.destroyAll();
  }
}
