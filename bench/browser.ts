/**
 * `npm run bench:browser -- --model FILE [--prompt-tokens N] [--gen-tokens N] [--runs N] [--threads N] [--json]`
 *
 * One Chromium page session (SwiftShader WebGPU here) runs the same greedy measurement twice on the
 * same file: our engine (built dist/, worker, WebGPU) and llama.cpp (@wllama/wllama 3.13.0's wasm
 * build on its CPU backend, cross-origin isolated so its threads work). Both get the same prompt text; every run starts its
 * prompt with a different word so neither side reuses a cached prefix. Prints both sets of figures
 * and their ratio (ours ÷ llama.cpp).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { readGGUF } from '../src/gguf/gguf.js';
import { fileSource } from '../src/node/file-source.js';
import { GGUFTokenizer } from '../src/tokenizer/tokenizer.js';
import { launchChromium } from '../test/helpers/browser.js';
import { ModelServer } from '../test/helpers/model-server.js';

interface Run { ttftMs: number; decodeTokS: number; generated: number }
interface Figures { decode_tok_s: number; decode_tok_s_min: number; decode_tok_s_max: number; prefill_tok_s: number; ttft_ms: number }

const { values } = parseArgs({
  options: {
    model: { type: 'string' }, 'prompt-tokens': { type: 'string', default: '128' }, 'gen-tokens': { type: 'string', default: '64' },
    runs: { type: 'string', default: '3' }, threads: { type: 'string', default: '2' }, json: { type: 'boolean', default: false },
  },
});
if (!values.model) {
  console.error('usage: npm run bench:browser -- --model FILE [--prompt-tokens N] [--gen-tokens N] [--runs N] [--threads N] [--json]');
  process.exit(2);
}
if (!existsSync(fileURLToPath(new URL('../dist/index.js', import.meta.url)))) {
  console.error('dist/ is missing: run `npm run build` first');
  process.exit(2);
}
const promptTokens = Number(values['prompt-tokens']);
const genTokens = Number(values['gen-tokens']);
const runs = Number(values.runs);
const threads = Number(values.threads);

/**
 * llama.cpp's side forces one plain-ASCII token (" the", found by our tokenizer, which agrees with
 * llama.cpp's) at every step: a random-weight model on a byte-level vocabulary otherwise emits
 * lone UTF-8 bytes, which wllama's JSON cannot carry. A logit bias costs nothing measurable.
 */
const asciiBias = await (async () => {
  const source = await fileSource(resolve(values.model!));
  try {
    const ids = GGUFTokenizer.fromGGUF(await readGGUF(source)).encode(' the', { addBos: false });
    return { [ids[ids.length - 1]!]: 100 };
  } finally {
    await source.close();
  }
})();

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const WORDS = 'Once upon a time there was a little girl who lived in a village near the forest and she liked to play with her dog'.split(' ');

const server = await new ModelServer().start();
server.isolated = true;
server.files.set('model.gguf', resolve(values.model));
const browser = await launchChromium();
try {
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.error('page error:', e));
  await page.goto(`${server.origin}/repo/bench/browser/index.html`);
  await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
  const call = async <T>(fn: string, ...args: unknown[]): Promise<T> => {
    const r = await page.evaluate(([f, a]) => (window as unknown as Record<string, (...x: unknown[]) => Promise<unknown>>)[f as string]!(...(a as unknown[])), [fn, args] as const);
    const error = (r as { error?: { message: string } } | null)?.error;
    if (error) throw new Error(`${fn}: ${error.message}`);
    return r as T;
  };
  const url = `${server.origin}/files/model.gguf`;
  const adapter = await page.evaluate(async () => {
    const a = await navigator.gpu?.requestAdapter();
    return a ? `${a.info.vendor} ${a.info.architecture} ${a.info.description}`.trim() : 'none';
  });
  const ours = await call<{ name: string }>('oursLoad', url);
  const llama = await call<{ threads: number; multithread: boolean; crossOriginIsolated: boolean }>('llamaLoad', url, { threads, context: promptTokens + genTokens + 8 });

  // Prompt text of about promptTokens tokens (llama.cpp's count, BOS included; our tokenizer
  // agrees, see test/llamacpp.gpu.test.ts), led by a word that differs per run. wllama 3 has no
  // tokenize call, so the words are counted through llama.cpp's prompt usage, by bisection.
  const promptFor = async (run: number): Promise<{ text: string; tokens: number }> => {
    const textOf = (n: number) => [`Run${run}`, ...Array.from({ length: n }, (_, i) => WORDS[i % WORDS.length]!)].join(' ');
    let lo = 0, hi = promptTokens;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if ((await call<number>('llamaPromptTokens', textOf(mid), asciiBias)) <= promptTokens) lo = mid;
      else hi = mid - 1;
    }
    return { text: textOf(lo), tokens: await call<number>('llamaPromptTokens', textOf(lo), asciiBias) };
  };

  const measure = async (side: 'ours' | 'llama') => {
    const results: (Run & { prompt: number })[] = [];
    for (let r = 0; r <= runs; r++) {
      const prompt = await promptFor(side === 'ours' ? r : r + 100);
      const run = side === 'ours'
        ? await call<Run>('oursBench', prompt.text, genTokens)
        : await call<Run>('llamaBench', prompt.text, genTokens, asciiBias);
      if (r > 0) results.push({ ...run, prompt: prompt.tokens }); // run 0 is the warm-up
    }
    const rates = results.map((r) => r.decodeTokS);
    const ttft = median(results.map((r) => r.ttftMs));
    return {
      figures: {
        decode_tok_s: median(rates), decode_tok_s_min: Math.min(...rates), decode_tok_s_max: Math.max(...rates),
        prefill_tok_s: results[0]!.prompt / (ttft / 1000), ttft_ms: ttft,
      } satisfies Figures,
      prompt: results[0]!.prompt,
      generated: results[0]!.generated,
    };
  };
  const a = await measure('ours');
  const b = await measure('llama');
  const result = {
    adapter,
    model: values.model.split('/').pop(),
    prompt_tokens: a.prompt,
    gen_tokens: genTokens,
    runs,
    webgguf: { ...a.figures, generated: a.generated, model: ours.name },
    llama_cpp: { ...b.figures, generated: b.generated, threads: llama.threads, multithread: llama.multithread, cross_origin_isolated: llama.crossOriginIsolated },
    ratio: {
      decode: a.figures.decode_tok_s / b.figures.decode_tok_s,
      prefill: a.figures.prefill_tok_s / b.figures.prefill_tok_s,
      ttft: a.figures.ttft_ms / b.figures.ttft_ms,
    },
  };
  if (values.json) console.log(JSON.stringify(result));
  else {
    const row = (name: string, f: Figures) =>
      `${name.padEnd(11)} decode ${f.decode_tok_s.toFixed(2)} tok/s (min ${f.decode_tok_s_min.toFixed(2)}, max ${f.decode_tok_s_max.toFixed(2)})  prefill ${f.prefill_tok_s.toFixed(1)} tok/s  TTFT ${f.ttft_ms.toFixed(0)} ms`;
    console.log(`${result.model} in Chromium (${adapter}); prompt ${result.prompt_tokens} tokens, ${genTokens} generated, median of ${runs}`);
    console.log(row('webgguf', a.figures));
    console.log(row(`llama.cpp/${llama.threads}t`, b.figures));
    console.log(`ratio (webgguf ÷ llama.cpp): decode ${result.ratio.decode.toFixed(2)}×, prefill ${result.ratio.prefill.toFixed(2)}×`);
  }
} finally {
  await browser.close();
  await server.stop();
}
process.exit(0);
