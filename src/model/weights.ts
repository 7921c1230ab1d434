import { ModelFormatError, WebGGUFError } from '../errors.js';
import type { GGUFFile, TensorInfo } from '../gguf/gguf.js';
import type { GpuAllocator } from '../gpu/allocator.js';
import { gpuLayout, hasScaleRegion, planTensor, scaleWords, type GpuLayout } from '../quant/formats.js';
import { expectedTensors, isVectorTensor, matrixViews, PER_LAYER_TABLE, type ModelConfig } from './config.js';

/**
 * One GPU buffer of weights: matrices in their repacked layout, vectors (norm weights) as f32.
 * Both are plain u32 words, so a chunk of either is stored and uploaded the same way. A buffer
 * holds a run of rows of one matrix: the whole matrix, or a part of one larger than a storage
 * binding may hold (`name` then gets a `#part` suffix). A matrix is a GGUF tensor or, for fused
 * tensors (Phi-3's attn_qkv), a run of its rows (see matrixViews).
 */
export interface TensorPlan {
  /** The buffer's name (unique). */
  name: string;
  /** The GGUF tensor this plan reads, and its first row there. */
  tensor: string;
  fileRow: number;
  /** The matrix (or vector) this plan belongs to, and its first row in it. */
  matrix: string;
  rowStart: number;
  /** null for vectors. */
  layout: GpuLayout | null;
  words: number;
  /**
   * Kept on the CPU, in the file's own bytes (padded to whole words), never uploaded: Gemma 4's
   * per-layer embedding table, of which a step needs only its tokens' rows.
   */
  host?: true;
}

/**
 * The largest part a matrix is split into: WebGPU's guaranteed maxStorageBufferBindingSize, so the
 * same split (and the same cached chunks) works on every device, phones included.
 */
export const MAX_PART_BYTES = 128 * 2 ** 20;

/** A run of repacked words for one tensor, at a word offset in its GPU buffer. */
export interface WeightChunk {
  tensor: string;
  wordOffset: number;
  words: Uint32Array<ArrayBuffer>;
}

/** Bytes of source data read per chunk while repacking: the JS heap never holds a whole tensor. */
const CHUNK_BYTES = 4 << 20;

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/**
 * Rows per chunk-aligned granule: chunks (and parts) start on a block boundary and an even block,
 * so f16 scale pairs never straddle two of them.
 */
function rowGranule(type: number, cols: number, tensorName: string): number {
  const bs = planTensor(type, cols, tensorName).format.blockSize;
  const g0 = bs / gcd(cols, bs);
  return ((g0 * cols) / bs) % 2 === 0 ? g0 : 2 * g0;
}

/**
 * The tensors the model reads, in file order (so a sequential download never seeks back): by
 * default those of a decoder (expectedTensors); an encoder names its own.
 */
export function planWeights(file: GGUFFile, config: ModelConfig, maxPartBytes = MAX_PART_BYTES, wanted: Map<string, number[]> = expectedTensors(config)): TensorPlan[] {
  const views = matrixViews(config);
  return file.tensors
    .filter((t) => wanted.has(t.name))
    .sort((a, b) => a.offset - b.offset)
    .flatMap((t): TensorPlan[] => {
      if (t.name === PER_LAYER_TABLE) return [{ name: t.name, tensor: t.name, fileRow: 0, matrix: t.name, rowStart: 0, layout: null, words: Math.ceil(t.byteSize / 4), host: true }];
      if (isVectorTensor(t)) return [{ name: t.name, tensor: t.name, fileRow: 0, matrix: t.name, rowStart: 0, layout: null, words: t.elements }];
      const cols = t.dims[0]!;
      const kind = planTensor(t.type, cols, t.name).kind;
      const granule = rowGranule(t.type, cols, t.name);
      const granuleBytes = gpuLayout(kind, granule, cols).totalWords * 4;
      const partRows = granule * Math.max(1, Math.floor(maxPartBytes / granuleBytes));
      return (views.get(t.name) ?? [{ matrix: t.name, rowStart: 0, rows: t.elements / cols }]).flatMap((view) => {
        if (view.rowStart % granule) throw new ModelFormatError('shape-mismatch', `${file.source.name}: ${view.matrix} does not start on a whole block of ${t.name}`);
        const whole = gpuLayout(kind, view.rows, cols);
        const plan = (i: number | null, rowStart: number, rows: number): TensorPlan => {
          const layout = i === null ? whole : gpuLayout(kind, rows, cols);
          return { name: i === null ? view.matrix : `${view.matrix}#${i}`, tensor: t.name, fileRow: view.rowStart + rowStart, matrix: view.matrix, rowStart, layout, words: layout.totalWords };
        };
        // Too large for one granule per part as well: kept whole, and the fit check refuses it.
        if (whole.totalWords * 4 <= maxPartBytes || granuleBytes > maxPartBytes) return [plan(null, 0, view.rows)];
        const parts: TensorPlan[] = [];
        for (let rowStart = 0, i = 0; rowStart < view.rows; rowStart += partRows, i++) parts.push(plan(i, rowStart, Math.min(partRows, view.rows - rowStart)));
        return parts;
      });
    });
}

/**
 * Streams every planned tensor out of the GGUF data, repacked, in chunks of whole rows that start
 * on a block boundary (and an even block, so f16 scale pairs never straddle two chunks). The scale
 * region of a quantized chunk comes as its own WeightChunk.
 */
export async function* repackWeights(file: GGUFFile, plans: TensorPlan[], skip = 0): AsyncGenerator<WeightChunk> {
  // Chunks are numbered in stream order; the first `skip` are neither read nor yielded.
  let n = 0;
  for (const plan of plans) {
    const t = file.tensors.find((x) => x.name === plan.tensor)!;
    if (plan.host) {
      // The file's bytes as they are, in word-aligned runs.
      for (let start = 0; start < t.byteSize; start += CHUNK_BYTES) {
        if (n++ < skip) continue;
        const length = Math.min(CHUNK_BYTES, t.byteSize - start);
        const words = new Uint32Array(Math.ceil(length / 4));
        new Uint8Array(words.buffer).set(await readRange(file, t, start, length));
        yield { tensor: plan.name, wordOffset: start / 4, words };
      }
      continue;
    }
    const { format, kind } = planTensor(t.type, t.dims[0]!, t.name);
    if (!plan.layout) {
      if (n++ < skip) continue;
      const values = format.dequantize(await readRange(file, t, 0, t.byteSize), t.elements);
      yield { tensor: plan.name, wordOffset: 0, words: new Uint32Array(values.buffer) };
      continue;
    }
    const { rows, cols } = plan.layout;
    const bs = format.blockSize;
    const granule = rowGranule(t.type, cols, t.name);
    const bytesPerGranule = ((granule * cols) / bs) * format.blockBytes;
    const rowsPerChunk = granule * Math.max(1, Math.floor(CHUNK_BYTES / bytesPerGranule));
    const perRowChunk = hasScaleRegion(kind) ? 2 : 1;
    for (let row0 = 0; row0 < rows; row0 += rowsPerChunk) {
      const first = n;
      n += perRowChunk;
      if (n <= skip) continue;
      const rowsHere = Math.min(rowsPerChunk, rows - row0);
      const fileRow = plan.fileRow + row0;
      const bytes = await readRange(file, t, ((fileRow * cols) / bs) * format.blockBytes, Math.ceil((rowsHere * cols) / bs) * format.blockBytes);
      const local = gpuLayout(kind, rowsHere, cols);
      const dst = new Uint32Array(local.totalWords);
      if (kind === format.kind) {
        format.repack(bytes, local, dst);
      } else {
        // Blocks straddle rows: dequantize exactly, then lay the rows out as f32.
        const values = format.dequantize(bytes, rowsHere * cols);
        for (let r = 0; r < rowsHere; r++) dst.set(new Uint32Array(values.buffer, r * cols * 4, cols), r * local.rowWords);
      }
      // Each chunk owns its buffer (slices, not views), so it can be stored as it is.
      if (first >= skip) {
        yield { tensor: plan.name, wordOffset: row0 * plan.layout.rowWords, words: local.scaleOffset ? dst.slice(0, local.scaleOffset) : dst };
      }
      if (local.scaleOffset) {
        yield { tensor: plan.name, wordOffset: plan.layout.scaleOffset + scaleWords(kind, row0, cols), words: dst.slice(local.scaleOffset) };
      }
    }
  }
}

async function readRange(file: GGUFFile, t: TensorInfo, start: number, length: number): Promise<Uint8Array> {
  const bytes = await file.source.read(file.dataOffset + t.offset + start, length);
  if (bytes.byteLength !== length) throw new ModelFormatError('truncated', `${file.source.name}: tensor ${t.name} is truncated`);
  return bytes;
}

/**
 * Streams weight chunks into one GPU buffer per plan, checking that each fits its tensor. The
 * tensor `cpuTensor` (RoPE's frequency divisors, which shape a table made on the CPU) also comes
 * back as floats: it comes through the chunk stream like any weight, so a cached load has it too.
 */
export async function uploadWeights(
  alloc: GpuAllocator,
  plans: TensorPlan[],
  chunks: AsyncIterable<WeightChunk>,
  onProgress?: (loaded: number, total: number) => void,
  cpuTensor?: string,
): Promise<{ buffers: Map<string, GPUBuffer>; cpuValues: Float32Array | undefined; host: Map<string, Uint32Array> }> {
  const buffers = new Map(plans.filter((p) => !p.host).map((p) => [p.name, alloc.storage(p.name, p.words * 4)]));
  const host = new Map(plans.filter((p) => p.host).map((p) => [p.name, new Uint32Array(p.words)]));
  const total = plans.reduce((s, p) => s + p.words, 0);
  let loaded = 0;
  let cpuValues: Float32Array | undefined;
  for await (const chunk of chunks) {
    if (chunk.tensor === cpuTensor) cpuValues = new Float32Array(chunk.words.slice().buffer);
    const target = buffers.get(chunk.tensor);
    const hostTarget = host.get(chunk.tensor);
    const plan = plans.find((p) => p.name === chunk.tensor);
    if ((!target && !hostTarget) || !plan || chunk.wordOffset + chunk.words.length > plan.words) {
      throw new WebGGUFError('malformed', `weight chunk for ${chunk.tensor} does not fit its tensor`);
    }
    if (hostTarget) hostTarget.set(chunk.words, chunk.wordOffset);
    else alloc.device.queue.writeBuffer(target!, chunk.wordOffset * 4, chunk.words);
    loaded += chunk.words.length;
    onProgress?.(loaded, total);
  }
  return { buffers, cpuValues, host };
}
