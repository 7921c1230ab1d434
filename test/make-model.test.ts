/**
 * scripts/make-model.ts at issue 15's architectures (tiny shapes): each writes the metadata keys
 * and the tensor names and shapes that llama.cpp's loader reads for that architecture (the files
 * were checked to load and generate in llama.cpp via @wllama/wllama 3.13.0), and the tokenizer
 * metadata (model, pre, special tokens, chat template) of the real files.
 */
import { describe, expect, test } from 'vitest';
import { readGGUF } from '../src/gguf/gguf.js';
import { bytesSource } from '../src/io/byte-source.js';
import { makeModel, TINY_SHAPES, type Architecture } from '../scripts/make-model.js';
import { HAVE_MODELS } from './helpers/models.js';

const D = 256, FF = 512, V = 512;
const CASES: Record<string, { gguf: string; layers: number; keys: Record<string, unknown>; absent: string[]; pre: string; model: string; layer: Record<string, number[]>; global: Record<string, number[]> }> = {
  qwen3: {
    gguf: 'qwen3', layers: 2, model: 'gpt2', pre: 'qwen2',
    keys: { 'qwen3.attention.key_length': 128, 'qwen3.attention.value_length': 128, 'qwen3.attention.head_count': 4, 'qwen3.attention.head_count_kv': 2, 'qwen3.rope.freq_base': 1000000 },
    absent: ['qwen3.rope.dimension_count', 'output.weight'],
    layer: { 'attn_q.weight': [D, 512], 'attn_k.weight': [D, 256], 'attn_v.weight': [D, 256], 'attn_q_norm.weight': [128], 'attn_k_norm.weight': [128], 'attn_output.weight': [512, D], 'ffn_gate.weight': [D, FF], 'ffn_up.weight': [D, FF], 'ffn_down.weight': [FF, D] },
    global: { 'token_embd.weight': [D, V], 'output_norm.weight': [D] },
  },
  gemma3: {
    gguf: 'gemma3', layers: 6, model: 'llama', pre: 'default',
    keys: { 'gemma3.attention.sliding_window': 6, 'gemma3.attention.key_length': 128, 'gemma3.attention.value_length': 128, 'tokenizer.ggml.add_bos_token': true, 'tokenizer.ggml.add_space_prefix': false },
    absent: ['gemma3.rope.dimension_count', 'gemma3.final_logit_softcapping', 'gemma3.attn_logit_softcapping', 'output.weight'],
    layer: { 'attn_q_norm.weight': [128], 'attn_k_norm.weight': [128], 'post_attention_norm.weight': [D], 'post_ffw_norm.weight': [D], 'attn_q.weight': [D, 512], 'attn_output.weight': [512, D], 'ffn_gate.weight': [D, FF] },
    global: { 'token_embd.weight': [D, V], 'output_norm.weight': [D] },
  },
  smollm3: {
    gguf: 'smollm3', layers: 4, model: 'gpt2', pre: 'llama-bpe',
    keys: { 'smollm3.rope.dimension_count': 64, 'smollm3.rope.freq_base': 5000000 },
    absent: ['smollm3.attention.key_length', 'blk.0.attn_q_norm.weight', 'output.weight'],
    layer: { 'attn_q.weight': [D, D], 'attn_k.weight': [D, 128], 'attn_v.weight': [D, 128], 'attn_output.weight': [D, D], 'ffn_gate.weight': [D, FF], 'ffn_down.weight': [FF, D] },
    global: { 'token_embd.weight': [D, V], 'output_norm.weight': [D] },
  },
  'phi4-mini': {
    gguf: 'phi3', layers: 2, model: 'gpt2', pre: 'gpt-4o',
    keys: { 'phi3.rope.dimension_count': 48, 'phi3.attention.head_count_kv': 2, 'phi3.rope.scaling.original_context_length': 64 },
    absent: ['output.weight', 'blk.0.attn_q.weight', 'blk.0.ffn_gate.weight'],
    layer: { 'attn_qkv.weight': [D, D + 2 * 128], 'attn_output.weight': [D, D], 'ffn_up.weight': [D, 2 * FF], 'ffn_down.weight': [FF, D] },
    global: { 'token_embd.weight': [D, V], 'rope_factors_short.weight': [24], 'rope_factors_long.weight': [24] },
  },
};

describe.skipIf(!HAVE_MODELS)('make-model: issue 15 architectures at the tiny shape', () => {
  for (const [arch, want] of Object.entries(CASES)) {
    test(arch, async () => {
      const file = await readGGUF(bytesSource(await makeModel({ arch: arch as Architecture, shape: TINY_SHAPES[arch as Architecture], quant: 'q8_0', seed: 1 }), `${arch}.gguf`));
      const meta = file.metadata;
      expect(meta.get('general.architecture')).toBe(want.gguf);
      expect(meta.get(`${want.gguf}.block_count`)).toBe(want.layers);
      expect(meta.get(`${want.gguf}.embedding_length`)).toBe(D);
      for (const [k, v] of Object.entries(want.keys)) expect(meta.get(k), k).toBe(v);
      expect(meta.get('tokenizer.ggml.model')).toBe(want.model);
      expect(meta.get('tokenizer.ggml.pre')).toBe(want.pre);
      expect(String(meta.get('tokenizer.chat_template'))).toContain('messages');
      const tokens = meta.get('tokenizer.ggml.tokens') as string[];
      expect(tokens).toHaveLength(V);
      expect(typeof tokens[meta.get('tokenizer.ggml.eos_token_id') as number]).toBe('string');
      const dims = new Map(file.tensors.map((t) => [t.name, t.dims.map(Number)]));
      for (const k of want.absent) expect(meta.has(k) || dims.has(k), k).toBe(false);
      for (const [name, shape] of Object.entries(want.global)) expect(dims.get(name), name).toEqual(shape);
      for (let l = 0; l < want.layers; l++) {
        for (const [name, shape] of Object.entries(want.layer)) expect(dims.get(`blk.${l}.${name}`), `blk.${l}.${name}`).toEqual(shape);
      }
      // Every layer tensor is accounted for (no stray names llama.cpp would reject as unused).
      const perLayer = [...dims.keys()].filter((n) => n.startsWith('blk.0.')).length;
      const expected = Object.keys(want.layer).length + ['attn_norm', 'ffn_norm'].length;
      expect(perLayer).toBeGreaterThanOrEqual(expected);
    });
  }

  test('gemma3 special tokens keep their ids; qwen3 puts them at the end of a small vocabulary', async () => {
    const g = await readGGUF(bytesSource(await makeModel({ arch: 'gemma3', shape: 'tiny-256-gemma3', quant: 'f32' }), 'g.gguf'));
    const gt = g.metadata.get('tokenizer.ggml.tokens') as string[];
    expect([gt[0], gt[1], gt[2], gt[3], gt[105], gt[106]]).toEqual(['<pad>', '<eos>', '<bos>', '<unk>', '<start_of_turn>', '<end_of_turn>']);
    expect(g.metadata.get('tokenizer.ggml.eot_token_id')).toBe(106);
    const q = await readGGUF(bytesSource(await makeModel({ arch: 'qwen3', shape: 'tiny-256-qwen3', quant: 'f32' }), 'q.gguf'));
    const qt = q.metadata.get('tokenizer.ggml.tokens') as string[];
    expect(qt[q.metadata.get('tokenizer.ggml.eos_token_id') as number]).toBe('<|im_end|>');
  });

  test('gemma4: per-layer sliding pattern, head widths, FFN widths, shared KV and per-layer embeddings', async () => {
    const file = await readGGUF(bytesSource(await makeModel({ arch: 'gemma4', shape: TINY_SHAPES.gemma4, quant: 'q8_0', seed: 1 }), 'g4.gguf'));
    const meta = file.metadata;
    expect(meta.get('general.architecture')).toBe('gemma4');
    expect(meta.get('gemma4.attention.sliding_window_pattern')).toEqual([true, true, false, true, true, false]);
    expect(Array.from(meta.get('gemma4.feed_forward_length') as ArrayLike<number>)).toEqual([512, 512, 512, 1024, 1024, 1024]);
    for (const [k, v] of Object.entries({ 'key_length': 128, 'key_length_swa': 64, 'value_length_swa': 64, 'shared_kv_layers': 3 })) expect(meta.get(`gemma4.attention.${k}`), k).toBe(v);
    expect(meta.get('gemma4.embedding_length_per_layer_input')).toBe(256);
    expect(meta.get('gemma4.rope.dimension_count_swa')).toBe(64);
    expect(meta.get('gemma4.rope.freq_base_swa')).toBe(10000);
    const dims = new Map(file.tensors.map((t) => [t.name, t.dims.map(Number)]));
    expect(dims.get('per_layer_token_embd.weight')).toEqual([256 * 6, V]);
    expect(dims.get('per_layer_model_proj.weight')).toEqual([D, 256 * 6]);
    expect(dims.get('rope_freqs.weight')).toEqual([64]);
    expect(dims.get('blk.0.attn_q.weight')).toEqual([D, 4 * 64]);
    expect(dims.get('blk.2.attn_q.weight')).toEqual([D, 4 * 128]);
    expect(dims.get('blk.5.attn_output.weight')).toEqual([4 * 128, D]);
    expect(dims.get('blk.5.ffn_down.weight')).toEqual([1024, D]);
    expect(dims.get('blk.3.inp_gate.weight')).toEqual([D, 256]);
    expect(dims.get('blk.3.proj.weight')).toEqual([256, D]);
    expect(dims.get('blk.3.layer_output_scale.weight')).toEqual([1]);
    expect(dims.has('output.weight')).toBe(false);
    expect(String(meta.get('tokenizer.chat_template'))).toContain('<|turn>model');
  });

  test('an architecture at a shape it cannot take is refused', async () => {
    await expect(makeModel({ arch: 'gemma4', shape: 'tiny-256-gemma3', quant: 'f32' })).rejects.toThrow(/do not go together/);
    await expect(makeModel({ arch: 'gemma3', shape: 'tiny-256-tied', quant: 'f32' })).rejects.toThrow(/sliding window/);
    await expect(makeModel({ arch: 'phi4-mini', shape: 'tiny-256-qwen3', quant: 'f32' })).rejects.toThrow(/width/);
  });
});
