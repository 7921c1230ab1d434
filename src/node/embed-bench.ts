import { EncoderModel, isEncoder } from '../model/encoder.js';
import { LlamaModel } from '../model/llama.js';
import { runsWhole } from '../model/memory-plan.js';
import { nodeGpuContext } from './gpu.js';
import { openGGUF } from './load.js';

export interface EmbedBenchResult {
  adapter: string;
  model: string;
  /** Tokens per input (specials included). */
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
 * Embedding throughput of an embedding model: `inputs` inputs of `tokens` random tokens each,
 * embedded in one call, timed `runs` times after a warm-up. An encoder packs the inputs into
 * passes of up to its context (one readback per pass); a decoder runs each input as one prompt
 * (one readback per input).
 */
export async function embedBench(path: string, tokens: number, inputs: number, runs: number): Promise<EmbedBenchResult> {
  const { file, close } = await openGGUF(path);
  const gpu = await nodeGpuContext();
  try {
    const model = isEncoder(file) ? await EncoderModel.load(gpu, file) : await LlamaModel.load(gpu, file);
    // The longest input the model embeds: an encoder's context; a decoder that attends ahead or
    // pools every token (EmbeddingGemma) runs an input in one pass, else in steps of its context.
    const longest = model instanceof LlamaModel && runsWhole(model.config) ? model.maxBatch : model.contextLength;
    const n = Math.min(tokens, longest);
    // Ids past the specials at the start of a vocabulary (any id in range does the same work).
    const vocab = model.config.vocabSize, first = Math.min(1000, vocab >> 1);
    const batch = Array.from({ length: inputs }, (_, i) => Array.from({ length: n }, (_, t) => first + ((i * 7919 + t * 104729) % (vocab - first))));
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
