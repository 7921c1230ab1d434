import { uniformData } from '../../gpu/allocator.js';
import { isAttentionLayer, layerPlans, type AttentionLayer, type ModelConfig } from '../config.js';
import { barrierWorkgroup, cpuGrid, rowsGrid, weightDesc } from '../kernel-shapes.js';
import { fusable, type ForwardRecorder, type GpuMatrix, type Op, type ResidualStream } from '../recorder.js';

type QkvWeights = { q: GpuMatrix; k: GpuMatrix; v: GpuMatrix };

/** A layer's KV cache: a row of kvDim values per position (f32 or packed f16 pairs), keys rotated. */
type KvCache = { keys: GPUBuffer; values: GPUBuffer };

/** How the KV cache stores values: f16 (half the memory; the default) or f32. */
export type KvCacheType = 'f16' | 'f32';

/**
 * Bits per cached value for a requested cache type: f16 packs two values per word, which the
 * kernels can write whole only where every attention layer's head_dim and rope_dim are multiples
 * of 4 (shaders/gemv_qkv.wgsl); other shapes keep f32.
 */
export function kvCacheBits(c: ModelConfig, requested: KvCacheType = 'f16'): 16 | 32 {
  const whole = layerPlans(c).filter(isAttentionLayer).every((l) => l.mixer.headDim % 4 === 0 && l.mixer.ropeDim % 4 === 0);
  return requested === 'f16' && whole ? 16 : 32;
}

/** Bytes of one attention layer's K (or V) cache. */
export function kvCacheLayerBytes(layer: AttentionLayer, contextLength: number, bits: 16 | 32): number {
  return (contextLength * layerKvDim(layer) * bits) / 8;
}

/** Bytes of the whole KV cache: keys and values of every layer that keeps its own (Gemma 4's shared layers keep none). */
export function kvCacheBytes(c: ModelConfig, contextLength: number, bits: 16 | 32): number {
  return ownCacheLayers(c).reduce((sum, l) => sum + 2 * kvCacheLayerBytes(l, contextLength, bits), 0);
}

/** The attention layers with a KV cache of their own. */
function ownCacheLayers(c: ModelConfig): AttentionLayer[] {
  return layerPlans(c).filter(isAttentionLayer).filter((l) => l.mixer.kvFrom === l.index);
}

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
  /**
   * A step's new keys and values in f32 (a row per token), where prefill's projections, biases and
   * RoPE (and decode's q/k and v norms) finish them before kv.wgsl stores them in the cache.
   */
  private readonly kNew: GPUBuffer;
  private readonly vNew: GPUBuffer;
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
  /** Each layer's KV cache, by layer: Gemma 4's shared layers read an earlier layer's. */
  private readonly caches = new Map<number, KvCache>();
  /** A head's width of ones: the weight of Gemma 4's V norm, which has none. */
  private readonly ones: GPUBuffer | undefined;

  constructor(
    private readonly r: ForwardRecorder,
    private readonly contextLength: number,
    maxBatch: number,
    /** ggml's freq_factors for the RoPE table (ropeAngles), if the model has them. */
    freqFactors: Float32Array | undefined,
    /** Bits per cached value (kvCacheBits). */
    private readonly kvBits: 16 | 32,
  ) {
    const c = r.config;
    const a = r.alloc;
    this.q = a.storage('q', maxBatch * qDim(c) * 4);
    this.out = a.storage('attn_out', maxBatch * qDim(c) * 4);
    this.kNew = a.storage('k_new', newKvBytes(c, maxBatch));
    this.vNew = a.storage('v_new', newKvBytes(c, maxBatch));
    this.queryGate = c.hybridDeltaNet ? a.storage('q_gate', maxBatch * 2 * qDim(c) * 4) : undefined;
    this.partial = a.storage('attention_partial', attentionPartialBytes(c, maxBatch));
    this.constants = a.storage('constants', constantsBytes(c, contextLength));
    // Linear scaling divides every angle, as the freq factors do.
    // A pair that text tokens leave unrotated (M-RoPE's fourth section) turns by angle 0.
    const factors = c.ropeLinearScale === 1 && !c.ropeUnrotatedPairs.length
      ? freqFactors
      : Array.from({ length: c.ropeDim / 2 }, (_, i) => (c.ropeUnrotatedPairs.includes(i) ? Infinity : (freqFactors?.[i] ?? 1) * c.ropeLinearScale));
    a.device.queue.writeBuffer(this.constants, 0, ropeAngles(contextLength, c.ropeDim, c.ropeTheta, factors, c.ropeAttnFactor));
    if (c.windowRopeTheta) a.device.queue.writeBuffer(this.constants, ropeTableBytes(c, contextLength), ropeAngles(contextLength, c.windowRopeDim, c.windowRopeTheta));
    if (layerPlans(c).filter(isAttentionLayer).some((l) => l.mixer.vNorm)) {
      this.ones = a.storage('ones', c.headDim * 4);
      a.device.queue.writeBuffer(this.ones, 0, new Float32Array(c.headDim).fill(1));
    }
    this.biasCopies = a.device.createCommandEncoder();
    const ropeParams = (tableAt: number) => uniformData([
      { u: c.nHeads }, { u: c.nKvHeads }, { u: c.headDim }, { u: c.ropeDim }, { u: c.ropeStyle === 'neox' ? 1 : 0 }, { u: tableAt },
    ]);
    this.ropeParams = a.uniform('rope', ropeParams(0));
    this.windowRopeParams = a.uniform('rope', ropeParams(ropeTableBytes(c, contextLength) / 8));
  }

  /**
   * Records layer `layer`'s attention block and makes its KV cache, unless it reads an earlier
   * layer's (Gemma 4's shared KV): then it projects only q.
   */
  record(layer: AttentionLayer, residual: ResidualStream): void {
    const { r } = this;
    const c = r.config;
    const p = layer.prefix;
    const m = layer.mixer;
    const own = m.kvFrom === layer.index;
    const bytes = kvCacheLayerBytes(layer, this.contextLength, this.kvBits);
    const cache = own
      ? { keys: r.alloc.storage(`k_cache.${layer.index}`, bytes), values: r.alloc.storage(`v_cache.${layer.index}`, bytes) }
      : this.caches.get(m.kvFrom)!;
    this.caches.set(layer.index, cache);
    // Without attn_v (Gemma 4's attention_k_eq_v), v is the key projection.
    const w = { q: r.matrix(p + 'attn_q.weight'), k: own ? r.matrix(p + 'attn_k.weight') : [], v: own ? r.matrix(p + (c.valueFromKey ? 'attn_k.weight' : 'attn_v.weight')) : [] };
    // The fused kernel rotates by the model's table only.
    const fused = own && !m.outputGate && !(m.windowRope && !c.qkNorm) && fusable(w.q, w.k, w.v) && m.headDim % 2 === 0 && (m.headDim - m.ropeDim) % 2 === 0;

    r.add(r.rmsnorm(residual.x, r.vector(p + 'attn_norm.weight'), residual.normed));
    // The new keys and values reach the cache when they are final: prefill's (and unfused
    // decode's) through kNew/vNew and kvStore; fused decode's straight from gemv_qkv, unless norms
    // come after the projections (q/k norms, which also come before RoPE; Gemma 4's v norm): then
    // the projections leave q, k and v unrotated in q, kNew and vNew, and the norms and RoPE
    // finish them there before kvStore. A layer reading another's cache stores nothing.
    const normsAfter = c.qkNorm || m.vNorm;
    const store = own ? [this.kvStore(layer, cache)] : [];
    r.stage([...this.projection(layer, w, residual.normed), ...(normsAfter ? [] : store)], fused ? this.fusedProjection(layer, w, residual.normed, cache, !normsAfter) : undefined);
    if (c.qkNorm) r.add(this.qkNormRope(layer));
    if (own && m.vNorm) r.add(this.valueNorm(layer));
    if (normsAfter) r.add(...store);
    r.add(this.attend(layer, cache));
    if (layer.mixer.outputGate) r.add(this.outputGate('apply_output_gate'));
    const postNorm = c.postNorms ? r.vector(p + 'post_attention_norm.weight') : undefined;
    r.add(...r.residualAdd(residual, r.matrix(p + 'attn_output.weight'), this.out, postNorm));
  }

  /**
   * Prefill's q, k and v (decode's too where they cannot be fused): q ← Wq·input, kNew ← Wk·input,
   * vNew ← Wv·input, biases, then RoPE of q and k unless the layer has none or (q/k norms)
   * qkNormRope rotates them.
   */
  private projection(layer: AttentionLayer, w: QkvWeights, input: GPUBuffer): Op[] {
    const { r, q, kNew, vNew } = this;
    const c = r.config;
    const p = layer.prefix;
    // With an output gate, q's projection lands beside its gates and the queries are copied out.
    // (A layer reading another's KV cache has no k and v matrices: w.k and w.v are empty.)
    const queries = layer.mixer.outputGate ? [...r.matmul(w.q, input, this.queryGate!), this.outputGate('split_query_gate')] : r.matmul(w.q, input, q);
    const ops = [...queries, ...r.matmul(w.k, input, kNew), ...r.matmul(w.v, input, vNew)];
    if (c.qkvBias) {
      ops.push(
        this.addBias(q, r.vector(p + 'attn_q.bias'), qDim(c)),
        this.addBias(kNew, r.vector(p + 'attn_k.bias'), kvDim(c)),
        this.addBias(vNew, r.vector(p + 'attn_v.bias'), kvDim(c)),
      );
    }
    if (!layer.mixer.rope || c.qkNorm) return ops;
    const rope = r.kernels.get('rope');
    ops.push({
      kernel: rope,
      bindGroup: r.kernels.bindGroup(rope, [q, kNew, this.constants, layer.mixer.windowRope ? this.windowRopeParams : this.ropeParams, r.step]),
      grid: (n) => [Math.ceil(((c.nHeads + c.nKvHeads) * c.ropeDim) / 2 / 64), n, 1],
    });
    return ops;
  }

  /** The step's new keys and values (kNew, vNew) into the layer's cache at its rows (shaders/kv.wgsl). */
  private kvStore(layer: AttentionLayer, cache: KvCache): Op {
    const { r } = this;
    const kernel = r.kernels.get('kv_store', undefined, { KV_BITS: this.kvBits });
    const kvDim = layerKvDim(layer);
    const params = r.alloc.uniform('kv_store', uniformData([{ u: kvDim }]));
    const words = (kvDim * this.kvBits) / 32;
    return {
      kernel,
      bindGroup: r.kernels.bindGroup(kernel, [this.kNew, this.vNew, cache.keys, cache.values, params, r.step]),
      grid: (n) => [Math.ceil(words / 64), n, 1],
    };
  }

  /**
   * Per-head RMSNorms of the step's q and new keys, then their RoPE (unless the layer has none), in
   * place (shaders/qk_norm_rope.wgsl); only q where the layer reads another's KV cache.
   */
  private qkNormRope(layer: AttentionLayer): Op {
    const { r } = this;
    const c = r.config;
    const m = layer.mixer;
    const kvHeads = m.kvFrom === layer.index ? m.nKvHeads : 0;
    const kernel = r.kernels.get('qk_norm_rope', undefined, barrierWorkgroup(r.gpu.cpuEmulated, 'qk_norm_rope'));
    const params = r.alloc.uniform('qk_norm_rope', uniformData([
      { u: m.nHeads }, { u: kvHeads }, { u: m.headDim }, { u: m.ropeDim }, { u: c.ropeStyle === 'neox' ? 1 : 0 },
      { u: m.windowRope ? ropeTableBytes(c, this.contextLength) / 8 : 0 }, { f: c.normEps }, { u: m.rope ? 1 : 0 },
    ]));
    const qNorm = r.vector(layer.prefix + 'attn_q_norm.weight');
    const weights = [qNorm, kvHeads ? r.vector(layer.prefix + 'attn_k_norm.weight') : qNorm];
    return {
      kernel,
      bindGroup: r.kernels.bindGroup(kernel, [this.q, this.kNew, this.constants, ...weights, params, r.step]),
      grid: (n) => [m.nHeads + kvHeads, n, 1],
    };
  }

  /**
   * Gemma 4's per-head RMSNorm of the step's new values, without a weight: qk_norm_rope on the
   * value rows as its "keys", no queries, weight one, no RoPE.
   */
  private valueNorm(layer: AttentionLayer): Op {
    const { r } = this;
    const m = layer.mixer;
    const kernel = r.kernels.get('qk_norm_rope', undefined, barrierWorkgroup(r.gpu.cpuEmulated, 'qk_norm_rope'));
    const params = r.alloc.uniform('v_norm', uniformData([
      { u: 0 }, { u: m.nKvHeads }, { u: m.headDim }, { u: 0 }, { u: 0 }, { u: 0 }, { f: r.config.normEps }, { u: 0 },
    ]));
    return {
      kernel,
      bindGroup: r.kernels.bindGroup(kernel, [this.q, this.vNew, this.constants, this.ones!, this.ones!, params, r.step]),
      grid: (n) => [m.nKvHeads, n, 1],
    };
  }

  /**
   * Causal attention of the step's queries over the layer's KV cache (within its window), into
   * `out`: split along the keys per query (decode, and CPU adapters), or on GPUs for a block of
   * prompt tokens through key tiles in workgroup memory (`attention_tiled`).
   */
  private attend(layer: AttentionLayer, cache: KvCache): Op {
    const { r } = this;
    const c = r.config;
    const m = layer.mixer;
    const split = r.kernels.get('attention', undefined, { MAX_HEAD_DIM: m.headDim, KV_BITS: this.kvBits, ...barrierWorkgroup(r.gpu.cpuEmulated, 'attention') });
    // The tiled kernel knows causal windows only: bidirectional models (EmbeddingGemma's symmetric
    // windows) keep the split kernel, which runs any step.
    const tiled = r.gpu.cpuEmulated || c.bidirectional ? undefined : r.kernels.get('attention_tiled', undefined, tiledAttentionSize(m.headDim, this.kvBits));
    const params = r.alloc.uniform('attention', uniformData([
      { u: m.nHeads }, { u: m.nKvHeads }, { u: m.headDim }, { f: c.attnScale }, { f: c.attnSoftcap }, { u: m.window }, { u: c.bidirectional ? 1 : 0 },
    ]));
    const useTiled = (n: number) => tiled !== undefined && n > 1;
    return {
      kernel: (n: number) => (useTiled(n) ? tiled! : split),
      bindGroup: r.kernels.bindGroup(split, [this.q, cache.keys, cache.values, this.partial, this.out, params, r.step]),
      grid: (n) => (useTiled(n) ? [m.nHeads, Math.ceil(n / TILED_QUERY_BLOCK), 1] : [m.nHeads, n, 1]),
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

  /**
   * Decode's q/k/v projections, biases, RoPE and KV-cache write in one dispatch
   * (shaders/gemv_qkv.wgsl); without `toCache` (norms still to come), k and v go to kNew and vNew.
   */
  private fusedProjection(layer: AttentionLayer, w: QkvWeights, input: GPUBuffer, cache: KvCache, toCache: boolean): Op {
    const { r } = this;
    const c = r.config;
    const p = layer.prefix;
    const m = layer.mixer;
    const f32 = 4;
    const [wq, wk, wv] = [w.q[0]!, w.k[0]!, w.v[0]!];
    const biasAt = constantsBytes(c, this.contextLength, layer.index) / f32;
    if (c.qkvBias) {
      this.biasCopies.copyBufferToBuffer(r.vector(p + 'attn_q.bias'), 0, this.constants, biasAt * f32, qDim(c) * f32);
      this.biasCopies.copyBufferToBuffer(r.vector(p + 'attn_k.bias'), 0, this.constants, (biasAt + qDim(c)) * f32, kvDim(c) * f32);
      this.biasCopies.copyBufferToBuffer(r.vector(p + 'attn_v.bias'), 0, this.constants, (biasAt + qDim(c) + kvDim(c)) * f32, kvDim(c) * f32);
    }
    const kernel = r.kernels.get(r.gpu.cpuEmulated ? 'gemv_qkv_rows' : 'gemv_qkv', [wq.layout.kind, wk.layout.kind, wv.layout.kind], { ...r.decodeSize, KV_BITS: this.kvBits });
    const params = r.alloc.uniform('qkv', uniformData([
      ...[wq, wk, wv].flatMap((m) => weightDesc(m.layout)),
      // A rotary width of 0 leaves every pair unrotated (SmolLM3's layers without RoPE; q/k norms,
      // which come before RoPE: qkNormRope rotates).
      { u: m.headDim }, { u: m.rope && !c.qkNorm ? m.ropeDim : 0 }, { u: c.ropeStyle === 'neox' ? 1 : 0 }, { u: c.qkvBias ? 1 : 0 }, { u: biasAt },
      { u: toCache ? 1 : 0 },
    ]));
    const [qRows, kvRows] = [m.nHeads * m.headDim, layerKvDim(layer)];
    const pairs = (qRows + 2 * kvRows) / 2;
    // CPU adapters: a thread takes two pairs of one matrix at a time.
    const pairGroups = Math.ceil(qRows / 4) + 2 * Math.ceil(kvRows / 4);
    return {
      kernel,
      bindGroup: r.kernels.bindGroup(kernel, [wq.buffer, wk.buffer, wv.buffer, input, this.q, ...(toCache ? [cache.keys, cache.values] : [this.kNew, this.vNew]), this.constants, params, r.step]),
      grid: () => (r.gpu.cpuEmulated ? cpuGrid(pairGroups, 4 * c.dim) : rowsGrid(Math.ceil(pairs / 2))),
    };
  }

  /** Prefill: target += bias, per token (a row per token). */
  private addBias(target: GPUBuffer, bias: GPUBuffer, n: number): Op {
    const k = this.r.kernels;
    const kernel = k.get('add_bias');
    const params = this.r.alloc.uniform('bias', uniformData([{ u: n }, { u: n }]));
    return { kernel, bindGroup: k.bindGroup(kernel, [target, bias, params, this.r.step]), grid: (t) => [Math.ceil(n / 64), t, 1] };
  }
}

function qDim(c: ModelConfig): number {
  return c.nHeads * c.headDim;
}

function kvDim(c: ModelConfig): number {
  return c.nKvHeads * c.headDim;
}

/** A row of the layer's KV cache (Gemma 4's layers differ). */
function layerKvDim(layer: AttentionLayer): number {
  return layer.mixer.nKvHeads * layer.mixer.headDim;
}

/** Bytes of the new-keys (or values) buffer: a row of the widest layer's kvDim per token, in f32. */
function newKvBytes(c: ModelConfig, maxBatch: number): number {
  return maxBatch * Math.max(...layerPlans(c).filter(isAttentionLayer).map(layerKvDim), 1) * 4;
}

/** Bytes of the model's RoPE table: a (cos, sin) pair per position and rotated pair. */
function ropeTableBytes(c: ModelConfig, contextLength: number): number {
  return contextLength * c.ropeDim * 4;
}

/**
 * Bytes of the constants buffer: the RoPE table, (Gemma 3) the windowed layers' one, then (Qwen2)
 * q, k and v biases per layer. With `beforeLayer`, the bytes before that layer's biases.
 */
function constantsBytes(c: ModelConfig, contextLength: number, beforeLayer = c.qkvBias ? c.nLayers : 0): number {
  const windowTable = c.windowRopeTheta ? contextLength * c.windowRopeDim * 4 : 0;
  return ropeTableBytes(c, contextLength) + windowTable + beforeLayer * (qDim(c) + 2 * kvDim(c)) * 4;
}

/** Queries per workgroup of `attention_tiled` (shaders/attention.wgsl QUERY_BLOCK). */
const TILED_QUERY_BLOCK = 64;

/**
 * `attention_tiled`'s sizes for a head width: keys per tile such that a tile of keys and one of
 * values (TILE_KEYS x head_dim / 4 vec4s each) fit 16 KiB of workgroup memory, the least every
 * device offers; at most 32.
 */
export function tiledAttentionSize(headDim: number, kvBits: 16 | 32): Record<string, number> {
  const vec4s = Math.ceil(headDim / 4);
  return { MAX_HEAD_DIM: headDim, KV_BITS: kvBits, QUERY_BLOCK: TILED_QUERY_BLOCK, TILE_KEYS: Math.max(1, Math.min(32, Math.floor(512 / vec4s))) };
}

/** Keys are split into at most this many chunks per (token, head); shaders/attention.wgsl's CHUNKS. */
const ATTENTION_CHUNKS = 16;

/** Scratch for the split attention: per (token, head, chunk) a max, a sum and head_dim sums. */
function attentionPartialBytes(c: ModelConfig, maxBatch: number): number {
  return maxBatch * c.nHeads * ATTENTION_CHUNKS * (c.headDim + 2) * 4;
}

/** The buffers the attention blocks make (for the fit check before loading). */
export function attentionBuffers(c: ModelConfig, contextLength: number, maxBatch: number, kvBits: 16 | 32): { name: string; bytes: number }[] {
  // Only the layers with a KV cache of their own (Gemma 4's shared layers have none).
  const own = ownCacheLayers(c);
  return [
    ...own.flatMap((l) => ['k', 'v'].map((kv) => ({ name: `${kv}_cache.${l.index}`, bytes: kvCacheLayerBytes(l, contextLength, kvBits) }))),
    ...(own.some((l) => l.mixer.vNorm) ? [{ name: 'ones', bytes: c.headDim * 4 }] : []),
    { name: 'q', bytes: maxBatch * qDim(c) * 4 },
    ...(c.hybridDeltaNet ? [{ name: 'q_gate', bytes: maxBatch * 2 * qDim(c) * 4 }] : []),
    { name: 'attn_out', bytes: maxBatch * qDim(c) * 4 },
    { name: 'k_new', bytes: newKvBytes(c, maxBatch) },
    { name: 'v_new', bytes: newKvBytes(c, maxBatch) },
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
