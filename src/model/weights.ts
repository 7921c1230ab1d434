import { ModelFormatError } from '../errors.js';
import type { GGUFFile, TensorInfo } from '../gguf/gguf.js';
import { gpuLayout, planTensor, type GpuLayout } from '../quant/formats.js';
import { expectedTensors, type ModelConfig } from './config.js';

/**
 * How one tensor lives on the GPU: matrices in their repacked layout, vectors (norm weights) as
 * f32. Both are plain u32 words, so a chunk of either is stored and uploaded the same way. A
 * matrix larger than one storage binding may hold is split by rows into parts, each its own
 * buffer and plan (`name` gets a `#part` suffix; `tensor` stays the GGUF name).
 */
export interface TensorPlan {
  name: string;
  /** The GGUF tensor this plan reads. */
  tensor: string;
  /** First row of the tensor in this plan (0 unless split). */
  rowStart: number;
  /** null for vectors. */
  layout: GpuLayout | null;
  words: number;
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

/** The tensors the model reads, in file order (so a sequential download never seeks back). */
export function planWeights(file: GGUFFile, config: ModelConfig, maxPartBytes = MAX_PART_BYTES): TensorPlan[] {
  const wanted = expectedTensors(config);
  return file.tensors
    .filter((t) => wanted.has(t.name))
    .sort((a, b) => a.offset - b.offset)
    .flatMap((t): TensorPlan[] => {
      if (t.dims.length === 1) return [{ name: t.name, tensor: t.name, rowStart: 0, layout: null, words: t.elements }];
      const cols = t.dims[0]!;
      const rows = t.elements / cols;
      const kind = planTensor(t.type, cols, t.name).kind;
      const whole = gpuLayout(kind, rows, cols);
      if (whole.totalWords * 4 <= maxPartBytes) return [{ name: t.name, tensor: t.name, rowStart: 0, layout: whole, words: whole.totalWords }];
      const granule = rowGranule(t.type, cols, t.name);
      const granuleBytes = gpuLayout(kind, granule, cols).totalWords * 4;
      const partRows = granule * Math.floor(maxPartBytes / granuleBytes);
      if (partRows === 0) return [{ name: t.name, tensor: t.name, rowStart: 0, layout: whole, words: whole.totalWords }]; // the fit check refuses it
      const parts: TensorPlan[] = [];
      for (let rowStart = 0, i = 0; rowStart < rows; rowStart += partRows, i++) {
        const layout = gpuLayout(kind, Math.min(partRows, rows - rowStart), cols);
        parts.push({ name: `${t.name}#${i}`, tensor: t.name, rowStart, layout, words: layout.totalWords });
      }
      return parts;
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
    const perRowChunk = kind === 'q8_0' || kind === 'q4_0' ? 2 : 1;
    for (let row0 = 0; row0 < rows; row0 += rowsPerChunk) {
      const first = n;
      n += perRowChunk;
      if (n <= skip) continue;
      const rowsHere = Math.min(rowsPerChunk, rows - row0);
      const fileRow = plan.rowStart + row0;
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
        yield { tensor: plan.name, wordOffset: plan.layout.scaleOffset + (row0 * cols) / bs / 2, words: dst.slice(local.scaleOffset) };
      }
    }
  }
}

async function readRange(file: GGUFFile, t: TensorInfo, start: number, length: number): Promise<Uint8Array> {
  const bytes = await file.source.read(file.dataOffset + t.offset + start, length);
  if (bytes.byteLength !== length) throw new ModelFormatError('truncated', `${file.source.name}: tensor ${t.name} is truncated`);
  return bytes;
}
