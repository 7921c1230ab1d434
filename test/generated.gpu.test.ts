/**
 * Generated random-weight models (scripts/make-model.ts) at a small shape whose rows fit every
 * quant type, through the whole GPU model against the CPU reference: this runs the K-quants,
 * Qwen2, Qwen 3's q/k norms and SmolLM3's layers without RoPE end to end. Same tolerance and
 * reasoning as model.gpu.test.ts.
 */
import { describe, expect, test } from 'vitest';
import { generate } from '../src/generate.js';
import { readGGUF } from '../src/gguf/gguf.js';
import { bytesSource } from '../src/io/byte-source.js';
import { LlamaModel } from '../src/model/llama.js';
import { GGUFTokenizer } from '../src/tokenizer/tokenizer.js';
import { makeModel, TINY_SHAPES } from '../scripts/make-model.js';
import { nodeGpuContext } from '../src/node/gpu.js';
import { testGpu } from './helpers/gpu.js';
import { HAVE_MODELS } from './helpers/models.js';
import { argmax, ReferenceModel } from './helpers/reference.js';

// The last flag runs the kernels real GPUs get (workgroup per row, barriers) instead of the
// thread-per-row ones SwiftShader gets, so both decode paths are checked end to end here.
const CASES = [
  ['llama', 'f16', false], ['llama', 'q8_0', false], ['llama', 'q4_0', false], ['llama', 'q4_k_m', false], ['llama', 'q6_k', false],
  ['qwen2', 'q4_k_m', false], ['phi3', 'q8_0', false], ['phi3', 'q4_k_m', false], ['gemma', 'q8_0', false], ['gemma2', 'q4_k_m', false],
  ['qwen3', 'q8_0', false], ['qwen3', 'q4_k_m', false], ['smollm3', 'q4_k_m', false], ['phi4-mini', 'q4_k_m', false], ['gemma3', 'q8_0', false], ['gemma3', 'q4_k_m', false],
  // The kernels for GPUs, summing over workgroups with subgroup operations (where the adapter has
  // them) or through workgroup memory.
  ['llama', 'q4_0', 'subgroups'], ['qwen2', 'q4_k_m', 'workgroup memory'], ['phi3', 'q4_k_m', 'subgroups'], ['gemma2', 'q4_k_m', 'workgroup memory'],
  ['qwen3', 'q4_k_m', 'subgroups'], ['smollm3', 'q4_k_m', 'workgroup memory'], ['gemma3', 'q4_k_m', 'subgroups'],
] as const;

/**
 * 24 greedy tokens equal the CPU reference's, and the logits after them agree within 2e-4 of
 * their largest magnitude; returns those logits.
 */
async function expectMatchesReference(model: LlamaModel, file: Awaited<ReturnType<typeof readGGUF>>): Promise<Float32Array> {
  const ref = await ReferenceModel.load(file);
  const tokenizer = GGUFTokenizer.fromGGUF(file);
  const prompt = tokenizer.encode('Once upon a time');
  const tokens: number[] = [];
  for await (const t of generate(model, tokenizer, prompt, { temperature: 0, maxTokens: 24 })) tokens.push(t.token);
  let logits: Float32Array = new Float32Array();
  for (let i = 0; i < prompt.length; i++) logits = ref.forward(prompt[i]!, i);
  const expectedTokens: number[] = [];
  for (let pos = prompt.length; expectedTokens.length < tokens.length; pos++) {
    expectedTokens.push(argmax(logits));
    logits = ref.forward(expectedTokens.at(-1)!, pos);
  }
  expect(tokens).toEqual(expectedTokens);
  const sequence = [...prompt, ...tokens];
  const got = await model.logits(sequence, 0);
  let expected: Float32Array = new Float32Array();
  for (let i = 0; i < sequence.length; i++) expected = ref.forward(sequence[i]!, i);
  const scale = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(got[i]! - expected[i]!));
  // The generated logits are larger than stories260K's, so the bound is relative to them.
  expect(worst / scale).toBeLessThan(2e-4);
  // Peaked, as the generator intends: far from uniform (1/512) over the vocabulary.
  const top = Math.max(...got);
  const z = got.reduce((sum, v) => sum + Math.exp(v - top), 0);
  expect(1 / z).toBeGreaterThan(0.05);
  return got;
}

describe.skipIf(!HAVE_MODELS)('generated tiny-256 models on the GPU vs the CPU reference', () => {
  for (const [arch, quant, gpuKernels] of CASES) {
    test(`${arch} ${quant}${gpuKernels ? ` (GPU kernels, ${gpuKernels})` : ''}: 24 greedy tokens match, logits within 2e-4 relative`, async () => {
      const file = await readGGUF(bytesSource(await makeModel({ arch, shape: TINY_SHAPES[arch], quant, seed: 3 }), `${arch}-${quant}.gguf`));
      const gpu = await testGpu();
      const model = await LlamaModel.load(gpuKernels ? { ...gpu, cpuEmulated: false, subgroups: gpu.subgroups && gpuKernels === 'subgroups' } : gpu, file, { kvCache: 'f32' });
      try {
        await expectMatchesReference(model, file);
      } finally {
        model.dispose();
      }
    });
  }

  test('a device with only 8 storage buffers per shader stage (the WebGPU minimum) gives the same tokens', async () => {
    const file = await readGGUF(bytesSource(await makeModel({ arch: 'qwen2', shape: 'tiny-256', quant: 'q4_k_m', seed: 5 }), 'qwen2.gguf'));
    const tokenizer = GGUFTokenizer.fromGGUF(file);
    const prompt = tokenizer.encode('Once upon a time');
    const greedy = async (gpu: Awaited<ReturnType<typeof testGpu>>) => {
      const model = await LlamaModel.load(gpu, file);
      try {
        const tokens: number[] = [];
        for await (const t of generate(model, tokenizer, prompt, { temperature: 0, maxTokens: 16 })) tokens.push(t.token);
        return tokens;
      } finally {
        model.dispose();
      }
    };
    const limited = await nodeGpuContext({ limitOverrides: { maxStorageBuffersPerShaderStage: 8 } });
    try {
      expect(limited.limits.maxStorageBuffersPerShaderStage).toBe(8);
      expect(await greedy(limited)).toEqual(await greedy(await testGpu()));
    } finally {
      limited.device.destroy();
    }
  });

  test('matrices split by rows across buffers (phone binding limits, scaled down) give the same output', async () => {
    // 32 KiB parts on a device that binds at most 64 KiB: the embedding, the output head and every
    // FFN matrix come in 3-4 parts; the tied model also reads its embedding parts as the head.
    for (const shape of ['tiny-256', 'tiny-256-tied']) {
      const file = await readGGUF(bytesSource(await makeModel({ arch: 'qwen2', shape, quant: 'q4_k_m', seed: 9 }), `${shape}.gguf`));
      const tokenizer = GGUFTokenizer.fromGGUF(file);
      const prompt = tokenizer.encode('Once upon a time there was');
      const run = async (gpu: Awaited<ReturnType<typeof testGpu>>, options: Parameters<typeof LlamaModel.load>[2]) => {
        const model = await LlamaModel.load(gpu, file, { contextLength: 32, maxBatch: 3, ...options });
        try {
          const tokens: number[] = [];
          for await (const t of generate(model, tokenizer, prompt, { temperature: 0, maxTokens: 12 })) tokens.push(t.token);
          return { tokens, logits: await model.logits([...prompt, ...tokens].slice(-1), prompt.length + tokens.length - 1), dispatches: model.dispatchesPerToken };
        } finally {
          model.dispose();
        }
      };
      const small = { maxStorageBufferBindingSize: 64 << 10, maxBufferSize: 64 << 10 };
      const limited = await nodeGpuContext({ limitOverrides: small });
      try {
        const whole = await run(await testGpu(), {});
        const split = await run(limited, { maxPartBytes: 32 << 10 });
        expect(split.dispatches).toBeGreaterThan(whole.dispatches + 8);
        expect(split.tokens).toEqual(whole.tokens);
        const scale = whole.logits.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        for (let i = 0; i < whole.logits.length; i++) expect(Math.abs(split.logits[i]! - whole.logits[i]!)).toBeLessThan(1e-5 * scale);
        // Unsplit, the same device refuses the model before reading any weight.
        await expect(LlamaModel.load(limited, file, { contextLength: 32, maxBatch: 3 })).rejects.toMatchObject({ code: 'insufficient-memory' });
      } finally {
        limited.device.destroy();
      }
    }
  });

  test('llama with a sliding window on every layer (Mistral) matches the reference, and the window matters', async () => {
    const gpu = await testGpu();
    const run = async (slidingWindow: number | undefined, gpuKernels = false) => {
      const file = await readGGUF(bytesSource(await makeModel({ arch: 'llama', shape: 'tiny-256', quant: 'q8_0', seed: 3, slidingWindow }), 'mistral.gguf'));
      const model = await LlamaModel.load(gpuKernels ? { ...gpu, cpuEmulated: false } : gpu, file, { kvCache: 'f32' });
      try {
        return await expectMatchesReference(model, file);
      } finally {
        model.dispose();
      }
    };
    const windowed = await run(6);
    await run(6, true);
    const whole = await run(undefined);
    let changed = 0;
    for (let i = 0; i < whole.length; i++) changed = Math.max(changed, Math.abs(windowed[i]! - whole[i]!));
    expect(changed).toBeGreaterThan(0.05);
  });
});
