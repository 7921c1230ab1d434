import { ModelFormatError } from '../errors.js';
import { metaNumber, metaString, type GGUFFile, type TensorInfo } from '../gguf/gguf.js';

export const SUPPORTED_ARCHITECTURES = ['llama', 'qwen2'] as const;

/**
 * What differs between the supported architectures. Qwen2 is Llama with biases on the q/k/v
 * projections and NEOX-style RoPE (llama.cpp's LLAMA_ROPE_TYPE_NEOX).
 */
const ARCHITECTURE_TRAITS: Record<(typeof SUPPORTED_ARCHITECTURES)[number], { qkvBias: boolean; ropeStyle: 'adjacent' | 'neox' }> = {
  llama: { qkvBias: false, ropeStyle: 'adjacent' },
  qwen2: { qkvBias: true, ropeStyle: 'neox' },
};

/** Hyperparameters of a Llama-family model, read from `llama.*` GGUF metadata. */
export interface ModelConfig {
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
  /** Dimensions per head that RoPE rotates (GGUF `rope.dimension_count`). */
  ropeDim: number;
  /** Output head shares the token embedding. */
  tiedOutput: boolean;
  /** Llama 3 style per-frequency RoPE divisors (tensor rope_freqs.weight) are present. */
  ropeFreqFactors: boolean;
  /** q/k/v projections carry biases (Qwen2). */
  qkvBias: boolean;
  /** RoPE pairs: 'adjacent' (x[2i], x[2i+1]) as GGUF's llama, or 'neox' (x[i], x[i + ropeDim/2]). */
  ropeStyle: 'adjacent' | 'neox';
}

export function readConfig(file: GGUFFile): ModelConfig {
  const name = file.source.name;
  const arch = metaString(file, 'general.architecture');
  if (arch === undefined) throw new ModelFormatError('malformed', `${name}: missing general.architecture`);
  if (!(SUPPORTED_ARCHITECTURES as readonly string[]).includes(arch)) {
    throw new ModelFormatError(
      'unsupported-architecture',
      `${name}: architecture "${arch}" is not supported (supported: ${SUPPORTED_ARCHITECTURES.join(', ')})`,
    );
  }
  const k = (key: string, fallback?: number) => metaNumber(file, `${arch}.${key}`, fallback);
  const dim = k('embedding_length');
  const nHeads = k('attention.head_count');
  const nKvHeads = k('attention.head_count_kv', nHeads);
  const embd = tensor(file, 'token_embd.weight');
  const config: ModelConfig = {
    architecture: arch,
    dim,
    nLayers: k('block_count'),
    nHeads,
    nKvHeads,
    headDim: dim / nHeads,
    ffnDim: k('feed_forward_length'),
    vocabSize: embd.dims[1] ?? 0,
    contextLength: k('context_length'),
    normEps: k('attention.layer_norm_rms_epsilon', 1e-5),
    ropeTheta: k('rope.freq_base', 10000),
    ropeDim: k('rope.dimension_count', dim / nHeads),
    tiedOutput: !file.tensors.some((t) => t.name === 'output.weight'),
    ropeFreqFactors: file.tensors.some((t) => t.name === 'rope_freqs.weight'),
    ...ARCHITECTURE_TRAITS[arch as keyof typeof ARCHITECTURE_TRAITS],
  };
  const positive = ['dim', 'nLayers', 'nHeads', 'nKvHeads', 'ffnDim', 'vocabSize', 'contextLength'] as const;
  for (const key of positive) {
    if (!Number.isInteger(config[key]) || config[key] <= 0 || config[key] > 1 << 24) {
      throw new ModelFormatError('malformed', `${name}: invalid ${key} ${config[key]}`);
    }
  }
  if (!Number.isInteger(config.headDim) || config.headDim % 2 || nHeads % nKvHeads) {
    throw new ModelFormatError('shape-mismatch', `${name}: ${dim} dims do not split into ${nHeads} heads over ${nKvHeads} KV heads`);
  }
  if (config.headDim > 256) throw new ModelFormatError('shape-mismatch', `${name}: head size ${config.headDim} is above the supported 256`);
  if (config.ropeDim > config.headDim || config.ropeDim % 2) throw new ModelFormatError('malformed', `${name}: invalid rope.dimension_count ${config.ropeDim}`);
  checkShapes(file, config);
  return config;
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
  if (c.ropeFreqFactors) m.set('rope_freqs.weight', [c.ropeDim / 2]);
  for (let l = 0; l < c.nLayers; l++) {
    const p = `blk.${l}.`;
    m.set(p + 'attn_norm.weight', [c.dim]);
    m.set(p + 'attn_q.weight', [c.dim, q]);
    m.set(p + 'attn_k.weight', [c.dim, kv]);
    m.set(p + 'attn_v.weight', [c.dim, kv]);
    if (c.qkvBias) {
      m.set(p + 'attn_q.bias', [q]);
      m.set(p + 'attn_k.bias', [kv]);
      m.set(p + 'attn_v.bias', [kv]);
    }
    m.set(p + 'attn_output.weight', [q, c.dim]);
    m.set(p + 'ffn_norm.weight', [c.dim]);
    m.set(p + 'ffn_gate.weight', [c.dim, c.ffnDim]);
    m.set(p + 'ffn_up.weight', [c.dim, c.ffnDim]);
    m.set(p + 'ffn_down.weight', [c.ffnDim, c.dim]);
  }
  return m;
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
