import { ModelFormatError } from '../errors.js';
import { GGMLType, typeName } from '../gguf/ggml-types.js';
import { bf16ToF32, f16ToF32 } from './f16.js';

/**
 * The GPU-ready layout of a weight matrix. Every matrix is an array<u32>; kernels read 8 weights
 * at a time (`load_w8` in shaders/weights.wgsl), so rows are padded with zeros to a multiple of 8.
 * Quantized kinds keep their quants in one region and their f16 scales, packed in pairs, in a
 * second region after it, so both are read as aligned u32 words.
 */
export type GpuWeightKind = 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_0';

export interface GpuLayout {
  kind: GpuWeightKind;
  rows: number;
  cols: number;
  /** u32 words per row in the quant (or plain) region. */
  rowWords: number;
  /** Word offset of the scale region (0 when there is none). */
  scaleOffset: number;
  totalWords: number;
}

export interface WeightFormat {
  type: number;
  kind: GpuWeightKind;
  /** Elements per block in the GGUF encoding. */
  blockSize: number;
  blockBytes: number;
  /** CPU reference: dequantizes `count` elements starting at a block boundary of `bytes`. */
  dequantize(bytes: Uint8Array, count: number, out?: Float32Array<ArrayBuffer>): Float32Array<ArrayBuffer>;
  /** Repacks the whole rows in `bytes` into `dst`, which has `layout` (of just those rows). */
  repack(bytes: Uint8Array, layout: GpuLayout, dst: Uint32Array): void;
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

const f32Format: WeightFormat = {
  type: GGMLType.F32, kind: 'f32', blockSize: 1, blockBytes: 4,
  dequantize(bytes, count, out = new Float32Array(count)) {
    const v = view(bytes);
    for (let i = 0; i < count; i++) out[i] = v.getFloat32(i * 4, true);
    return out;
  },
  repack(bytes, l, dst) {
    const v = view(bytes);
    for (let r = 0; r < l.rows; r++) {
      const base = r * l.rowWords;
      for (let c = 0; c < l.cols; c++) dst[base + c] = v.getUint32((r * l.cols + c) * 4, true);
    }
  },
};

function halfFormat(type: number, kind: 'f16' | 'bf16', toF32: (h: number) => number): WeightFormat {
  return {
    type, kind, blockSize: 1, blockBytes: 2,
    dequantize(bytes, count, out = new Float32Array(count)) {
      const v = view(bytes);
      for (let i = 0; i < count; i++) out[i] = toF32(v.getUint16(i * 2, true));
      return out;
    },
    repack(bytes, l, dst) {
      const v = view(bytes);
      for (let r = 0; r < l.rows; r++) {
        const base = r * l.rowWords;
        for (let c = 0; c < l.cols; c += 2) {
          const lo = v.getUint16((r * l.cols + c) * 2, true);
          const hi = c + 1 < l.cols ? v.getUint16((r * l.cols + c + 1) * 2, true) : 0;
          dst[base + c / 2] = lo | (hi << 16);
        }
      }
    },
  };
}

/** Q8_0 block: f16 scale d, then 32 int8 quants; x = d * q. */
const q8_0Format: WeightFormat = {
  type: GGMLType.Q8_0, kind: 'q8_0', blockSize: 32, blockBytes: 34,
  dequantize(bytes, count, out = new Float32Array(count)) {
    const v = view(bytes);
    for (let b = 0; b * 32 < count; b++) {
      const d = f16ToF32(v.getUint16(b * 34, true));
      for (let i = 0; i < 32 && b * 32 + i < count; i++) out[b * 32 + i] = d * v.getInt8(b * 34 + 2 + i);
    }
    return out;
  },
  repack(bytes, l, dst) {
    const v = view(bytes);
    const bpr = l.cols / 32;
    for (let r = 0; r < l.rows; r++) {
      for (let b = 0; b < bpr; b++) {
        const src = (r * bpr + b) * 34;
        const blk = r * bpr + b;
        for (let w = 0; w < 8; w++) dst[blk * 8 + w] = v.getUint32(src + 2 + w * 4, true);
        setHalf(dst, l.scaleOffset, blk, v.getUint16(src, true));
      }
    }
  },
};

/**
 * Q4_0 block: f16 scale d, then 16 bytes; byte j holds element j (low nibble) and element j+16
 * (high nibble); x = d * (q - 8). The GPU layout reorders nibbles so that word i of a block holds
 * elements 8i..8i+7 in nibble order, which lets a kernel read 8 consecutive weights from one word.
 */
const q4_0Format: WeightFormat = {
  type: GGMLType.Q4_0, kind: 'q4_0', blockSize: 32, blockBytes: 18,
  dequantize(bytes, count, out = new Float32Array(count)) {
    for (let b = 0; b * 32 < count; b++) {
      const d = f16ToF32(bytes[b * 18]! | (bytes[b * 18 + 1]! << 8));
      for (let j = 0; j < 16; j++) {
        const q = bytes[b * 18 + 2 + j]!;
        if (b * 32 + j < count) out[b * 32 + j] = d * ((q & 15) - 8);
        if (b * 32 + j + 16 < count) out[b * 32 + j + 16] = d * ((q >> 4) - 8);
      }
    }
    return out;
  },
  repack(bytes, l, dst) {
    const bpr = l.cols / 32;
    const nib = new Uint8Array(32);
    for (let r = 0; r < l.rows; r++) {
      for (let b = 0; b < bpr; b++) {
        const src = (r * bpr + b) * 18;
        for (let j = 0; j < 16; j++) {
          const q = bytes[src + 2 + j]!;
          nib[j] = q & 15;
          nib[j + 16] = q >> 4;
        }
        const blk = r * bpr + b;
        for (let w = 0; w < 4; w++) {
          let word = 0;
          for (let k = 0; k < 8; k++) word |= nib[w * 8 + k]! << (4 * k);
          dst[blk * 4 + w] = word >>> 0;
        }
        setHalf(dst, l.scaleOffset, blk, bytes[src]! | (bytes[src + 1]! << 8));
      }
    }
  },
};

function setHalf(dst: Uint32Array, scaleOffset: number, index: number, half: number): void {
  const w = scaleOffset + (index >> 1);
  dst[w] = index & 1 ? (dst[w]! & 0xffff) | (half << 16) : (dst[w]! & 0xffff0000) | half;
}

const FORMATS = new Map<number, WeightFormat>([
  [GGMLType.F32, f32Format],
  [GGMLType.F16, halfFormat(GGMLType.F16, 'f16', f16ToF32)],
  [GGMLType.BF16, halfFormat(GGMLType.BF16, 'bf16', bf16ToF32)],
  [GGMLType.Q8_0, q8_0Format],
  [GGMLType.Q4_0, q4_0Format],
]);

export const SUPPORTED_TYPES = [...FORMATS.keys()].map(typeName);

export function formatFor(type: number, tensorName = 'tensor'): WeightFormat {
  const f = FORMATS.get(type);
  if (!f) {
    throw new ModelFormatError(
      'unsupported-tensor-type',
      `${tensorName}: tensor type ${typeName(type)} is not supported yet (supported: ${SUPPORTED_TYPES.join(', ')})`,
    );
  }
  return f;
}

/** Words per 8 elements in the quant/plain region of each kind. */
const WORDS_PER_8: Record<GpuWeightKind, number> = { f32: 8, f16: 4, bf16: 4, q8_0: 2, q4_0: 1 };

export function gpuLayout(kind: GpuWeightKind, rows: number, cols: number): GpuLayout {
  const quantized = kind === 'q8_0' || kind === 'q4_0';
  if (quantized && cols % 32 !== 0) throw new Error(`internal: ${kind} rows must be a multiple of 32`);
  const rowWords = Math.ceil(cols / 8) * WORDS_PER_8[kind];
  const quantWords = rows * rowWords;
  const scaleWords = quantized ? Math.ceil((rows * cols) / 32 / 2) : 0;
  return { kind, rows, cols, rowWords, scaleOffset: quantized ? quantWords : 0, totalWords: quantWords + scaleWords };
}

/**
 * How a GGUF tensor of `type` with rows of `cols` goes to the GPU. Quantized rows that are not a
 * multiple of the block size (blocks straddle rows, as in some early llama.cpp files) cannot be
 * addressed per row, so they are dequantized at load and stored as f32: exact, only larger.
 */
export function planTensor(type: number, cols: number, tensorName: string): { format: WeightFormat; kind: GpuWeightKind } {
  const format = formatFor(type, tensorName);
  const straddles = cols % format.blockSize !== 0;
  return { format, kind: straddles ? 'f32' : format.kind };
}
