import { EncoderModel } from '../model/encoder.js';
import { nodeGpuContext } from './gpu.js';
import { openGGUF } from './load.js';

export interface EmbedBenchResult {
  adapter: string;
  model: string;
  /** Tokens per input (CLS and SEP included). */
  input_tokens: number;
  /** Inputs per timed run. */
  inputs: number;
  runs: number;
  /** Median over the runs. */
  inputs_per_s: number;
  tokens_per_s: number;
  gpu_bytes: number;
}

/**
 * Embedding throughput of an encoder (BERT) model: `inputs` inputs of `tokens` random tokens each,
 * embedded in one call (packed into passes of up to the context, one readback per pass), timed
 * `runs` times after a warm-up.
 */
export async function embedBench(path: string, tokens: number, inputs: number, runs: number): Promise<EmbedBenchResult> {
  const { file, close } = await openGGUF(path);
  const gpu = await nodeGpuContext();
  try {
    const model = await EncoderModel.load(gpu, file);
    const n = Math.min(tokens, model.contextLength);
    // Ids past the specials' range of a WordPiece vocabulary (any id in range does the same work).
    const batch = Array.from({ length: inputs }, (_, i) => Array.from({ length: n }, (_, t) => 1000 + ((i * 7919 + t * 104729) % (model.config.vocabSize - 1000))));
    await model.embed(batch.slice(0, 1));
    const times: number[] = [];
    for (let r = 0; r < runs; r++) {
      const t0 = performance.now();
      await model.embed(batch);
      times.push(performance.now() - t0);
    }
    const ms = [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
    const result = {
      adapter: gpu.adapterName, model: file.source.name, input_tokens: n, inputs, runs,
      inputs_per_s: inputs / (ms / 1000), tokens_per_s: (inputs * n) / (ms / 1000), gpu_bytes: model.bytesOnGpu,
    };
    model.dispose();
    return result;
  } finally {
    await close();
    gpu.device.destroy();
  }
}
