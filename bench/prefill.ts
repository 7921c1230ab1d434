/**
 * `npx tsx --import ./scripts/register-wgsl.mjs bench/prefill.ts -m FILE [--prompt-tokens N] [--gen-tokens N] [--runs N] [--warmup-tokens N]`:
 * prefill and decode times alone (what `webgguf bench` measures first, without its bandwidth
 * probe and speed prediction, which on a big model on SwiftShader take longer than the runs), for
 * comparing one kernel's change or two architectures on big files: a warm-up (a short prompt by
 * default, so a long prompt is not paid twice), then the median of the runs; and where the
 * weights live (GPU bytes, CPU-side bytes, the file's size).
 */
import { statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { runOnce } from '../src/model/speed-probe.js';
import { benchPrompt } from '../src/node/bench.js';
import { loadModelFile } from '../src/node/load.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string', short: 'm' },
    'prompt-tokens': { type: 'string' },
    'gen-tokens': { type: 'string' },
    'warmup-tokens': { type: 'string' },
    runs: { type: 'string' },
  },
});
if (!values.model) throw new Error('usage: bench/prefill.ts -m FILE [--prompt-tokens N] [--gen-tokens N] [--runs N] [--warmup-tokens N]');
const promptTokens = Number(values['prompt-tokens'] ?? 96);
const genTokens = Number(values['gen-tokens'] ?? 1);
const warmupTokens = Math.min(promptTokens, Number(values['warmup-tokens'] ?? 16));
const runs = Number(values.runs ?? 3);
const t0 = performance.now();
const { model, gpu } = await loadModelFile(values.model, { contextLength: promptTokens + genTokens + 1 });
const loadMs = performance.now() - t0;
const prompt = benchPrompt(promptTokens, model.config.vocabSize);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

await runOnce(model, prompt.slice(0, warmupTokens), Math.min(genTokens, 2));
const prefill: number[] = [];
const decode: number[] = [];
for (let r = 0; r < runs; r++) {
  const t = await runOnce(model, prompt, genTokens);
  prefill.push(t.ttft);
  decode.push(t.decode);
}
console.log(JSON.stringify({
  adapter: gpu.adapterName,
  model: values.model.split('/').pop(),
  prompt_tokens: promptTokens,
  gen_tokens: genTokens,
  runs,
  load_ms: Math.round(loadMs),
  prefill_tok_s: promptTokens / (median(prefill) / 1000),
  decode_tok_s: genTokens / (median(decode) / 1000),
  prefill_ms: prefill.map(Math.round),
  decode_ms: decode.map(Math.round),
  weight_bytes_per_token: model.weightBytesPerToken,
  dispatches_per_token: model.dispatchesPerToken,
  file_bytes: statSync(values.model).size,
  gpu_bytes: model.bytesOnGpu,
  peak_gpu_bytes: model.peakBytesOnGpu,
  weight_bytes_gpu: model.weightBytes,
  weight_bytes_cpu: model.bytesOnCpu,
  kv_cache_bytes: model.kvCacheBytes,
  recurrent_state_bytes: model.recurrentStateBytes,
}));
model.dispose();
gpu.device.destroy();
