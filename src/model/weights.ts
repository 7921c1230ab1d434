import { ModelFormatError } from '../errors.js';
import type { GGUFFile, TensorInfo } from '../gguf/gguf.js';
import type { GpuAllocator } from '../gpu/allocator.js';
import { gpuLayout, planTensor, type GpuLayout } from '../quant/formats.js';
import { tensor } from './config.js';

/** A weight matrix on the GPU in its repacked layout. */
export interface GpuMatrix {
  buffer: GPUBuffer;
  layout: GpuLayout;
}

/** Bytes of source data read per chunk while repacking: the JS heap never holds a whole tensor. */
const CHUNK_BYTES = 4 << 20;

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/**
 * Streams a [rows][cols] tensor from the file, repacks it chunk by chunk and uploads it.
 * Chunks hold whole rows and start on a block boundary (and on an even block, so f16 scale
 * pairs never straddle two chunks).
 */
export async function uploadMatrix(file: GGUFFile, alloc: GpuAllocator, name: string): Promise<GpuMatrix> {
  const t = tensor(file, name);
  const cols = t.dims[0]!;
  const rows = t.elements / cols;
  const { format, kind } = planTensor(t.type, cols, name);
  const layout = gpuLayout(kind, rows, cols);
  const buffer = alloc.storage(name, layout.totalWords * 4);
  const bs = format.blockSize;
  // The smallest row count that ends on a whole, even number of blocks.
  const g0 = bs / gcd(cols, bs);
  const granule = ((g0 * cols) / bs) % 2 === 0 ? g0 : 2 * g0;
  const bytesPerGranule = ((granule * cols) / bs) * format.blockBytes;
  const rowsPerChunk = granule * Math.max(1, Math.floor(CHUNK_BYTES / bytesPerGranule));
  const queue = alloc.device.queue;
  for (let row0 = 0; row0 < rows; row0 += rowsPerChunk) {
    const n = Math.min(rowsPerChunk, rows - row0);
    const byteStart = ((row0 * cols) / bs) * format.blockBytes;
    const byteLen = Math.ceil((n * cols) / bs) * format.blockBytes;
    const bytes = await readRange(file, t, byteStart, byteLen);
    const local = gpuLayout(kind, n, cols);
    const dst = new Uint32Array(local.totalWords);
    if (kind === format.kind) {
      format.repack(bytes, local, dst);
    } else {
      // Blocks straddle rows: dequantize exactly, then lay the rows out as f32.
      const values = format.dequantize(bytes, n * cols);
      for (let r = 0; r < n; r++) {
        dst.set(new Uint32Array(values.buffer, r * cols * 4, cols), r * local.rowWords);
      }
    }
    queue.writeBuffer(buffer, row0 * layout.rowWords * 4, dst, 0, n * local.rowWords);
    if (local.scaleOffset) {
      const scaleWords = local.totalWords - local.scaleOffset;
      queue.writeBuffer(buffer, (layout.scaleOffset + (row0 * cols) / bs / 2) * 4, dst, local.scaleOffset, scaleWords);
    }
  }
  return { buffer, layout };
}

/** A 1-D tensor (norm weights) as f32 on the GPU. */
export async function uploadVector(file: GGUFFile, alloc: GpuAllocator, name: string): Promise<GPUBuffer> {
  const t = tensor(file, name);
  const { format } = planTensor(t.type, t.elements, name);
  const values = format.dequantize(await readRange(file, t, 0, t.byteSize), t.elements);
  const buffer = alloc.storage(name, values.byteLength);
  alloc.device.queue.writeBuffer(buffer, 0, values);
  return buffer;
}

async function readRange(file: GGUFFile, t: TensorInfo, start: number, length: number): Promise<Uint8Array> {
  const bytes = await file.source.read(file.dataOffset + t.offset + start, length);
  if (bytes.byteLength !== length) throw new ModelFormatError('truncated', `${file.source.name}: tensor ${t.name} is truncated`);
  return bytes;
}
