/** The model catalogue: plain data an app can load directly, with checked fields and sizes. */
import { readFileSync } from 'node:fs';
import { describe, expect, expectTypeOf, test } from 'vitest';
import { sourceId } from '../src/engine/core.js';
import type { ModelSource } from '../src/engine/types.js';
import * as library from '../src/index.js';
import { SUPPORTED_ARCHITECTURES } from '../src/core.js';
import { MAX_PART_BYTES } from '../src/model/weights.js';
import { estimateGpuBytes, MAX_WEIGHT_BUFFER_BYTES, MODELS, type CatalogModel } from '../src/models.js';
import { SHAPES } from '../scripts/make-model.js';

const entries = Object.entries(MODELS) as [string, CatalogModel][];
/** The WebGPU default maxStorageBufferBindingSize, which every device offers. */
const DEFAULT_BINDING = 128 * 2 ** 20;

describe('MODELS', () => {
  test('has the demo presets, each with every field', () => {
    expect(entries.map(([id]) => id)).toEqual([
      'stories260k', 'qwen3-0.6b-q4_k_m', 'qwen2.5-0.5b-instruct-q4_k_m', 'qwen3.5-0.8b-q4_k_m', 'google_gemma-3-1b-it-q4_k_m',
      'llama-3.2-1b-instruct-q4_k_m', 'tinyllama-1.1b-chat-v1.0.q8_0', 'gemma-2-2b-it-q4_k_m', 'smollm3-q4_k_m',
      'phi-3.5-mini-instruct-q4_k_m', 'microsoft_phi-4-mini-instruct-q4_k_m', 'gemma-4-e2b-it-q4_k_m',
    ]);
    for (const [key, m] of entries) {
      expect(m.id).toBe(key);
      for (const field of ['name', 'url', 'architecture', 'quantization', 'license'] as const) expect(m[field], `${key}.${field}`).toMatch(/\S/);
      for (const field of ['bytes', 'contextLength', 'parameters'] as const) {
        expect(Number.isSafeInteger(m[field]) && m[field] > 0, `${key}.${field} = ${m[field]}`).toBe(true);
      }
      expect(m.contextLength).toBe(m.shape.contextLength);
      expect(m.shape.nHeads % m.shape.nKvHeads).toBe(0);
      expect(SUPPORTED_ARCHITECTURES).toContain(m.architecture);
    }
    expect(new Set(entries.map(([, m]) => m.id)).size).toBe(entries.length);
  });

  test('URLs are https, pinned to a commit, and name a .gguf file', () => {
    for (const [key, m] of entries) {
      const url = new URL(m.url);
      expect(url.protocol, key).toBe('https:');
      expect(url.pathname, key).toMatch(/\/resolve\/[0-9a-f]{40}\/.+\.gguf$/);
      expect(url.search + url.hash, key).toBe('');
    }
  });

  test("an id is its file's name, lower case, without .gguf; smallest file first", () => {
    for (const [key, m] of entries) {
      const file = new URL(m.url).pathname.split('/').at(-1) ?? '';
      expect(key).toBe(file.toLowerCase().replace(/\.gguf$/, ''));
    }
    const sizes = entries.map(([, m]) => m.bytes);
    expect(sizes).toEqual([...sizes].sort((a, b) => a - b));
  });

  test("shapes agree with make-model's copies of the same config.json", () => {
    const sameModel: Partial<Record<string, string>> = {
      'qwen3-0.6b-q4_k_m': 'qwen3-0.6b', 'qwen2.5-0.5b-instruct-q4_k_m': 'qwen2.5-0.5b', 'qwen3.5-0.8b-q4_k_m': 'qwen3.5-0.8b',
      'google_gemma-3-1b-it-q4_k_m': 'gemma-3-1b', 'llama-3.2-1b-instruct-q4_k_m': 'llama-3.2-1b',
      'tinyllama-1.1b-chat-v1.0.q8_0': 'tinyllama-1.1b', 'gemma-2-2b-it-q4_k_m': 'gemma-2-2b', 'smollm3-q4_k_m': 'smollm3-3b',
      'phi-3.5-mini-instruct-q4_k_m': 'phi-3.5-mini', 'microsoft_phi-4-mini-instruct-q4_k_m': 'phi-4-mini',
    };
    for (const [key, m] of entries) {
      const name = sameModel[key];
      if (name === undefined) continue;
      const s = SHAPES[name];
      expect(s, name).toBeDefined();
      if (s === undefined) continue;
      expect(m.shape, key).toEqual({
        dim: s.dim, nLayers: s.layers, nHeads: s.heads, nKvHeads: s.kvHeads, headDim: s.headDim ?? s.dim / s.heads,
        ffnDim: s.ffn, vocabSize: s.vocab, contextLength: s.context,
      });
    }
  });

  test('a SHA-256 is 64 lower-case hex digits, or absent and the entry marked unverified', () => {
    for (const [key, m] of entries) {
      if (m.sha256 === undefined) expect(m.verified, key).toBe(false);
      else {
        expect(m.sha256, key).toMatch(/^[0-9a-f]{64}$/);
        expect(m.verified, key).toBe(true);
      }
    }
    // Every preset's hash was found in a public record of its file.
    expect(entries.filter(([, m]) => !m.verified).map(([id]) => id)).toEqual([]);
  });

  test('device needs: GPU memory at the default context, a binding every device allows, no shader-f16', () => {
    for (const [key, m] of entries) {
      const { needs } = m;
      expect(needs.contextLength, key).toBe(Math.min(m.contextLength, 4096));
      expect(needs.gpuBytes, key).toBe(estimateGpuBytes(m.bytes, m.shape, needs.contextLength));
      expect(needs.gpuBytes, key).toBeGreaterThan(m.bytes);
      expect(needs.maxBufferBytes, key).toBeLessThanOrEqual(DEFAULT_BINDING);
      expect(needs.shaderF16, key).toBe(false);
    }
    // The catalogue's buffer bound is the loader's split size.
    expect(MAX_WEIGHT_BUFFER_BYTES).toBe(MAX_PART_BYTES);
  });

  test('estimateGpuBytes: weights plus an f16 KV cache of every layer, plus work buffers', () => {
    const phi = MODELS['phi-3.5-mini-instruct-q4_k_m'];
    const kv = 2 * 32 * 4096 * 32 * 96 * 2; // layers × K and V × context × kv heads × head dim × f16
    expect(kv).toBe(1.5 * 2 ** 30);
    const work = phi.needs.gpuBytes - phi.bytes - kv;
    expect(work).toBeGreaterThan(0);
    expect(work).toBeLessThan(0.02 * phi.needs.gpuBytes);
    // A longer context costs exactly its KV cache, RoPE table and token history.
    const perPosition = 2 * 32 * 32 * 96 * 2 + 96 * 4 + 4;
    expect(estimateGpuBytes(phi.bytes, phi.shape, 8192) - estimateGpuBytes(phi.bytes, phi.shape, 4096)).toBe(4096 * perPosition);
    // The default context is the model's own when that is shorter than 4096.
    const tiny = MODELS['tinyllama-1.1b-chat-v1.0.q8_0'];
    expect(estimateGpuBytes(tiny.bytes, tiny.shape)).toBe(estimateGpuBytes(tiny.bytes, tiny.shape, 2048));
  });

  test('an entry is a load source: its URL and SHA-256 are what the engine fetches and verifies', async () => {
    const qwen = MODELS['qwen2.5-0.5b-instruct-q4_k_m'];
    expectTypeOf(qwen).toExtend<ModelSource>();
    expectTypeOf<library.Engine['load']>().toBeCallableWith(qwen);
    expect(await sourceId(qwen)).toBe(`${qwen.url}#sha256=${qwen.sha256}`);
  });

  test('the main entry exports the catalogue', () => {
    expect(library.MODELS).toBe(MODELS);
    expect(library.estimateGpuBytes).toBe(estimateGpuBytes);
  });

  test("the demo's presets are the catalogue", () => {
    const demo = readFileSync(new URL('../demo/main.ts', import.meta.url), 'utf8');
    expect(demo).toMatch(/import \{[^}]*\bMODELS\b[^}]*\} from '\.\.\/src\/index\.js'/);
    expect(demo).toMatch(/const PRESETS\b[^=]*= Object\.values\(MODELS\)/);
    // No model URL of its own.
    expect(demo).not.toMatch(/huggingface\.co/);
  });
});
