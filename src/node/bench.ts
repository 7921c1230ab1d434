import type { GpuContext } from '../gpu/context.js';
import { Kernels, timedPass } from '../gpu/kernels.js';
import { gpuLayout, type GpuWeightKind } from '../quant/formats.js';
import { barrierWorkgroup, decodeGemv, matmulParams, tuneDecodeWorkgroup } from '../model/llama.js';
import { uniformData } from '../gpu/allocator.js';
import { WebGGUFError } from '../errors.js';
import { readConfig } from '../model/config.js';
import { runOnce, SPEED_ROUNDS, SpeedSamples, type SpeedEstimate } from '../model/speed-probe.js';
import { nodeGpuContext } from './gpu.js';
import { loadModelFile, openGGUF } from './load.js';

export interface BenchResult {
  adapter: string;
  model: string;
  prompt_tokens: number;
  gen_tokens: number;
  runs: number;
  decode_tok_s: number;
  decode_tok_s_min: number;
  decode_tok_s_max: number;
  prefill_tok_s: number;
  ttft_ms: number;
  weight_bytes_per_token: number;
  probe_read_gb_s: number;
  decode_gb_s: number;
  roofline_fraction: number;
  dispatches_per_token: number;
  /** The GPU decode GEMVs' workgroup size, tuned at load; null on CPU adapters. */
  decode_workgroup: number | null;
  /** Whether the kernels sum over workgroups with subgroup operations. */
  subgroups: boolean;
  gpu_bytes: number;
  peak_gpu_bytes: number;
  /** Peak GPU bytes over weights + KV cache, minus one (the target is at most 0.10). */
  peak_overhead_fraction: number;
  /** What engine.estimate predicts for this model and these lengths on this adapter (its speed samples, timed between the measured runs), beside the measured figures. */
  predicted_decode_tok_s: number;
  predicted_prefill_tok_s: number;
  /** How the KV cache stores keys and values, and its bytes per position (all layers, keys and values). */
  kv_cache: 'f16' | 'f32';
  kv_bytes_per_token: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Best streaming-read bandwidth of a read-and-reduce kernel over a 256 MiB (or smaller) buffer. */
export async function probeReadBandwidth(gpu: GpuContext, repeats = 5): Promise<number> {
  const device = gpu.device;
  const bytes = Math.min(256 << 20, gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize) & ~15;
  const data = device.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE });
  const workgroups = 1024;
  const sums = device.createBuffer({ size: workgroups * 256 * 4, usage: GPUBufferUsage.STORAGE });
  const kernels = new Kernels(device, gpu.subgroups);
  const k = kernels.get('probe');
  const bindGroup = kernels.bindGroup(k, [data, sums]);
  const run = () => timedPass(device, k, [[bindGroup, [workgroups, 1, 1]]]);
  await run();
  let best = Infinity;
  for (let i = 0; i < repeats; i++) best = Math.min(best, await run());
  data.destroy();
  sums.destroy();
  return bytes / (best / 1000) / 1e9;
}

/** A fixed pseudo-random prompt of `length` tokens: the same on every run and every machine. */
export function benchPrompt(length: number, vocabSize: number): number[] {
  let seed = 12345;
  return Array.from({ length }, () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return 3 + (seed % (vocabSize - 3));
  });
}

/**
 * `webgguf bench`: warm-up, then the median (with min and max) of several runs. The lengths are
 * checked against the model's context (from the file's header) before the GPU starts.
 */
export async function bench(path: string, promptTokens: number, genTokens: number, runs = 3): Promise<BenchResult> {
  const { file, close } = await openGGUF(path);
  const context = await Promise.resolve()
    .then(() => readConfig(file).contextLength)
    .finally(close);
  if (promptTokens + genTokens > context) {
    throw new WebGGUFError(
      'context-overflow',
      `--prompt-tokens ${promptTokens} + --gen-tokens ${genTokens} = ${promptTokens + genTokens} tokens do not fit ${path.split('/').pop()}'s context of ${context}`,
    );
  }
  const loaded = await loadModelFile(path, { contextLength: promptTokens + genTokens + 1 });
  try {
    const { model, gpu } = loaded;
    const prompt = benchPrompt(promptTokens, model.config.vocabSize);
    await runOnce(model, prompt, Math.min(genTokens, 4));
    // The prediction's samples (what engine.estimate times) are timed in rounds between the
    // measured runs, so a change in this device's speed during the bench lands on both.
    const samples = await SpeedSamples.load(gpu, loaded.file, { contextLength: promptTokens + genTokens + 1, promptTokens });
    const results = [];
    let predicted: SpeedEstimate;
    try {
      for (let i = 0; i < Math.max(runs, SPEED_ROUNDS); i++) {
        if (i < SPEED_ROUNDS) await samples.round();
        if (i < runs) results.push(await runOnce(model, prompt, genTokens));
      }
      predicted = samples.estimate();
    } finally {
      samples.dispose();
    }
    const decodeRates = results.map((r) => genTokens / (r.decode / 1000));
    const ttft = median(results.map((r) => r.ttft));
    const probe = await probeReadBandwidth(gpu);
    const decode = median(decodeRates);
    const decodeGbS = (model.weightBytesPerToken * decode) / 1e9;
    return {
      adapter: gpu.adapterName,
      model: path.split('/').pop() ?? path,
      prompt_tokens: promptTokens,
      gen_tokens: genTokens,
      runs,
      decode_tok_s: decode,
      decode_tok_s_min: Math.min(...decodeRates),
      decode_tok_s_max: Math.max(...decodeRates),
      prefill_tok_s: promptTokens / (ttft / 1000),
      ttft_ms: ttft,
      weight_bytes_per_token: model.weightBytesPerToken,
      probe_read_gb_s: probe,
      decode_gb_s: decodeGbS,
      roofline_fraction: decodeGbS / probe,
      dispatches_per_token: model.dispatchesPerToken,
      decode_workgroup: model.decodeWorkgroup ?? null,
      subgroups: gpu.subgroups,
      gpu_bytes: model.bytesOnGpu,
      peak_gpu_bytes: model.peakBytesOnGpu,
      peak_overhead_fraction: model.peakBytesOnGpu / (model.weightBytes + model.kvCacheBytes) - 1,
      predicted_decode_tok_s: predicted.decodeTokS,
      predicted_prefill_tok_s: predicted.prefillTokS,
      kv_cache: model.kvBits === 16 ? 'f16' : 'f32',
      kv_bytes_per_token: model.kvCacheBytes / model.contextLength,
    };
  } finally {
    await loaded.dispose();
  }
}

export interface FollowupResult {
  /** Tokens of the conversation so far (what the KV cache holds from turn 1). */
  history_tokens: number;
  /** Tokens the follow-up adds (the new user message and the template around it). */
  new_tokens: number;
  /** Prompt tokens the engine reused from the KV cache. */
  cached_tokens: number;
  /** Time to first token of the follow-up turn, and of the first turn (whole prompt). */
  followup_ttft_ms: number;
  first_turn_ttft_ms: number;
}

const WORDS = 'once upon a time there was a little girl who lived in a house near the sea and she liked to play in the sand with her dog'.split(' ');

/**
 * Follow-up turns through the engine's chat API (Node, no worker): a first turn of about
 * `history` words, then a short follow-up. With the KV cache reused, the follow-up's time to first
 * token depends on its new tokens, not on the history. Each time is a request for one token.
 */
export async function followupBench(path: string, histories: number[]): Promise<FollowupResult[]> {
  const { openAsBlob } = await import('node:fs');
  const { createEngine } = await import('../engine/engine.js');
  const engine = await createEngine({ worker: false, cache: false, gpu: () => nodeGpuContext(), contextLength: Math.max(...histories) * 2 + 256 });
  try {
    await engine.load(await openAsBlob(path));
    const results: FollowupResult[] = [];
    for (const [i, history] of histories.entries()) {
      // A different opening word per history, so turn 1 never reuses the previous one's cache.
      const text = [`Story${i}:`, ...Array.from({ length: history }, (_, j) => WORDS[j % WORDS.length]!)].join(' ');
      const messages = [{ role: 'user' as const, content: text }];
      const timed = async (m: typeof messages) => {
        const t0 = performance.now();
        const r = await engine.chat.completions.create({ messages: m, max_tokens: 1, temperature: 0 });
        return { ms: performance.now() - t0, reply: r.choices[0]!.message.content ?? '', usage: r.usage };
      };
      const first = await timed(messages);
      const followup = await timed([...messages, { role: 'assistant', content: first.reply } as never, { role: 'user', content: 'and then what happened' }]);
      const cached = followup.usage.prompt_tokens_details.cached_tokens;
      results.push({
        history_tokens: first.usage.prompt_tokens,
        new_tokens: followup.usage.prompt_tokens - cached,
        cached_tokens: cached,
        followup_ttft_ms: followup.ms,
        first_turn_ttft_ms: first.ms,
      });
    }
    return results;
  } finally {
    await engine.dispose();
  }
}

export interface GemvResult {
  kind: GpuWeightKind;
  kernel: string;
  /** gemv's workgroup size, tuned as a model load tunes it (on the feed-forward matrix); null for gemv_rows. */
  workgroup: number | null;
  /** Weight bytes one decode step's projections read (q, k, v, o, gate, up, down). */
  bytes: number;
  ms: number;
  gb_s: number;
  fraction_of_probe: number;
}

/**
 * The decode GEMV alone, at one layer's matrix shapes (default TinyLlama 1.1B: dim 2048, ffn
 * 5632, k/v rows 256): the kernel this adapter gets (gemv_rows on CPU adapters, gemv otherwise)
 * over random weights of each kind, against the read probe of the same run.
 */
export async function gemvBench(gpu: GpuContext, shape = { dim: 2048, ffn: 5632, kv: 256 }, kinds: GpuWeightKind[] = ['q4_0', 'q8_0']): Promise<{ probe_read_gb_s: number; results: GemvResult[] }> {
  const device = gpu.device;
  const kernels = new Kernels(device, gpu.subgroups);
  const probe = await probeReadBandwidth(gpu);
  const { dim, ffn, kv } = shape;
  const matrices: [number, number][] = [[dim, dim], [kv, dim], [kv, dim], [dim, dim], [ffn, dim], [ffn, dim], [dim, ffn]];
  const results: GemvResult[] = [];
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
  const x = device.createBuffer({ size: Math.max(dim, ffn) * 4, usage });
  device.queue.writeBuffer(x, 0, Float32Array.from({ length: Math.max(dim, ffn) }, (_, i) => Math.sin(i)));
  const y = device.createBuffer({ size: Math.max(dim, ffn) * 4, usage });
  const step = device.createBuffer({ size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(step, 0, new Uint32Array([0, 1, 0, 0]));
  const name = decodeGemv(gpu.cpuEmulated, 1, 1).name;
  const setups = [];
  for (const kind of kinds) {
    const made = matrices.map(([rows, cols]) => {
      const layout = gpuLayout(kind, rows, cols);
      // Random quants; small, finite f16 scales (0x2000 ≈ 0.0078) so no NaN or denormal slows the math.
      const words = new Uint32Array(layout.totalWords);
      for (let i = 0; i < words.length; i++) words[i] = layout.scaleOffset && i >= layout.scaleOffset ? 0x20002000 : (Math.random() * 2 ** 32) >>> 0;
      const w = device.createBuffer({ size: words.byteLength, usage });
      device.queue.writeBuffer(w, 0, words);
      const data = matmulParams(layout);
      const params = device.createBuffer({ size: data.byteLength, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
      device.queue.writeBuffer(params, 0, data);
      return { w, layout, params, grid: decodeGemv(gpu.cpuEmulated, rows, cols).grid, bytes: words.byteLength };
    });
    const up = made[5]!;
    const workgroup = gpu.cpuEmulated ? null : await tuneDecodeWorkgroup(gpu, kernels, { buffer: up.w, layout: up.layout }, x, y, step);
    const kernel = kernels.get(name, kind, workgroup ? { WG: workgroup } : {});
    const dispatches = made.map((d) => ({ ...d, bindGroup: kernels.bindGroup(kernel, [d.w, x, y, d.params, step]) }));
    const run = () => timedPass(device, kernel, dispatches.map((d) => [d.bindGroup, d.grid]));
    await run();
    setups.push({ kind, workgroup, dispatches, run, times: [] as number[] });
  }
  // The kinds take turns, five rounds, so a machine whose load changes during the run (a shared
  // one) slows each kind alike and their ratios hold.
  for (let round = 0; round < 5; round++) for (const s of setups) s.times.push(await s.run());
  for (const { kind, workgroup, dispatches, times } of setups) {
    const ms = median(times);
    const bytes = dispatches.reduce((s, d) => s + d.bytes, 0);
    const gbS = bytes / (ms / 1000) / 1e9;
    results.push({ kind, kernel: name, workgroup, bytes, ms, gb_s: gbS, fraction_of_probe: gbS / probe });
    for (const d of dispatches) {
      d.w.destroy();
      d.params.destroy();
    }
  }
  x.destroy();
  y.destroy();
  step.destroy();
  return { probe_read_gb_s: probe, results };
}

export interface HeadResult {
  vocab: number;
  /** The output head's GEMV (vocab × dim, `kind`), the kernel this adapter gets. */
  head_kind: GpuWeightKind;
  head_ms: number;
  /** The sampler alone over `vocab` logits: greedy, and temperature 0.8 with top-k 40 and top-p 0.95. */
  sample_greedy_ms: number;
  sample_top_p_ms: number;
  /** Head plus top-p sampling per vocabulary entry, in ns (constant if both grow linearly). */
  ns_per_token: number;
}

/**
 * The output head and the sampler at large vocabularies (Qwen 2.5/3: 151,936 → 152k; Gemma 3:
 * 262,144), at a 1B-class width (`dim`, TinyLlama's 2048): each timed as the median of five runs,
 * the head over random Q6_K weights (a Q4_K_M file's usual output kind), the sampler over random
 * logits.
 */
export async function headBench(gpu: GpuContext, vocabs: number[], dim = 2048, kind: GpuWeightKind = 'q6_k'): Promise<HeadResult[]> {
  const device = gpu.device;
  const kernels = new Kernels(device, gpu.subgroups);
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
  const results: HeadResult[] = [];
  const x = device.createBuffer({ size: dim * 4, usage });
  device.queue.writeBuffer(x, 0, Float32Array.from({ length: dim }, (_, i) => Math.sin(i)));
  const step = device.createBuffer({ size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(step, 0, new Uint32Array([0, 1, 0, 0]));
  const timed = async (run: () => Promise<number>) => {
    await run();
    const times: number[] = [];
    for (let i = 0; i < 5; i++) times.push(await run());
    return median(times);
  };
  for (const vocab of vocabs) {
    const made: GPUBuffer[] = [];
    const storage = (bytes: number) => {
      const b = device.createBuffer({ size: bytes, usage });
      made.push(b);
      return b;
    };
    const layout = gpuLayout(kind, vocab, dim);
    const words = new Uint32Array(layout.totalWords);
    for (let i = 0; i < words.length; i++) words[i] = layout.scaleOffset && i >= layout.scaleOffset ? 0x20002000 : (Math.random() * 2 ** 32) >>> 0;
    const w = storage(words.byteLength);
    device.queue.writeBuffer(w, 0, words);
    const logits = storage(vocab * 4);
    const uniform = (data: ArrayBuffer) => {
      const b = device.createBuffer({ size: data.byteLength, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
      device.queue.writeBuffer(b, 0, data);
      made.push(b);
      return b;
    };
    const { name, grid } = decodeGemv(gpu.cpuEmulated, vocab, dim);
    const workgroup = gpu.cpuEmulated ? null : await tuneDecodeWorkgroup(gpu, kernels, { buffer: w, layout }, x, logits, step);
    const gemv = kernels.get(name, kind, workgroup ? { WG: workgroup } : {});
    const gemvGroup = kernels.bindGroup(gemv, [w, x, logits, uniform(matmulParams(layout)), step]);
    const headMs = await timed(() => timedPass(device, gemv, [[gemvGroup, grid]]));
    // Logits of a peaked distribution, as a model's are.
    device.queue.writeBuffer(logits, 0, Float32Array.from({ length: vocab }, () => 8 * Math.random() ** 4));
    const sample = kernels.get('sample', undefined, barrierWorkgroup(gpu.cpuEmulated, 'sample'));
    const sampler = (temperature: number, topK: number, topP: number) =>
      kernels.bindGroup(sample, [
        logits, storage(vocab * 4), storage(8), storage(16), storage(16),
        // No filters (allowed-token mask, logit bias): a plain request's sampling.
        uniform(uniformData([{ u: vocab }, { u: topK }, { f: topP }, { f: 0 }, { f: temperature }, { f: 1 }, { u: 64 }, { u: 1 }, { f: 0 }, { f: 0 }, { u: 0 }])),
        storage(vocab * 4), storage(Math.ceil(vocab / 32) * 4), storage(vocab * 4),
      ]);
    const greedy = sampler(0, 0, 1), topP = sampler(0.8, 40, 0.95);
    const greedyMs = await timed(() => timedPass(device, sample, [[greedy, [1, 1, 1]]]));
    const topPMs = await timed(() => timedPass(device, sample, [[topP, [1, 1, 1]]]));
    results.push({ vocab, head_kind: kind, head_ms: headMs, sample_greedy_ms: greedyMs, sample_top_p_ms: topPMs, ns_per_token: ((headMs + topPMs) * 1e6) / vocab });
    for (const b of made) b.destroy();
  }
  x.destroy();
  step.destroy();
  return results;
}
