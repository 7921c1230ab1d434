/**
 * Writes a random-weight GGUF at a real model's shape, with real tokenizer metadata, for
 * benchmarks and tests:
 *   npm run make-model -- --arch llama --shape tinyllama-1.1b --quant q4_0 --out FILE [--seed N]
 * Reads vocabularies from ../shared/models. Weights are scaled so next-token distributions are
 * peaked rather than uniform.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { GGMLType } from '../src/gguf/ggml-types.js';
import { readGGUF } from '../src/gguf/gguf.js';
import { typed, writeGGUF, type TensorToWrite, type TypedValue } from '../src/gguf/writer.js';
import { bytesSource } from '../src/io/byte-source.js';
import { quantize } from './quantize.js';

const MODELS = fileURLToPath(new URL('../../shared/models/', import.meta.url));

export interface Shape {
  dim: number; layers: number; heads: number; kvHeads: number; ffn: number; vocab: number; context: number;
  /** Per-head width when it is not dim / heads (Gemma). */
  headDim?: number;
  vocabFrom: 'stories' | 'llama-spm' | 'gpt2' | 'llama3';
  tied: boolean;
  ropeTheta: number;
}

export const SHAPES: Record<string, Shape> = {
  'llama-3.2-1b': { dim: 2048, layers: 16, heads: 32, kvHeads: 8, ffn: 8192, vocab: 128256, context: 131072, vocabFrom: 'llama3', tied: true, ropeTheta: 500000 },
  'qwen2.5-0.5b': { dim: 896, layers: 24, heads: 14, kvHeads: 2, ffn: 4864, vocab: 151936, context: 32768, vocabFrom: 'gpt2', tied: true, ropeTheta: 1000000 },
  'smollm2-135m': { dim: 576, layers: 30, heads: 9, kvHeads: 3, ffn: 1536, vocab: 49152, context: 8192, vocabFrom: 'gpt2', tied: true, ropeTheta: 100000 },
  'smollm2-360m': { dim: 960, layers: 32, heads: 15, kvHeads: 5, ffn: 2560, vocab: 49152, context: 8192, vocabFrom: 'gpt2', tied: true, ropeTheta: 100000 },
  'gemma-2-2b': { dim: 2304, layers: 26, heads: 8, kvHeads: 4, headDim: 256, ffn: 9216, vocab: 256000, context: 8192, vocabFrom: 'llama-spm', tied: true, ropeTheta: 10000 },
  'phi-3.5-mini': { dim: 3072, layers: 32, heads: 32, kvHeads: 32, ffn: 8192, vocab: 32064, context: 131072, vocabFrom: 'llama-spm', tied: false, ropeTheta: 10000 },
  'tinyllama-1.1b': { dim: 2048, layers: 22, heads: 32, kvHeads: 4, ffn: 5632, vocab: 32000, context: 2048, vocabFrom: 'llama-spm', tied: false, ropeTheta: 10000 },
  // Small shapes for tests: rows are multiples of 256 so every quant type applies.
  'tiny-256': { dim: 256, layers: 2, heads: 4, kvHeads: 2, ffn: 512, vocab: 512, context: 256, vocabFrom: 'stories', tied: false, ropeTheta: 10000 },
  // Gemma's shape in small: tied output, heads wider than dim / heads.
  'tiny-256-gemma': { dim: 256, layers: 2, heads: 4, kvHeads: 2, headDim: 96, ffn: 512, vocab: 512, context: 256, vocabFrom: 'stories', tied: true, ropeTheta: 10000 },
  'tiny-256-tied': { dim: 256, layers: 2, heads: 4, kvHeads: 2, ffn: 512, vocab: 512, context: 256, vocabFrom: 'stories', tied: true, ropeTheta: 10000 },
};

/** What each quant preset stores per tensor (llama.cpp's mixes, simplified). */
const QUANTS: Record<string, (name: string) => number> = {
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
  q4_k_m: (name) => (/output\.weight|attn_v|ffn_down/.test(name) ? GGMLType.Q6_K : GGMLType.Q4_K),
  // Q5_K_M: Q5_K, with Q6_K in the same places.
  q5_k_m: (name) => (/output\.weight|attn_v|ffn_down/.test(name) ? GGMLType.Q6_K : GGMLType.Q5_K),
};

/** Tokenizer metadata from ../shared/models, padded to the shape's vocabulary size. */
async function vocabulary(source: Shape['vocabFrom'], size: number): Promise<[string, TypedValue][]> {
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
function normal(seed: number): () => number {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 1) / 4294967297;
  };
  return () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
}

export type Architecture = 'llama' | 'qwen2' | 'phi3' | 'gemma' | 'gemma2';
export const ARCHITECTURES: Architecture[] = ['llama', 'qwen2', 'phi3', 'gemma', 'gemma2'];

export async function makeModel(options: { arch: Architecture; shape: string; quant: string; seed?: number; slidingWindow?: number }): Promise<Uint8Array> {
  const s = SHAPES[options.shape];
  if (!s) throw new Error(`unknown shape ${options.shape} (known: ${Object.keys(SHAPES).join(', ')})`);
  const typeOf = QUANTS[options.quant];
  if (!typeOf) throw new Error(`unknown quant ${options.quant} (known: ${Object.keys(QUANTS).join(', ')})`);
  const random = normal(options.seed ?? 1);
  const headDim = s.headDim ?? s.dim / s.heads;
  const qDim = s.heads * headDim;
  const kv = s.kvHeads * headDim;
  const gemma = options.arch === 'gemma' || options.arch === 'gemma2';
  // llama.cpp's Gemma always reads its output head from the embedding.
  if (gemma && !s.tied) throw new Error(`${options.arch} ties its output to the embedding; shape ${options.shape} does not`);
  const tensors: TensorToWrite[] = [];
  const matrix = (name: string, cols: number, rows: number, scale: number) => {
    const x = new Float32Array(cols * rows);
    for (let i = 0; i < x.length; i++) x[i] = random() * scale;
    const q = quantize(x, cols, typeOf(name));
    tensors.push({ name, dims: [cols, rows], type: q.type, data: q.data });
  };
  const vector = (name: string, n: number, value: (i: number) => number) =>
    tensors.push({ name, dims: [n], type: GGMLType.F32, data: new Uint8Array(Float32Array.from({ length: n }, (_, i) => value(i)).buffer) });

  const phi3 = options.arch === 'phi3';
  // Tied: the embedding is the output head too, scaled like one so logits stay peaked, not extreme.
  matrix('token_embd.weight', s.dim, s.vocab, s.tied ? 4 / Math.sqrt(s.dim) : 1);
  // Gemma's scaled-up embedding would otherwise drown the blocks' outputs in the residual stream
  // (the model would only ever repeat its input token).
  const blockOut = gemma ? 32 : 1;
  for (let l = 0; l < s.layers; l++) {
    const p = `blk.${l}.`;
    vector(p + 'attn_norm.weight', s.dim, () => 1);
    if (phi3) {
      // Phi-3 fuses q, k and v into one tensor, and gate and up into ffn_up (gate rows first).
      matrix(p + 'attn_qkv.weight', s.dim, qDim + 2 * kv, 1 / Math.sqrt(s.dim));
    } else {
      matrix(p + 'attn_q.weight', s.dim, qDim, 1 / Math.sqrt(s.dim));
      matrix(p + 'attn_k.weight', s.dim, kv, 1 / Math.sqrt(s.dim));
      matrix(p + 'attn_v.weight', s.dim, kv, 1 / Math.sqrt(s.dim));
    }
    if (options.arch === 'qwen2') {
      vector(p + 'attn_q.bias', qDim, () => random() * 0.1);
      vector(p + 'attn_k.bias', kv, () => random() * 0.1);
      vector(p + 'attn_v.bias', kv, () => random() * 0.1);
    }
    matrix(p + 'attn_output.weight', qDim, s.dim, blockOut / Math.sqrt(qDim));
    if (options.arch === 'gemma2') vector(p + 'post_attention_norm.weight', s.dim, () => 1 + 0.1 * random());
    vector(p + 'ffn_norm.weight', s.dim, () => 1);
    if (phi3) {
      matrix(p + 'ffn_up.weight', s.dim, 2 * s.ffn, 1 / Math.sqrt(s.dim));
    } else {
      matrix(p + 'ffn_gate.weight', s.dim, s.ffn, 1 / Math.sqrt(s.dim));
      matrix(p + 'ffn_up.weight', s.dim, s.ffn, 1 / Math.sqrt(s.dim));
    }
    matrix(p + 'ffn_down.weight', s.ffn, s.dim, blockOut / Math.sqrt(s.ffn));
    if (options.arch === 'gemma2') vector(p + 'post_ffw_norm.weight', s.dim, () => 1 + 0.1 * random());
  }
  vector('output_norm.weight', s.dim, () => 1);
  // A large output scale makes the next-token distribution peaked.
  if (!s.tied) matrix('output.weight', s.dim, s.vocab, 4 / Math.sqrt(s.dim));
  // Phi-3.5's LongRoPE: short factors up to the original context, long ones beyond, and an
  // attention factor on cos and sin (here the factors vary per pair so a mix-up shows).
  const originalContext = Math.min(4096, s.context / 4);
  if (phi3) {
    vector('rope_factors_short.weight', headDim / 2, (i) => 1 + 0.05 * i);
    vector('rope_factors_long.weight', headDim / 2, (i) => 1 + 0.5 * i);
  }

  const a = options.arch;
  const u32 = (value: number): TypedValue => ({ type: 'u32', value });
  const metadata: [string, TypedValue][] = [
    ['general.architecture', { type: 'string', value: a }],
    ['general.name', { type: 'string', value: `random ${options.shape} ${options.quant}` }],
    [`${a}.context_length`, u32(s.context)], [`${a}.embedding_length`, u32(s.dim)], [`${a}.block_count`, u32(s.layers)],
    [`${a}.feed_forward_length`, u32(s.ffn)], [`${a}.attention.head_count`, u32(s.heads)], [`${a}.attention.head_count_kv`, u32(s.kvHeads)],
    [`${a}.rope.dimension_count`, u32(headDim)], [`${a}.rope.freq_base`, { type: 'f32', value: s.ropeTheta }],
    [`${a}.attention.layer_norm_rms_epsilon`, { type: 'f32', value: 1e-5 }],
    // Mistral-style: every layer attends within the window (llama only; Gemma 2 sets its own).
    ...(options.slidingWindow && a === 'llama' ? [[`${a}.attention.sliding_window`, u32(options.slidingWindow)]] as [string, TypedValue][] : []),
    ...(gemma ? [[`${a}.attention.key_length`, u32(headDim)], [`${a}.attention.value_length`, u32(headDim)]] as [string, TypedValue][] : []),
    // Gemma 2's caps and window, small enough to matter in a short test sequence.
    ...(options.arch === 'gemma2' ? [
      [`${a}.attn_logit_softcapping`, { type: 'f32', value: 3 }],
      [`${a}.final_logit_softcapping`, { type: 'f32', value: 10 }],
      [`${a}.attention.sliding_window`, u32(6)],
    ] as [string, TypedValue][] : []),
    ...(phi3 ? [
      [`${a}.rope.scaling.original_context_length`, u32(originalContext)],
      [`${a}.rope.scaling.attn_factor`, { type: 'f32', value: 1.1 }],
    ] as [string, TypedValue][] : []),
    ...(await vocabulary(s.vocabFrom, s.vocab)),
  ];
  return writeGGUF(metadata, tensors);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({ options: { arch: { type: 'string' }, shape: { type: 'string' }, quant: { type: 'string' }, out: { type: 'string' }, seed: { type: 'string' } } });
  const arch = values.arch ?? 'llama';
  if (!(ARCHITECTURES as string[]).includes(arch)) {
    console.error(`unknown --arch ${arch} (known: ${ARCHITECTURES.join(', ')})`);
    process.exit(2);
  }
  if (!values.shape || !values.quant || !values.out) {
    console.error('usage: npm run make-model -- --arch llama|qwen2|phi3|gemma|gemma2 --shape NAME --quant f32|f16|bf16|q8_0|q4_0|q4_1|q5_0|q5_1|q4_k_m|q5_k_m|q6_k --out FILE [--seed N]');
    process.exit(2);
  }
  const bytes = await makeModel({ arch: arch as Architecture, shape: values.shape, quant: values.quant, seed: values.seed ? Number(values.seed) : 1 });
  writeFileSync(values.out, bytes);
  console.log(`wrote ${values.out}: ${(bytes.byteLength / 2 ** 20).toFixed(1)} MiB`);
}
