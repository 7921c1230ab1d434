import { WebGGUFError } from '../errors.js';
import { TYPE_TRAITS } from '../gguf/ggml-types.js';
import type { GGUFFile, MetadataValue, TensorInfo } from '../gguf/gguf.js';
import type { GpuContext } from '../gpu/context.js';
import { PER_LAYER_TABLE, readConfig } from './config.js';
import { DECODE_BATCH } from '../generate.js';
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

/** Vocabulary rows of samples A and B: enough rows that the head's time grows linearly from there. */
const SAMPLE_VOCAB = 4096;
/**
 * Sample C's extra vocabulary rows: as many as fit HEAD_SAMPLE_BYTES of the head (the whole
 * vocabulary where it does), so the head's time is extrapolated little or not at all (a 4096-row
 * difference scaled 60 times to a 262k vocabulary carried its noise into the prediction).
 */
const HEAD_SAMPLE_BYTES = 64 * 2 ** 20;
/**
 * Layers of the deeper sample (the shallower has one): the layers' time is their difference, so
 * its noise grows by the model's layer bytes over the sample's: up to SAMPLE_LAYERS_MAX layers
 * while the sample's layers stay within SAMPLE_LAYER_BYTES, never fewer than SAMPLE_LAYERS_MIN.
 */
const SAMPLE_LAYERS_MIN = 4;
const SAMPLE_LAYERS_MAX = 8;
const SAMPLE_LAYER_BYTES = 192 * 2 ** 20;
/** Decode batches timed (of generate()'s DECODE_BATCH steps each). */
const BATCHES = 4;
/** Rounds timed: each sample's median of three. */
export const SPEED_ROUNDS = 3;

/**
 * Samples of a model, on the GPU, timed in rounds: copies of its header with its first layer
 * (sample A), its first 4 to 8 layers (B), and the first layer with more vocabulary rows (C), every
 * tensor at its real shape and type, filled with random words instead of downloaded weights. The
 * layers' time is (B − A) per byte of B's layers past the first, times the bytes of the model's
 * layers past the first (so layers of other widths, such as Gemma 4's double-wide ones that B does
 * not reach, count for what they read); the head's is (C − A) per vocabulary row; the rest of A
 * (embedding, final norm, sampler, submit and readback) is paid once. So the prediction is a
 * measurement, and it knows the adapter, the quant kinds and the kernel shapes without a table.
 * Each round times every sample once and the prediction takes each sample's median, so a bench
 * can put its own measured runs between the rounds and a change in the device's speed lands on
 * both. `signal` is checked between steps (each weight chunk, each timed prefill and decode batch),
 * so an abort ends it within one step with `aborted`.
 */
export class SpeedSamples {
  private readonly timings = new Map<LlamaModel, Timing[]>();

  private constructor(
    private readonly promptTokens: number,
    private readonly a: LlamaModel,
    private readonly b: LlamaModel,
    private readonly c: LlamaModel,
    /** Bytes of the model's layers past the first, over those of B's. */
    private readonly layerScale: number,
    /** Vocabulary rows past A's, over C's rows past A's. */
    private readonly rowScale: number,
    private readonly checkAbort: () => void,
    private readonly started: number,
  ) {}

  static async load(
    gpu: GpuContext, file: GGUFFile, options: { contextLength?: number; promptTokens?: number; maxBatch?: number; signal?: AbortSignal } = {},
  ): Promise<SpeedSamples> {
    const started = performance.now();
    const checkAbort = () => {
      if (options.signal?.aborted) throw new WebGGUFError('aborted', 'the estimate was aborted');
    };
    const config = readConfig(file);
    // The prompt and the decode steps timed after it must fit the samples' context, which may be
    // longer than the one asked about (a KV cache's length changes no step's time, only its memory).
    const promptTokens = Math.max(1, Math.min(options.promptTokens ?? 128, config.contextLength - BATCHES * DECODE_BATCH - 1));
    const contextLength = Math.min(config.contextLength, Math.max(options.contextLength ?? DEFAULT_CONTEXT, promptTokens + BATCHES * DECODE_BATCH + 1));
    const layerBytes = bytesPerLayer(file, config.nLayers);
    const deep = Math.min(config.nLayers, Math.max(SAMPLE_LAYERS_MIN, Math.min(SAMPLE_LAYERS_MAX, Math.floor(SAMPLE_LAYER_BYTES / Math.max(1, layerBytes[0]!)))));
    const past = (n: number) => layerBytes.slice(1, n).reduce((x, y) => x + y, 0);
    const rowsA = Math.min(config.vocabSize, SAMPLE_VOCAB);
    const rowsC = Math.min(config.vocabSize, rowsA + Math.max(rowsA, Math.floor(HEAD_SAMPLE_BYTES / headRowBytes(file))));
    const loaded: LlamaModel[] = [];
    const load = async (layers: number, rows: number) => {
      const sample = sampleFile(file, config.nLayers, layers, rows);
      const plans = planWeights(sample, readConfig(sample));
      const model = await LlamaModel.load(gpu, sample, { contextLength, maxBatch: options.maxBatch ?? DEFAULT_MAX_BATCH, weights: () => randomChunks(plans, checkAbort) });
      loaded.push(model);
      // Warm-up: the first prefill and decode compile pipelines and touch every buffer.
      await runOnce(model, samplePrompt(model, promptTokens), 2, checkAbort);
      return model;
    };
    try {
      const a = await load(1, rowsA);
      const b = deep > 1 ? await load(deep, rowsA) : a;
      const c = rowsC > rowsA ? await load(1, rowsC) : a;
      const layerScale = deep > 1 ? past(config.nLayers) / Math.max(1, past(deep)) : 0;
      const rowScale = rowsC > rowsA ? (config.vocabSize - rowsA) / (rowsC - rowsA) : 0;
      return new SpeedSamples(promptTokens, a, b, c, layerScale, rowScale, checkAbort, started);
    } catch (e) {
      for (const model of loaded) model.dispose();
      throw e;
    }
  }

  /** Times each sample once: the prompt's prefill, then batches of decode steps right after it. */
  async round(): Promise<void> {
    for (const model of new Set([this.a, this.b, this.c])) {
      const runs = this.timings.get(model) ?? [];
      runs.push(await timeModel(model, this.promptTokens, this.checkAbort));
      this.timings.set(model, runs);
    }
  }

  /** The prediction from each sample's median so far (one round at least). */
  estimate(): SpeedEstimate {
    const median = (model: LlamaModel, pick: (t: Timing) => number) => {
      const values = (this.timings.get(model) ?? []).map(pick).sort((x, y) => x - y);
      if (values.length === 0) throw new WebGGUFError('invalid-argument', 'the speed samples have not been timed');
      return values[(values.length - 1) >> 1]!;
    };
    const scale = (pick: (t: Timing) => number) => {
      const a = median(this.a, pick);
      const layers = Math.max(0, median(this.b, pick) - a) * this.layerScale;
      const head = Math.max(0, median(this.c, pick) - a) * this.rowScale;
      return a + layers + head;
    };
    const decodeMs = scale((t) => t.decodeMs);
    const prefillMs = scale((t) => t.prefillMs);
    const promptTokens = this.promptTokens;
    return { decodeTokS: 1000 / decodeMs, prefillTokS: (promptTokens * 1000) / prefillMs, ttftMs: prefillMs, promptTokens, probeMs: performance.now() - this.started };
  }

  dispose(): void {
    for (const model of new Set([this.a, this.b, this.c])) model.dispose();
  }
}

/** Predicts decode and prefill speed on this device from samples of the model (SpeedSamples), timed in three rounds. */
export async function predictSpeed(
  gpu: GpuContext, file: GGUFFile, options: { contextLength?: number; promptTokens?: number; maxBatch?: number; signal?: AbortSignal } = {},
): Promise<SpeedEstimate> {
  const samples = await SpeedSamples.load(gpu, file, options);
  try {
    for (let round = 0; round < SPEED_ROUNDS; round++) await samples.round();
    return samples.estimate();
  } finally {
    samples.dispose();
  }
}

interface Timing {
  /** One decode step, in a batch of DECODE_BATCH. */
  decodeMs: number;
  /** The whole prompt, as generate() runs it. */
  prefillMs: number;
}

function samplePrompt(model: LlamaModel, promptTokens: number): number[] {
  return Array.from({ length: promptTokens }, (_, i) => 1 + (i % (model.config.vocabSize - 1)));
}

/** The prompt's prefill, then batches of decode steps as generation runs them (attention grows with them). */
async function timeModel(model: LlamaModel, promptTokens: number, checkAbort: () => void): Promise<Timing> {
  const { ttft, decode } = await runOnce(model, samplePrompt(model, promptTokens), BATCHES * DECODE_BATCH, checkAbort);
  return { prefillMs: ttft, decodeMs: decode / (BATCHES * DECODE_BATCH) };
}

/**
 * Prefill `prompt`, then decode `genTokens` greedily in generate()'s batches; times in ms. The
 * samples and `webgguf bench`'s measured runs both time this, so the two compare. `checkAbort`
 * runs before the prefill and before each batch.
 */
export async function runOnce(model: LlamaModel, prompt: number[], genTokens: number, checkAbort: () => void = () => {}): Promise<{ ttft: number; decode: number }> {
  checkAbort();
  model.setSampler(GREEDY, prompt);
  const t0 = performance.now();
  await model.step(prompt, 0);
  const ttft = performance.now() - t0;
  const t1 = performance.now();
  for (let i = 0; i < genTokens; i += DECODE_BATCH) {
    checkAbort();
    await model.decode(Math.min(DECODE_BATCH, genTokens - i), prompt.length + i);
  }
  return { ttft, decode: performance.now() - t1 };
}

const layerOf = (name: string) => /^blk\.(\d+)\./.exec(name)?.[1];

/** Bytes of each layer's tensors in the file. */
function bytesPerLayer(file: GGUFFile, nLayers: number): number[] {
  const bytes = new Array<number>(nLayers).fill(0);
  for (const t of file.tensors) {
    const layer = Number(layerOf(t.name) ?? -1);
    if (layer >= 0 && layer < nLayers) bytes[layer]! += t.byteSize;
  }
  return bytes;
}

/** Bytes of one vocabulary row of the head (the output matrix, or the embedding it is tied to). */
function headRowBytes(file: GGUFFile): number {
  const head = file.tensors.find((t) => t.name === 'output.weight') ?? file.tensors.find((t) => t.name === 'token_embd.weight');
  return head && head.dims[1] ? head.byteSize / head.dims[1] : 1;
}

const samples = new WeakMap<GGUFFile, Map<string, GGUFFile>>();

/**
 * The header of `file` cut to its first `layers` layers and `vocabRows` rows of embedding and
 * output: the same metadata (without the tokenizer, which the GPU never reads) and the same
 * tensors at their shapes and types. Its data is never read: the weights come from randomChunks.
 */
function sampleFile(file: GGUFFile, nLayers: number, layers: number, vocabRows: number): GGUFFile {
  const key = `${layers}/${vocabRows}`;
  const cached = samples.get(file)?.get(key);
  if (cached) return cached;
  const arch = String(file.metadata.get('general.architecture'));
  const metadata = new Map<string, MetadataValue>();
  for (const [k, v] of file.metadata) {
    if (k.startsWith('tokenizer.')) continue;
    // A value per layer (Gemma 4's sliding-window pattern, head counts, FFN widths) keeps the sample's layers.
    const perLayer = k.startsWith(`${arch}.`) && (Array.isArray(v) || ArrayBuffer.isView(v)) && (v as ArrayLike<unknown>).length === nLayers;
    metadata.set(k, perLayer ? (Array.from(v as ArrayLike<MetadataValue>).slice(0, layers) as MetadataValue) : v);
  }
  metadata.set(`${arch}.block_count`, layers);
  // Gemma 4: the last shared_kv_layers layers reuse earlier caches; the sample keeps those among its layers.
  const shared = file.metadata.get(`${arch}.attention.shared_kv_layers`);
  if (typeof shared === 'number') metadata.set(`${arch}.attention.shared_kv_layers`, Math.max(0, layers - (nLayers - shared)));
  // Gemma 4's per-layer embeddings: a table and a projection with one slice per layer.
  const perLayerInput = file.metadata.get(`${arch}.embedding_length_per_layer_input`);
  const slices = (d: number) => (typeof perLayerInput === 'number' && perLayerInput > 0 && d === perLayerInput * nLayers ? perLayerInput * layers : d);
  let offset = 0;
  const tensors: TensorInfo[] = [];
  for (const t of file.tensors) {
    const layer = layerOf(t.name);
    if (layer !== undefined && Number(layer) >= layers) continue;
    const rows = t.name === 'token_embd.weight' || t.name === 'output.weight' || t.name === PER_LAYER_TABLE;
    const dims = layer !== undefined ? t.dims : t.dims.map((d, i) => (rows && i === 1 ? vocabRows : slices(d)));
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
