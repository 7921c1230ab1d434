/**
 * Differential tests against llama.cpp (@wllama/wllama 3.13.0's wasm build, CPU backend, in
 * Chromium) on generated tiny-256 models, for every architecture × quant preset we load (the
 * later architectures at a subset of the quants, see ARCH_QUANTS).
 *
 * llama.cpp decodes greedily (one completion request on the prompt text) and reports
 * its top-5 next-token log-probabilities at every step. Its own
 * token sequence is then fed through our engine (teacher-forced, in Node on Dawn), and at each
 * step:
 * - llama.cpp's token must be in our top 3;
 * - our log-probabilities of its top-5 tokens must agree with its own within TOLERANCE;
 * - for F32 and F16, our greedy token must be llama.cpp's, every step.
 *
 * Why the tolerances differ by type: for quantized weights, llama.cpp's CPU path also quantizes
 * the activations to 8 bits (Q8_0 blocks of 32, or Q8_K blocks of 256 for the K-quants), and for
 * BF16 weights it rounds the activations to bf16; we keep activations in f32. That rounding moves
 * each matmul output by up to about 1% of its typical size, which over a 2-layer model and
 * logits of this scale is tenths of a nat. For F16 it rounds activations to f16 (11 bits), and
 * for every type it keeps its KV cache in f16, so F32 and F16 differences stay at thousandths.
 * Measured here with wllama 3.13.0 (32 steps × 5 tokens; llama, qwen2, phi3, gemma, gemma2): F32
 * worst 0.012, mean 0.003; F16 worst 0.013, mean 0.003; BF16 worst 0.068, mean 0.014; the
 * 8-bit-activation types worst 0.53 (gemma Q6_K), means up to 0.085 (wllama 2.3.7 measured F32
 * 0.015, F16 0.019, BF16 0.07, quantized 0.42 worst); qwen3, smollm3, phi4-mini and gemma3 at
 * their six quants: F32 worst 0.015, F16 0.013, quantized worst 0.37 (qwen3 Q4_0), means up to 0.08. Gemma's are the largest: its generated
 * blocks write large outputs into the residual stream (see scripts/make-model.ts), and rounding
 * error scales with them. The bounds below leave headroom over those; a wrong scale, nibble, fifth bit or
 * architecture detail (RoPE factors, soft-capping, sliding window) moves logits by far more.
 */
import { afterAll, beforeAll, describe, test } from 'vitest';
import { makeModel, TINY_SHAPES } from '../scripts/make-model.js';
import { HAVE_CHROMIUM } from './helpers/browser.js';
import { compareWithLlamaCpp, LlamaCppPage, TOLERANCE } from './helpers/llamacpp-diff.js';
import { HAVE_MODELS } from './helpers/models.js';

const ARCHITECTURES = ['llama', 'qwen2', 'phi3', 'gemma', 'gemma2', 'qwen3', 'smollm3', 'phi4-mini', 'gemma3'] as const;
const QUANTS = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'q4_k_m', 'q5_k_m', 'q6_k'] as const;
/**
 * The quants each architecture runs at: every one for the first five; the later ones only at a
 * subset covering each kind of kernel (f32, f16, 8-bit, 4-bit, the K-quants), as CI time matters.
 */
const ARCH_QUANTS = (arch: (typeof ARCHITECTURES)[number]): readonly (typeof QUANTS)[number][] =>
  ['qwen3', 'smollm3', 'phi4-mini', 'gemma3'].includes(arch) ? ['f32', 'f16', 'q8_0', 'q4_0', 'q4_k_m', 'q6_k'] : QUANTS;
const STEPS = 32;
const PROMPTS: Record<(typeof ARCHITECTURES)[number], string> = {
  llama: 'Once upon a time', qwen2: 'The little dog ran to the', phi3: 'She saw a big red ball', gemma: 'One day a bird', gemma2: 'Tim and his mom went',
  qwen3: 'The cat sat on the', smollm3: 'A boy found a small', 'phi4-mini': 'They went to the park and', gemma3: 'Lily had a little',
};

describe.skipIf(!HAVE_MODELS || !HAVE_CHROMIUM)('llama.cpp (wllama 3.13.0, wasm) vs our engine, teacher-forced', () => {
  let llama: LlamaCppPage;
  beforeAll(async () => {
    llama = await new LlamaCppPage().start();
  });
  afterAll(() => llama?.stop());

  /** Runs the comparison on the generated `arch` model at `quant` (with linear RoPE scaling by `ropeScalingFactor`). */
  async function compare(arch: (typeof ARCHITECTURES)[number], quant: (typeof QUANTS)[number], ropeScalingFactor?: number): Promise<void> {
    const bytes = await makeModel({ arch, shape: TINY_SHAPES[arch], quant, seed: 11, ropeScalingFactor });
    const name = `${arch}-${quant}${ropeScalingFactor ? `-scaled` : ''}.gguf`;
    const exact = quant === 'f32' || quant === 'f16';
    const bound = exact || quant === 'bf16' ? TOLERANCE[quant] : TOLERANCE.quantized;
    await compareWithLlamaCpp(llama, bytes, name, { prompt: PROMPTS[arch], steps: STEPS, greedy: exact, bound });
  }

  for (const arch of ARCHITECTURES) {
    for (const quant of ARCH_QUANTS(arch)) test(`${arch} ${quant}`, () => compare(arch, quant));
  }
  // Gemma 3 4B and up: linear RoPE scaling, on the global layers only.
  test('gemma3 f32 with rope.scaling linear, factor 8', () => compare('gemma3', 'f32', 8));
});
