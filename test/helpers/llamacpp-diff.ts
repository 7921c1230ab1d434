/**
 * The llama.cpp differential harness (test/llamacpp.gpu.test.ts, test/gemma4.gpu.test.ts): a page
 * running @wllama/wllama 3.13.0 (llama.cpp's CPU backend, wasm, in Chromium) that makes the
 * reference greedy run, and the teacher-forced comparison of our engine against it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { expect } from 'vitest';
import { readGGUF, type GGUFFile } from '../../src/gguf/gguf.js';
import { bytesSource } from '../../src/io/byte-source.js';
import { LlamaModel } from '../../src/model/llama.js';
import { GGUFTokenizer } from '../../src/tokenizer/tokenizer.js';
import { launchChromium } from './browser.js';
import { testGpu } from './gpu.js';
import { ModelServer } from './model-server.js';

type TopK = { token: number; logprob: number }[];
/** One step of llama.cpp's greedy run: the token it sampled and its top-k. */
export type Step = { sampled: number; top: TopK };
/** Per-token log-probability bounds in nats: the worst case and the mean over all steps. */
export type Bound = { worst: number; mean: number };
/** The bounds by weight type (test/llamacpp.gpu.test.ts says where they come from). */
export const TOLERANCE = { f32: { worst: 0.03, mean: 0.006 }, f16: { worst: 0.03, mean: 0.008 }, bf16: { worst: 0.1, mean: 0.025 }, quantized: { worst: 0.6, mean: 0.15 } };

/** llama.cpp in a page, and the files it may load. */
export class LlamaCppPage {
  private server!: ModelServer;
  private browser!: Browser;
  private page!: Page;
  private readonly dir = mkdtempSync(join(tmpdir(), 'webgguf-diff-'));

  async start(): Promise<this> {
    this.server = await new ModelServer().start();
    this.server.isolated = true;
    this.browser = await launchChromium();
    this.page = await this.browser.newPage();
    this.page.on('pageerror', (e) => console.error('page error:', e));
    await this.page.goto(`${this.server.origin}/repo/bench/browser/index.html`);
    await this.page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
    return this;
  }

  async stop(): Promise<void> {
    await this.browser?.close();
    await this.server?.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  call<T>(fn: string, ...args: unknown[]): Promise<T> {
    return this.page.evaluate(([f, a]) => (window as unknown as Record<string, (...x: unknown[]) => Promise<unknown>>)[f as string]!(...(a as unknown[])), [fn, args] as const) as Promise<T>;
  }

  /** Loads `bytes` (named `name`) into llama.cpp; its byte tokens typed as text (withByteTokensAsText). */
  async load(bytes: Uint8Array, file: GGUFFile, name: string): Promise<{ error?: { message: string } }> {
    writeFileSync(join(this.dir, name), withByteTokensAsText(bytes, brokenUtf8Tokens(file)));
    this.server.files.set(name, join(this.dir, name));
    return this.call('llamaLoad', `${this.server.origin}/files/${name}`, { threads: 1, context: 256 });
  }

  /** llama.cpp's greedy run of `steps` tokens after the text `prompt`, with its top-5 at each step. */
  async greedy(prompt: string, steps: number): Promise<{ promptTokens: number; steps: Step[]; error?: unknown }> {
    return this.call('llamaTextTopK', prompt, steps, 5);
  }
}

/**
 * Loads `bytes` in llama.cpp and in our engine and runs the teacher-forced comparison on `prompt`
 * (see test/llamacpp.gpu.test.ts): llama.cpp's token in our top 3 at every step, with `greedy`
 * our top 1, and our log-probabilities of its top-5 within `bound`. Returns the worst and mean
 * difference.
 */
export async function compareWithLlamaCpp(
  llama: LlamaCppPage,
  bytes: Uint8Array,
  name: string,
  how: {
    prompt: string; steps: number; greedy: boolean; bound: Bound;
    /** Runs on our model after the comparison, with llama.cpp's run (more checks on one load). */
    after?: (model: LlamaModel, prompt: number[], reference: Step[]) => Promise<void>;
  },
): Promise<{ worst: number; mean: number }> {
  const file = await readGGUF(bytesSource(bytes, name));
  const loaded = await llama.load(bytes, file, name);
  expect(loaded.error).toBeUndefined();

  const tokenizer = GGUFTokenizer.fromGGUF(file);
  const prompt = tokenizer.encode(how.prompt);
  // wllama 3 takes text prompts only (no token ids, no tokenize call): llama.cpp tokenizes
  // the text itself, BOS added. Ours must make as many tokens; a different split would also
  // show as different distributions from the first step on.
  const run = await llama.greedy(how.prompt, how.steps);
  expect(run.error).toBeUndefined();
  expect(run.promptTokens).toBe(prompt.length);
  const reference = run.steps;
  expect(reference).toHaveLength(how.steps);

  const model = await LlamaModel.load(await testGpu(), file);
  const differences: number[] = [];
  let topProbability = 0;
  try {
    const sequence = [...prompt];
    for (let step = 0; step < how.steps; step++) {
      const logits = step === 0 ? await model.logits(sequence, 0) : await model.logits(sequence.slice(-1), sequence.length - 1);
      const ours = logSoftmax(logits);
      const theirs = reference[step]!.top;
      const rank = ours.filter((v) => v > ours[theirs[0]!.token]!).length;
      expect(rank, `step ${step}: llama.cpp's token ${theirs[0]!.token} is our #${rank + 1}`).toBeLessThan(3);
      if (how.greedy) expect(rank, `step ${step}: greedy tokens differ`).toBe(0);
      for (const t of theirs) differences.push(Math.abs(ours[t.token]! - t.logprob));
      topProbability += Math.exp(theirs[0]!.logprob) / how.steps;
      sequence.push(reference[step]!.sampled);
    }
    await how.after?.(model, prompt, reference);
  } finally {
    model.dispose();
  }
  const worst = Math.max(...differences);
  const mean = differences.reduce((a, b) => a + b, 0) / differences.length;
  console.log(`${name}: |Δ logprob| worst ${worst.toFixed(4)}, mean ${mean.toFixed(4)}; llama.cpp's mean top-1 p ${topProbability.toFixed(2)}`);
  expect(worst).toBeLessThan(how.bound.worst);
  expect(mean).toBeLessThan(how.bound.mean);
  // Peaked distributions, as the generator intends (uniform would be 1/512).
  expect(topProbability).toBeGreaterThan(0.2);
  return { worst, mean };
}

/**
 * The same file with its byte tokens (type 6, e.g. <0xE2>) typed as normal ones, for llama.cpp
 * only: wllama 3 fails a whole request whose answer holds a token text that is not valid UTF-8
 * (its JSON encoder throws), and a lone byte is one, even among the top-k candidates. As normal
 * tokens their text is their name (<0xE2>). Byte-level BPE tokens that stand for such bytes
 * (`brokenUtf8`) are typed user-defined (4), whose text llama.cpp writes as it is, not decoded to
 * bytes. The weights, and so the logits, are unchanged, and the ASCII prompts here never need
 * byte fallback nor hold those tokens' characters, so tokenization is too.
 */
export function withByteTokensAsText(bytes: Uint8Array, brokenUtf8: Set<number>): Uint8Array {
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
export function brokenUtf8Tokens(file: GGUFFile): Set<number> {
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

export function logSoftmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(logits, (v) => v - lse);
}
