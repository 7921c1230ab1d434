/**
 * The llama.cpp oracle of the differential tests (test/llamacpp.gpu.test.ts, test/qwen35.gpu.test.ts):
 * @wllama/wllama 3.13.0's wasm build on its CPU backend in Chromium, and the teacher-forced
 * comparison of our engine with it. See llamacpp.gpu.test.ts for the tolerances' reasoning.
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

/** Per-token log-probability bounds in nats: the worst case and the mean over all steps. */
export const TOLERANCE = { f32: { worst: 0.03, mean: 0.006 }, f16: { worst: 0.03, mean: 0.008 }, bf16: { worst: 0.1, mean: 0.025 }, quantized: { worst: 0.6, mean: 0.15 } };

type TopK = { token: number; logprob: number }[];
/** One step of llama.cpp's greedy run: the token it sampled and its top-k. */
export type Step = { sampled: number; top: TopK };

/** llama.cpp in a Chromium page (test/browser/llamacpp.js), serving generated files to it. */
export class LlamaCppPage {
  private server!: ModelServer;
  private browser!: Browser;
  private page!: Page;
  private readonly dir = mkdtempSync(join(tmpdir(), 'webgguf-diff-'));

  async open(): Promise<this> {
    this.server = await new ModelServer().start();
    this.server.isolated = true;
    this.browser = await launchChromium();
    this.page = await this.browser.newPage();
    this.page.on('pageerror', (e) => console.error('page error:', e));
    await this.page.goto(`${this.server.origin}/repo/bench/browser/index.html`);
    await this.page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
    return this;
  }

  async close(): Promise<void> {
    await this.browser?.close();
    await this.server?.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  call<T>(fn: string, ...args: unknown[]): Promise<T> {
    return this.page.evaluate(([f, a]) => (window as unknown as Record<string, (...x: unknown[]) => Promise<unknown>>)[f as string]!(...(a as unknown[])), [fn, args] as const) as Promise<T>;
  }

  /** Loads the GGUF `bytes` into llama.cpp (byte tokens retyped, see withByteTokensAsText); returns it parsed for our engine. */
  async load(bytes: Uint8Array, name: string): Promise<GGUFFile> {
    const file = await readGGUF(bytesSource(bytes, name));
    writeFileSync(join(this.dir, name), withByteTokensAsText(bytes, brokenUtf8Tokens(file)));
    this.server.files.set(name, join(this.dir, name));
    const loaded = await this.call<{ error?: { message: string } }>('llamaLoad', `${this.server.origin}/files/${name}`, { threads: 1, context: 256 });
    expect(loaded.error).toBeUndefined();
    return file;
  }

  /** llama.cpp's greedy continuation of `prompt` (steps tokens) with its top-5 at each step; the prompt's token count checked against ours. */
  async greedy(file: GGUFFile, prompt: string, steps: number): Promise<{ prompt: number[]; steps: Step[] }> {
    const tokens = GGUFTokenizer.fromGGUF(file).encode(prompt);
    // wllama 3 takes text prompts only (no token ids, no tokenize call): llama.cpp tokenizes
    // the text itself, BOS added. Ours must make as many tokens; a different split would also
    // show as different distributions from the first step on.
    const run = await this.call<{ promptTokens: number; steps: Step[] }>('llamaTextTopK', prompt, steps, 5);
    expect((run as { error?: unknown }).error).toBeUndefined();
    expect(run.promptTokens).toBe(tokens.length);
    expect(run.steps).toHaveLength(steps);
    return { prompt: tokens, steps: run.steps };
  }
}

/**
 * Feeds llama.cpp's token sequence through our engine (teacher-forced, in Node on Dawn) and checks,
 * at each step: llama.cpp's token is in our top 3; our log-probabilities of its top-5 agree with
 * its own within TOLERANCE (`quantizedBound` for quantized weights); for F32 and F16, our greedy
 * token is llama.cpp's. `tag` names the run in the log line; `model`, if given, is the file loaded
 * (and left loaded).
 */
export async function expectTeacherForcedMatch(
  file: GGUFFile, quant: string, run: { prompt: number[]; steps: Step[] }, tag: string,
  options: { quantizedBound?: { worst: number; mean: number }; model?: LlamaModel } = {},
): Promise<void> {
  const model = options.model ?? await LlamaModel.load(await testGpu(), file);
  const differences: number[] = [];
  let topProbability = 0;
  const n = run.steps.length;
  try {
    const sequence = [...run.prompt];
    for (let step = 0; step < n; step++) {
      const logits = step === 0 ? await model.logits(sequence, 0) : await model.logits(sequence.slice(-1), sequence.length - 1);
      const ours = logSoftmax(logits);
      const theirs = run.steps[step]!.top;
      const rank = ours.filter((v) => v > ours[theirs[0]!.token]!).length;
      expect(rank, `step ${step}: llama.cpp's token ${theirs[0]!.token} is our #${rank + 1}`).toBeLessThan(3);
      if (quant === 'f32' || quant === 'f16') expect(rank, `step ${step}: greedy tokens differ`).toBe(0);
      for (const t of theirs) differences.push(Math.abs(ours[t.token]! - t.logprob));
      topProbability += Math.exp(theirs[0]!.logprob) / n;
      sequence.push(run.steps[step]!.sampled);
    }
  } finally {
    if (!options.model) model.dispose();
  }
  const bound = quant === 'f32' || quant === 'f16' || quant === 'bf16' ? TOLERANCE[quant] : options.quantizedBound ?? TOLERANCE.quantized;
  const worst = Math.max(...differences);
  const mean = differences.reduce((a, b) => a + b, 0) / differences.length;
  console.log(`${tag}: |Δ logprob| worst ${worst.toFixed(4)}, mean ${mean.toFixed(4)}; llama.cpp's mean top-1 p ${topProbability.toFixed(2)}`);
  expect(worst).toBeLessThan(bound.worst);
  expect(mean).toBeLessThan(bound.mean);
  // Peaked distributions, as the generator intends (uniform would be 1/512).
  expect(topProbability).toBeGreaterThan(0.2);
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
