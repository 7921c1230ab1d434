import { uniformData } from '../../gpu/allocator.js';
import { layerPlans, type AttentionLayer, type ModelConfig } from '../config.js';
import { barrierWorkgroup, cpuGrid, rowsGrid, weightDesc } from '../kernel-shapes.js';
import { fusable, type ForwardRecorder, type GpuMatrix, type Op, type ResidualStream } from '../recorder.js';

type QkvWeights = { q: GpuMatrix; k: GpuMatrix; v: GpuMatrix };

/** A layer's KV cache: a row of kvDim floats per position, keys rotated. */
type KvCache = { keys: GPUBuffer; values: GPUBuffer };

/**
 * The attention block: x += Wo · attention(rope(Wq·norm(x)), cache ← rope(Wk·norm(x)), cache ← Wv·norm(x)).
 * Decode runs the projections, biases, RoPE and the KV-cache write as one fused dispatch
 * (shaders/gemv_qkv.wgsl); prefill runs them as plain matmuls, bias adds and one RoPE dispatch.
 * With q/k norms (Qwen 3, Gemma 3), which come between the projections and RoPE, both leave q and
 * k unrotated and one more dispatch normalizes and rotates them (shaders/qk_norm_rope.wgsl).
 */
export class AttentionBlocks {
  /** A step's queries, then the heads' outputs (a row per token). */
  private readonly q: GPUBuffer;
  /** With output gates (Qwen3.5): q's projection, per head its queries then its gates (a row per token). */
  private readonly queryGate: GPUBuffer | undefined;
  private readonly out: GPUBuffer;
  /** Scratch of the split attention (attentionPartialBytes), shared by every layer. */
  private readonly partial: GPUBuffer;
  /**
   * The model's constants, read by RoPE and the fused decode projection: the (cos, sin) table,
   * (Gemma 3) the windowed layers' table, then (Qwen2) each layer's q, k and v biases. One read-only buffer, so the fused q/k/v kernel
   * fits the 8 storage buffers every device allows.
   */
  private readonly constants: GPUBuffer;
  private readonly ropeParams: GPUBuffer;
  private readonly windowRopeParams: GPUBuffer;
  /** The biases' copies into `constants`, sent by finish() once every layer is recorded. */
  private readonly biasCopies: GPUCommandEncoder;

  constructor(
    private readonly r: ForwardRecorder,
    private readonly contextLength: number,
    maxBatch: number,
    /** ggml's freq_factors for the RoPE table (ropeAngles), if the model has them. */
    freqFactors: Float32Array | undefined,
  ) {
    const c = r.config;
    const a = r.alloc;
    this.q = a.storage('q', maxBatch * qDim(c) * 4);
    this.out = a.storage('attn_out', maxBatch * qDim(c) * 4);
    this.queryGate = c.hybridDeltaNet ? a.storage('q_gate', maxBatch * 2 * qDim(c) * 4) : undefined;
    this.partial = a.storage('attention_partial', attentionPartialBytes(c, maxBatch));
    this.constants = a.storage('constants', constantsBytes(c, contextLength));
    // Linear scaling divides every angle, as the freq factors do.
    // A pair that text tokens leave unrotated (M-RoPE's fourth section) turns by angle 0.
    const factors = c.ropeLinearScale === 1 && !c.ropeUnrotatedPairs.length
      ? freqFactors
      : Array.from({ length: c.ropeDim / 2 }, (_, i) => (c.ropeUnrotatedPairs.includes(i) ? Infinity : (freqFactors?.[i] ?? 1) * c.ropeLinearScale));
    a.device.queue.writeBuffer(this.constants, 0, ropeAngles(contextLength, c.ropeDim, c.ropeTheta, factors, c.ropeAttnFactor));
    if (c.windowRopeTheta) a.device.queue.writeBuffer(this.constants, ropeTableBytes(c, contextLength), ropeAngles(contextLength, c.ropeDim, c.windowRopeTheta));
    this.biasCopies = a.device.createCommandEncoder();
    const ropeParams = (tableAt: number) => uniformData([
      { u: c.nHeads }, { u: c.nKvHeads }, { u: c.headDim }, { u: c.ropeDim }, { u: c.ropeStyle === 'neox' ? 1 : 0 }, { u: tableAt },
    ]);
    this.ropeParams = a.uniform('rope', ropeParams(0));
    this.windowRopeParams = a.uniform('rope', ropeParams(ropeTableBytes(c, contextLength) / 8));
  }

  /** Records layer `layer`'s attention block and makes its KV cache. */
  record(layer: AttentionLayer, residual: ResidualStream): void {
    const { r } = this;
    const c = r.config;
    const p = layer.prefix;
    const cache = {
      keys: r.alloc.storage(`k_cache.${layer.index}`, this.contextLength * kvDim(c) * 4),
      values: r.alloc.storage(`v_cache.${layer.index}`, this.contextLength * kvDim(c) * 4),
    };
    const w = { q: r.matrix(p + 'attn_q.weight'), k: r.matrix(p + 'attn_k.weight'), v: r.matrix(p + 'attn_v.weight') };
    // The fused kernel rotates by the model's table only.
    const fused = !layer.mixer.outputGate && !(layer.mixer.windowRope && !c.qkNorm) && fusable(w.q, w.k, w.v) && c.headDim % 2 === 0 && (c.headDim - c.ropeDim) % 2 === 0;

    r.add(r.rmsnorm(residual.x, r.vector(p + 'attn_norm.weight'), residual.normed));
    r.stage(this.projection(layer, w, residual.normed, cache), fused ? this.fusedProjection(layer, w, residual.normed, cache) : undefined);
    // Q/k norms come between the projections and RoPE: the projections above leave q and k
    // unrotated, and one dispatch normalizes and rotates them.
    if (c.qkNorm) r.add(this.qkNormRope(layer, cache));
    r.add(this.attend(layer, cache));
    if (layer.mixer.outputGate) r.add(this.outputGate('apply_output_gate'));
    const postNorm = c.postNorms ? r.vector(p + 'post_attention_norm.weight') : undefined;
    r.add(...r.residualAdd(residual, r.matrix(p + 'attn_output.weight'), this.out, postNorm));
  }

  /**
   * Prefill's q, k and v (decode's too where they cannot be fused): q ← Wq·input, cache ← Wk·input
   * and Wv·input at the step's rows, biases, then RoPE of q and k unless the layer has none or
   * (q/k norms) qkNormRope rotates them.
   */
  private projection(layer: AttentionLayer, w: QkvWeights, input: GPUBuffer, cache: KvCache): Op[] {
    const { r, q } = this;
    const c = r.config;
    const p = layer.prefix;
    // With an output gate, q's projection lands beside its gates and the queries are copied out.
    const queries = layer.mixer.outputGate ? [...r.matmul(w.q, input, this.queryGate!), this.outputGate('split_query_gate')] : r.matmul(w.q, input, q);
    const ops = [...queries, ...r.matmul(w.k, input, cache.keys, { yAtPos: true }), ...r.matmul(w.v, input, cache.values, { yAtPos: true })];
    if (c.qkvBias) {
      ops.push(
        this.addBias(q, r.vector(p + 'attn_q.bias'), qDim(c), false),
        this.addBias(cache.keys, r.vector(p + 'attn_k.bias'), kvDim(c), true),
        this.addBias(cache.values, r.vector(p + 'attn_v.bias'), kvDim(c), true),
      );
    }
    if (!layer.mixer.rope || c.qkNorm) return ops;
    const rope = r.kernels.get('rope');
    ops.push({
      kernel: rope,
      bindGroup: r.kernels.bindGroup(rope, [q, cache.keys, this.constants, layer.mixer.windowRope ? this.windowRopeParams : this.ropeParams, r.step]),
      grid: (n) => [Math.ceil(((c.nHeads + c.nKvHeads) * c.ropeDim) / 2 / 64), n, 1],
    });
    return ops;
  }

  /** Per-head RMSNorms of the step's q and k, then their RoPE (unless the layer has none), in place (shaders/qk_norm_rope.wgsl). */
  private qkNormRope(layer: AttentionLayer, cache: KvCache): Op {
    const { r } = this;
    const c = r.config;
    const kernel = r.kernels.get('qk_norm_rope', undefined, barrierWorkgroup(r.gpu.cpuEmulated, 'qk_norm_rope'));
    const params = r.alloc.uniform('qk_norm_rope', uniformData([
      { u: c.nHeads }, { u: c.nKvHeads }, { u: c.headDim }, { u: c.ropeDim }, { u: c.ropeStyle === 'neox' ? 1 : 0 },
      { u: layer.mixer.windowRope ? ropeTableBytes(c, this.contextLength) / 8 : 0 }, { f: c.normEps }, { u: layer.mixer.rope ? 1 : 0 },
    ]));
    const weights = [r.vector(layer.prefix + 'attn_q_norm.weight'), r.vector(layer.prefix + 'attn_k_norm.weight')];
    return {
      kernel,
      bindGroup: r.kernels.bindGroup(kernel, [this.q, cache.keys, this.constants, ...weights, params, r.step]),
      grid: (n) => [c.nHeads + c.nKvHeads, n, 1],
    };
  }

  /** Causal attention of the step's queries over the layer's KV cache (within its window), into `out`. */
  private attend(layer: AttentionLayer, cache: KvCache): Op {
    const { r } = this;
    const c = r.config;
    const kernel = r.kernels.get('attention', undefined, { MAX_HEAD_DIM: c.headDim, ...barrierWorkgroup(r.gpu.cpuEmulated, 'attention') });
    const params = r.alloc.uniform('attention', uniformData([
      { u: c.nHeads }, { u: c.nKvHeads }, { u: c.headDim }, { f: c.attnScale }, { f: c.attnSoftcap }, { u: layer.mixer.window },
    ]));
    return {
      kernel,
      bindGroup: r.kernels.bindGroup(kernel, [this.q, cache.keys, cache.values, this.partial, this.out, params, r.step]),
      grid: (n) => [c.nHeads, n, 1],
    };
  }

  /**
   * Qwen3.5's output gate, over a step's tokens: `split_query_gate` copies the queries out of q's
   * projection (per head: head_dim queries, then head_dim gates); `apply_output_gate` multiplies
   * the heads' outputs by the sigmoid of their gates (shaders/output_gate.wgsl).
   */
  private outputGate(entry: 'split_query_gate' | 'apply_output_gate'): Op {
    const { r } = this;
    const c = r.config;
    const kernel = r.kernels.get(entry);
    const params = r.alloc.uniform('output_gate', uniformData([{ u: c.nHeads }, { u: c.headDim }]));
    const target = entry === 'split_query_gate' ? this.q : this.out;
    return { kernel, bindGroup: r.kernels.bindGroup(kernel, [this.queryGate!, target, params, r.step]), grid: (n) => [Math.ceil(qDim(c) / 64), n, 1] };
  }

  /** Sends the biases into the constants buffer; call once every layer is recorded. */
  finish(): void {
    this.r.alloc.device.queue.submit([this.biasCopies.finish()]);
  }

  /** Decode's q/k/v projections, biases, RoPE and KV-cache write in one dispatch (shaders/gemv_qkv.wgsl). */
  private fusedProjection(layer: AttentionLayer, w: QkvWeights, input: GPUBuffer, cache: KvCache): Op {
    const { r } = this;
    const c = r.config;
    const p = layer.prefix;
    const f32 = 4;
    const [wq, wk, wv] = [w.q[0]!, w.k[0]!, w.v[0]!];
    const biasAt = constantsBytes(c, this.contextLength, layer.index) / f32;
    if (c.qkvBias) {
      this.biasCopies.copyBufferToBuffer(r.vector(p + 'attn_q.bias'), 0, this.constants, biasAt * f32, qDim(c) * f32);
      this.biasCopies.copyBufferToBuffer(r.vector(p + 'attn_k.bias'), 0, this.constants, (biasAt + qDim(c)) * f32, kvDim(c) * f32);
      this.biasCopies.copyBufferToBuffer(r.vector(p + 'attn_v.bias'), 0, this.constants, (biasAt + qDim(c) + kvDim(c)) * f32, kvDim(c) * f32);
    }
    const kernel = r.kernels.get(r.gpu.cpuEmulated ? 'gemv_qkv_rows' : 'gemv_qkv', [wq.layout.kind, wk.layout.kind, wv.layout.kind], r.decodeSize);
    const params = r.alloc.uniform('qkv', uniformData([
      ...[wq, wk, wv].flatMap((m) => weightDesc(m.layout)),
      // A rotary width of 0 leaves every pair unrotated (SmolLM3's layers without RoPE; q/k norms,
      // which come before RoPE: qkNormRope rotates).
      { u: c.headDim }, { u: layer.mixer.rope && !c.qkNorm ? c.ropeDim : 0 }, { u: c.ropeStyle === 'neox' ? 1 : 0 }, { u: c.qkvBias ? 1 : 0 }, { u: biasAt },
    ]));
    const pairs = (qDim(c) + 2 * kvDim(c)) / 2;
    // CPU adapters: a thread takes two pairs of one matrix at a time.
    const pairGroups = Math.ceil(qDim(c) / 4) + 2 * Math.ceil(kvDim(c) / 4);
    return {
      kernel,
      bindGroup: r.kernels.bindGroup(kernel, [wq.buffer, wk.buffer, wv.buffer, input, this.q, cache.keys, cache.values, this.constants, params, r.step]),
      grid: () => (r.gpu.cpuEmulated ? cpuGrid(pairGroups, 4 * c.dim) : rowsGrid(Math.ceil(pairs / 2))),
    };
  }

  /** Prefill: target += bias, per token (rows at the step's position in a KV cache). */
  private addBias(target: GPUBuffer, bias: GPUBuffer, n: number, rowsAtPos: boolean): Op {
    const k = this.r.kernels;
    const kernel = k.get('add_bias');
    const params = this.r.alloc.uniform('bias', uniformData([{ u: n }, { u: n }, { u: rowsAtPos ? 1 : 0 }]));
    return { kernel, bindGroup: k.bindGroup(kernel, [target, bias, params, this.r.step]), grid: (t) => [Math.ceil(n / 64), t, 1] };
  }
}

function qDim(c: ModelConfig): number {
  return c.nHeads * c.headDim;
}

function kvDim(c: ModelConfig): number {
  return c.nKvHeads * c.headDim;
}

/** Bytes of one RoPE table: a (cos, sin) pair per position and rotated pair. */
function ropeTableBytes(c: ModelConfig, contextLength: number): number {
  return contextLength * c.ropeDim * 4;
}

/**
 * Bytes of the constants buffer: the RoPE table, (Gemma 3) the windowed layers' one, then (Qwen2)
 * q, k and v biases per layer. With `beforeLayer`, the bytes before that layer's biases.
 */
function constantsBytes(c: ModelConfig, contextLength: number, beforeLayer = c.qkvBias ? c.nLayers : 0): number {
  return (c.windowRopeTheta ? 2 : 1) * ropeTableBytes(c, contextLength) + beforeLayer * (qDim(c) + 2 * kvDim(c)) * 4;
}

/** Keys are split into at most this many chunks per (token, head); shaders/attention.wgsl's CHUNKS. */
const ATTENTION_CHUNKS = 16;

/** Scratch for the split attention: per (token, head, chunk) a max, a sum and head_dim sums. */
function attentionPartialBytes(c: ModelConfig, maxBatch: number): number {
  return maxBatch * c.nHeads * ATTENTION_CHUNKS * (c.headDim + 2) * 4;
}

/** The buffers the attention blocks make (for the fit check before loading). */
export function attentionBuffers(c: ModelConfig, contextLength: number, maxBatch: number): { name: string; bytes: number }[] {
  const cached = layerPlans(c).filter((l) => l.mixer.kind === 'attention');
  return [
    ...cached.flatMap((l) => ['k', 'v'].map((kv) => ({ name: `${kv}_cache.${l.index}`, bytes: contextLength * kvDim(c) * 4 }))),
    { name: 'q', bytes: maxBatch * qDim(c) * 4 },
    ...(c.hybridDeltaNet ? [{ name: 'q_gate', bytes: maxBatch * 2 * qDim(c) * 4 }] : []),
    { name: 'attn_out', bytes: maxBatch * qDim(c) * 4 },
    { name: 'attention_partial', bytes: attentionPartialBytes(c, maxBatch) },
    { name: 'constants', bytes: constantsBytes(c, contextLength) },
  ];
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
