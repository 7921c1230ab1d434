/**
 * `npx tsx --import ./scripts/register-wgsl.mjs bench/prefill.ts -m FILE [--prompt-tokens N] [--runs N]`:
 * prefill and decode step times alone (what `webgguf bench` measures first, without its bandwidth
 * probe and speed prediction, which on a big model on SwiftShader take longer than the runs), for
 * comparing one kernel's change on one file: a warm-up, then the median of the runs.
 */
import { parseArgs } from 'node:util';
import { GREEDY } from '../src/model/llama.js';
import { loadModelFile } from '../src/node/load.js';

const { values } = parseArgs({ options: { model: { type: 'string', short: 'm' }, 'prompt-tokens': { type: 'string' }, runs: { type: 'string' } } });
if (!values.model) throw new Error('usage: bench/prefill.ts -m FILE [--prompt-tokens N] [--runs N]');
const promptTokens = Number(values['prompt-tokens'] ?? 96);
const runs = Number(values.runs ?? 3);
const { model, gpu } = await loadModelFile(values.model, { contextLength: promptTokens + 2 });
// The same fixed pseudo-random prompt as `webgguf bench`.
let seed = 12345;
const prompt = Array.from({ length: promptTokens }, () => {
  seed = (seed * 1103515245 + 12345) >>> 0;
  return 3 + (seed % (model.config.vocabSize - 3));
});
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const prefill: number[] = [];
const decode: number[] = [];
for (let r = 0; r <= runs; r++) {
  model.setSampler(GREEDY, prompt);
  const t0 = performance.now();
  await model.step(prompt, 0);
  const t1 = performance.now();
  await model.decode(1, promptTokens);
  const t2 = performance.now();
  // The first run is the warm-up.
  if (r > 0) prefill.push(t1 - t0), decode.push(t2 - t1);
}
console.log(JSON.stringify({
  adapter: gpu.adapterName, model: values.model.split('/').pop(), prompt_tokens: promptTokens, runs,
  prefill_tok_s: promptTokens / (median(prefill) / 1000), prefill_ms: prefill.map(Math.round), decode_step_ms: decode.map(Math.round),
}));
model.dispose();
gpu.device.destroy();
