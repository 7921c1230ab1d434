/**
 * The f32 CPU reference forward pass, in the style of llama2.c's run.c: one token at a time, every
 * step written out. It dequantizes every tensor with the CPU reference of its format, so it
 * checks the kernels and the repacked layouts, not just the arithmetic.
 */
import { readTensorChunks, type GGUFFile } from '../../src/gguf/gguf.js';
import { layerPlans, layerWindow, matrixViews, PER_LAYER_TABLE, readConfig, ropeFactorTensor, tensor, type ModelConfig } from '../../src/model/config.js';
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
  /** Gemma 4's per-layer embedding block (gate, projection, post-norm) and output scale. */
  pleGate?: Float32Array; pleProj?: Float32Array; plePostNorm?: Float32Array; outScale?: number;
}

/** Gemma 4's per-layer embeddings: the table, and the projection of the residual stream. */
interface PerLayerEmbeddings { table: Float32Array; modelProj: Float32Array; projNorm: Float32Array }

export class ReferenceModel {
  private keyCache: Float32Array[];
  private valueCache: Float32Array[];
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
    const plans = layerPlans(config);
    const size = (l: number) => (plans[l]!.mixer.kvFrom === l ? config.contextLength * plans[l]!.mixer.nKvHeads * plans[l]!.mixer.headDim : 0);
    this.keyCache = layers.map((_, l) => new Float32Array(size(l)));
    this.valueCache = layers.map((_, l) => new Float32Array(size(l)));
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
    const plans = layerPlans(c);
    for (let l = 0; l < c.nLayers; l++) {
      const p = `blk.${l}.`;
      // Gemma 4: layers that share an earlier layer's KV project no k or v; without attn_v, v is k's projection.
      const ownKv = plans[l]!.mixer.kvFrom === l;
      const wk = ownKv ? await get(p + 'attn_k.weight') : new Float32Array(0);
      layers.push({
        attnNorm: await get(p + 'attn_norm.weight'), wq: await get(p + 'attn_q.weight'),
        wk, wv: ownKv && !c.valueFromKey ? await get(p + 'attn_v.weight') : wk,
        wo: await get(p + 'attn_output.weight'), ffnNorm: await get(p + 'ffn_norm.weight'),
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
    const qWidth = Math.max(...plans.map((p) => p.mixer.nHeads * p.mixer.headDim));
    const q = new Float32Array(qWidth);
    const att = new Float32Array(pos + 1);
    const attOut = new Float32Array(qWidth);
    for (let l = 0; l < c.nLayers; l++) {
      const L = this.layers[l]!;
      // This layer's shape (Gemma 4's vary), and the layer whose KV cache it uses.
      const mixer = plans[l]!.mixer;
      const hd = mixer.headDim;
      const kvDim = mixer.nKvHeads * hd;
      const group = mixer.nHeads / mixer.nKvHeads;
      const kvFrom = mixer.kvFrom;
      const ffnDim = plans[l]!.ffnDim;
      const gate = new Float32Array(ffnDim);
      const up = new Float32Array(ffnDim);
      // Attention: norm, project, (Qwen 3) norm q and k per head, rotate (but SmolLM3's NoPE layers), cache, attend, project back, residual.
      rmsnorm(xb, x, L.attnNorm, c.normEps);
      matmul(q.subarray(0, mixer.nHeads * hd), xb, L.wq);
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
        const factors = Array.from({ length: mixer.ropeDim / 2 }, (_, i) => (this.freqFactors?.[i] ?? 1) * c.ropeLinearScale);
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
          attOut[h * hd + i] = s;
        }
      }
      matmul(xb, attOut.subarray(0, mixer.nHeads * hd), L.wo);
      residual(xb, L.postAttnNorm);
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
