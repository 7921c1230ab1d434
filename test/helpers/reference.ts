/**
 * The f32 CPU reference forward pass, in the style of llama2.c's run.c: one token at a time, every
 * step written out. It dequantizes every tensor with the CPU reference of its format, so it
 * checks the kernels and the repacked layouts, not just the arithmetic.
 */
import { readTensorChunks, type GGUFFile } from '../../src/gguf/gguf.js';
import { isAttentionLayer, layerPlans, layerWindow, matrixViews, PER_LAYER_TABLE, readConfig, ropeFactorTensor, tensor, type AttentionLayer, type ModelConfig } from '../../src/model/config.js';
import { formatFor } from '../../src/quant/formats.js';

export async function dequantizeTensor(file: GGUFFile, name: string): Promise<Float32Array> {
  const t = tensor(file, name);
  const chunks: Uint8Array[] = [];
  for await (const c of readTensorChunks(file, t)) chunks.push(c);
  const bytes = new Uint8Array(t.byteSize);
  let at = 0;
  for (const c of chunks) { bytes.set(c, at); at += c.byteLength; }
  return formatFor(t.type, name).dequantize(bytes, t.elements);
}

interface Layer {
  /** q/k/v biases (Qwen2). */
  bq?: Float32Array; bk?: Float32Array; bv?: Float32Array;
  attnNorm: Float32Array; wq: Float32Array; wk: Float32Array; wv: Float32Array; wo: Float32Array;
  ffnNorm: Float32Array; wGate: Float32Array; wUp: Float32Array; wDown: Float32Array;
  /** Per-head norms of q and k, before RoPE (Qwen 3). */
  qNorm?: Float32Array; kNorm?: Float32Array;
  /** Norms on the attention and FFN outputs (Gemma 2). */
  postAttnNorm?: Float32Array; postFfnNorm?: Float32Array;
  /** A Gated DeltaNet layer (Qwen3.5): the attention fields above are then empty. */
  deltaNet?: DeltaNetWeights;
  /** Gemma 4's per-layer embedding block (gate, projection, post-norm) and output scale. */
  pleGate?: Float32Array; pleProj?: Float32Array; plePostNorm?: Float32Array; outScale?: number;
}

/** Gemma 4's per-layer embeddings: the table, and the projection of the residual stream. */
interface PerLayerEmbeddings { table: Float32Array; modelProj: Float32Array; projNorm: Float32Array }

interface DeltaNetWeights {
  wqkv: Float32Array; wz: Float32Array; conv: Float32Array; dtBias: Float32Array; a: Float32Array;
  wBeta: Float32Array; wAlpha: Float32Array; norm: Float32Array; wOut: Float32Array;
}

/** A DeltaNet layer's recurrent state: the last convKernel - 1 q/k/v rows, and a state matrix per value head. */
interface DeltaNetState { conv: Float32Array; matrix: Float32Array }

export class ReferenceModel {
  private keyCache: Float32Array[];
  private valueCache: Float32Array[];
  private deltaNetState: (DeltaNetState | undefined)[];
  private constructor(
    readonly config: ModelConfig,
    private readonly embedding: Float32Array,
    private readonly layers: Layer[],
    private readonly outputNorm: Float32Array,
    private readonly output: Float32Array,
    private readonly freqFactors?: Float32Array,
    private readonly perLayer?: PerLayerEmbeddings,
  ) {
    // A layer that shares another's KV (Gemma 4) has none of its own: it reads its donor's.
    // DeltaNet layers (Qwen3.5) have a recurrent state instead.
    const plans = layerPlans(config);
    const size = (l: number) => {
      const plan = plans[l]!;
      return isAttentionLayer(plan) && plan.mixer.kvFrom === l ? config.contextLength * plan.mixer.nKvHeads * plan.mixer.headDim : 0;
    };
    this.keyCache = layers.map((_, l) => new Float32Array(size(l)));
    this.valueCache = layers.map((_, l) => new Float32Array(size(l)));
    const d = config.deltaNet;
    this.deltaNetState = layers.map((L) => (L.deltaNet && d ? {
      conv: new Float32Array((d.convKernel - 1) * (2 * d.kHeads + d.vHeads) * d.state),
      matrix: new Float32Array(d.vHeads * d.state * d.state),
    } : undefined));
  }

  static async load(file: GGUFFile): Promise<ReferenceModel> {
    const c = readConfig(file);
    // A matrix is a tensor, or a run of rows of a fused one (Phi-3's attn_qkv, ffn_up).
    const views = [...matrixViews(c)].flatMap(([t, vs]) => vs.map((v) => ({ tensor: t, ...v })));
    const get = async (n: string) => {
      const view = views.find((v) => v.matrix === n);
      if (!view) return dequantizeTensor(file, n);
      const cols = tensor(file, view.tensor).dims[0]!;
      return (await dequantizeTensor(file, view.tensor)).slice(view.rowStart * cols, (view.rowStart + view.rows) * cols);
    };
    const layers: Layer[] = [];
    const none = new Float32Array(0);
    for (const plan of layerPlans(c)) {
      const l = plan.index;
      const p = plan.prefix;
      if (!isAttentionLayer(plan)) {
        layers.push({
          attnNorm: await get(p + 'attn_norm.weight'), wq: none, wk: none, wv: none, wo: none,
          ffnNorm: await get(plan.feedForwardNorm), wGate: await get(p + 'ffn_gate.weight'), wUp: await get(p + 'ffn_up.weight'), wDown: await get(p + 'ffn_down.weight'),
          deltaNet: {
            wqkv: await get(p + 'attn_qkv.weight'), wz: await get(p + 'attn_gate.weight'), conv: await get(p + 'ssm_conv1d.weight'),
            dtBias: await get(p + 'ssm_dt.bias'), a: await get(p + 'ssm_a'), wBeta: await get(p + 'ssm_beta.weight'),
            wAlpha: await get(p + 'ssm_alpha.weight'), norm: await get(p + 'ssm_norm.weight'), wOut: await get(p + 'ssm_out.weight'),
          },
        });
        continue;
      }
      // Gemma 4: layers that share an earlier layer's KV project no k or v; without attn_v, v is k's projection.
      const ownKv = plan.mixer.kvFrom === l;
      const wk = ownKv ? await get(p + 'attn_k.weight') : new Float32Array(0);
      layers.push({
        attnNorm: await get(p + 'attn_norm.weight'), wq: await get(p + 'attn_q.weight'),
        wk, wv: ownKv && !c.valueFromKey ? await get(p + 'attn_v.weight') : wk,
        wo: await get(p + 'attn_output.weight'), ffnNorm: await get(plan.feedForwardNorm),
        wGate: await get(p + 'ffn_gate.weight'), wUp: await get(p + 'ffn_up.weight'),
        wDown: await get(p + 'ffn_down.weight'),
        ...(c.qkvBias ? { bq: await get(p + 'attn_q.bias'), bk: await get(p + 'attn_k.bias'), bv: await get(p + 'attn_v.bias') } : {}),
        ...(c.qkNorm ? { qNorm: await get(p + 'attn_q_norm.weight'), kNorm: ownKv ? await get(p + 'attn_k_norm.weight') : new Float32Array(0) } : {}),
        ...(c.perLayerInput ? { pleGate: await get(p + 'inp_gate.weight'), pleProj: await get(p + 'proj.weight'), plePostNorm: await get(p + 'post_norm.weight') } : {}),
        ...(c.layerOutputScale ? { outScale: (await get(p + 'layer_output_scale.weight'))[0]! } : {}),
        ...(c.postNorms ? { postAttnNorm: await get(p + 'post_attention_norm.weight'), postFfnNorm: await get(p + 'post_ffw_norm.weight') } : {}),
      });
    }
    const embedding = await get('token_embd.weight');
    const output = c.tiedOutput ? embedding : await get('output.weight');
    const factorTensor = ropeFactorTensor(c, c.contextLength);
    const factors = factorTensor ? await get(factorTensor) : undefined;
    const perLayer = c.perLayerInput
      ? { table: await get(PER_LAYER_TABLE), modelProj: await get('per_layer_model_proj.weight'), projNorm: await get('per_layer_proj_norm.weight') }
      : undefined;
    return new ReferenceModel(c, embedding, layers, await get('output_norm.weight'), output, factors, perLayer);
  }

  /** Runs one token at position `pos` and returns the logits. */
  forward(token: number, pos: number): Float32Array {
    const c = this.config;
    const plans = layerPlans(c);
    const x = this.embedding.slice(token * c.dim, (token + 1) * c.dim).map((v) => (c.scaleEmbedding ? v * Math.sqrt(c.dim) : v));
    const pleInputs = this.perLayer ? perLayerInputs(c, this.perLayer, token, x) : undefined;
    const xb = new Float32Array(c.dim);
    // Adds a block's output to the residual stream, through Gemma 2's post-norm if there is one.
    const residual = (out: Float32Array, postNorm: Float32Array | undefined) => {
      if (postNorm) rmsnorm(out, out, postNorm, c.normEps);
      for (let i = 0; i < c.dim; i++) x[i]! += out[i]!;
    };
    // Sized for the widest layer.
    const qWidth = Math.max(0, ...plans.filter(isAttentionLayer).map((p) => p.mixer.nHeads * p.mixer.headDim));
    const gated = c.hybridDeltaNet;
    // With an output gate (Qwen3.5), q's projection makes per head hd values of q, then hd of gate.
    const qg = new Float32Array((gated ? 2 : 1) * qWidth);
    const q = new Float32Array(qWidth);
    const att = new Float32Array(pos + 1);
    const attOut = new Float32Array(qWidth);
    for (let l = 0; l < c.nLayers; l++) {
      const L = this.layers[l]!;
      const plan = plans[l]!;
      const ffnDim = plan.ffnDim;
      const gate = new Float32Array(ffnDim);
      const up = new Float32Array(ffnDim);
      if (L.deltaNet) {
        // Qwen3.5's linear attention: norm, the DeltaNet step on its recurrent state, residual.
        rmsnorm(xb, x, L.attnNorm, c.normEps);
        const out = deltaNetStep(c, L.deltaNet, this.deltaNetState[l]!, xb);
        for (let i = 0; i < c.dim; i++) x[i]! += out[i]!;
      } else {
      // This layer's shape (Gemma 4's vary), and the layer whose KV cache it uses.
      const mixer = (plan as AttentionLayer).mixer;
      const hd = mixer.headDim;
      const kvDim = mixer.nKvHeads * hd;
      const group = mixer.nHeads / mixer.nKvHeads;
      const kvFrom = mixer.kvFrom;
      // Attention: norm, project, (Qwen 3) norm q and k per head, rotate (but SmolLM3's NoPE layers), cache, attend, project back, residual.
      rmsnorm(xb, x, L.attnNorm, c.normEps);
      matmul(qg.subarray(0, (gated ? 2 : 1) * mixer.nHeads * hd), xb, L.wq);
      for (let h = 0; h < mixer.nHeads; h++) q.set(qg.subarray(h * (gated ? 2 : 1) * hd, (h * (gated ? 2 : 1) + 1) * hd), h * hd);
      const ownKv = kvFrom === l;
      const k = ownKv ? this.keyCache[l]!.subarray(pos * kvDim, (pos + 1) * kvDim) : new Float32Array(0);
      const v = ownKv ? this.valueCache[l]!.subarray(pos * kvDim, (pos + 1) * kvDim) : new Float32Array(0);
      if (ownKv) {
        matmul(k, xb, L.wk);
        matmul(v, xb, L.wv);
      }
      // Gemma 4: V normed per head, no weight.
      if (mixer.vNorm) for (let h = 0; h < v.length / hd; h++) rmsnorm(v.subarray(h * hd, (h + 1) * hd), v.subarray(h * hd, (h + 1) * hd), new Float32Array(hd).fill(1), c.normEps);
      if (L.bq && L.bk && L.bv) {
        for (let i = 0; i < q.length; i++) q[i]! += L.bq[i]!;
        for (let i = 0; i < k.length; i++) k[i]! += L.bk[i]!;
        for (let i = 0; i < v.length; i++) v[i]! += L.bv[i]!;
      }
      if (L.qNorm && L.kNorm) {
        for (let h = 0; h < mixer.nHeads; h++) rmsnorm(q.subarray(h * hd, (h + 1) * hd), q.subarray(h * hd, (h + 1) * hd), L.qNorm, c.normEps);
        for (let h = 0; h < k.length / hd; h++) rmsnorm(k.subarray(h * hd, (h + 1) * hd), k.subarray(h * hd, (h + 1) * hd), L.kNorm, c.normEps);
      }
      const neox = c.ropeStyle === 'neox';
      const qh = q.subarray(0, mixer.nHeads * hd);
      if (mixer.windowRope) {
        // Gemma 3's windowed layers: their own base, no factors, no scaling.
        rope(qh, pos, hd, mixer.ropeDim, c.windowRopeTheta, undefined, neox);
        rope(k, pos, hd, mixer.ropeDim, c.windowRopeTheta, undefined, neox);
      } else if (mixer.rope) {
        // A pair that text tokens leave unrotated (M-RoPE's fourth section) turns by angle 0.
        const factors = Array.from({ length: mixer.ropeDim / 2 }, (_, i) => (c.ropeUnrotatedPairs.includes(i) ? Infinity : (this.freqFactors?.[i] ?? 1) * c.ropeLinearScale));
        rope(qh, pos, hd, mixer.ropeDim, c.ropeTheta, factors, neox, c.ropeAttnFactor);
        rope(k, pos, hd, mixer.ropeDim, c.ropeTheta, factors, neox, c.ropeAttnFactor);
      }
      const window = layerWindow(c, l);
      for (let h = 0; h < mixer.nHeads; h++) {
        const kvh = Math.floor(h / group);
        for (let t = 0; t <= pos; t++) {
          let s = 0;
          for (let i = 0; i < hd; i++) s += q[h * hd + i]! * this.keyCache[kvFrom]![t * kvDim + kvh * hd + i]!;
          s *= c.attnScale;
          if (c.attnSoftcap) s = c.attnSoftcap * Math.tanh(s / c.attnSoftcap);
          att[t] = window && pos - t >= window ? -Infinity : s;
        }
        softmax(att);
        for (let i = 0; i < hd; i++) {
          let s = 0;
          for (let t = 0; t <= pos; t++) s += att[t]! * this.valueCache[kvFrom]![t * kvDim + kvh * hd + i]!;
          attOut[h * hd + i] = gated ? s * sigmoid(qg[(2 * h + 1) * hd + i]!) : s;
        }
      }
      matmul(xb, attOut.subarray(0, mixer.nHeads * hd), L.wo);
      residual(xb, L.postAttnNorm);
      }
      // Feed-forward: norm, SwiGLU (GeGLU for Gemma), project back, residual.
      rmsnorm(xb, x, L.ffnNorm, c.normEps);
      matmul(gate, xb, L.wGate);
      matmul(up, xb, L.wUp);
      for (let i = 0; i < ffnDim; i++) gate[i] = (c.activation === 'gelu' ? gelu(gate[i]!) : gate[i]! / (1 + Math.exp(-gate[i]!))) * up[i]!;
      matmul(xb, gate, L.wDown);
      residual(xb, L.postFfnNorm);
      // Gemma 4: the layer's per-layer input, gated by the residual stream, projected back.
      if (L.pleGate && L.pleProj && L.plePostNorm && pleInputs) {
        const n = c.perLayerInput;
        const g = new Float32Array(n);
        matmul(g, x, L.pleGate);
        for (let i = 0; i < n; i++) g[i] = gelu(g[i]!) * pleInputs[l * n + i]!;
        matmul(xb, g, L.pleProj);
        residual(xb, L.plePostNorm);
      }
      if (L.outScale !== undefined) for (let i = 0; i < c.dim; i++) x[i]! *= L.outScale;
    }
    rmsnorm(x, x, this.outputNorm, c.normEps);
    const logits = new Float32Array(c.vocabSize);
    matmul(logits, x, this.output);
    if (c.finalSoftcap) logits.forEach((v, i) => (logits[i] = c.finalSoftcap * Math.tanh(v / c.finalSoftcap)));
    return logits;
  }
}

/**
 * Gemma 4's per-layer inputs of one token, all layers: (rmsnorm(W · x / sqrt(dim)) per layer's
 * slice + table row * sqrt(width)) / sqrt(2), x the scaled token embedding.
 */
function perLayerInputs(c: ModelConfig, e: PerLayerEmbeddings, token: number, x: Float32Array): Float32Array {
  const n = c.perLayerInput;
  const all = n * c.nLayers;
  const proj = new Float32Array(all);
  matmul(proj, x, e.modelProj);
  const out = new Float32Array(all);
  for (let l = 0; l < c.nLayers; l++) {
    const slice = proj.subarray(l * n, (l + 1) * n).map((v) => v / Math.sqrt(c.dim));
    rmsnorm(slice, slice, e.projNorm, c.normEps);
    for (let i = 0; i < n; i++) out[l * n + i] = (slice[i]! + e.table[token * all + l * n + i]! * Math.sqrt(n)) / Math.SQRT2;
  }
  return out;
}

export function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** ggml's softplus: log(1 + e^x), x itself above 20. */
export function softplus(x: number): number {
  return x > 20 ? x : Math.log(1 + Math.exp(x));
}

/**
 * One token through a Gated DeltaNet layer (llama.cpp's qwen35 build_layer_attn_linear and
 * delta-net-base's autoregressive form), from the normalized input `h`; returns what it adds to
 * the residual stream and advances `state`.
 */
export function deltaNetStep(c: ModelConfig, w: DeltaNetWeights, state: DeltaNetState, h: Float32Array): Float32Array {
  const d = c.deltaNet!;
  const S = d.state, keyDim = d.kHeads * S, valueDim = d.vHeads * S, convDim = 2 * keyDim + valueDim, K = d.convKernel;
  const qkv = new Float32Array(convDim), z = new Float32Array(valueDim), beta = new Float32Array(d.vHeads), alpha = new Float32Array(d.vHeads);
  matmul(qkv, h, w.wqkv);
  matmul(z, h, w.wz);
  matmul(beta, h, w.wBeta);
  matmul(alpha, h, w.wAlpha);
  // Causal conv over the last K inputs (the K-1 in the state, oldest first, then this one), SiLU.
  const conv = new Float32Array(convDim);
  for (let ch = 0; ch < convDim; ch++) {
    let s = 0;
    for (let k = 0; k < K - 1; k++) s += state.conv[k * convDim + ch]! * w.conv[ch * K + k]!;
    s += qkv[ch]! * w.conv[ch * K + K - 1]!;
    conv[ch] = s / (1 + Math.exp(-s));
  }
  state.conv.copyWithin(0, convDim);
  state.conv.set(qkv, (K - 2) * convDim);
  const l2 = (v: Float32Array) => {
    let ss = 0;
    for (const x of v) ss += x * x;
    const scale = 1 / Math.max(Math.sqrt(ss), c.normEps);
    return v.map((x) => x * scale);
  };
  const y = new Float32Array(valueDim);
  for (let hv = 0; hv < d.vHeads; hv++) {
    const kh = hv % d.kHeads;
    const q = l2(conv.slice(kh * S, (kh + 1) * S)).map((x) => x / Math.sqrt(S));
    const k = l2(conv.slice(keyDim + kh * S, keyDim + (kh + 1) * S));
    const v = conv.subarray(2 * keyDim + hv * S, 2 * keyDim + (hv + 1) * S);
    const b = sigmoid(beta[hv]!);
    const decay = Math.exp(softplus(alpha[hv]! + w.dtBias[hv]!) * w.a[hv]!);
    const M = state.matrix.subarray(hv * S * S, (hv + 1) * S * S); // M[i * S + j]: i key dim, j value dim
    const o = new Float32Array(S);
    for (let j = 0; j < S; j++) {
      let sk = 0;
      for (let i = 0; i < S; i++) sk += (M[i * S + j]! *= decay) * k[i]!;
      const delta = (v[j]! - sk) * b;
      let out = 0;
      for (let i = 0; i < S; i++) out += (M[i * S + j]! += k[i]! * delta) * q[i]!;
      o[j] = out;
    }
    // Gated RMSNorm per head: rms(o) * norm * silu(z).
    rmsnorm(o, o, w.norm, c.normEps);
    for (let j = 0; j < S; j++) {
      const zj = z[hv * S + j]!;
      y[hv * S + j] = o[j]! * (zj / (1 + Math.exp(-zj)));
    }
  }
  const out = new Float32Array(c.dim);
  matmul(out, y, w.wOut);
  return out;
}

/** GELU, tanh approximation (as ggml_gelu). */
export function gelu(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * x * (1 + 0.044715 * x * x)));
}

export function rmsnorm(out: Float32Array, x: Float32Array, w: Float32Array, eps: number): void {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i]! * x[i]!;
  const scale = 1 / Math.sqrt(ss / x.length + eps);
  for (let i = 0; i < x.length; i++) out[i] = x[i]! * scale * w[i]!;
}

/** out[r] = sum_c W[r][c] * x[c], with W stored row-major as [out.length][x.length]. */
export function matmul(out: Float32Array, x: Float32Array, w: Float32Array): void {
  const n = x.length;
  for (let r = 0; r < out.length; r++) {
    let s = 0;
    for (let c = 0; c < n; c++) s += w[r * n + c]! * x[c]!;
    out[r] = s;
  }
}

/**
 * GGUF's llama RoPE: rotate adjacent pairs (x[2i], x[2i+1]) by pos * theta^(-2i/ropeDim), divided
 * by the pair's freq factor when the model has them (Llama 3, Phi-3.5), with cos and sin scaled by
 * `scale` (LongRoPE's attention factor).
 */
export function rope(v: Float32Array, pos: number, headDim: number, ropeDim: number, theta: number, factors?: ArrayLike<number>, neox = false, scale = 1): void {
  for (let h = 0; h < v.length / headDim; h++) {
    for (let i = 0; i < ropeDim; i += 2) {
      const angle = (pos * Math.pow(theta, -i / ropeDim)) / (factors?.[i / 2] ?? 1);
      const cos = scale * Math.cos(angle), sin = scale * Math.sin(angle);
      // NEOX pairs element i/2 with i/2 + ropeDim/2; GGUF's llama pairs i with i + 1.
      const i0 = h * headDim + (neox ? i / 2 : i);
      const i1 = i0 + (neox ? ropeDim / 2 : 1);
      const a = v[i0]!, b = v[i1]!;
      v[i0] = a * cos - b * sin;
      v[i1] = a * sin + b * cos;
    }
  }
}

export function softmax(x: Float32Array): void {
  let max = -Infinity;
  for (const v of x) max = Math.max(max, v);
  let sum = 0;
  for (let i = 0; i < x.length; i++) { x[i] = Math.exp(x[i]! - max); sum += x[i]!; }
  for (let i = 0; i < x.length; i++) x[i]! /= sum;
}

export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}
