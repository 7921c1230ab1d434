import { ModelFormatError } from '../errors.js';
import { GGMLType, typeName } from '../gguf/ggml-types.js';
import { bf16ToF32, f16ToF32 } from './f16.js';

/**
 * The GPU-ready layout of a weight matrix. Every matrix is an array<u32>; kernels read 8 weights
 * at a time (`load_w8` in shaders/weights.wgsl), so rows are padded with zeros to a multiple of 8.
 * Quantized kinds keep their quants in one region and their f16 scales, packed in pairs, in a
 * second region after it, so both are read as aligned u32 words.
 */
export type GpuWeightKind = 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_0' | BlockKind | KQuantKind;

/**
 * Kinds kept block by block in ggml's own byte order, each block padded to whole u32 words
 * (Q5_0's scale gets a word of its own).
 */
export type BlockKind = 'q4_1' | 'q5_0' | 'q5_1';
const BLOCK_KINDS: Record<BlockKind, { blockSize: number; words: number }> = {
  q4_1: { blockSize: 32, words: 5 },
  q5_0: { blockSize: 32, words: 6 },
  q5_1: { blockSize: 32, words: 6 },
};

/**
 * K-quants, repacked so the GEMVs read them as Q4_0: each 32-column sub-block is `subWords`
 * words in the quant region, four words of nibbles in column order (word i holds columns
 * 8i..8i+7, low nibble first), then Q5_K's word of fifth bits or Q6_K's two words of top bit
 * pairs, placed so that one shift and mask put a group of four columns' bits above their nibbles
 * (see `kHighBit`). After the quant region, each 256-column super-block has a record of
 * K_RECORD_WORDS words, its scales decoded from ggml's packing: Q4_K/Q5_K d and dmin (an f16
 * pair), then each sub-block's 6-bit scale and min as bytes (two sub-blocks a word); Q6_K d (as
 * f32), then its 16 int8 scales (one per 16 columns). Kernels multiply d by a scale in f32 as
 * ggml's dequantization does, so the values are exactly ggml's.
 */
export type KQuantKind = 'q4_k' | 'q5_k' | 'q6_k';
const K_KINDS: Record<KQuantKind, { subWords: number }> = { q4_k: { subWords: 4 }, q5_k: { subWords: 5 }, q6_k: { subWords: 6 } };
const K_RECORD_WORDS = 5;

/**
 * Bit of a sub-block's high-bit word holding the lowest high bit of column 4g + k (group g of four
 * columns, k = 0..3), for high bits of `width` 1 (Q5_K: groups 0..7 in one word) or 2 (Q6_K: groups
 * 0..3 in the first word, 4..7 in the second; call with g & 3): 4k + width·(g mod 4/width) + 16·⌊…⌋.
 * The four bits of a group sit 4 apart, as its nibbles do in a quant word, so a kernel shifts the
 * word once to put them just above the nibbles (shaders/weights.wgsl).
 */
export function kHighBit(width: 1 | 2, g: number, k: number): number {
  const perHalf = 4 / width; // groups per 16 bits
  return 4 * k + width * (g % perHalf) + 16 * Math.floor(g / perHalf);
}

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

const half = (b: Uint8Array, at: number) => f16ToF32(b[at]! | (b[at + 1]! << 8));
const u32At = (b: Uint8Array, at: number) => (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;

/**
 * A format whose GPU layout is its ggml blocks, word-padded: `place` puts one source block's
 * bytes into its destination block.
 */
function blockFormat(
  type: number, kind: BlockKind, blockBytes: number,
  dequantizeBlock: (b: Uint8Array, out: Float32Array, at: number) => void,
  place: (src: Uint8Array, dst: Uint8Array) => void = (src, dst) => dst.set(src),
): WeightFormat {
  const { blockSize, words } = BLOCK_KINDS[kind];
  return {
    type, kind, blockSize, blockBytes,
    dequantize(bytes, count, out = new Float32Array(count)) {
      const block = new Float32Array(blockSize);
      for (let b = 0; b * blockSize < count; b++) {
        dequantizeBlock(bytes.subarray(b * blockBytes, (b + 1) * blockBytes), block, 0);
        out.set(block.subarray(0, Math.min(blockSize, count - b * blockSize)), b * blockSize);
      }
      return out;
    },
    repack(bytes, l, dst) {
      const out = new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength);
      const blocks = (l.rows * l.cols) / blockSize;
      for (let b = 0; b < blocks; b++) {
        place(bytes.subarray(b * blockBytes, (b + 1) * blockBytes), out.subarray(b * words * 4, (b + 1) * words * 4));
      }
    },
  };
}

/** Q4_1: f16 d, f16 m, 16 bytes of nibbles (element j low, j+16 high); x = d*q + m. */
const q4_1Format = blockFormat(GGMLType.Q4_1, 'q4_1', 20, (b, out) => {
  const d = half(b, 0), m = half(b, 2);
  for (let j = 0; j < 16; j++) {
    out[j] = d * (b[4 + j]! & 15) + m;
    out[j + 16] = d * (b[4 + j]! >> 4) + m;
  }
});

/** Q5_0/Q5_1: as Q4 with a fifth bit for element j in bit j of qh; Q5_0 centres on 16. */
function q5Values(b: Uint8Array, out: Float32Array, d: number, m: number, qh: number, qs: number, offset: number): void {
  const high = u32At(b, qh);
  for (let j = 0; j < 16; j++) {
    out[j] = d * ((b[qs + j]! & 15) | (((high >>> j) & 1) << 4)) - offset + m;
    out[j + 16] = d * ((b[qs + j]! >> 4) | (((high >>> (j + 16)) & 1) << 4)) - offset + m;
  }
}
const q5_0Format = blockFormat(
  GGMLType.Q5_0, 'q5_0', 22,
  (b, out) => {
    const d = half(b, 0);
    q5Values(b, out, d, 0, 2, 6, 16 * d);
  },
  // d gets a word of its own so qh and the quants start word-aligned.
  (src, dst) => {
    dst.set(src.subarray(0, 2), 0);
    dst.set(src.subarray(2), 4);
  },
);
const q5_1Format = blockFormat(GGMLType.Q5_1, 'q5_1', 24, (b, out) => q5Values(b, out, half(b, 0), half(b, 2), 4, 8, 0));

/** The 6-bit scale and min of sub-block j of a Q4_K/Q5_K super-block (ggml's get_scale_min_k4). */
export function scaleMinK4(j: number, q: Uint8Array, at: number): [number, number] {
  if (j < 4) return [q[at + j]! & 63, q[at + j + 4]! & 63];
  return [(q[at + j + 4]! & 15) | ((q[at + j - 4]! >> 6) << 4), (q[at + j + 4]! >> 4) | ((q[at + j]! >> 6) << 4)];
}

/**
 * Q4_K/Q5_K super-blocks of 256: f16 d and dmin, 12 bytes of 6-bit scales and mins for eight
 * sub-blocks of 32, (Q5_K: 32 bytes of fifth bits,) then nibbles: each 64 elements take 32 bytes,
 * low nibbles first. x = d*sc*q - dmin*m.
 */
function kValues(b: Uint8Array, out: Float32Array, qhAt: number | null): void {
  const d = half(b, 0), dmin = half(b, 2);
  const qs = qhAt === null ? 16 : 48;
  for (let c = 0; c < 4; c++) {
    const [sc1, m1] = scaleMinK4(2 * c, b, 4);
    const [sc2, m2] = scaleMinK4(2 * c + 1, b, 4);
    for (let l = 0; l < 32; l++) {
      const byte = b[qs + 32 * c + l]!;
      const h = qhAt === null ? 0 : b[qhAt + l]!;
      const lo = (byte & 15) | (((h >> (2 * c)) & 1) << 4);
      const hi = (byte >> 4) | (((h >> (2 * c + 1)) & 1) << 4);
      out[64 * c + l] = d * sc1 * lo - dmin * m1;
      out[64 * c + 32 + l] = d * sc2 * hi - dmin * m2;
    }
  }
}

/**
 * A K-quant format (see K_KINDS for the GPU layout). `quants` gives sub-block j's 32 values of a
 * source super-block (the nibble in bits 0-3, high bits above); `record` writes the super-block's
 * scale record.
 */
function kFormat(
  type: number, kind: KQuantKind, blockBytes: number,
  dequantizeBlock: (b: Uint8Array, out: Float32Array) => void,
  quants: (b: Uint8Array, j: number, out: Uint8Array) => void,
  record: (b: Uint8Array, out: Uint32Array, at: number) => void,
): WeightFormat {
  const { subWords } = K_KINDS[kind];
  return {
    type, kind, blockSize: 256, blockBytes,
    dequantize(bytes, count, out = new Float32Array(count)) {
      const block = new Float32Array(256);
      for (let b = 0; b * 256 < count; b++) {
        dequantizeBlock(bytes.subarray(b * blockBytes, (b + 1) * blockBytes), block);
        out.set(block.subarray(0, Math.min(256, count - b * 256)), b * 256);
      }
      return out;
    },
    repack(bytes, l, dst) {
      const q = new Uint8Array(32);
      const superBlocks = (l.rows * l.cols) / 256;
      for (let s = 0; s < superBlocks; s++) {
        const b = bytes.subarray(s * blockBytes, (s + 1) * blockBytes);
        for (let j = 0; j < 8; j++) {
          quants(b, j, q);
          const at = (s * 8 + j) * subWords;
          for (let w = 0; w < 4; w++) {
            let word = 0;
            for (let k = 0; k < 8; k++) word |= (q[8 * w + k]! & 15) << (4 * k);
            dst[at + w] = word >>> 0;
          }
          if (kind === 'q5_k') {
            let word = 0;
            for (let i = 0; i < 32; i++) word |= (q[i]! >> 4) << kHighBit(1, i >> 2, i & 3);
            dst[at + 4] = word >>> 0;
          }
          if (kind === 'q6_k') {
            for (let h = 0; h < 2; h++) {
              let word = 0;
              for (let i = 0; i < 16; i++) word |= (q[16 * h + i]! >> 4) << kHighBit(2, i >> 2, i & 3);
              dst[at + 4 + h] = word >>> 0;
            }
          }
        }
        record(b, dst, l.scaleOffset + s * K_RECORD_WORDS);
      }
    },
  };
}

/** Q4_K/Q5_K sub-block j's values: 32 bytes of nibbles per 64 columns, low nibbles first; Q5_K's fifth bit j of qh[i]. */
function kQuants(b: Uint8Array, j: number, out: Uint8Array, qhAt: number | null): void {
  const qs = qhAt === null ? 16 : 48;
  for (let i = 0; i < 32; i++) {
    const byte = b[qs + 32 * (j >> 1) + i]!;
    const high = qhAt === null ? 0 : (b[qhAt + i]! >> j) & 1;
    out[i] = (j & 1 ? byte >> 4 : byte & 15) | (high << 4);
  }
}

/** Q4_K/Q5_K record: d and dmin as they are, then (scale, min) bytes per sub-block. */
function kRecord(b: Uint8Array, out: Uint32Array, at: number): void {
  out[at] = u32At(b, 0);
  for (let p = 0; p < 4; p++) {
    const [sc0, m0] = scaleMinK4(2 * p, b, 4);
    const [sc1, m1] = scaleMinK4(2 * p + 1, b, 4);
    out[at + 1 + p] = (sc0 | (m0 << 8) | (sc1 << 16) | (m1 << 24)) >>> 0;
  }
}

const q4_kFormat = kFormat(GGMLType.Q4_K, 'q4_k', 144, (b, out) => kValues(b, out, null), (b, j, out) => kQuants(b, j, out, null), kRecord);
const q5_kFormat = kFormat(GGMLType.Q5_K, 'q5_k', 176, (b, out) => kValues(b, out, 16), (b, j, out) => kQuants(b, j, out, 16), kRecord);

/**
 * Q6_K super-blocks of 256: 128 bytes of low nibbles, 64 bytes of high bit pairs, 16 int8 scales
 * (one per 16 elements) and f16 d. Per 128 elements, four quarters of 32: quarters 0/1 use the low
 * nibbles of ql[0..31]/ql[32..63], quarters 2/3 their high nibbles; qh bits 2q..2q+1. x = d*sc*(q-32).
 */
function q6_kValues(b: Uint8Array, out: Float32Array): void {
  const d = half(b, 208);
  for (let n = 0; n < 2; n++) {
    for (let l = 0; l < 32; l++) {
      const h = b[128 + 32 * n + l]!;
      for (let q = 0; q < 4; q++) {
        const byte = b[64 * n + (q & 1) * 32 + l]!;
        const value = ((q < 2 ? byte & 15 : byte >> 4) | (((h >> (2 * q)) & 3) << 4)) - 32;
        const scale = (b[192 + 8 * n + (l >> 4) + 2 * q]! << 24) >> 24;
        out[128 * n + 32 * q + l] = d * scale * value;
      }
    }
  }
}

/** Q6_K sub-block j = 4n + q's values (quarter q of half n), 6 bits each. */
function q6_kQuants(b: Uint8Array, j: number, out: Uint8Array): void {
  const n = j >> 2, q = j & 3;
  for (let l = 0; l < 32; l++) {
    const byte = b[64 * n + (q & 1) * 32 + l]!;
    out[l] = (q < 2 ? byte & 15 : byte >> 4) | (((b[128 + 32 * n + l]! >> (2 * q)) & 3) << 4);
  }
}

/** Q6_K record: d as f32, then the 16 int8 scales as they are (scale i covers columns 16i..16i+15). */
function q6_kRecord(b: Uint8Array, out: Uint32Array, at: number): void {
  out[at] = new Uint32Array(Float32Array.of(half(b, 208)).buffer)[0]!;
  for (let w = 0; w < 4; w++) out[at + 1 + w] = u32At(b, 192 + 4 * w);
}

const q6_kFormat = kFormat(GGMLType.Q6_K, 'q6_k', 210, q6_kValues, q6_kQuants, q6_kRecord);

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
  [GGMLType.Q4_1, q4_1Format],
  [GGMLType.Q5_0, q5_0Format],
  [GGMLType.Q5_1, q5_1Format],
  [GGMLType.Q4_K, q4_kFormat],
  [GGMLType.Q5_K, q5_kFormat],
  [GGMLType.Q6_K, q6_kFormat],
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
const WORDS_PER_8: Record<string, number> = { f32: 8, f16: 4, bf16: 4, q8_0: 2, q4_0: 1 };

/** Every GPU weight kind: the repacked ones, those kept in ggml's blocks, the K-quants. */
export const GPU_WEIGHT_KINDS = [...Object.keys(WORDS_PER_8), ...Object.keys(BLOCK_KINDS), ...Object.keys(K_KINDS)] as readonly GpuWeightKind[];

/** Whether a kind's layout has a scale region after its quants (so chunks of it come in two parts). */
export function hasScaleRegion(kind: GpuWeightKind): boolean {
  return kind === 'q8_0' || kind === 'q4_0' || kind in K_KINDS;
}

/** Words of the scale region of `rows` rows of `cols` columns (0 for kinds without one). */
export function scaleWords(kind: GpuWeightKind, rows: number, cols: number): number {
  const l = gpuLayout(kind, rows, cols);
  return l.scaleOffset ? l.totalWords - l.scaleOffset : 0;
}

export function gpuLayout(kind: GpuWeightKind, rows: number, cols: number): GpuLayout {
  if (kind in K_KINDS) {
    if (cols % 256 !== 0) throw new Error(`internal: ${kind} rows must be a multiple of 256`);
    const rowWords = (cols / 32) * K_KINDS[kind as KQuantKind].subWords;
    const quantWords = rows * rowWords;
    return { kind, rows, cols, rowWords, scaleOffset: quantWords, totalWords: quantWords + ((rows * cols) / 256) * K_RECORD_WORDS };
  }
  if (kind in BLOCK_KINDS) {
    const { blockSize, words } = BLOCK_KINDS[kind as BlockKind];
    if (cols % blockSize !== 0) throw new Error(`internal: ${kind} rows must be a multiple of ${blockSize}`);
    const rowWords = (cols / blockSize) * words;
    return { kind, rows, cols, rowWords, scaleOffset: 0, totalWords: rows * rowWords };
  }
  const quantized = kind === 'q8_0' || kind === 'q4_0';
  if (quantized && cols % 32 !== 0) throw new Error(`internal: ${kind} rows must be a multiple of 32`);
  const rowWords = Math.ceil(cols / 8) * WORDS_PER_8[kind]!;
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
