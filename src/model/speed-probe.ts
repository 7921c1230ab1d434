import { WebGGUFError } from '../errors.js';
import { TYPE_TRAITS } from '../gguf/ggml-types.js';
import type { GGUFFile, TensorInfo } from '../gguf/gguf.js';
import type { GpuContext } from '../gpu/context.js';
import { readConfig } from './config.js';
import { GREEDY, LlamaModel } from './llama.js';
import { DEFAULT_CONTEXT, DEFAULT_MAX_BATCH } from './memory-plan.js';
import { planWeights, type TensorPlan, type WeightChunk } from './weights.js';

/** Predicted speed of a model on this device, before its weights are downloaded. */
export interface SpeedEstimate {
  /** Decode steps per second (batched, as generation runs them) a little past the prompt. */
  decodeTokS: number;
  /** Prompt tokens per second over a prompt of `promptTokens`. */
  prefillTokS: number;
  /** Time to the first token for that prompt, in milliseconds. */
  ttftMs: number;
  promptTokens: number;
  /** How long the measurement took, in milliseconds. */
  probeMs: number;
}

/** Vocabulary rows the samples keep: enough rows that the head's time grows linearly from there. */
const SAMPLE_VOCAB = 4096;
/**
 * Layers of the deeper sample (the shallower has one): the per-layer time is their difference
 * over (layers - 1) and is then multiplied by the model's layers - 1, so the difference's noise
 * grows by (model layers - 1) / (sample layers - 1): up to SAMPLE_LAYERS_MAX layers while the
 * sample's layers stay within SAMPLE_LAYER_BYTES, never fewer than SAMPLE_LAYERS_MIN.
 */
const SAMPLE_LAYERS_MIN = 4;
const SAMPLE_LAYERS_MAX = 8;
const SAMPLE_LAYER_BYTES = 192 * 2 ** 20;
/** Decode steps per timed batch (generation's batches reach this size), and batches timed. */
const STEPS = 8;
const BATCHES = 4;

/**
 * Predicts decode and prefill speed by running the model's own kernels, on this device, over
 * samples of the model: copies of its header with its first layer (sample A), its first
 * 4 to 8 layers (B), and the first layer with twice the vocabulary rows (C), every tensor
 * at its real shape and type, filled with random words instead of downloaded weights. A layer's
 * time is (B − A) / (B's layers − 1) and the head's per vocabulary row (C − A) / rows, both
 * linear in what they read; the rest of A (embedding, final norm, sampler, submit and readback) is
 * paid once. So the prediction is a measurement, and it knows the adapter, the quant kinds and
 * the kernel shapes without a table. The samples take a few layers' memory, one at a time.
 * `signal` is checked between the probe's steps (each weight chunk of a sample, each timed prefill
 * and decode batch), so an abort ends it within one step with `aborted`.
 */
export async function predictSpeed(
  gpu: GpuContext, file: GGUFFile, options: { contextLength?: number; promptTokens?: number; maxBatch?: number; signal?: AbortSignal } = {},
): Promise<SpeedEstimate> {
  const started = performance.now();
  const checkAbort = () => {
    if (options.signal?.aborted) throw new WebGGUFError('aborted', 'the estimate was aborted');
  };
  const config = readConfig(file);
  // The prompt and the decode steps timed after it must fit the samples' context, which may be
  // longer than the one asked about (a KV cache's length changes no step's time, only its memory).
  const promptTokens = Math.max(1, Math.min(options.promptTokens ?? 128, config.contextLength - BATCHES * STEPS - 1));
  const contextLength = Math.min(config.contextLength, Math.max(options.contextLength ?? DEFAULT_CONTEXT, promptTokens + BATCHES * STEPS + 1));
  const vocabRows = Math.min(config.vocabSize, SAMPLE_VOCAB);
  const layerBytes = file.tensors.filter((t) => t.name.startsWith('blk.0.')).reduce((sum, t) => sum + t.byteSize, 0);
  const deep = Math.min(config.nLayers, Math.max(SAMPLE_LAYERS_MIN, Math.min(SAMPLE_LAYERS_MAX, Math.floor(SAMPLE_LAYER_BYTES / Math.max(1, layerBytes)))));
  const time = async (layers: number, rows: number) => {
    const sample = sampleFile(file, layers, rows);
    const plans = planWeights(sample, readConfig(sample));
    const model = await LlamaModel.load(gpu, sample, { contextLength, maxBatch: options.maxBatch ?? DEFAULT_MAX_BATCH, weights: () => randomChunks(plans, checkAbort) });
    try {
      return await timeModel(model, promptTokens, checkAbort);
    } finally {
      model.dispose();
    }
  };
  const a = await time(1, vocabRows);
  const b = deep > 1 ? await time(deep, vocabRows) : a;
  const c = config.vocabSize > vocabRows ? await time(1, Math.min(2 * vocabRows, config.vocabSize)) : a;
  const extraRows = Math.min(2 * vocabRows, config.vocabSize) - vocabRows;
  const scale = (pick: (t: Timing) => number) => {
    const layer = deep > 1 ? Math.max(0, (pick(b) - pick(a)) / (deep - 1)) : 0;
    const row = extraRows > 0 ? Math.max(0, (pick(c) - pick(a)) / extraRows) : 0;
    return pick(a) + (config.nLayers - 1) * layer + (config.vocabSize - vocabRows) * row;
  };
  const decodeMs = scale((t) => t.decodeMs);
  const prefillMs = scale((t) => t.prefillMs);
  return { decodeTokS: 1000 / decodeMs, prefillTokS: (promptTokens * 1000) / prefillMs, ttftMs: prefillMs, promptTokens, probeMs: performance.now() - started };
}

interface Timing {
  /** One decode step, in a batch of STEPS. */
  decodeMs: number;
  /** The whole prompt, as generate() runs it. */
  prefillMs: number;
}

/**
 * The median of three runs (as `webgguf bench` reports, so the two compare): the prompt's prefill,
 * then a batch of decode steps right after it.
 */
async function timeModel(model: LlamaModel, promptTokens: number, checkAbort: () => void): Promise<Timing> {
  const prompt = Array.from({ length: promptTokens }, (_, i) => 1 + (i % (model.config.vocabSize - 1)));
  model.setSampler(GREEDY, prompt);
  await model.step(prompt, 0);
  checkAbort();
  await model.decode(2, promptTokens);
  const runs: Timing[] = [];
  for (let run = 0; run < 3; run++) {
    checkAbort();
    model.setSampler(GREEDY, prompt);
    const t0 = performance.now();
    await model.step(prompt, 0);
    const t1 = performance.now();
    // Batches as generation runs them, over the first tokens of a reply (attention grows with them).
    for (let b = 0; b < BATCHES; b++) {
      checkAbort();
      await model.decode(STEPS, promptTokens + b * STEPS);
    }
    const t2 = performance.now();
    runs.push({ prefillMs: t1 - t0, decodeMs: (t2 - t1) / (BATCHES * STEPS) });
  }
  const median = (pick: (t: Timing) => number) => runs.map(pick).sort((a, b) => a - b)[1]!;
  return { prefillMs: median((t) => t.prefillMs), decodeMs: median((t) => t.decodeMs) };
}

const samples = new WeakMap<GGUFFile, Map<string, GGUFFile>>();

/**
 * The header of `file` cut to its first `layers` layers and `vocabRows` rows of embedding and
 * output: the same metadata (without the tokenizer, which the GPU never reads) and the same
 * tensors at their shapes and types. Its data is never read: the weights come from randomChunks.
 */
function sampleFile(file: GGUFFile, layers: number, vocabRows: number): GGUFFile {
  const key = `${layers}/${vocabRows}`;
  const cached = samples.get(file)?.get(key);
  if (cached) return cached;
  const arch = file.metadata.get('general.architecture');
  const metadata = new Map([...file.metadata].filter(([k]) => !k.startsWith('tokenizer.')));
  metadata.set(`${arch}.block_count`, layers);
  const layerOf = (name: string) => /^blk\.(\d+)\./.exec(name)?.[1];
  let offset = 0;
  const tensors: TensorInfo[] = [];
  for (const t of file.tensors) {
    const layer = layerOf(t.name);
    if (layer !== undefined && Number(layer) >= layers) continue;
    const dims = t.name === 'token_embd.weight' || t.name === 'output.weight' ? [t.dims[0]!, vocabRows] : t.dims;
    const traits = TYPE_TRAITS[t.type];
    const elements = dims.reduce((x, y) => x * y, 1);
    const byteSize = traits ? Math.ceil(elements / traits.blockSize) * traits.blockBytes : t.byteSize;
    tensors.push({ name: t.name, dims, type: t.type, offset, elements, byteSize });
    offset += Math.ceil(byteSize / file.alignment) * file.alignment;
  }
  const sample: GGUFFile = {
    ...file,
    metadata,
    tensors,
    dataOffset: 0,
    source: {
      size: offset,
      name: `${file.source.name} (sample)`,
      read: () => Promise.reject(new WebGGUFError('invalid-argument', 'a speed sample has no tensor data')),
    },
  };
  if (!samples.has(file)) samples.set(file, new Map());
  samples.get(file)!.set(key, sample);
  return sample;
}

/**
 * Random words for every planned buffer, with every 16-bit half's exponent held small, so no
 * weight, scale or norm is an infinity, a NaN or a denormal that could change a kernel's time.
 */
async function* randomChunks(plans: TensorPlan[], checkAbort: () => void): AsyncGenerator<WeightChunk> {
  let state = 0x9e3779b9;
  const CHUNK_WORDS = 1 << 20;
  for (const plan of plans) {
    for (let at = 0; at < plan.words; at += CHUNK_WORDS) {
      checkAbort();
      const words = new Uint32Array(Math.min(CHUNK_WORDS, plan.words - at));
      for (let i = 0; i < words.length; i++) {
        state ^= state << 13;
        state ^= state >>> 17;
        state ^= state << 5;
        words[i] = ((state & 0x03ff03ff) | 0x2c002c00) >>> 0;
      }
      yield { tensor: plan.name, wordOffset: at, words };
    }
  }
}
