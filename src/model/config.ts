import { ModelFormatError } from '../errors.js';
import { metaArray, metaNumber, metaString, type GGUFFile, type TensorInfo } from '../gguf/gguf.js';

export const SUPPORTED_ARCHITECTURES = ['llama', 'qwen2', 'qwen3', 'smollm3', 'phi3', 'gemma', 'gemma2', 'gemma3', 'qwen35', 'gemma4', 'gemma-embedding'] as const;

/** How an embedding model's output rows become one vector: their mean, the first (CLS) or the last. */
export type Pooling = 'mean' | 'cls' | 'last';

/** llama.cpp's LLAMA_POOLING_TYPE_* values, as `<arch>.pooling_type` holds them. */
const POOLING_TYPES: Record<number, Pooling | 'none' | 'rank'> = { 0: 'none', 1: 'mean', 2: 'cls', 3: 'last', 4: 'rank' };

/**
 * The file's `<arch>.pooling_type`: undefined when absent, 'none' (a vector per token) and 'rank'
 * (a reranker's score) as they are, for the caller to refuse.
 */
export function readPooling(file: GGUFFile): Pooling | 'none' | 'rank' | undefined {
  const arch = metaString(file, 'general.architecture') ?? '';
  const value = file.metadata.get(`${arch}.pooling_type`);
  if (value === undefined) return undefined;
  const pooling = POOLING_TYPES[Number(value)];
  if (pooling === undefined) throw new ModelFormatError('malformed', `${file.source.name}: unknown ${arch}.pooling_type ${String(value)}`);
  return pooling;
}

interface ArchitectureTraits {
  qkvBias: boolean;
  ropeStyle: 'adjacent' | 'neox';
  /** q, k and v come as one tensor attn_qkv (rows q, then k, then v). */
  fusedQkv: boolean;
  /** gate and up come as one tensor ffn_up (rows gate, then up). */
  fusedGateUp: boolean;
  /** The gate's activation: silu (SwiGLU) or tanh-approximated gelu (GeGLU). */
  activation: 'silu' | 'gelu';
  /** Token embeddings are multiplied by sqrt(dim) (Gemma). */
  scaleEmbedding: boolean;
  /** RMSNorms on the attention and FFN outputs before each residual add (Gemma 2). */
  postNorms: boolean;
  /** Attention scores and final logits are soft-capped, caps from the metadata (Gemma 2). */
  softcapping: boolean;
  /**
   * q and k are RMS-normalized per head (weights attn_q_norm, attn_k_norm of one head's width,
   * shared by all heads) after their projections and before RoPE (Qwen 3).
   */
  qkNorm: boolean;
  /**
   * Every `noRopeLayerStep`-th layer (layer index + 1 a multiple of it) runs without RoPE (SmolLM3's
   * NoPE layers: 4, hard-coded in llama.cpp, no GGUF key); 0: every layer rotates.
   */
  noRopeLayerStep: number;
  /**
   * The RoPE base of the layers with a sliding window (Gemma 3: 10000, hard-coded in llama.cpp,
   * and never scaled); 0: they use the model's rope.freq_base like every other layer.
   */
  windowRopeTheta: number;
  /**
   * How the architecture reads `attention.sliding_window`: the layers it applies to (llama.cpp's
   * swa pattern: 0 every layer, p > 0 the first p - 1 of every p layers) and the window when the
   * key is absent (0: none; undefined: the key is required, as for Gemma 3). null: the key is
   * ignored, as llama.cpp ignores it (Qwen2, Phi-3).
   */
  window: { pattern: number; fallback: number | undefined } | null;
  /**
   * Qwen3.5's hybrid: Gated DeltaNet layers (linear attention with a recurrent state, `ssm.*`
   * keys) between gated full-attention layers (q and a sigmoid output gate from one projection),
   * and the feed-forward's input norm named post_attention_norm. See DeltaNetConfig.
   */
  hybridDeltaNet: boolean;
  /**
   * Gemma 4: V is RMS-normalized per head (no weight); the attention scale is 1 (q and k are
   * normed); the windowed layers' RoPE base, head width and rotary width come from the *_swa keys,
   * which layers are windowed from attention.sliding_window_pattern (a bool per layer); the last
   * attention.shared_kv_layers layers reuse earlier layers' KV caches; per-layer embeddings
   * (embedding_length_per_layer_input) and per-layer output scales; the final soft-cap from
   * final_logit_softcapping when the file has it.
   */
  gemma4: boolean;
  /**
   * Every token sees every other token of its input, no causal mask (EmbeddingGemma); windowed
   * layers see the positions within half the window either side (llama.cpp's symmetric SWA).
   */
  bidirectional: boolean;
}

/**
 * What differs between the supported architectures. Qwen2 is Llama with biases on the q/k/v
 * projections and NEOX-style RoPE (llama.cpp's LLAMA_ROPE_TYPE_NEOX). Phi-3 is Llama with fused
 * q/k/v and gate/up tensors, NEOX RoPE and (Phi-3.5) LongRoPE factors. Phi-3's sliding window is
 * ignored, as llama.cpp does (Phi-4-mini is the same architecture, with its output tied to the
 * embedding and RoPE on only part of each head). Qwen 3 is Llama with NEOX RoPE and per-head
 * RMSNorms on q and k; SmolLM3 is Llama with RoPE skipped on every fourth layer.
 */
const LLAMA: ArchitectureTraits = {
  qkvBias: false, ropeStyle: 'adjacent', fusedQkv: false, fusedGateUp: false, activation: 'silu', scaleEmbedding: false, postNorms: false,
  softcapping: false, qkNorm: false, noRopeLayerStep: 0, windowRopeTheta: 0, hybridDeltaNet: false, gemma4: false, bidirectional: false,
  // Mistral's window, when a file has one, applies to every layer.
  window: { pattern: 0, fallback: 0 },
};
const ARCHITECTURE_TRAITS: Record<(typeof SUPPORTED_ARCHITECTURES)[number], ArchitectureTraits> = {
  llama: LLAMA,
  qwen2: { ...LLAMA, qkvBias: true, ropeStyle: 'neox', window: null },
  qwen3: { ...LLAMA, ropeStyle: 'neox', qkNorm: true, window: null },
  smollm3: { ...LLAMA, noRopeLayerStep: 4, window: null },
  phi3: { ...LLAMA, ropeStyle: 'neox', fusedQkv: true, fusedGateUp: true, window: null },
  // GGUF stores Gemma's norm weights with the +1 already added, so they apply as they are.
  gemma: { ...LLAMA, ropeStyle: 'neox', activation: 'gelu', scaleEmbedding: true, window: null },
  gemma2: {
    ...LLAMA, ropeStyle: 'neox', activation: 'gelu', scaleEmbedding: true, postNorms: true, softcapping: true, window: { pattern: 2, fallback: 4096 },
  },
  // Gemma 3: Gemma 2 with per-head q/k norms instead of soft-capping, and five windowed layers
  // (RoPE base 10000) to each global one.
  gemma3: {
    ...LLAMA, ropeStyle: 'neox', activation: 'gelu', scaleEmbedding: true, postNorms: true, qkNorm: true, window: { pattern: 6, fallback: undefined }, windowRopeTheta: 10000,
  },
  // EmbeddingGemma: Gemma 3's blocks without the causal mask (llama.cpp's gemma-embedding; the
  // windowed layers' RoPE base from rope.freq_base_swa, 10000 without it), mean-pooled.
  'gemma-embedding': {
    ...LLAMA, ropeStyle: 'neox', activation: 'gelu', scaleEmbedding: true, postNorms: true, qkNorm: true, window: { pattern: 6, fallback: undefined }, windowRopeTheta: 10000,
    bidirectional: true,
  },
  // Qwen3.5 (dense): Gated DeltaNet layers and, every full_attention_interval-th layer, Qwen 3's
  // attention (NEOX RoPE on part of each head, q/k norms) with an output gate.
  qwen35: { ...LLAMA, ropeStyle: 'neox', qkNorm: true, window: null, hybridDeltaNet: true },
  // Gemma 4: Gemma 3's blocks plus what the gemma4 trait says (windowRopeTheta read from the file).
  gemma4: {
    ...LLAMA, ropeStyle: 'neox', activation: 'gelu', scaleEmbedding: true, postNorms: true, qkNorm: true, window: { pattern: 0, fallback: undefined }, gemma4: true,
  },
};

/**
 * A Gated DeltaNet layer's sizes (llama.cpp's ssm_* hparams): q and k have `kHeads` heads, v and
 * the recurrent state `vHeads`, all `state` wide (value head v reads q/k head v % kHeads, as
 * ggml_repeat tiles them); the causal conv over q/k/v has `convKernel` taps.
 */
export interface DeltaNetConfig {
  convKernel: number;
  state: number;
  kHeads: number;
  vHeads: number;
  /** Which layers are linear attention (the rest are full attention). */
  recurrent: boolean[];
}

/** Hyperparameters of a Llama-family model, read from `llama.*` GGUF metadata. */
export interface ModelConfig extends ArchitectureTraits {
  architecture: string;
  dim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  ffnDim: number;
  vocabSize: number;
  contextLength: number;
  normEps: number;
  ropeTheta: number;
  /**
   * Linear RoPE scaling (rope.scaling.type linear): positions divided by this factor (1: none).
   * Gemma 3's windowed layers are never scaled.
   */
  ropeLinearScale: number;
  /** Dimensions per head that RoPE rotates (GGUF `rope.dimension_count`). */
  ropeDim: number;
  /** Output head shares the token embedding. */
  tiedOutput: boolean;
  /**
   * Per-frequency RoPE divisors (ggml's freq_factors): Llama 3's rope_freqs.weight, or Phi-3.5's
   * LongRoPE pair, rope_factors_short.weight up to `ropeOriginalContext` positions and
   * rope_factors_long.weight beyond. Absent: none.
   */
  ropeFactors: { short: string; long?: string } | undefined;
  ropeOriginalContext: number;
  /** Scales RoPE's cos and sin (LongRoPE's attention factor; 1 otherwise). */
  ropeAttnFactor: number;
  /** Attention scores and final logits soft-capped as cap * tanh(x / cap) (Gemma 2); 0: off. */
  attnSoftcap: number;
  finalSoftcap: number;
  /** Attention scores are q·k times this: 1/sqrt(head width), but see readConfig. */
  attnScale: number;
  /**
   * Sliding-window attention: windowed layers see only the last `slidingWindow` positions (0: no
   * window anywhere). Which layers, as llama.cpp's swa pattern: 0 every layer (Mistral, written as
   * llama.attention.sliding_window), 2 every other layer from the first (Gemma 2). See layerWindow.
   */
  slidingWindow: number;
  swaPattern: number;
  /** Qwen3.5's linear-attention layers; undefined for the other architectures. */
  deltaNet: DeltaNetConfig | undefined;
  /**
   * Rotated pairs that text tokens leave unrotated: with M-RoPE sections (Qwen3.5), text positions
   * are (p, p, p, 0), so pairs of the fourth section (or past the three) turn by position 0.
   */
  ropeUnrotatedPairs: number[];
  /**
   * What varies by layer (Gemma 4: head counts and widths, rotary widths, FFN widths, which layers
   * are windowed); the model-wide fields above are the largest (head widths, FFN widths) or the
   * full-attention layers' (rotary width). Uniform for the other architectures.
   */
  layers: LayerShape[];
  /** RoPE dimensions of the windowed layers' table (Gemma 4's rope.dimension_count_swa; else ropeDim). */
  windowRopeDim: number;
  /** Layers from this one on reuse an earlier layer's KV cache (Gemma 4's shared KV); nLayers: none do. */
  kvSharedFrom: number;
  /** Width of the per-layer embeddings (Gemma 4); 0: none. */
  perLayerInput: number;
  /** Each layer's output is scaled by its blk.N.layer_output_scale (Gemma 4). */
  layerOutputScale: boolean;
  /** No attn_v: values are the key projection (Gemma 4's attention_k_eq_v). */
  valueFromKey: boolean;
  /** V is RMS-normalized per head, without a weight (Gemma 4). */
  valueNorm: boolean;
  /**
   * An embedding model's pooling (`<arch>.pooling_type`: Qwen3-Embedding's last token,
   * EmbeddingGemma's mean); undefined for a text model.
   */
  pooling: Pooling | undefined;
  /**
   * Sentence-transformers' dense projections after pooling (EmbeddingGemma's dense_2.weight, dim to
   * `hidden`, then dense_3.weight back to dim, no activation); undefined: none in the file.
   */
  denseOut: { hidden: number } | undefined;
}

/** One layer's attention and feed-forward shape. */
export interface LayerShape {
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  ropeDim: number;
  ffnDim: number;
  /** Whether the layer attends within the sliding window. */
  windowed: boolean;
}

export function readConfig(file: GGUFFile): ModelConfig {
  const name = file.source.name;
  const arch = metaString(file, 'general.architecture');
  if (arch === undefined) throw new ModelFormatError('malformed', `${name}: missing general.architecture`);
  if (arch === 'qwen35moe') {
    throw new ModelFormatError('unsupported-architecture', `${name}: architecture "qwen35moe" (Qwen3.5's mixture-of-experts variant) is not supported; the dense Qwen3.5 models (qwen35) are`);
  }
  if (!(SUPPORTED_ARCHITECTURES as readonly string[]).includes(arch)) {
    throw new ModelFormatError(
      'unsupported-architecture',
      `${name}: architecture "${arch}" is not supported (supported: ${SUPPORTED_ARCHITECTURES.join(', ')})`,
    );
  }
  const traits = ARCHITECTURE_TRAITS[arch as keyof typeof ARCHITECTURE_TRAITS];
  // Gemma 4's 26B-A4B mixture of experts is the same architecture name with experts in its FFNs.
  if (traits.gemma4 && (metaNumber(file, 'gemma4.expert_count', 0) > 0 || file.tensors.some((t) => t.name.includes('ffn_gate_inp')))) {
    throw new ModelFormatError('unsupported-architecture', `${name}: Gemma 4's mixture-of-experts variant (gemma4 with expert_count > 0) is not supported; its dense models (E2B, E4B) are`);
  }
  // Gemma 4 may give head counts and FFN widths per layer (readGemma4); the model-wide value is the largest.
  const k = (key: string, fallback?: number) => {
    const v = file.metadata.get(`${arch}.${key}`);
    return traits.gemma4 && typeof v === 'object' && v !== null && 'length' in v && v.length ? Math.max(...Array.from(v as ArrayLike<number>, Number)) : metaNumber(file, `${arch}.${key}`, fallback);
  };
  const dim = k('embedding_length');
  const nHeads = k('attention.head_count');
  const nKvHeads = k('attention.head_count_kv', nHeads);
  const embd = tensor(file, 'token_embd.weight');
  // Gemma's heads are not dim / heads wide: attention.key_length says so.
  const headDim = k('attention.key_length', dim / nHeads);
  const config: ModelConfig = {
    architecture: arch,
    dim,
    nLayers: k('block_count'),
    nHeads,
    nKvHeads,
    headDim,
    ffnDim: k('feed_forward_length'),
    vocabSize: embd.dims[1] ?? 0,
    contextLength: k('context_length'),
    normEps: k('attention.layer_norm_rms_epsilon', 1e-5),
    ropeTheta: k('rope.freq_base', 10000),
    ropeLinearScale: metaString(file, `${arch}.rope.scaling.type`) === 'linear' ? k('rope.scaling.factor', 1) : 1,
    ropeDim: k('rope.dimension_count', headDim),
    tiedOutput: !file.tensors.some((t) => t.name === 'output.weight'),
    ropeFactors: ropeFactors(file),
    ropeOriginalContext: k('rope.scaling.original_context_length', k('context_length')),
    ropeAttnFactor: k('rope.scaling.attn_factor', 1),
    attnSoftcap: traits.softcapping ? k('attn_logit_softcapping', 50) : 0,
    finalSoftcap: traits.softcapping ? k('final_logit_softcapping', 30) : 0,
    // Gemma 3 27B scales by 1/sqrt(dim / heads) (its query_pre_attn_scalar, 168, not its head
    // width, 128); llama.cpp tells the 27B by its 62 layers.
    attnScale: arch === 'gemma3' && k('block_count') === 62 ? 1 / Math.sqrt(dim / nHeads) : 1 / Math.sqrt(headDim),
    slidingWindow: traits.window ? k('attention.sliding_window', traits.window.fallback) : 0,
    swaPattern: traits.window?.pattern ?? 0,
    deltaNet: traits.hybridDeltaNet ? readDeltaNet(file, arch, k('block_count')) : undefined,
    ropeUnrotatedPairs: unrotatedPairs(file, arch, k('rope.dimension_count', headDim) / 2),
    layers: [],
    windowRopeDim: k('rope.dimension_count', headDim),
    kvSharedFrom: k('block_count'),
    perLayerInput: 0,
    layerOutputScale: false,
    valueFromKey: false,
    valueNorm: false,
    pooling: undefined,
    denseOut: undefined,
    ...traits,
  };
  readEmbeddingHead(file, config);
  config.layers = Array.from({ length: config.nLayers }, (_, l) => ({
    nHeads, nKvHeads, headDim, ropeDim: config.ropeDim, ffnDim: config.ffnDim, windowed: layerWindow(config, l) > 0,
  }));
  if (traits.gemma4) readGemma4(file, config);
  const positive = ['dim', 'nLayers', 'nHeads', 'nKvHeads', 'ffnDim', 'vocabSize', 'contextLength'] as const;
  for (const key of positive) {
    if (!Number.isInteger(config[key]) || config[key] <= 0 || config[key] > 1 << 24) {
      throw new ModelFormatError('malformed', `${name}: invalid ${key} ${config[key]}`);
    }
  }
  if (!Number.isInteger(config.headDim) || config.headDim % 2 || nHeads % nKvHeads) {
    throw new ModelFormatError('shape-mismatch', `${name}: ${dim} dims do not split into ${nHeads} heads over ${nKvHeads} KV heads`);
  }
  if (k('attention.value_length', config.headDim) !== config.headDim) {
    throw new ModelFormatError('shape-mismatch', `${name}: value heads of ${k('attention.value_length')} differ from key heads of ${config.headDim}`);
  }
  if (config.headDim > MAX_HEAD_DIM) throw new ModelFormatError('shape-mismatch', `${name}: head size ${config.headDim} is above the supported ${MAX_HEAD_DIM}`);
  if (!(config.ropeLinearScale > 0)) throw new ModelFormatError('malformed', `${name}: invalid rope.scaling.factor ${config.ropeLinearScale}`);
  if (config.ropeDim > config.headDim || config.ropeDim % 2) throw new ModelFormatError('malformed', `${name}: invalid rope.dimension_count ${config.ropeDim}`);
  // A token without an embedding row would read past the matrix (llama.cpp refuses it too).
  const tokens = file.metadata.get('tokenizer.ggml.tokens');
  if (typeof tokens === 'object' && tokens !== null && 'length' in tokens && tokens.length > config.vocabSize) {
    throw new ModelFormatError('shape-mismatch', `${name}: the vocabulary has ${tokens.length} tokens but token_embd.weight has ${config.vocabSize} rows`);
  }
  checkShapes(file, config);
  return config;
}

/**
 * An embedding model's head: its pooling, and EmbeddingGemma's settings (the windowed layers'
 * RoPE base and swa period from the file, mean pooling unless it says otherwise, the dense
 * projections where the converter kept them).
 */
function readEmbeddingHead(file: GGUFFile, c: ModelConfig): void {
  const name = file.source.name;
  const pooling = readPooling(file);
  // 'none' and 'rank' give no vector per input: such a file is no embedding model here.
  c.pooling = pooling === 'none' || pooling === 'rank' ? undefined : pooling;
  if (!c.bidirectional) return;
  const arch = c.architecture;
  c.pooling ??= 'mean';
  c.windowRopeTheta = metaNumber(file, `${arch}.rope.freq_base_swa`, c.windowRopeTheta);
  const period = file.metadata.get(`${arch}.attention.sliding_window_pattern`);
  if (typeof period === 'number' || typeof period === 'bigint') c.swaPattern = Number(period);
  const dense2 = file.tensors.find((t) => t.name === 'dense_2.weight');
  if (dense2) c.denseOut = { hidden: dense2.dims[1] ?? 0 };
  if (file.tensors.some((t) => t.name === 'dense_2.bias')) throw new ModelFormatError('unsupported-architecture', `${name}: dense_2.bias (a biased dense projection) is not supported`);
  if (!dense2 !== !file.tensors.some((t) => t.name === 'dense_3.weight')) throw new ModelFormatError('malformed', `${name}: dense_2.weight and dense_3.weight come together`);
}

function readDeltaNet(file: GGUFFile, arch: string, nLayers: number): DeltaNetConfig {
  const name = file.source.name;
  const k = (key: string, fallback?: number) => metaNumber(file, `${arch}.${key}`, fallback);
  const d = { convKernel: k('ssm.conv_kernel'), state: k('ssm.state_size'), kHeads: k('ssm.group_count'), vHeads: k('ssm.time_step_rank') };
  for (const [key, v] of Object.entries(d)) {
    if (!Number.isInteger(v) || v <= 0 || v > 1 << 16) throw new ModelFormatError('malformed', `${name}: invalid ssm ${key} ${v}`);
  }
  if (d.vHeads % d.kHeads) throw new ModelFormatError('shape-mismatch', `${name}: ${d.vHeads} value heads do not split over ${d.kHeads} key heads`);
  if (k('ssm.inner_size') !== d.vHeads * d.state) throw new ModelFormatError('shape-mismatch', `${name}: ssm.inner_size ${k('ssm.inner_size')} is not ${d.vHeads} value heads x ${d.state}`);
  // The state kernel keeps a column of a head's state per invocation (shaders/delta_net.wgsl).
  if (d.state > 256 || d.state % 4) throw new ModelFormatError('shape-mismatch', `${name}: ssm.state_size ${d.state} is not a multiple of 4 up to 256`);
  if (d.convKernel > 8) throw new ModelFormatError('shape-mismatch', `${name}: ssm.conv_kernel ${d.convKernel} is above the supported 8`);
  // llama.cpp: attention.recurrent_layers (newer files) or every full_attention_interval-th layer
  // is full attention (default 4).
  const listed = metaArray(file, `${arch}.attention.recurrent_layers`);
  let recurrent: boolean[];
  if (listed && listed.length === nLayers) {
    recurrent = Array.from(listed as ArrayLike<unknown>, (v) => Boolean(v));
  } else {
    const interval = k('full_attention_interval', 4);
    if (!Number.isInteger(interval) || interval < 1) throw new ModelFormatError('malformed', `${name}: invalid full_attention_interval ${interval}`);
    recurrent = Array.from({ length: nLayers }, (_, i) => (i + 1) % interval !== 0);
  }
  return { ...d, recurrent };
}

/**
 * ggml's interleaved M-RoPE (LLAMA_ROPE_TYPE_IMROPE) for text tokens, whose positions are
 * (p, p, p, 0): pair i lies in sector i % sum(sections), taken by the first three sections in turn
 * (sector % 3 == 0, 1, 2, while below 3 x that section); any other sector is the fourth's and turns
 * by position 0. Without sections every pair turns by p.
 */
function unrotatedPairs(file: GGUFFile, arch: string, pairs: number): number[] {
  const sections = metaArray(file, `${arch}.rope.dimension_sections`);
  if (!sections || sections.length < 3) return [];
  const s = Array.from(sections as ArrayLike<unknown>, Number);
  const total = s.reduce((a, b) => a + b, 0);
  if (!(total > 0)) return [];
  const out: number[] = [];
  for (let i = 0; i < pairs; i++) {
    const sector = i % total;
    const mod = sector % 3;
    if (!(sector < 3 * s[mod]!)) out.push(i);
  }
  return out;
}

/** Gemma 4's per-layer shapes and extras (see the gemma4 trait); llama.cpp's gemma4.cpp load_arch_hparams. */
function readGemma4(file: GGUFFile, c: ModelConfig): void {
  const name = file.source.name;
  const k = (key: string, fallback?: number) => metaNumber(file, `gemma4.${key}`, fallback);
  // A per-layer key may be one value for every layer or an array of one per layer.
  const perLayer = (key: string, fallback?: number): number[] => {
    const v = file.metadata.get(`gemma4.${key}`);
    if (v === undefined || typeof v === 'number') return new Array<number>(c.nLayers).fill(k(key, fallback));
    const values = Array.from(v as ArrayLike<number | boolean>, Number);
    if (values.length !== c.nLayers || values.some((x) => !Number.isFinite(x))) throw new ModelFormatError('malformed', `${name}: gemma4.${key} has ${values.length} values for ${c.nLayers} layers`);
    return values;
  };
  const windowed = perLayer('attention.sliding_window_pattern').map((x) => x !== 0);
  const heads = perLayer('attention.head_count');
  const kvHeads = perLayer('attention.head_count_kv', c.nKvHeads);
  const ffn = perLayer('feed_forward_length');
  const headSwa = k('attention.key_length_swa');
  if (k('attention.value_length_swa', headSwa) !== headSwa) throw new ModelFormatError('shape-mismatch', `${name}: value heads of the windowed layers differ from their key heads`);
  c.windowRopeDim = k('rope.dimension_count_swa', headSwa);
  c.windowRopeTheta = k('rope.freq_base_swa', c.ropeTheta);
  c.layers = windowed.map((w, l) => ({
    nHeads: heads[l]!, nKvHeads: kvHeads[l]!, headDim: w ? headSwa : c.headDim, ropeDim: w ? c.windowRopeDim : c.ropeDim, ffnDim: ffn[l]!, windowed: w,
  }));
  c.nHeads = Math.max(...heads);
  c.nKvHeads = Math.max(...kvHeads);
  c.ffnDim = Math.max(...ffn);
  c.attnScale = 1;
  c.finalSoftcap = k('final_logit_softcapping', 0);
  c.kvSharedFrom = c.nLayers - k('attention.shared_kv_layers', 0);
  c.perLayerInput = k('embedding_length_per_layer_input', 0);
  const has = (n: string) => file.tensors.some((t) => t.name === n);
  c.layerOutputScale = has('blk.0.layer_output_scale.weight');
  c.valueFromKey = !has('blk.0.attn_v.weight');
  c.valueNorm = true;
  for (const [l, s] of c.layers.entries()) {
    if (!Number.isInteger(s.nHeads) || s.nHeads <= 0 || !Number.isInteger(s.nKvHeads) || s.nKvHeads <= 0 || s.nHeads % s.nKvHeads || !(s.ffnDim > 0) || !Number.isInteger(s.ffnDim)) {
      throw new ModelFormatError('shape-mismatch', `${name}: layer ${l} has ${s.nHeads} heads over ${s.nKvHeads} KV heads and an FFN of ${s.ffnDim}`);
    }
    if (!Number.isInteger(s.headDim) || s.headDim % 2 || s.headDim > MAX_HEAD_DIM || s.ropeDim > s.headDim || s.ropeDim % 2) {
      throw new ModelFormatError('shape-mismatch', `${name}: layer ${l}'s heads of ${s.headDim} (rotary ${s.ropeDim}) are not supported`);
    }
    const donor = kvDonor(c, l);
    const d = c.layers[donor];
    if (!d || (donor !== l && (donor >= c.kvSharedFrom || d.windowed !== s.windowed || d.headDim !== s.headDim || d.nKvHeads !== s.nKvHeads))) {
      throw new ModelFormatError('shape-mismatch', `${name}: layer ${l} cannot share the KV cache of layer ${donor}`);
    }
  }
}

/**
 * The layer whose KV cache layer `layer` attends over: its own, or for Gemma 4's shared layers the
 * last layer with its own cache of the same kind (llama.cpp: n_layer_kv_from_start - 2 for a
 * windowed layer, - 1 for a full one).
 */
export function kvDonor(c: ModelConfig, layer: number): number {
  if (layer < c.kvSharedFrom) return layer;
  return c.kvSharedFrom - (c.layers[layer]!.windowed ? 2 : 1);
}

/** The widest head the attention kernels take (their private arrays are sized to it). */
const MAX_HEAD_DIM = 512;

/**
 * What one layer runs, top to bottom: a block that mixes the tokens (attention over the KV cache),
 * then a feed-forward block. What varies from layer to layer (Gemma 2's alternating window,
 * SmolLM3's layers without RoPE) is resolved here from the architecture's traits, so a block reads
 * one plain record per layer.
 */
export interface LayerPlan {
  index: number;
  /** The prefix of the layer's tensor names. */
  prefix: string;
  mixer: AttentionPlan | DeltaNetPlan;
  /** A gated feed-forward (act(gate) * up, then down); the activation is the model's. */
  feedForward: 'glu';
  ffnDim: number;
  /** After the feed-forward: the per-layer embedding block (Gemma 4), then the output scale. */
  perLayerEmbedding: boolean;
  outputScale: boolean;
  /** The feed-forward's input norm (Qwen3.5 names it post_attention_norm). */
  feedForwardNorm: string;
}

/** A layer whose mixer is attention. */
export type AttentionLayer = LayerPlan & { mixer: AttentionPlan };

export function isAttentionLayer(layer: LayerPlan): layer is AttentionLayer {
  return layer.mixer.kind === 'attention';
}

/** A Gated DeltaNet layer (Qwen3.5's linear attention, blocks/delta-net.ts). */
export interface DeltaNetPlan {
  kind: 'delta-net';
}

export interface AttentionPlan {
  kind: 'attention';
  /** Keys the layer attends to: the last `window` positions, or 0 for the whole context. */
  window: number;
  /** Whether q and k are rotated (false: SmolLM3's NoPE layers). */
  rope: boolean;
  /** RoPE by the windowed layers' own base (`windowRopeTheta`, Gemma 3), not the model's. */
  windowRope: boolean;
  /** q's projection also makes a gate per output value: out *= sigmoid(gate) (Qwen3.5). */
  outputGate: boolean;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  ropeDim: number;
  /** The layer whose KV cache this one reads: itself, or (Gemma 4) an earlier one, and then it writes none. */
  kvFrom: number;
  /** V is RMS-normalized per head (Gemma 4). */
  vNorm: boolean;
}

/** The layers of the model, in order. */
export function layerPlans(c: ModelConfig): LayerPlan[] {
  return Array.from({ length: c.nLayers }, (_, index) => {
    const window = layerWindow(c, index);
    const rope = !(c.noRopeLayerStep && (index + 1) % c.noRopeLayerStep === 0);
    const prefix = `blk.${index}.`;
    const s = c.layers[index]!;
    const feedForwardNorm = prefix + (c.hybridDeltaNet ? 'post_attention_norm.weight' : 'ffn_norm.weight');
    const common = { index, prefix, feedForward: 'glu' as const, feedForwardNorm, ffnDim: s.ffnDim, perLayerEmbedding: c.perLayerInput > 0, outputScale: c.layerOutputScale };
    if (c.deltaNet?.recurrent[index]) return { ...common, mixer: { kind: 'delta-net' as const } };
    const mixer: AttentionPlan = {
      kind: 'attention', window, rope, windowRope: window > 0 && c.windowRopeTheta > 0, outputGate: c.hybridDeltaNet,
      nHeads: s.nHeads, nKvHeads: s.nKvHeads, headDim: s.headDim, ropeDim: s.ropeDim, kvFrom: kvDonor(c, index), vNorm: c.valueNorm,
    };
    return { ...common, mixer };
  });
}

/** The sliding window layer `layer` attends within, or 0 for the whole context. */
export function layerWindow(c: ModelConfig, layer: number): number {
  if (!c.slidingWindow) return 0;
  if (c.gemma4 && c.layers.length) return c.layers[layer]!.windowed ? c.slidingWindow : 0;
  return c.swaPattern === 0 || layer % c.swaPattern < c.swaPattern - 1 ? c.slidingWindow : 0;
}

function ropeFactors(file: GGUFFile): ModelConfig['ropeFactors'] {
  const has = (n: string) => file.tensors.some((t) => t.name === n);
  if (has('rope_freqs.weight')) return { short: 'rope_freqs.weight' };
  if (has('rope_factors_short.weight')) return { short: 'rope_factors_short.weight', ...(has('rope_factors_long.weight') ? { long: 'rope_factors_long.weight' } : {}) };
  return undefined;
}

/** The RoPE factor tensor a KV cache of `contextLength` positions uses, if any. */
export function ropeFactorTensor(c: ModelConfig, contextLength: number): string | undefined {
  if (!c.ropeFactors) return undefined;
  return contextLength > c.ropeOriginalContext && c.ropeFactors.long ? c.ropeFactors.long : c.ropeFactors.short;
}

/**
 * The matrices the forward pass multiplies by, as row ranges of GGUF tensors: usually a whole
 * tensor each, but Phi-3's fused attn_qkv and ffn_up hold two or three matrices.
 */
export function matrixViews(c: ModelConfig): Map<string, { matrix: string; rowStart: number; rows: number }[]> {
  const q = c.nHeads * c.headDim;
  const kv = c.nKvHeads * c.headDim;
  const views = new Map<string, { matrix: string; rowStart: number; rows: number }[]>();
  for (let l = 0; l < c.nLayers; l++) {
    const p = `blk.${l}.`;
    if (c.fusedQkv) {
      views.set(p + 'attn_qkv.weight', [
        { matrix: p + 'attn_q.weight', rowStart: 0, rows: q }, { matrix: p + 'attn_k.weight', rowStart: q, rows: kv }, { matrix: p + 'attn_v.weight', rowStart: q + kv, rows: kv },
      ]);
    }
    if (c.fusedGateUp) {
      views.set(p + 'ffn_up.weight', [{ matrix: p + 'ffn_gate.weight', rowStart: 0, rows: c.ffnDim }, { matrix: p + 'ffn_up.weight', rowStart: c.ffnDim, rows: c.ffnDim }]);
    }
  }
  return views;
}

export function tensor(file: GGUFFile, tname: string): TensorInfo {
  const t = file.tensors.find((x) => x.name === tname);
  if (!t) throw new ModelFormatError('missing-tensor', `${file.source.name}: missing tensor ${tname}`);
  return t;
}

/** Every tensor the forward pass reads, with the shape it must have (ggml order: [cols, rows]). */
export function expectedTensors(c: ModelConfig): Map<string, number[]> {
  const q = c.nHeads * c.headDim;
  const kv = c.nKvHeads * c.headDim;
  const m = new Map<string, number[]>([
    ['token_embd.weight', [c.dim, c.vocabSize]],
    ['output_norm.weight', [c.dim]],
  ]);
  if (!c.tiedOutput) m.set('output.weight', [c.dim, c.vocabSize]);
  if (c.denseOut) {
    m.set('dense_2.weight', [c.dim, c.denseOut.hidden]);
    m.set('dense_3.weight', [c.denseOut.hidden, c.dim]);
  }
  for (const factors of [c.ropeFactors?.short, c.ropeFactors?.long]) if (factors) m.set(factors, [c.ropeDim / 2]);
  if (c.perLayerInput) {
    m.set(PER_LAYER_TABLE, [c.perLayerInput * c.nLayers, c.vocabSize]);
    m.set('per_layer_model_proj.weight', [c.dim, c.perLayerInput * c.nLayers]);
    m.set('per_layer_proj_norm.weight', [c.perLayerInput]);
  }
  for (const layer of layerPlans(c)) {
    const p = layer.prefix;
    if (c.gemma4) {
      gemma4LayerTensors(c, layer.index, m);
      continue;
    }
    m.set(p + 'attn_norm.weight', [c.dim]);
    m.set(layer.feedForwardNorm, [c.dim]);
    if (!c.fusedGateUp) m.set(p + 'ffn_gate.weight', [c.dim, c.ffnDim]);
    m.set(p + 'ffn_up.weight', [c.dim, c.fusedGateUp ? 2 * c.ffnDim : c.ffnDim]);
    m.set(p + 'ffn_down.weight', [c.ffnDim, c.dim]);
    if (layer.mixer.kind === 'delta-net') {
      for (const [n, shape] of deltaNetTensors(c, c.deltaNet!)) m.set(p + n, shape);
      continue;
    }
    if (c.fusedQkv) {
      m.set(p + 'attn_qkv.weight', [c.dim, q + 2 * kv]);
    } else {
      m.set(p + 'attn_q.weight', [c.dim, layer.mixer.outputGate ? 2 * q : q]);
      m.set(p + 'attn_k.weight', [c.dim, kv]);
      m.set(p + 'attn_v.weight', [c.dim, kv]);
    }
    if (c.qkvBias) {
      m.set(p + 'attn_q.bias', [q]);
      m.set(p + 'attn_k.bias', [kv]);
      m.set(p + 'attn_v.bias', [kv]);
    }
    if (c.qkNorm) {
      m.set(p + 'attn_q_norm.weight', [c.headDim]);
      m.set(p + 'attn_k_norm.weight', [c.headDim]);
    }
    m.set(p + 'attn_output.weight', [q, c.dim]);
    if (c.postNorms) m.set(p + 'post_attention_norm.weight', [c.dim]);
    if (c.postNorms) m.set(p + 'post_ffw_norm.weight', [c.dim]);
  }
  return m;
}

/** A Gated DeltaNet layer's tensors, by name within the layer (llama.cpp's; ssm_a has no .weight). */
export function deltaNetTensors(c: ModelConfig, d: DeltaNetConfig): [string, number[]][] {
  const keyDim = d.kHeads * d.state, valueDim = d.vHeads * d.state;
  return [
    ['attn_qkv.weight', [c.dim, 2 * keyDim + valueDim]], ['attn_gate.weight', [c.dim, valueDim]],
    ['ssm_conv1d.weight', [d.convKernel, 2 * keyDim + valueDim]], ['ssm_dt.bias', [d.vHeads]], ['ssm_a', [d.vHeads]],
    ['ssm_beta.weight', [c.dim, d.vHeads]], ['ssm_alpha.weight', [c.dim, d.vHeads]], ['ssm_norm.weight', [d.state]],
    ['ssm_out.weight', [valueDim, c.dim]],
  ];
}

/** Tensors read as flat f32 arrays whatever their shape: 1-D ones, and the conv taps of a DeltaNet layer. */
export function isVectorTensor(t: TensorInfo): boolean {
  return t.dims.length === 1 || t.name.endsWith('.ssm_conv1d.weight');
}

/**
 * The per-layer embedding table (Gemma 4): it stays on the CPU (see TensorPlan.host); a step uploads
 * the rows of its tokens.
 */
export const PER_LAYER_TABLE = 'per_layer_token_embd.weight';

/** Gemma 4's layer tensors: per-layer widths; none of K's and V's on layers that share another's KV. */
function gemma4LayerTensors(c: ModelConfig, l: number, m: Map<string, number[]>): void {
  const p = `blk.${l}.`;
  const s = c.layers[l]!;
  const q = s.nHeads * s.headDim;
  const kv = s.nKvHeads * s.headDim;
  m.set(p + 'attn_norm.weight', [c.dim]);
  m.set(p + 'attn_q.weight', [c.dim, q]);
  m.set(p + 'attn_q_norm.weight', [s.headDim]);
  if (kvDonor(c, l) === l) {
    m.set(p + 'attn_k.weight', [c.dim, kv]);
    if (!c.valueFromKey) m.set(p + 'attn_v.weight', [c.dim, kv]);
    m.set(p + 'attn_k_norm.weight', [s.headDim]);
  }
  m.set(p + 'attn_output.weight', [q, c.dim]);
  m.set(p + 'post_attention_norm.weight', [c.dim]);
  m.set(p + 'ffn_norm.weight', [c.dim]);
  m.set(p + 'ffn_gate.weight', [c.dim, s.ffnDim]);
  m.set(p + 'ffn_up.weight', [c.dim, s.ffnDim]);
  m.set(p + 'ffn_down.weight', [s.ffnDim, c.dim]);
  m.set(p + 'post_ffw_norm.weight', [c.dim]);
  if (c.perLayerInput) {
    m.set(p + 'inp_gate.weight', [c.dim, c.perLayerInput]);
    m.set(p + 'proj.weight', [c.perLayerInput, c.dim]);
    m.set(p + 'post_norm.weight', [c.dim]);
  }
  if (c.layerOutputScale) m.set(p + 'layer_output_scale.weight', [1]);
}

function checkShapes(file: GGUFFile, c: ModelConfig): void {
  for (const [tname, shape] of expectedTensors(c)) {
    const t = tensor(file, tname);
    const dims = t.dims.length === 1 ? t.dims : t.dims.slice(0, shape.length);
    const extra = t.dims.slice(shape.length).some((d) => d !== 1);
    if (extra || dims.length !== shape.length || dims.some((d, i) => d !== shape[i])) {
      throw new ModelFormatError('shape-mismatch', `${file.source.name}: tensor ${tname} has shape [${t.dims}], expected [${shape}]`);
    }
  }
}
