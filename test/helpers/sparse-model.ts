import { closeSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { GGMLType } from '../../src/gguf/ggml-types.js';
import { ggufLayout, type TypedValue } from '../../src/gguf/writer.js';

export interface SparseLlamaShape {
  dim: number;
  layers: number;
  heads: number;
  kvHeads: number;
  ffn: number;
  vocab: number;
  context: number;
}

/**
 * A Llama-architecture Q4_0 GGUF of a real shape whose tensor data is a hole in a sparse file:
 * written in milliseconds at any size. An estimate reads its header only (a server can count
 * that no weight byte was asked for); a load reads zeros, which is all a test of where bytes go
 * needs. `tokens` (default 3) tokenizer entries: enough for a load to build its tokenizer.
 */
export function writeSparseLlama(path: string, s: SparseLlamaShape, tokens = 3): number {
  const u32 = (value: number): TypedValue => ({ type: 'u32', value });
  const metadata: [string, TypedValue][] = [
    ['general.architecture', { type: 'string', value: 'llama' }],
    ['llama.context_length', u32(s.context)], ['llama.embedding_length', u32(s.dim)], ['llama.block_count', u32(s.layers)],
    ['llama.feed_forward_length', u32(s.ffn)], ['llama.attention.head_count', u32(s.heads)], ['llama.attention.head_count_kv', u32(s.kvHeads)],
    ['llama.rope.dimension_count', u32(s.dim / s.heads)], ['llama.attention.layer_norm_rms_epsilon', { type: 'f32', value: 1e-5 }],
    ['tokenizer.ggml.model', { type: 'string', value: 'gpt2' }],
    ['tokenizer.ggml.tokens', { type: 'array', itemType: 'string', value: Array.from({ length: tokens }, (_, i) => String.fromCharCode(97 + (i % 26)) + (i >= 26 ? i : '')) }],
    ['tokenizer.ggml.merges', { type: 'array', itemType: 'string', value: [] }],
  ];
  const kv = (s.kvHeads * s.dim) / s.heads;
  const q = GGMLType.Q4_0, f32 = GGMLType.F32;
  const tensors = [
    { name: 'token_embd.weight', dims: [s.dim, s.vocab], type: q },
    ...Array.from({ length: s.layers }, (_, l) => [
      { name: `blk.${l}.attn_norm.weight`, dims: [s.dim], type: f32 },
      { name: `blk.${l}.attn_q.weight`, dims: [s.dim, s.dim], type: q },
      { name: `blk.${l}.attn_k.weight`, dims: [s.dim, kv], type: q },
      { name: `blk.${l}.attn_v.weight`, dims: [s.dim, kv], type: q },
      { name: `blk.${l}.attn_output.weight`, dims: [s.dim, s.dim], type: q },
      { name: `blk.${l}.ffn_norm.weight`, dims: [s.dim], type: f32 },
      { name: `blk.${l}.ffn_gate.weight`, dims: [s.dim, s.ffn], type: q },
      { name: `blk.${l}.ffn_up.weight`, dims: [s.dim, s.ffn], type: q },
      { name: `blk.${l}.ffn_down.weight`, dims: [s.ffn, s.dim], type: q },
    ]).flat(),
    { name: 'output_norm.weight', dims: [s.dim], type: f32 },
    { name: 'output.weight', dims: [s.dim, s.vocab], type: q },
  ];
  const { header, fileBytes } = ggufLayout(metadata, tensors);
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, header);
    ftruncateSync(fd, fileBytes);
  } finally {
    closeSync(fd);
  }
  return fileBytes;
}
