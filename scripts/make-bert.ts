/**
 * Random-weight BERT encoders (GGUF architecture "bert", llama.cpp's LLM_ARCH_BERT) at real
 * embedding models' shapes, with the real BERT uncased WordPiece vocabulary (llama.cpp's
 * ggml-vocab-bert-bge.gguf): `npm run make-model -- --arch bert --shape bge-small-en-v1.5 ...`.
 * Tensors and keys as llama.cpp reads them (docs: /work/helper-notes/EMBED-SPEC.md).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { GGMLType } from '../src/gguf/ggml-types.js';
import { readGGUF } from '../src/gguf/gguf.js';
import { typed, writeGGUF, type TensorToWrite, type TypedValue } from '../src/gguf/writer.js';
import { bytesSource } from '../src/io/byte-source.js';
import { normal, QUANTS } from './make-model.js';
import { quantize } from './quantize.js';

const VOCAB = fileURLToPath(new URL('../../shared/models/tokenizers/llamacpp-vocab/ggml-vocab-bert-bge.gguf', import.meta.url));

export interface BertShape {
  /** bert: absolute positions, biases, GELU; nomic-bert: RoPE, fused qkv, no biases, SwiGLU. */
  arch: 'bert' | 'nomic-bert';
  dim: number; layers: number; heads: number; ffn: number; context: number;
  /** llama.cpp's pooling type: 1 mean, 2 cls, 3 last. */
  pooling: number;
  eps: number;
  ropeTheta?: number;
}

export const BERT_SHAPES: Record<string, BertShape> = {
  // From each model's config.json and sentence-transformers pooling.
  'bge-small-en-v1.5': { arch: 'bert', dim: 384, layers: 12, heads: 12, ffn: 1536, context: 512, pooling: 2, eps: 1e-12 },
  'all-minilm-l6-v2': { arch: 'bert', dim: 384, layers: 6, heads: 12, ffn: 1536, context: 512, pooling: 1, eps: 1e-12 },
  // Tests: rows of 256 so every quant type applies; mean and cls pooling.
  'tiny-bert': { arch: 'bert', dim: 256, layers: 2, heads: 4, ffn: 512, context: 128, pooling: 1, eps: 1e-12 },
  'tiny-bert-cls': { arch: 'bert', dim: 256, layers: 2, heads: 4, ffn: 512, context: 128, pooling: 2, eps: 1e-12 },
  // nomic-embed-text-v1.5 (its GGUF: 2048 positions, RoPE base 1000, mean pooling; same WordPiece vocabulary).
  'nomic-embed-text-v1.5': { arch: 'nomic-bert', dim: 768, layers: 12, heads: 12, ffn: 3072, context: 2048, pooling: 1, eps: 1e-12, ropeTheta: 1000 },
  'tiny-nomic': { arch: 'nomic-bert', dim: 256, layers: 2, heads: 4, ffn: 512, context: 128, pooling: 1, eps: 1e-12, ropeTheta: 1000 },
};

/**
 * `basename`: general.basename, as converted files name their model family (which selects its
 * prefixes). `layers` keeps only the first layers of the shape (every tensor at its real size): a
 * real-shape check that need not pay for the whole depth.
 */
export async function makeBertModel(options: { shape: string; quant: string; seed?: number; basename?: string; layers?: number }): Promise<Uint8Array> {
  const shape = BERT_SHAPES[options.shape];
  if (!shape) throw new Error(`unknown bert shape ${options.shape} (known: ${Object.keys(BERT_SHAPES).join(', ')})`);
  const s = options.layers ? { ...shape, layers: options.layers } : shape;
  const typeOf = QUANTS[options.quant];
  if (!typeOf) throw new Error(`unknown quant ${options.quant} (known: ${Object.keys(QUANTS).join(', ')})`);
  const vocab = await readGGUF(bytesSource(new Uint8Array(readFileSync(VOCAB))));
  const vocabSize = (vocab.metadata.get('tokenizer.ggml.tokens') as string[]).length;
  const random = normal(options.seed ?? 1);
  const tensors: TensorToWrite[] = [];
  const f32 = (name: string, dims: number[], value: () => number) =>
    tensors.push({ name, dims, type: GGMLType.F32, data: new Uint8Array(Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, value).buffer) });
  const matrix = (name: string, cols: number, rows: number, scale: number) => {
    const x = new Float32Array(cols * rows);
    for (let i = 0; i < x.length; i++) x[i] = random() * scale;
    const q = quantize(x, cols, typeOf(name));
    tensors.push({ name, dims: [cols, rows], type: q.type, data: q.data });
  };
  // Biases and norm weights away from 0 and 1, so a missing one shows.
  const bias = (name: string, n: number) => f32(name, [n], () => 0.1 * random());
  const norm = (name: string) => {
    f32(`${name}.weight`, [s.dim], () => 1 + 0.1 * random());
    bias(`${name}.bias`, s.dim);
  };
  const bert = s.arch === 'bert';
  matrix('token_embd.weight', s.dim, vocabSize, 1);
  // Position and type tables stay f32: small, and read a row at a time.
  if (bert) f32('position_embd.weight', [s.dim, s.context], () => 0.3 * random());
  f32('token_types.weight', [s.dim, 2], () => 0.3 * random());
  norm('token_embd_norm');
  for (let l = 0; l < s.layers; l++) {
    const p = `blk.${l}.`;
    if (bert) {
      for (const t of ['attn_q', 'attn_k', 'attn_v']) {
        matrix(`${p}${t}.weight`, s.dim, s.dim, 2 / Math.sqrt(s.dim));
        bias(`${p}${t}.bias`, s.dim);
      }
    } else {
      matrix(p + 'attn_qkv.weight', s.dim, 3 * s.dim, 2 / Math.sqrt(s.dim));
    }
    matrix(p + 'attn_output.weight', s.dim, s.dim, 1 / Math.sqrt(s.dim));
    if (bert) bias(p + 'attn_output.bias', s.dim);
    norm(p + 'attn_output_norm');
    if (!bert) matrix(p + 'ffn_gate.weight', s.dim, s.ffn, 1 / Math.sqrt(s.dim));
    matrix(p + 'ffn_up.weight', s.dim, s.ffn, 1 / Math.sqrt(s.dim));
    if (bert) bias(p + 'ffn_up.bias', s.ffn);
    matrix(p + 'ffn_down.weight', s.ffn, s.dim, 1 / Math.sqrt(s.ffn));
    if (bert) bias(p + 'ffn_down.bias', s.dim);
    norm(p + 'layer_output_norm');
  }
  const u32 = (value: number): TypedValue => ({ type: 'u32', value });
  const a = s.arch;
  const metadata: [string, TypedValue][] = [
    ['general.architecture', { type: 'string', value: a }],
    ['general.name', { type: 'string', value: `random ${options.shape} ${options.quant}` }],
    ...(options.basename ? ([['general.basename', { type: 'string', value: options.basename }]] as [string, TypedValue][]) : []),
    [`${a}.context_length`, u32(s.context)], [`${a}.embedding_length`, u32(s.dim)], [`${a}.block_count`, u32(s.layers)],
    [`${a}.feed_forward_length`, u32(s.ffn)], [`${a}.attention.head_count`, u32(s.heads)],
    [`${a}.attention.layer_norm_epsilon`, { type: 'f32', value: s.eps }],
    [`${a}.attention.causal`, { type: 'bool', value: false }],
    [`${a}.pooling_type`, u32(s.pooling)],
    ...(s.ropeTheta ? ([[`${a}.rope.freq_base`, { type: 'f32', value: s.ropeTheta }]] as [string, TypedValue][]) : []),
    ...[...vocab.metadata].filter(([k]) => k.startsWith('tokenizer.')).map(([k, v]): [string, TypedValue] => [k, typed(v)]),
  ];
  return writeGGUF(metadata, tensors);
}
