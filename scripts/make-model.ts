/**
 * Writes a random-weight GGUF at a real model's shape, with real tokenizer metadata, for
 * benchmarks and tests:
 *   npm run make-model -- --arch llama --shape tinyllama-1.1b --quant q4_0 --out FILE [--seed N]
 * Reads vocabularies from ../shared/models. Weights are scaled so next-token distributions are
 * peaked rather than uniform.
 */
import { closeSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { GGMLType } from '../src/gguf/ggml-types.js';
import { readGGUF } from '../src/gguf/gguf.js';
import { typed, writeGGUF, type TensorToWrite, type TypedValue } from '../src/gguf/writer.js';
import { bytesSource } from '../src/io/byte-source.js';
import { BERT_SHAPES, makeBertModel } from './make-bert.js';
import { quantize } from './quantize.js';

const MODELS = fileURLToPath(new URL('../../shared/models/', import.meta.url));

export interface Shape {
  dim: number; layers: number; heads: number; kvHeads: number; ffn: number; vocab: number; context: number;
  /** Per-head width when it is not dim / heads (Gemma). */
  headDim?: number;
  vocabFrom: 'stories' | 'llama-spm' | 'gpt2' | 'llama3' | 'gemma4';
  tied: boolean;
  ropeTheta: number;
  /** Rotated dimensions per head when fewer than headDim (Phi-4-mini's partial rotary factor 0.75). */
  ropeDims?: number;
  /** RMS norm epsilon (1e-5 unless set). */
  eps?: number;
  /** Gemma 3: every layer but each sixth attends within this window, with its own RoPE base. */
  slidingWindow?: number;
  ropeThetaLocal?: number;
  /** Linear RoPE scaling of the global layers (Gemma 3 4B and up). */
  ropeScalingFactor?: number;
  /** Phi-3-style LongRoPE: the context the short factors cover. */
  originalContext?: number;
  /**
   * Qwen3.5's Gated DeltaNet layers: every `interval`-th layer is full attention, the others
   * linear attention with `kHeads` q/k heads and `vHeads` value heads of `state` dims each and a
   * causal conv of `convKernel` taps. ropeSections: its (interleaved) M-RoPE sections.
   */
  deltaNet?: { interval: number; convKernel: number; state: number; kHeads: number; vHeads: number };
  ropeSections?: number[];
  /** Gemma 4 (see gemma4Tensors): the layer shape of its sliding and full-attention layers. */
  gemma4?: Gemma4Shape;
}

/**
 * Gemma 4's extras: `headDim` above is the full-attention layers' head width (global_head_dim),
 * `headDimSwa` the sliding layers'; each `swaPeriod` layers end in a full one; the last
 * `sharedKvLayers` layers reuse earlier layers' KV caches; `perLayerInput` is the width of the
 * per-layer embeddings; with `doubleWideMlp` the shared layers' FFNs are twice as wide.
 */
export interface Gemma4Shape {
  headDimSwa: number; swaPeriod: number; sharedKvLayers: number; perLayerInput: number;
  partialRotary: number; doubleWideMlp: boolean; finalSoftcap: number;
}

export const SHAPES: Record<string, Shape> = {
  'llama-3.2-1b': { dim: 2048, layers: 16, heads: 32, kvHeads: 8, ffn: 8192, vocab: 128256, context: 131072, vocabFrom: 'llama3', tied: true, ropeTheta: 500000 },
  'qwen2.5-0.5b': { dim: 896, layers: 24, heads: 14, kvHeads: 2, ffn: 4864, vocab: 151936, context: 32768, vocabFrom: 'gpt2', tied: true, ropeTheta: 1000000 },
  'smollm2-135m': { dim: 576, layers: 30, heads: 9, kvHeads: 3, ffn: 1536, vocab: 49152, context: 8192, vocabFrom: 'gpt2', tied: true, ropeTheta: 100000 },
  'smollm2-360m': { dim: 960, layers: 32, heads: 15, kvHeads: 5, ffn: 2560, vocab: 49152, context: 8192, vocabFrom: 'gpt2', tied: true, ropeTheta: 100000 },
  'gemma-2-2b': { dim: 2304, layers: 26, heads: 8, kvHeads: 4, headDim: 256, ffn: 9216, vocab: 256000, context: 8192, vocabFrom: 'llama-spm', tied: true, ropeTheta: 10000 },
  'phi-3.5-mini': { dim: 3072, layers: 32, heads: 32, kvHeads: 32, ffn: 8192, vocab: 32064, context: 131072, vocabFrom: 'llama-spm', tied: false, ropeTheta: 10000 },
  // Issue 15's architectures, from each model's config.json.
  'qwen3-0.6b': { dim: 1024, layers: 28, heads: 16, kvHeads: 8, headDim: 128, ffn: 3072, vocab: 151936, context: 40960, vocabFrom: 'gpt2', tied: true, ropeTheta: 1000000, eps: 1e-6 },
  'gemma-3-270m': { dim: 640, layers: 18, heads: 4, kvHeads: 1, headDim: 256, ffn: 2048, vocab: 262144, context: 32768, vocabFrom: 'llama-spm', tied: true, ropeTheta: 1000000, eps: 1e-6, slidingWindow: 512, ropeThetaLocal: 10000 },
  // EmbeddingGemma-300M (google/embeddinggemma-300m's config.json: Gemma 3 blocks, 2048 positions;
  // its sliding window of 512 is symmetric in llama.cpp's gemma-embedding).
  'embeddinggemma-300m': { dim: 768, layers: 24, heads: 3, kvHeads: 1, headDim: 256, ffn: 1152, vocab: 262144, context: 2048, vocabFrom: 'llama-spm', tied: true, ropeTheta: 1000000, eps: 1e-6, slidingWindow: 512, ropeThetaLocal: 10000 },
  'gemma-3-1b': { dim: 1152, layers: 26, heads: 4, kvHeads: 1, headDim: 256, ffn: 6912, vocab: 262144, context: 32768, vocabFrom: 'llama-spm', tied: true, ropeTheta: 1000000, eps: 1e-6, slidingWindow: 512, ropeThetaLocal: 10000 },
  'smollm3-3b': { dim: 2048, layers: 36, heads: 16, kvHeads: 4, ffn: 11008, vocab: 128256, context: 65536, vocabFrom: 'llama3', tied: true, ropeTheta: 5000000, eps: 1e-6 },
  'phi-4-mini': { dim: 3072, layers: 32, heads: 24, kvHeads: 8, ffn: 8192, vocab: 200064, context: 131072, vocabFrom: 'gpt2', tied: true, ropeTheta: 10000, ropeDims: 96, originalContext: 4096 },
  // Issue 16: Qwen3.5-0.8B (text config of Qwen/Qwen3.5-0.8B: partial rotary 0.25 of 256, mrope_section [11, 11, 10]).
  'qwen3.5-0.8b': {
    dim: 1024, layers: 24, heads: 8, kvHeads: 2, headDim: 256, ffn: 3584, vocab: 248320, context: 262144, vocabFrom: 'gpt2', tied: true, ropeTheta: 10000000, eps: 1e-6,
    ropeDims: 64, ropeSections: [11, 11, 10, 0], deltaNet: { interval: 4, convKernel: 4, state: 128, kHeads: 16, vHeads: 16 },
  },
  // Gemma 4 E2B (config.json's text_config): 4 sliding layers then a full one, the last 20
  // sharing KV, per-layer embeddings of 256. Its vocabulary is stood in for by GPT-2's in Gemma 4's form.
  'gemma-4-e2b': {
    dim: 1536, layers: 35, heads: 8, kvHeads: 1, headDim: 512, ffn: 6144, vocab: 262144, context: 131072, vocabFrom: 'gemma4', tied: true, ropeTheta: 1000000, eps: 1e-6, slidingWindow: 512, ropeThetaLocal: 10000,
    gemma4: { headDimSwa: 256, swaPeriod: 5, sharedKvLayers: 20, perLayerInput: 256, partialRotary: 0.25, doubleWideMlp: true, finalSoftcap: 30 },
  },
  'tinyllama-1.1b': { dim: 2048, layers: 22, heads: 32, kvHeads: 4, ffn: 5632, vocab: 32000, context: 2048, vocabFrom: 'llama-spm', tied: false, ropeTheta: 10000 },
  // A real vocabulary on a minimal model, for bench/constraint.ts: the logits stay cheap beside
  // the grammar's mask (q4_0 and the 32-wide quants only).
  'tiny-64-32k': { dim: 64, layers: 1, heads: 2, kvHeads: 1, ffn: 128, vocab: 32000, context: 512, vocabFrom: 'llama-spm', tied: true, ropeTheta: 10000 },
  'tiny-64-152k': { dim: 64, layers: 1, heads: 2, kvHeads: 1, ffn: 128, vocab: 151936, context: 512, vocabFrom: 'gpt2', tied: true, ropeTheta: 1000000 },
  // Small shapes for tests: rows are multiples of 256 so every quant type applies.
  'tiny-256': { dim: 256, layers: 2, heads: 4, kvHeads: 2, ffn: 512, vocab: 512, context: 256, vocabFrom: 'stories', tied: false, ropeTheta: 10000 },
  // Gemma's shape in small: tied output, heads wider than dim / heads.
  'tiny-256-gemma': { dim: 256, layers: 2, heads: 4, kvHeads: 2, headDim: 96, ffn: 512, vocab: 512, context: 256, vocabFrom: 'stories', tied: true, ropeTheta: 10000 },
  'tiny-256-tied': { dim: 256, layers: 2, heads: 4, kvHeads: 2, ffn: 512, vocab: 512, context: 256, vocabFrom: 'stories', tied: true, ropeTheta: 10000 },
  // Issue 15's architectures in small. Qwen 3: heads wider than dim / heads, tied output.
  'tiny-256-qwen3': { dim: 256, layers: 2, heads: 4, kvHeads: 2, headDim: 128, ffn: 512, vocab: 512, context: 256, vocabFrom: 'gpt2', tied: true, ropeTheta: 1000000, eps: 1e-6 },
  // Gemma 3: six layers, so layers 0-4 are sliding (window 6, local base) and layer 5 is global.
  'tiny-256-gemma3': { dim: 256, layers: 6, heads: 4, kvHeads: 2, headDim: 128, ffn: 512, vocab: 512, context: 256, vocabFrom: 'stories', tied: true, ropeTheta: 1000000, eps: 1e-6, slidingWindow: 6, ropeThetaLocal: 10000 },
  // SmolLM 3: four layers, so layer 3 is the no-RoPE one.
  'tiny-256-smollm3': { dim: 256, layers: 4, heads: 4, kvHeads: 2, ffn: 512, vocab: 512, context: 256, vocabFrom: 'gpt2', tied: true, ropeTheta: 5000000, eps: 1e-6 },
  // Gemma 4: sliding, sliding, full, twice; the last three layers share the KV of layers 1
  // (sliding) and 2 (full); full heads twice as wide as sliding ones, a quarter of them rotated.
  'tiny-256-gemma4': {
    dim: 256, layers: 6, heads: 4, kvHeads: 2, headDim: 128, ffn: 512, vocab: 512, context: 256, vocabFrom: 'gemma4', tied: true, ropeTheta: 1000000, eps: 1e-6, slidingWindow: 6, ropeThetaLocal: 10000,
    gemma4: { headDimSwa: 64, swaPeriod: 3, sharedKvLayers: 3, perLayerInput: 256, partialRotary: 0.25, doubleWideMlp: true, finalSoftcap: 30 },
  },
  // Phi-4-mini: GQA in the fused qkv, tied output, 48 of 64 dimensions rotated, LongRoPE factors.
  'tiny-256-phi4': { dim: 256, layers: 2, heads: 4, kvHeads: 2, ffn: 512, vocab: 512, context: 256, vocabFrom: 'gpt2', tied: true, ropeTheta: 10000, ropeDims: 48, originalContext: 64 },
  // Qwen3.5: layers 0-2 Gated DeltaNet, 3 gated attention; twice as many value heads as q/k
  // heads (as the 4B and 9B), so the head mapping shows; 16 of 64 dimensions rotated.
  'tiny-256-qwen35': {
    dim: 256, layers: 4, heads: 4, kvHeads: 2, headDim: 64, ffn: 512, vocab: 512, context: 256, vocabFrom: 'gpt2', tied: true, ropeTheta: 10000000, eps: 1e-6,
    ropeDims: 16, ropeSections: [3, 3, 2, 0], deltaNet: { interval: 4, convKernel: 4, state: 64, kHeads: 2, vHeads: 4 },
  },
};

/** The small shape each architecture's tests use. */
export const TINY_SHAPES: Record<Architecture, string> = {
  llama: 'tiny-256', qwen2: 'tiny-256', phi3: 'tiny-256', gemma: 'tiny-256-gemma', gemma2: 'tiny-256-gemma',
  qwen3: 'tiny-256-qwen3', gemma3: 'tiny-256-gemma3', smollm3: 'tiny-256-smollm3', 'phi4-mini': 'tiny-256-phi4',
  qwen35: 'tiny-256-qwen35',
  gemma4: 'tiny-256-gemma4',
  'gemma-embedding': 'tiny-256-gemma3',
};

/** What each quant preset stores per tensor (llama.cpp's mixes, simplified). */
export const QUANTS: Record<string, (name: string) => number> = {
  f32: () => GGMLType.F32,
  f16: () => GGMLType.F16,
  q8_0: () => GGMLType.Q8_0,
  bf16: () => GGMLType.BF16,
  q4_0: () => GGMLType.Q4_0,
  q4_1: () => GGMLType.Q4_1,
  q5_0: () => GGMLType.Q5_0,
  q5_1: () => GGMLType.Q5_1,
  q6_k: () => GGMLType.Q6_K,
  // Q4_K_M: Q4_K, with Q6_K for the output head, attn_v and ffn_down.
  q4_k_m: (name) => (/output\.weight|attn_v|ffn_down|ssm_out/.test(name) ? GGMLType.Q6_K : GGMLType.Q4_K),
  // Q5_K_M: Q5_K, with Q6_K in the same places.
  q5_k_m: (name) => (/output\.weight|attn_v|ffn_down/.test(name) ? GGMLType.Q6_K : GGMLType.Q5_K),
};

/** Tokenizer metadata from ../shared/models, padded to the shape's vocabulary size. */
async function vocabulary(source: Shape['vocabFrom'], size: number): Promise<[string, TypedValue][]> {
  if (source === 'gemma4') return gemma4Vocabulary(await vocabulary('gpt2', size));
  if (source === 'llama3') {
    const encoder = JSON.parse(readFileSync(`${MODELS}tokenizers/llama3/encoder.json`, 'utf8')) as Record<string, number>;
    const tokens: string[] = [];
    for (const [t, id] of Object.entries(encoder)) tokens[id] = t;
    const merges = readFileSync(`${MODELS}tokenizers/llama3/vocab.bpe`, 'utf8').split('\n').filter((l) => l && !l.startsWith('#version'));
    return pad([
      ['tokenizer.ggml.model', { type: 'string', value: 'gpt2' }], ['tokenizer.ggml.pre', { type: 'string', value: 'llama-bpe' }],
      ['tokenizer.ggml.tokens', { type: 'array', itemType: 'string', value: tokens }],
      ['tokenizer.ggml.merges', { type: 'array', itemType: 'string', value: merges }],
    ], size);
  }
  const file = { stories: 'stories260K/stories260K-f32.gguf', 'llama-spm': 'tokenizers/llamacpp-vocab/ggml-vocab-llama-spm.gguf', gpt2: 'tokenizers/llamacpp-vocab/ggml-vocab-gpt-2.gguf' }[source];
  const gguf = await readGGUF(bytesSource(new Uint8Array(readFileSync(MODELS + file))));
  return pad([...gguf.metadata].filter(([k]) => k.startsWith('tokenizer.')).map(([k, v]) => [k, typed(v)]), size);
}

/**
 * A vocabulary in Gemma 4's form (tokenizer.ggml.model gemma4: BPE with merges over raw text,
 * U+2581 for a space, <0xXX> tokens for bytes) made from GPT-2's: its byte-level characters
 * turned back into text, the bytes that are not printable ASCII into <0xXX> tokens; tokens that
 * would hold other bytes become unused ones, and the merges that need them go.
 */
function gemma4Vocabulary(meta: [string, TypedValue][]): [string, TypedValue][] {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
  const byteOf = new Map<string, number>();
  for (let b = 0, n = 0; b < 256; b++) byteOf.set(String.fromCodePoint(printable(b) ? b : 256 + n++), b);
  const get = (k: string) => meta.find(([key]) => key === k)?.[1];
  const gpt2 = get('tokenizer.ggml.tokens')!.value as string[];
  const types = Array.from((get('tokenizer.ggml.token_type')?.value ?? new Array(gpt2.length).fill(1)) as ArrayLike<number>);
  const text = (t: string): string | undefined => {
    const bytes = [...t].map((ch) => byteOf.get(ch));
    if (bytes.some((b) => b === undefined)) return t;
    if (bytes.length === 1 && bytes[0] !== 0x20 && !(bytes[0]! >= 0x21 && bytes[0]! <= 0x7e)) return `<0x${bytes[0]!.toString(16).toUpperCase().padStart(2, '0')}>`;
    return bytes.every((b) => b! >= 0x20 && b! <= 0x7e) ? String.fromCharCode(...(bytes as number[])).replaceAll(' ', '▁') : undefined;
  };
  const tokens = gpt2.map((t, i) => {
    const converted = text(t);
    if (converted?.startsWith('<0x')) types[i] = 6;
    if (converted === undefined) types[i] = 3;
    return converted ?? `<unused_byte_piece_${i}>`;
  });
  const kept = new Set(tokens);
  const merges = (get('tokenizer.ggml.merges')!.value as string[]).flatMap((m) => {
    const [a, b] = m.split(' ').map(text);
    return a && b && !a.startsWith('<0x') && !b.startsWith('<0x') && kept.has(a) && kept.has(b) && kept.has(a + b) ? [`${a} ${b}`] : [];
  });
  return [
    ...meta.filter(([k]) => !/^tokenizer\.ggml\.(tokens|token_type|merges|scores)$/.test(k)),
    ['tokenizer.ggml.tokens', { type: 'array', itemType: 'string', value: tokens }],
    ['tokenizer.ggml.token_type', { type: 'array', itemType: 'i32', value: types }],
    ['tokenizer.ggml.merges', { type: 'array', itemType: 'string', value: merges }],
  ];
}

/**
 * Fits the token list (and scores, types, merges) to the model's vocabulary: pads with unused
 * control tokens, or drops the last tokens and every merge that needs one of them.
 */
function pad(meta: [string, TypedValue][], size: number): [string, TypedValue][] {
  const get = (k: string) => meta.find(([key]) => key === k)?.[1];
  const tokens = Array.from((get('tokenizer.ggml.tokens')!.value as ArrayLike<string>)).slice(0, size);
  const kept = new Set(tokens);
  const extra = size - tokens.length;
  const fit = (values: ArrayLike<number>, fill: number) => [...Array.from(values).slice(0, size), ...new Array(extra).fill(fill)];
  const out = meta.map(([k, v]): [string, TypedValue] => {
    if (k === 'tokenizer.ggml.tokens') return [k, { type: 'array', itemType: 'string', value: [...tokens, ...Array.from({ length: extra }, (_, i) => `<|unused_${i}|>`)] }];
    if (k === 'tokenizer.ggml.scores') return [k, { type: 'array', itemType: 'f32', value: fit(v.value as ArrayLike<number>, 0) }];
    if (k === 'tokenizer.ggml.token_type') return [k, { type: 'array', itemType: 'i32', value: fit(v.value as ArrayLike<number>, 3) }];
    if (k === 'tokenizer.ggml.merges') {
      const merges = (v.value as string[]).filter((m) => {
        const [a, b] = m.split(' ');
        return kept.has(a!) && kept.has(b!) && kept.has(a! + b!);
      });
      return [k, { type: 'array', itemType: 'string', value: merges }];
    }
    if (/_token_id$/.test(k) && typeof v.value === 'number' && v.value >= size) return [k, { type: 'u32', value: 0 }];
    return [k, v];
  });
  if (extra && !get('tokenizer.ggml.token_type')) {
    out.push(['tokenizer.ggml.token_type', { type: 'array', itemType: 'i32', value: [...new Array(tokens.length).fill(1), ...new Array(extra).fill(3)] }]);
  }
  return out;
}

/** A seeded normal generator (Box–Muller over mulberry32). */
export function normal(seed: number): () => number {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 1) / 4294967297;
  };
  return () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
}

export type Architecture = 'llama' | 'qwen2' | 'phi3' | 'gemma' | 'gemma2' | 'qwen3' | 'gemma3' | 'smollm3' | 'phi4-mini' | 'qwen35' | 'gemma4' | 'gemma-embedding';
export const ARCHITECTURES: Architecture[] = ['llama', 'qwen2', 'phi3', 'gemma', 'gemma2', 'qwen3', 'gemma3', 'smollm3', 'phi4-mini', 'qwen35', 'gemma4', 'gemma-embedding'];

/** The GGUF general.architecture of each generator architecture (Phi-4-mini is llama.cpp's phi3). */
const GGUF_ARCH: Record<Architecture, string> = {
  llama: 'llama', qwen2: 'qwen2', phi3: 'phi3', gemma: 'gemma', gemma2: 'gemma2', qwen3: 'qwen3', gemma3: 'gemma3', smollm3: 'smollm3', 'phi4-mini': 'phi3', qwen35: 'qwen35', gemma4: 'gemma4',
  'gemma-embedding': 'gemma-embedding',
};

export interface SpecialToken { text: string; id: number; type?: number }
/**
 * The tokenizer metadata the real GGUFs of issue 15's models carry: tokenizer.ggml.model and pre,
 * their special tokens at their real ids (or, in a vocabulary too small for those, at its end),
 * the BOS/EOS settings and a condensed form of each model's chat template.
 */
interface TokenizerStyle {
  model: string; pre: string; specials: SpecialToken[];
  bos?: string; eos: string; pad?: string; unk?: string; eot?: string;
  addBos: boolean; addSpacePrefix?: boolean; chatTemplate: string;
  /** tokenizer.ggml.add_eos_token (embedding models that pool or end on EOS). */
  addEos?: boolean;
}

const CHATML = (think: boolean) =>
  "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{%- endfor %}" +
  "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}" +
  (think ? "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}" : '') +
  '{%- endif %}';

const TOKENIZER_STYLES: Partial<Record<Architecture, TokenizerStyle>> = {
  // Qwen 3: Qwen's BPE (pre "qwen2"), ChatML; <|endoftext|> is BOS and pad, <|im_end|> EOS; no BOS added.
  qwen3: {
    model: 'gpt2', pre: 'qwen2',
    specials: [{ text: '<|endoftext|>', id: 151643 }, { text: '<|im_start|>', id: 151644 }, { text: '<|im_end|>', id: 151645 }, { text: '<think>', id: 151667, type: 4 }, { text: '</think>', id: 151668, type: 4 }],
    bos: '<|endoftext|>', eos: '<|im_end|>', pad: '<|endoftext|>', addBos: false, chatTemplate: CHATML(true),
  },
  // Qwen3.5: its own BPE (pre "qwen35", 248320 rows), ChatML; thinking is on unless switched off
  // (the generation prompt then opens an empty think block).
  qwen35: {
    model: 'gpt2', pre: 'qwen35',
    specials: [{ text: '<|endoftext|>', id: 248044 }, { text: '<|im_start|>', id: 248045 }, { text: '<|im_end|>', id: 248046 }, { text: '<think>', id: 248068, type: 4 }, { text: '</think>', id: 248069, type: 4 }],
    eos: '<|im_end|>', pad: '<|endoftext|>', addBos: false,
    chatTemplate:
      "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{%- endfor %}" +
      "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}" +
      "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- else %}{{- '<think>\\n' }}{%- endif %}{%- endif %}",
  },
  // Gemma 3: SentencePiece (model "llama", pre "default"), no space prefix, BOS added; turns in
  // <start_of_turn>/<end_of_turn>, the assistant's role is "model".
  gemma3: {
    model: 'llama', pre: 'default',
    specials: [{ text: '<pad>', id: 0 }, { text: '<eos>', id: 1 }, { text: '<bos>', id: 2 }, { text: '<unk>', id: 3, type: 2 }, { text: '<start_of_turn>', id: 105 }, { text: '<end_of_turn>', id: 106 }],
    bos: '<bos>', eos: '<eos>', pad: '<pad>', unk: '<unk>', eot: '<end_of_turn>', addBos: true, addSpacePrefix: false,
    chatTemplate:
      "{{ bos_token }}{%- for message in messages %}{%- set role = 'model' if message.role == 'assistant' else message.role %}" +
      "{{ '<start_of_turn>' + role + '\\n' + message.content | trim + '<end_of_turn>\\n' }}{%- endfor %}" +
      "{%- if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{%- endif %}",
  },
  // EmbeddingGemma: Gemma 3's SentencePiece; its tokenizer puts <bos> before and <eos> after the text.
  get 'gemma-embedding'(): TokenizerStyle {
    return { ...TOKENIZER_STYLES.gemma3!, addEos: true };
  },
  // SmolLM 3: Llama 3's BPE (pre "llama-bpe"), ChatML with think tokens; <|im_end|> ends a turn.
  smollm3: {
    model: 'gpt2', pre: 'llama-bpe',
    specials: [{ text: '<|begin_of_text|>', id: 128000 }, { text: '<|end_of_text|>', id: 128001 }, { text: '<|finetune_right_pad_id|>', id: 128004 }, { text: '<|im_start|>', id: 128011 }, { text: '<|im_end|>', id: 128012 }, { text: '<think>', id: 128002, type: 4 }, { text: '</think>', id: 128003, type: 4 }],
    bos: '<|begin_of_text|>', eos: '<|im_end|>', pad: '<|finetune_right_pad_id|>', addBos: false, chatTemplate: CHATML(true),
  },
  // Phi-4-mini: o200k BPE (pre "gpt-4o"); <|system|>, <|user|>, <|assistant|>, each turn ends in <|end|>.
  'phi4-mini': {
    model: 'gpt2', pre: 'gpt-4o',
    specials: [{ text: '<|endoftext|>', id: 199999 }, { text: '<|assistant|>', id: 200019 }, { text: '<|end|>', id: 200020 }, { text: '<|system|>', id: 200022 }, { text: '<|user|>', id: 200021 }],
    bos: '<|endoftext|>', eos: '<|endoftext|>', pad: '<|endoftext|>', eot: '<|end|>', addBos: false,
    chatTemplate: "{% for message in messages %}{{ '<|' + message.role + '|>' + message.content + '<|end|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}",
  },
  // Gemma 4: Gemma's special ids, turns in <|turn>/<turn|> (the system role is its own turn), the
  // assistant's role "model"; tokenizer.ggml.model "gemma4" (BPE with merges over raw text,
  // SentencePiece-style spaces and byte tokens).
  gemma4: {
    model: 'gemma4', pre: 'gemma4',
    specials: [{ text: '<pad>', id: 0 }, { text: '<eos>', id: 1 }, { text: '<bos>', id: 2 }, { text: '<unk>', id: 3, type: 2 }, { text: '<|turn>', id: 105 }, { text: '<turn|>', id: 106 }],
    bos: '<bos>', eos: '<eos>', pad: '<pad>', unk: '<unk>', eot: '<turn|>', addBos: true, addSpacePrefix: false,
    chatTemplate:
      "{{ bos_token }}{%- for message in messages %}{%- set role = 'model' if message.role == 'assistant' else message.role %}" +
      "{{ '<|turn>' + role + '\\n' + message.content | trim + '<turn|>\\n' }}{%- endfor %}" +
      "{%- if add_generation_prompt %}{{ '<|turn>model\\n' }}{%- endif %}",
  },
};

/** Puts a style's special tokens into a padded vocabulary and sets its token ids and flags. */
function applyTokenizerStyle(meta: [string, TypedValue][], style: TokenizerStyle, size: number): [string, TypedValue][] {
  const get = (k: string) => meta.find(([key]) => key === k)?.[1];
  const tokens = [...(get('tokenizer.ggml.tokens')!.value as string[])];
  const types = Array.from(get('tokenizer.ggml.token_type')?.value as ArrayLike<number> ?? new Array(size).fill(1));
  // Real ids where the vocabulary reaches them; otherwise the last ids, in order.
  const small = style.specials.some((t) => t.id >= size);
  const ids = new Map(style.specials.map((t, i) => [t.text, small ? size - style.specials.length + i : t.id]));
  for (const t of style.specials) {
    // The base vocabulary may hold the same text elsewhere (GPT-2's <|endoftext|> at 50256):
    // token texts must be unique (llama.cpp asserts it), so that one is renamed.
    const elsewhere = tokens.indexOf(t.text);
    if (elsewhere >= 0 && elsewhere !== ids.get(t.text)) tokens[elsewhere] = `<|unused_moved_${elsewhere}|>`;
    tokens[ids.get(t.text)!] = t.text;
    types[ids.get(t.text)!] = t.type ?? 3;
  }
  const kept = new Set(tokens);
  const out = meta.filter(([k]) => !/^tokenizer\.ggml\.(model|pre|tokens|token_type|merges|add_|.*_token_id$)|^tokenizer\.chat_template/.test(k));
  out.push(
    ['tokenizer.ggml.model', { type: 'string', value: style.model }],
    ['tokenizer.ggml.pre', { type: 'string', value: style.pre }],
    ['tokenizer.ggml.tokens', { type: 'array', itemType: 'string', value: tokens }],
    ['tokenizer.ggml.token_type', { type: 'array', itemType: 'i32', value: types }],
  );
  const merges = get('tokenizer.ggml.merges');
  if (merges) {
    out.push(['tokenizer.ggml.merges', { type: 'array', itemType: 'string', value: (merges.value as string[]).filter((m) => {
      const [a, b] = m.split(' ');
      return kept.has(a!) && kept.has(b!) && kept.has(a! + b!);
    }) }]);
  }
  const id = (name: string, text?: string) => (text ? [[`tokenizer.ggml.${name}_token_id`, { type: 'u32', value: ids.get(text)! }]] as [string, TypedValue][] : []);
  out.push(...id('bos', style.bos), ...id('eos', style.eos), ...id('padding', style.pad), ...id('unknown', style.unk), ...id('eot', style.eot));
  out.push(['tokenizer.ggml.add_bos_token', { type: 'bool', value: style.addBos }]);
  if (style.addEos !== undefined) out.push(['tokenizer.ggml.add_eos_token', { type: 'bool', value: style.addEos }]);
  if (style.addSpacePrefix !== undefined) out.push(['tokenizer.ggml.add_space_prefix', { type: 'bool', value: style.addSpacePrefix }]);
  out.push(['tokenizer.chat_template', { type: 'string', value: style.chatTemplate }]);
  return out;
}

/** The vocabulary-sized tables: the token embedding, the output head, Gemma 4's per-layer embeddings. */
const VOCABULARY_TABLES = new Set(['token_embd.weight', 'output.weight', 'per_layer_token_embd.weight']);

/**
 * `layers` keeps only the first layers of the shape: every tensor keeps its real size, for tests
 * about one tensor (a split embedding) that need not pay for the whole depth (Gemma 4 keeps at
 * most one period of layers before its KV-sharing ones). `tableRowPeriod` makes the vocabulary
 * tables' rows repeat after that many (only those rows are drawn and quantized, the rest copied):
 * a real-shape file in seconds instead of minutes, for tests about where rows are, not what they
 * hold (choose a prime, so no part boundary falls on a period).
 */
export async function makeModel(options: {
  arch: Architecture; shape: string; quant: string; seed?: number; slidingWindow?: number; ropeScalingFactor?: number; layers?: number;
  /** Vocabulary-sized tables draw only their first N rows and repeat them (cheap real-shape files). */
  tableRowPeriod?: number;
  /** A longer context than the shape's (a tiny model under a long prompt: tools in a chat template). */
  context?: number;
  /** More special tokens than the architecture's style has, and another chat template (tool-call tests). */
  tokenizer?: { specials?: SpecialToken[]; chatTemplate?: string };
  /**
   * An embedding model's pooling (`<arch>.pooling_type`; gemma-embedding: mean unless set). A
   * qwen3 with pooling gets Qwen3-Embedding's tokenizer settings: EOS <|endoftext|>, added after the text.
   */
  pooling?: 'mean' | 'cls' | 'last';
}): Promise<Uint8Array> {
  const shape = SHAPES[options.shape];
  if (!shape) throw new Error(`unknown shape ${options.shape} (known: ${Object.keys(SHAPES).join(', ')})`);
  const s = {
    ...shape, ...(options.ropeScalingFactor ? { ropeScalingFactor: options.ropeScalingFactor } : {}), ...(options.layers ? { layers: options.layers } : {}),
    ...(options.context ? { context: options.context } : {}),
  };
  if (options.layers && s.gemma4) s.gemma4 = { ...s.gemma4, sharedKvLayers: Math.min(s.gemma4.sharedKvLayers, Math.max(0, options.layers - s.gemma4.swaPeriod)) };
  const typeOf = QUANTS[options.quant];
  if (!typeOf) throw new Error(`unknown quant ${options.quant} (known: ${Object.keys(QUANTS).join(', ')})`);
  const random = normal(options.seed ?? 1);
  const headDim = s.headDim ?? s.dim / s.heads;
  const qDim = s.heads * headDim;
  const kv = s.kvHeads * headDim;
  const arch = options.arch;
  const gemma = arch === 'gemma' || arch === 'gemma2' || arch === 'gemma3' || arch === 'gemma-embedding';
  // Gemma 3's blocks (post-norms, q/k norms, windows): gemma3 and EmbeddingGemma.
  const gemma3Blocks = arch === 'gemma3' || arch === 'gemma-embedding';
  const pooling = options.pooling ?? (arch === 'gemma-embedding' ? 'mean' : undefined);
  const phi3 = arch === 'phi3' || arch === 'phi4-mini';
  // llama.cpp's Gemma always reads its output head from the embedding.
  if (gemma && !s.tied) throw new Error(`${arch} ties its output to the embedding; shape ${options.shape} does not`);
  // llama.cpp's Phi-3 has an n_embd x n_embd attn_output: query width must be the model width.
  if (phi3 && qDim !== s.dim) throw new Error(`${arch} needs heads x head width = width; shape ${options.shape} has ${qDim} != ${s.dim}`);
  if (gemma3Blocks && !s.slidingWindow) throw new Error(`gemma3 needs a shape with a sliding window; ${options.shape} has none`);
  if ((arch === 'gemma4') !== !!s.gemma4) throw new Error(`${arch} and shape ${options.shape} do not go together (gemma4 shapes: ${Object.keys(SHAPES).filter((k) => SHAPES[k]!.gemma4).join(', ')})`);
  const tensors: TensorToWrite[] = [];
  // In runs of rows (quantization is per row), so a real shape's largest tensor (Gemma 4's
  // per-layer embeddings) never needs its f32 values whole.
  const matrix = (name: string, cols: number, rows: number, scale: number) => {
    const runRows = Math.max(1, Math.floor(2 ** 22 / cols));
    const drawn = options.tableRowPeriod && VOCABULARY_TABLES.has(name) ? Math.min(rows, options.tableRowPeriod) : rows;
    const parts: Uint8Array[] = [];
    let type = 0;
    for (let r0 = 0; r0 < drawn; r0 += runRows) {
      const x = new Float32Array(cols * Math.min(runRows, drawn - r0));
      for (let i = 0; i < x.length; i++) x[i] = random() * scale;
      const q = quantize(x, cols, typeOf(name));
      type = q.type;
      parts.push(q.data);
    }
    const drawnBytes = parts.reduce((n, p) => n + p.byteLength, 0);
    const data = parts.length === 1 && drawn === rows ? parts[0]! : new Uint8Array((drawnBytes / drawn) * rows);
    if (data !== parts[0]) parts.reduce((at, p) => (data.set(p, at), at + p.byteLength), 0);
    // The drawn rows again and again (quantization is per row): copies of whole periods, doubling.
    for (let filled = drawnBytes; filled < data.byteLength; filled *= 2) data.copyWithin(filled, 0, Math.min(filled, data.byteLength - filled));
    tensors.push({ name, dims: [cols, rows], type, data });
  };
  const vector = (name: string, n: number, value: (i: number) => number) =>
    tensors.push({ name, dims: [n], type: GGMLType.F32, data: new Uint8Array(Float32Array.from({ length: n }, (_, i) => value(i)).buffer) });

  /**
   * A Gated DeltaNet layer's tensors (llama.cpp's names; ssm_a holds -exp(A_log) and has no
   * .weight suffix). Decays exp(softplus(alpha + dt) * a) land between about 0.7 and 0.97, so the
   * state remembers over a short test sequence; the conv kernel stays f32, as llama.cpp keeps it.
   */
  function deltaNetLayer(p: string, d: NonNullable<Shape['deltaNet']>): void {
    const keyDim = d.kHeads * d.state, valueDim = d.vHeads * d.state;
    matrix(p + 'attn_qkv.weight', s.dim, 2 * keyDim + valueDim, 1 / Math.sqrt(s.dim));
    matrix(p + 'attn_gate.weight', s.dim, valueDim, 1 / Math.sqrt(s.dim));
    const conv = Float32Array.from({ length: d.convKernel * (2 * keyDim + valueDim) }, () => 0.5 * random());
    tensors.push({ name: p + 'ssm_conv1d.weight', dims: [d.convKernel, 2 * keyDim + valueDim], type: GGMLType.F32, data: new Uint8Array(conv.buffer) });
    vector(p + 'ssm_dt.bias', d.vHeads, () => -1 + 0.5 * random());
    vector(p + 'ssm_a', d.vHeads, () => -Math.exp(Math.log(0.1) + 2.3 * Math.abs(random()) / 3));
    matrix(p + 'ssm_beta.weight', s.dim, d.vHeads, 1 / Math.sqrt(s.dim));
    matrix(p + 'ssm_alpha.weight', s.dim, d.vHeads, 1 / Math.sqrt(s.dim));
    vector(p + 'ssm_norm.weight', d.state, () => 1 + 0.2 * random());
    matrix(p + 'ssm_out.weight', valueDim, s.dim, 1 / Math.sqrt(valueDim));
  }

  const baseStyle = TOKENIZER_STYLES[arch];
  const extra = options.tokenizer;
  if (extra && !baseStyle) throw new Error(`${arch} has no tokenizer style to add special tokens or a chat template to`);
  const style = baseStyle && extra ? { ...baseStyle, specials: [...baseStyle.specials, ...(extra.specials ?? [])], chatTemplate: extra.chatTemplate ?? baseStyle.chatTemplate } : baseStyle;
  if (s.gemma4) {
    const metadata = gemma4Tensors(s, s.gemma4, matrix, vector, random);
    metadata.unshift(['general.name', { type: 'string', value: `random ${options.shape} ${options.quant}` }]);
    metadata.push(...applyTokenizerStyle(await vocabulary(s.vocabFrom, s.vocab), style!, s.vocab));
    return writeGGUF(metadata, tensors);
  }

  // Tied: the embedding is the output head too, scaled like one so logits stay peaked, not extreme.
  matrix('token_embd.weight', s.dim, s.vocab, s.tied ? 4 / Math.sqrt(s.dim) : 1);
  // Gemma's scaled-up embedding would otherwise drown the blocks' outputs in the residual stream
  // (the model would only ever repeat its input token).
  const blockOut = gemma ? 32 : 1;
  // Gemma 2 and 3 norm their blocks' outputs too (post_attention_norm, post_ffw_norm).
  const postNorms = arch === 'gemma2' || gemma3Blocks;
  // Qwen 3 and Gemma 3 RMS-norm each head of q and k (weights of one head's width, shared by all heads).
  const qkNorms = arch === 'qwen3' || gemma3Blocks;
  const dn = arch === 'qwen35' ? s.deltaNet : undefined;
  if (arch === 'qwen35' && (!dn || !s.ropeSections)) throw new Error(`qwen35 needs a shape with deltaNet and ropeSections; ${options.shape} has none`);
  for (let l = 0; l < s.layers; l++) {
    const p = `blk.${l}.`;
    vector(p + 'attn_norm.weight', s.dim, () => 1);
    if (dn) {
      if ((l + 1) % dn.interval) {
        deltaNetLayer(p, dn);
      } else {
        // Gated attention: per head, head width rows of q then as many of its output gate.
        matrix(p + 'attn_q.weight', s.dim, 2 * qDim, 1 / Math.sqrt(s.dim));
        matrix(p + 'attn_k.weight', s.dim, kv, 1 / Math.sqrt(s.dim));
        matrix(p + 'attn_v.weight', s.dim, kv, 1 / Math.sqrt(s.dim));
        vector(p + 'attn_q_norm.weight', headDim, () => 1 + 0.2 * random());
        vector(p + 'attn_k_norm.weight', headDim, () => 1 + 0.2 * random());
        matrix(p + 'attn_output.weight', qDim, s.dim, 1 / Math.sqrt(qDim));
      }
      // Qwen3.5 names the feed-forward's input norm post_attention_norm.
      vector(p + 'post_attention_norm.weight', s.dim, () => 1);
      matrix(p + 'ffn_gate.weight', s.dim, s.ffn, 1 / Math.sqrt(s.dim));
      matrix(p + 'ffn_up.weight', s.dim, s.ffn, 1 / Math.sqrt(s.dim));
      matrix(p + 'ffn_down.weight', s.ffn, s.dim, 1 / Math.sqrt(s.ffn));
      continue;
    }
    if (phi3) {
      // Phi-3 fuses q, k and v into one tensor, and gate and up into ffn_up (gate rows first).
      matrix(p + 'attn_qkv.weight', s.dim, qDim + 2 * kv, 1 / Math.sqrt(s.dim));
    } else {
      matrix(p + 'attn_q.weight', s.dim, qDim, 1 / Math.sqrt(s.dim));
      matrix(p + 'attn_k.weight', s.dim, kv, 1 / Math.sqrt(s.dim));
      matrix(p + 'attn_v.weight', s.dim, kv, 1 / Math.sqrt(s.dim));
    }
    if (arch === 'qwen2') {
      vector(p + 'attn_q.bias', qDim, () => random() * 0.1);
      vector(p + 'attn_k.bias', kv, () => random() * 0.1);
      vector(p + 'attn_v.bias', kv, () => random() * 0.1);
    }
    if (qkNorms) {
      // Away from 1 so a missing or misplaced q/k norm shows.
      vector(p + 'attn_q_norm.weight', headDim, () => 1 + 0.2 * random());
      vector(p + 'attn_k_norm.weight', headDim, () => 1 + 0.2 * random());
    }
    matrix(p + 'attn_output.weight', qDim, s.dim, blockOut / Math.sqrt(qDim));
    if (postNorms) vector(p + 'post_attention_norm.weight', s.dim, () => 1 + 0.1 * random());
    vector(p + 'ffn_norm.weight', s.dim, () => 1);
    if (phi3) {
      matrix(p + 'ffn_up.weight', s.dim, 2 * s.ffn, 1 / Math.sqrt(s.dim));
    } else {
      matrix(p + 'ffn_gate.weight', s.dim, s.ffn, 1 / Math.sqrt(s.dim));
      matrix(p + 'ffn_up.weight', s.dim, s.ffn, 1 / Math.sqrt(s.dim));
    }
    matrix(p + 'ffn_down.weight', s.ffn, s.dim, blockOut / Math.sqrt(s.ffn));
    if (postNorms) vector(p + 'post_ffw_norm.weight', s.dim, () => 1 + 0.1 * random());
  }
  vector('output_norm.weight', s.dim, () => 1);
  // EmbeddingGemma's sentence-transformers projections after pooling: out to 4 x dim, back to dim.
  if (arch === 'gemma-embedding') {
    matrix('dense_2.weight', s.dim, 4 * s.dim, 1 / Math.sqrt(s.dim));
    matrix('dense_3.weight', 4 * s.dim, s.dim, 1 / Math.sqrt(4 * s.dim));
  }
  // A large output scale makes the next-token distribution peaked.
  if (!s.tied) matrix('output.weight', s.dim, s.vocab, 4 / Math.sqrt(s.dim));
  // Phi-3's LongRoPE: short factors up to the original context, long ones beyond, and an
  // attention factor on cos and sin (here the factors vary per pair so a mix-up shows). One pair
  // of factors per rotated pair: with partial rotary (Phi-4-mini) that is ropeDims / 2.
  const ropeDims = s.ropeDims ?? headDim;
  const originalContext = s.originalContext ?? Math.min(4096, s.context / 4);
  if (phi3) {
    vector('rope_factors_short.weight', ropeDims / 2, (i) => 1 + 0.05 * i);
    vector('rope_factors_long.weight', ropeDims / 2, (i) => 1 + 0.5 * i);
  }

  const a = GGUF_ARCH[arch];
  const u32 = (value: number): TypedValue => ({ type: 'u32', value });
  const f32 = (value: number): TypedValue => ({ type: 'f32', value });
  const when = (cond: boolean, kvs: [string, TypedValue][]) => (cond ? kvs : []);
  // Qwen 3 and Gemma 3 GGUFs give the head width as key_length/value_length and no
  // rope.dimension_count (llama.cpp then rotates the whole head).
  const headWidthKeys = gemma || arch === 'qwen3' || arch === 'qwen35';
  const metadata: [string, TypedValue][] = [
    ['general.architecture', { type: 'string', value: a }],
    ['general.name', { type: 'string', value: `random ${options.shape} ${options.quant}` }],
    [`${a}.context_length`, u32(s.context)], [`${a}.embedding_length`, u32(s.dim)], [`${a}.block_count`, u32(s.layers)],
    [`${a}.feed_forward_length`, u32(s.ffn)], [`${a}.attention.head_count`, u32(s.heads)], [`${a}.attention.head_count_kv`, u32(s.kvHeads)],
    ...when(!(arch === 'qwen3' || gemma3Blocks), [[`${a}.rope.dimension_count`, u32(ropeDims)]]),
    [`${a}.rope.freq_base`, f32(s.ropeTheta)],
    [`${a}.attention.layer_norm_rms_epsilon`, f32(s.eps ?? 1e-5)],
    // Mistral-style: every layer attends within the window (llama only; Gemma 2 sets its own).
    ...when(!!options.slidingWindow && a === 'llama', [[`${a}.attention.sliding_window`, u32(options.slidingWindow ?? 0)]]),
    ...when(headWidthKeys, [[`${a}.attention.key_length`, u32(headDim)], [`${a}.attention.value_length`, u32(headDim)]]),
    // Gemma 2's caps and window, small enough to matter in a short test sequence.
    ...when(arch === 'gemma2', [
      [`${a}.attn_logit_softcapping`, f32(3)],
      [`${a}.final_logit_softcapping`, f32(10)],
      [`${a}.attention.sliding_window`, u32(6)],
    ]),
    // Gemma 3: the window of its sliding layers (llama.cpp fixes the pattern, five sliding then
    // one global, and the sliding layers' RoPE base, 10000; the converter writes neither).
    ...when(gemma3Blocks, [[`${a}.attention.sliding_window`, u32(s.slidingWindow ?? 0)]]),
    ...when(pooling !== undefined, [[`${a}.pooling_type`, u32({ mean: 1, cls: 2, last: 3 }[pooling!])]]),
    ...when(arch === 'gemma-embedding', [
      [`${a}.dense_2_feat_in`, u32(s.dim)], [`${a}.dense_2_feat_out`, u32(4 * s.dim)],
      [`${a}.dense_3_feat_in`, u32(4 * s.dim)], [`${a}.dense_3_feat_out`, u32(s.dim)],
    ]),
    ...when(!!s.ropeScalingFactor, [[`${a}.rope.scaling.type`, { type: 'string', value: 'linear' }], [`${a}.rope.scaling.factor`, f32(s.ropeScalingFactor ?? 1)]]),
    ...when(!!dn, [
      [`${a}.rope.dimension_sections`, { type: 'array', itemType: 'i32', value: s.ropeSections ?? [] }],
      [`${a}.ssm.conv_kernel`, u32(dn?.convKernel ?? 0)], [`${a}.ssm.state_size`, u32(dn?.state ?? 0)],
      [`${a}.ssm.group_count`, u32(dn?.kHeads ?? 0)], [`${a}.ssm.time_step_rank`, u32(dn?.vHeads ?? 0)],
      [`${a}.ssm.inner_size`, u32((dn?.vHeads ?? 0) * (dn?.state ?? 0))], [`${a}.full_attention_interval`, u32(dn?.interval ?? 0)],
    ]),
    ...when(phi3, [
      [`${a}.rope.scaling.original_context_length`, u32(originalContext)],
      [`${a}.rope.scaling.attn_factor`, f32(1.1)],
    ]),
  ];
  const vocab = await vocabulary(s.vocabFrom, s.vocab);
  // Qwen3-Embedding: the converter makes <|endoftext|> EOS and has it added (the pooled token).
  const embeddingStyle = style && arch === 'qwen3' && pooling ? { ...style, eos: '<|endoftext|>', addEos: true } : style;
  metadata.push(...(embeddingStyle ? applyTokenizerStyle(vocab, embeddingStyle, s.vocab) : vocab));
  return writeGGUF(metadata, tensors);
}

/**
 * Gemma 4's tensors (in llama.cpp's names, the converter's order) and its architecture metadata.
 * Shared-KV layers still carry attn_k/attn_v/attn_k_norm, as converted checkpoints do (llama.cpp
 * loads them as optional and never reads them).
 */
function gemma4Tensors(
  s: Shape, g: Gemma4Shape,
  matrix: (name: string, cols: number, rows: number, scale: number) => void,
  vector: (name: string, n: number, value: (i: number) => number) => void,
  random: () => number,
): [string, TypedValue][] {
  const swa = Array.from({ length: s.layers }, (_, l) => l % g.swaPeriod !== g.swaPeriod - 1);
  const headDim = (l: number) => (swa[l] ? g.headDimSwa : s.headDim!);
  const firstShared = s.layers - g.sharedKvLayers;
  const ffn = (l: number) => (g.doubleWideMlp && l >= firstShared ? 2 * s.ffn : s.ffn);
  const perLayer = g.perLayerInput * s.layers;
  matrix('token_embd.weight', s.dim, s.vocab, 2 / Math.sqrt(s.dim));
  // The per-layer embeddings and their projection from the residual stream.
  matrix('per_layer_token_embd.weight', perLayer, s.vocab, 1);
  matrix('per_layer_model_proj.weight', s.dim, perLayer, 1);
  vector('per_layer_proj_norm.weight', g.perLayerInput, () => 1 + 0.2 * random());
  // Proportional RoPE of the full layers: the first partialRotary of each head's pairs rotate at
  // the whole head's frequencies, the rest (factor 1e30) never turn.
  const rotated = (s.headDim! * g.partialRotary) / 2;
  vector('rope_freqs.weight', s.headDim! / 2, (i) => (i < rotated ? 1 : 1e30));
  for (let l = 0; l < s.layers; l++) {
    const p = `blk.${l}.`;
    const hd = headDim(l);
    vector(p + 'attn_norm.weight', s.dim, () => 1);
    matrix(p + 'attn_q.weight', s.dim, s.heads * hd, 1 / Math.sqrt(s.dim));
    matrix(p + 'attn_k.weight', s.dim, s.kvHeads * hd, 1 / Math.sqrt(s.dim));
    matrix(p + 'attn_v.weight', s.dim, s.kvHeads * hd, 1 / Math.sqrt(s.dim));
    // Away from 1 so a missing or misplaced norm shows. Attention is unscaled (q and k are normed
    // instead), so q's norm is small: scores of about one unit, not sqrt(head width), keep softmax
    // from being so sharp that rounding (llama.cpp's f16 KV cache and 8-bit activations) flips it.
    vector(p + 'attn_q_norm.weight', hd, () => 0.07 * (1 + 0.2 * random()));
    vector(p + 'attn_k_norm.weight', hd, () => 1 + 0.2 * random());
    matrix(p + 'attn_output.weight', s.heads * hd, s.dim, 1 / Math.sqrt(s.heads * hd));
    // Post-norms large enough that the blocks' outputs hold their own against the scaled
    // embedding in the residual stream (else the model only repeats its input token).
    vector(p + 'post_attention_norm.weight', s.dim, () => 3 + 0.3 * random());
    vector(p + 'ffn_norm.weight', s.dim, () => 1);
    matrix(p + 'ffn_gate.weight', s.dim, ffn(l), 1 / Math.sqrt(s.dim));
    matrix(p + 'ffn_up.weight', s.dim, ffn(l), 1 / Math.sqrt(s.dim));
    matrix(p + 'ffn_down.weight', ffn(l), s.dim, 1 / Math.sqrt(ffn(l)));
    vector(p + 'post_ffw_norm.weight', s.dim, () => 3 + 0.3 * random());
    matrix(p + 'inp_gate.weight', s.dim, g.perLayerInput, 1 / Math.sqrt(s.dim));
    matrix(p + 'proj.weight', g.perLayerInput, s.dim, 1 / Math.sqrt(g.perLayerInput));
    vector(p + 'post_norm.weight', s.dim, () => 3 + 0.3 * random());
    vector(p + 'layer_output_scale.weight', 1, () => 0.8 + 0.1 * random());
  }
  // A large final norm makes next-token distributions peaked, and the soft-cap bite.
  vector('output_norm.weight', s.dim, () => 2.5);
  const a = 'gemma4';
  const u32 = (value: number): TypedValue => ({ type: 'u32', value });
  const f32 = (value: number): TypedValue => ({ type: 'f32', value });
  return [
    ['general.architecture', { type: 'string', value: a }],
    [`${a}.context_length`, u32(s.context)], [`${a}.embedding_length`, u32(s.dim)], [`${a}.block_count`, u32(s.layers)],
    [`${a}.feed_forward_length`, g.doubleWideMlp ? { type: 'array', itemType: 'i32', value: Array.from({ length: s.layers }, (_, l) => ffn(l)) } : u32(s.ffn)],
    [`${a}.attention.head_count`, u32(s.heads)], [`${a}.attention.head_count_kv`, u32(s.kvHeads)],
    [`${a}.attention.layer_norm_rms_epsilon`, f32(s.eps ?? 1e-6)],
    [`${a}.rope.freq_base`, f32(s.ropeTheta)], [`${a}.rope.freq_base_swa`, f32(s.ropeThetaLocal ?? s.ropeTheta)],
    [`${a}.attention.sliding_window`, u32(s.slidingWindow ?? 0)],
    [`${a}.attention.sliding_window_pattern`, { type: 'array', itemType: 'bool', value: swa }],
    [`${a}.attention.key_length`, u32(s.headDim!)], [`${a}.attention.value_length`, u32(s.headDim!)],
    [`${a}.attention.key_length_swa`, u32(g.headDimSwa)], [`${a}.attention.value_length_swa`, u32(g.headDimSwa)],
    [`${a}.rope.dimension_count`, u32(s.headDim!)], [`${a}.rope.dimension_count_swa`, u32(g.headDimSwa)],
    [`${a}.attention.shared_kv_layers`, u32(g.sharedKvLayers)],
    [`${a}.embedding_length_per_layer_input`, u32(g.perLayerInput)],
    [`${a}.final_logit_softcapping`, f32(g.finalSoftcap)],
  ];
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({ options: { arch: { type: 'string' }, shape: { type: 'string' }, quant: { type: 'string' }, out: { type: 'string' }, seed: { type: 'string' }, pooling: { type: 'string' }, layers: { type: 'string' }, 'table-row-period': { type: 'string' } } });
  const arch = values.arch ?? 'llama';
  // Encoders (embedding models) have their own generator (scripts/make-bert.ts).
  if (arch === 'bert' || arch === 'nomic-bert') {
    if (!values.shape || !values.quant || !values.out) {
      console.error(`usage: npm run make-model -- --arch bert|nomic-bert --shape ${Object.keys(BERT_SHAPES).join('|')} --quant f32|f16|q8_0|q4_k_m --out FILE [--seed N] [--layers N]`);
      process.exit(2);
    }
    const bytes = await makeBertModel({ shape: values.shape, quant: values.quant, seed: values.seed ? Number(values.seed) : 1, layers: values.layers ? Number(values.layers) : undefined });
    writeFileSync(values.out, bytes);
    console.log(`wrote ${values.out}: ${(bytes.byteLength / 2 ** 20).toFixed(1)} MiB`);
    process.exit(0);
  }
  if (!(ARCHITECTURES as string[]).includes(arch)) {
    console.error(`unknown --arch ${arch} (known: ${ARCHITECTURES.join(', ')})`);
    process.exit(2);
  }
  if (!values.shape || !values.quant || !values.out) {
    console.error(`usage: npm run make-model -- --arch ${ARCHITECTURES.join('|')} --shape NAME --quant f32|f16|bf16|q8_0|q4_0|q4_1|q5_0|q5_1|q4_k_m|q5_k_m|q6_k --out FILE [--seed N] [--pooling mean|cls|last] [--layers N] [--table-row-period N]\n  shapes: ${Object.keys(SHAPES).join(', ')}`);
    process.exit(2);
  }
  if (values.pooling !== undefined && !['mean', 'cls', 'last'].includes(values.pooling)) {
    console.error(`--pooling takes mean, cls or last, not ${values.pooling}`);
    process.exit(2);
  }
  const pooling = values.pooling as 'mean' | 'cls' | 'last' | undefined;
  const bytes = await makeModel({
    arch: arch as Architecture, shape: values.shape, quant: values.quant, seed: values.seed ? Number(values.seed) : 1, pooling,
    layers: values.layers ? Number(values.layers) : undefined, tableRowPeriod: values['table-row-period'] ? Number(values['table-row-period']) : undefined,
  });
  // In pieces: one write takes at most 2 GiB, less than a real Gemma 4 E2B.
  const fd = openSync(values.out, 'w');
  for (let at = 0; at < bytes.byteLength; at += 2 ** 30) writeSync(fd, bytes.subarray(at, at + 2 ** 30));
  closeSync(fd);
  console.log(`wrote ${values.out}: ${(bytes.byteLength / 2 ** 20).toFixed(1)} MiB`);
}
