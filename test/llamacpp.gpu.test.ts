/**
 * Differential tests against llama.cpp (@wllama/wllama 3.13.0's wasm build, CPU backend, in
 * Chromium) on generated tiny-256 models, for every architecture and quant preset we load (every
 * quant on llama, a subset on the others: see ARCH_QUANTS).
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
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readGGUF, type GGUFFile } from '../src/gguf/gguf.js';
import { bytesSource } from '../src/io/byte-source.js';
import { LlamaModel } from '../src/model/llama.js';
import { GGUFTokenizer } from '../src/tokenizer/tokenizer.js';
import { makeModel, TINY_SHAPES } from '../scripts/make-model.js';
import { HAVE_CHROMIUM, launchChromium } from './helpers/browser.js';
import { testGpu } from './helpers/gpu.js';
import { ModelServer } from './helpers/model-server.js';
import { HAVE_MODELS } from './helpers/models.js';

const ARCHITECTURES = ['llama', 'qwen2', 'phi3', 'gemma', 'gemma2', 'qwen3', 'smollm3', 'phi4-mini', 'gemma3'] as const;
const QUANTS = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'q4_k_m', 'q5_k_m', 'q6_k'] as const;
/**
 * The quants each architecture runs at: every one for llama (each weight format's kernels against
 * llama.cpp); the others at a subset covering each kind of kernel (f32, f16, 8-bit, 4-bit, the
 * K-quants), which is what meets their architecture's own traits (fused and split tensors, head
 * widths that are not whole blocks), as CI time matters.
 */
const ARCH_QUANTS = (arch: (typeof ARCHITECTURES)[number]): readonly (typeof QUANTS)[number][] =>
  arch === 'llama' ? QUANTS : ['f32', 'f16', 'q8_0', 'q4_0', 'q4_k_m', 'q6_k'];
const STEPS = 32;
const PROMPTS: Record<(typeof ARCHITECTURES)[number], string> = {
  llama: 'Once upon a time', qwen2: 'The little dog ran to the', phi3: 'She saw a big red ball', gemma: 'One day a bird', gemma2: 'Tim and his mom went',
  qwen3: 'The cat sat on the', smollm3: 'A boy found a small', 'phi4-mini': 'They went to the park and', gemma3: 'Lily had a little',
};
/** Per-token log-probability bounds in nats: the worst case and the mean over all steps. */
const TOLERANCE = { f32: { worst: 0.03, mean: 0.006 }, f16: { worst: 0.03, mean: 0.008 }, bf16: { worst: 0.1, mean: 0.025 }, quantized: { worst: 0.6, mean: 0.15 } };

type TopK = { token: number; logprob: number }[];
/** One step of llama.cpp's greedy run: the token it sampled and its top-k. */
type Step = { sampled: number; top: TopK };

describe.skipIf(!HAVE_MODELS || !HAVE_CHROMIUM)('llama.cpp (wllama 3.13.0, wasm) vs our engine, teacher-forced', () => {
  let server: ModelServer;
  let browser: Browser;
  let page: Page;
  const dir = mkdtempSync(join(tmpdir(), 'webgguf-diff-'));
  const call = <T>(fn: string, ...args: unknown[]) =>
    page.evaluate(([f, a]) => (window as unknown as Record<string, (...x: unknown[]) => Promise<unknown>>)[f as string]!(...(a as unknown[])), [fn, args] as const) as Promise<T>;

  beforeAll(async () => {
    server = await new ModelServer().start();
    server.isolated = true;
    browser = await launchChromium();
    page = await browser.newPage();
    page.on('pageerror', (e) => console.error('page error:', e));
    await page.goto(`${server.origin}/repo/bench/browser/index.html`);
    await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs the comparison on the generated `arch` model at `quant` (with linear RoPE scaling by `ropeScalingFactor`). */
  async function compare(arch: (typeof ARCHITECTURES)[number], quant: (typeof QUANTS)[number], ropeScalingFactor?: number): Promise<void> {
    const bytes = await makeModel({ arch, shape: TINY_SHAPES[arch], quant, seed: 11, ropeScalingFactor });
    const name = `${arch}-${quant}${ropeScalingFactor ? `-scaled` : ''}.gguf`;
    const file = await readGGUF(bytesSource(bytes, name));
    writeFileSync(join(dir, name), withByteTokensAsText(bytes, brokenUtf8Tokens(file)));
    server.files.set(name, join(dir, name));
    const loaded = await call<{ error?: { message: string } }>('llamaLoad', `${server.origin}/files/${name}`, { threads: 1, context: 256 });
    expect(loaded.error).toBeUndefined();

    const tokenizer = GGUFTokenizer.fromGGUF(file);
    const prompt = tokenizer.encode(PROMPTS[arch]);
    // wllama 3 takes text prompts only (no token ids, no tokenize call): llama.cpp tokenizes
    // the text itself, BOS added. Ours must make as many tokens; a different split would also
    // show as different distributions from the first step on.
    const run = await call<{ promptTokens: number; steps: Step[] }>('llamaTextTopK', PROMPTS[arch], STEPS, 5);
    expect((run as { error?: unknown }).error).toBeUndefined();
    expect(run.promptTokens).toBe(prompt.length);
    const reference = run.steps;
    expect(reference).toHaveLength(STEPS);

    const model = await LlamaModel.load(await testGpu(), file);
    const differences: number[] = [];
    let topProbability = 0;
    try {
      const sequence = [...prompt];
      for (let step = 0; step < STEPS; step++) {
        const logits = step === 0 ? await model.logits(sequence, 0) : await model.logits(sequence.slice(-1), sequence.length - 1);
        const ours = logSoftmax(logits);
        const theirs = reference[step]!.top;
        const rank = ours.filter((v) => v > ours[theirs[0]!.token]!).length;
        expect(rank, `step ${step}: llama.cpp's token ${theirs[0]!.token} is our #${rank + 1}`).toBeLessThan(3);
        if (quant === 'f32' || quant === 'f16') expect(rank, `step ${step}: greedy tokens differ`).toBe(0);
        for (const t of theirs) differences.push(Math.abs(ours[t.token]! - t.logprob));
        topProbability += Math.exp(theirs[0]!.logprob) / STEPS;
        sequence.push(reference[step]!.sampled);
      }
    } finally {
      model.dispose();
    }
    const bound = quant === 'f32' || quant === 'f16' || quant === 'bf16' ? TOLERANCE[quant] : TOLERANCE.quantized;
    const worst = Math.max(...differences);
    const mean = differences.reduce((a, b) => a + b, 0) / differences.length;
    console.log(`${arch} ${quant}: |Δ logprob| worst ${worst.toFixed(4)}, mean ${mean.toFixed(4)}; llama.cpp's mean top-1 p ${topProbability.toFixed(2)}`);
    expect(worst).toBeLessThan(bound.worst);
    expect(mean).toBeLessThan(bound.mean);
    // Peaked distributions, as the generator intends (uniform would be 1/512).
    expect(topProbability).toBeGreaterThan(0.2);
  }

  for (const arch of ARCHITECTURES) {
    for (const quant of ARCH_QUANTS(arch)) test(`${arch} ${quant}`, () => compare(arch, quant));
  }
  // Gemma 3 4B and up: linear RoPE scaling, on the global layers only.
  test('gemma3 f32 with rope.scaling linear, factor 8', () => compare('gemma3', 'f32', 8));
});

/**
 * The same file with its byte tokens (type 6, e.g. <0xE2>) typed as normal ones, for llama.cpp
 * only: wllama 3 fails a whole request whose answer holds a token text that is not valid UTF-8
 * (its JSON encoder throws), and a lone byte is one, even among the top-k candidates. As normal
 * tokens their text is their name (<0xE2>). Byte-level BPE tokens that stand for such bytes
 * (`brokenUtf8`) are typed user-defined (4), whose text llama.cpp writes as it is, not decoded to
 * bytes. The weights, and so the logits, are unchanged, and the ASCII prompts here never need
 * byte fallback nor hold those tokens' characters, so tokenization is too.
 */
function withByteTokensAsText(bytes: Uint8Array, brokenUtf8: Set<number>): Uint8Array {
  const out = bytes.slice();
  const key = Buffer.from('tokenizer.ggml.token_type');
  const at = Buffer.from(out.buffer, out.byteOffset, out.byteLength).indexOf(key);
  if (at < 0) return out;
  const view = new DataView(out.buffer, out.byteOffset);
  let p = at + key.length;
  if (view.getUint32(p, true) !== 9 || view.getUint32(p + 4, true) !== 5) throw new Error('token_type is not an i32 array');
  const count = Number(view.getBigUint64(p + 8, true));
  p += 16;
  for (let i = 0; i < count; i++, p += 4) {
    if (view.getInt32(p, true) === 6) view.setInt32(p, 1, true);
    if (brokenUtf8.has(i)) view.setInt32(p, 4, true);
  }
  return out;
}

/**
 * Byte-level BPE (tokenizer.ggml.model gpt2) tokens whose bytes are not valid UTF-8 on their own,
 * such as a lone 0x89: see withByteTokensAsText.
 */
function brokenUtf8Tokens(file: GGUFFile): Set<number> {
  if (file.metadata.get('tokenizer.ggml.model') !== 'gpt2') return new Set();
  // GPT-2's byte-to-character map: printable bytes stand for themselves, the rest for 256 + n.
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
  const byteOf = new Map<string, number>();
  for (let b = 0, n = 0; b < 256; b++) byteOf.set(String.fromCodePoint(printable(b) ? b : 256 + n++), b);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const tokens = file.metadata.get('tokenizer.ggml.tokens') as string[];
  return new Set(tokens.flatMap((text, id) => {
    const bytes = [...text].map((ch) => byteOf.get(ch));
    if (bytes.some((b) => b === undefined)) return [];
    try {
      decoder.decode(new Uint8Array(bytes as number[]));
      return [];
    } catch {
      return [id];
    }
  }));
}

function logSoftmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(logits, (v) => v - lse);
}
