import { describe, expect, test } from 'vitest';
import { GGMLType } from '../src/gguf/ggml-types.js';
import { f16ToF32, f32ToF16 } from '../src/quant/f16.js';
import { formatFor, gpuLayout, kHighBit } from '../src/quant/formats.js';
import { encodeRandom } from './helpers/encode.js';
import { rng } from './helpers/gpu.js';

test('f16 conversions: exact values, rounding, subnormals, infinities', () => {
  for (const [v, h] of [[0, 0], [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [2 ** -24, 1], [0.5, 0x3800]] as const) {
    expect(f32ToF16(v)).toBe(h);
    expect(f16ToF32(h)).toBe(v);
  }
  expect(f32ToF16(1e6)).toBe(0x7c00);
  expect(f16ToF32(0x7c00)).toBe(Infinity);
  expect(Number.isNaN(f16ToF32(0x7e00))).toBe(true);
  expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00); // ties to even
  expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02);
});

describe('CPU dequantization follows ggml block formats', () => {
  test('Q8_0: x = d * q', () => {
    const block = new Uint8Array(34);
    new DataView(block.buffer).setUint16(0, f32ToF16(0.5), true);
    for (let i = 0; i < 32; i++) block[2 + i] = (i - 16) & 0xff;
    const x = formatFor(GGMLType.Q8_0).dequantize(block, 32);
    expect(Array.from(x)).toEqual(Array.from({ length: 32 }, (_, i) => 0.5 * (i - 16)));
  });
  test('Q4_0: byte j holds element j (low nibble) and j+16 (high); x = d * (q - 8)', () => {
    const block = new Uint8Array(18);
    new DataView(block.buffer).setUint16(0, f32ToF16(2), true);
    for (let j = 0; j < 16; j++) block[2 + j] = j | ((15 - j) << 4);
    const x = formatFor(GGMLType.Q4_0).dequantize(block, 32);
    const expected = [...Array.from({ length: 16 }, (_, j) => 2 * (j - 8)), ...Array.from({ length: 16 }, (_, j) => 2 * (7 - j))];
    expect(Array.from(x)).toEqual(expected);
  });
});

describe('K-quant CPU references match values worked out by hand from ggml\'s definitions', () => {
  test('Q4_K: x = d*sc*q - dmin*m with get_scale_min_k4 scales', () => {
    const b = new Uint8Array(144);
    const v = new DataView(b.buffer);
    v.setUint16(0, f32ToF16(1), true);
    v.setUint16(2, f32ToF16(0.5), true);
    b[4 + 0] = 3; // sub-block 0 scale
    b[4 + 4] = 2; // sub-block 0 min
    b[4 + 8] = 0x15; // sub-block 4: scale 5, min 1
    b[16 + 0] = 0x7a; // element 0 = 10, element 32 = 7
    b[16 + 64] = 0x04; // element 128 = 4
    const x = formatFor(GGMLType.Q4_K).dequantize(b, 256);
    expect([x[0], x[1], x[32], x[128]]).toEqual([29, -1, 0, 19.5]);
  });
  test('Q6_K: quarters of 32 from ql nibbles and qh bit pairs, int8 scales per 16', () => {
    const b = new Uint8Array(210);
    b[0] = 0x21; // element 0 low nibble 1; element 64 (high nibble) 2
    b[32] = 0x03; // element 32 low nibble 3
    b[128] = 0b11100100; // high bits: element 0 → 0, 32 → 1, 64 → 2, 96 → 3
    b[192 + 0] = 2;
    b[192 + 2] = 0xff; // -1
    b[192 + 4] = 3;
    b[192 + 6] = 1;
    new DataView(b.buffer).setUint16(208, f32ToF16(0.5), true);
    const x = formatFor(GGMLType.Q6_K).dequantize(b, 256);
    expect([x[0], x[1], x[32], x[64], x[96], x[128]]).toEqual([-31, -32, 6.5, 3, 8, -0]);
  });
});

/** Emulates shaders/weights.wgsl's load_w8 on the CPU, to check every repacked layout. */
function loadW8(kind: string, words: Uint32Array, l: ReturnType<typeof gpuLayout>, row: number, k8: number): number[] {
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  const bits = (w: number) => ((u[0] = w), f[0]!);
  const half = (h: number) => f16ToF32(h & 0xffff);
  const scale = (block: number) => half(words[l.scaleOffset + (block >> 1)]! >>> ((block & 1) * 16));
  const out: number[] = [];
  if (kind === 'f32') for (let i = 0; i < 8; i++) out.push(bits(words[row * l.rowWords + k8 * 8 + i]!));
  if (kind === 'f16' || kind === 'bf16') {
    for (let i = 0; i < 4; i++) {
      const w = words[row * l.rowWords + k8 * 4 + i]!;
      out.push(...(kind === 'f16' ? [half(w), half(w >>> 16)] : [bits(w << 16), bits(w & 0xffff0000)]));
    }
  }
  if (kind === 'q8_0') {
    const block = row * (l.cols / 32) + (k8 >> 2);
    for (let i = 0; i < 2; i++) {
      const w = words[block * 8 + (k8 & 3) * 2 + i]!;
      for (let b = 0; b < 4; b++) out.push((((w >>> (8 * b)) << 24) >> 24) * scale(block));
    }
  }
  if (kind === 'q4_0') {
    const block = row * (l.cols / 32) + (k8 >> 2);
    const w = words[block * 4 + (k8 & 3)]!;
    for (let n = 0; n < 8; n++) out.push((((w >>> (4 * n)) & 15) - 8) * scale(block));
  }
  if (kind === 'q4_k' || kind === 'q5_k' || kind === 'q6_k') {
    // Sub-block sb: 4 words of nibbles in column order, then the high-bit words; a 5-word record per super-block.
    const subWords = { q4_k: 4, q5_k: 5, q6_k: 6 }[kind];
    const sb = row * (l.cols / 32) + (k8 >> 2);
    const p = k8 & 3;
    const record = l.scaleOffset + (sb >> 3) * 5;
    const pair = words[record + 1 + ((sb >> 1) & 3)]! >>> ((sb & 1) * 16);
    const w = words[sb * subWords + p]!;
    for (let i = 0; i < 8; i++) {
      const g = 2 * p + (i >> 2), k = i & 3;
      let q = (w >>> (4 * i)) & 15;
      if (kind === 'q5_k') q |= ((words[sb * 5 + 4]! >>> kHighBit(1, g, k)) & 1) << 4;
      if (kind === 'q6_k') q |= ((words[sb * 6 + 4 + (g >> 2)]! >>> kHighBit(2, g & 3, k)) & 3) << 4;
      if (kind === 'q6_k') {
        const sc = ((pair >>> (8 * (p >> 1))) << 24) >> 24;
        out.push(Math.fround((q - 32) * (bits(words[record]!) * sc)));
      } else {
        const dm = words[record]!;
        out.push(Math.fround(q * (half(dm) * (pair & 255)) - half(dm >>> 16) * ((pair >>> 8) & 255)));
      }
    }
  }
  return out;
}

test('every GPU layout reads back exactly what the CPU reference dequantizes', () => {
  for (const [kind, type, cols] of [
    ['f32', GGMLType.F32, 13], ['f16', GGMLType.F16, 21], ['bf16', GGMLType.BF16, 9], ['q8_0', GGMLType.Q8_0, 96], ['q4_0', GGMLType.Q4_0, 64],
    ['q4_k', GGMLType.Q4_K, 512], ['q5_k', GGMLType.Q5_K, 256], ['q6_k', GGMLType.Q6_K, 512],
  ] as const) {
    const rows = 5;
    const bytes = encodeRandom(type, rows, cols, rng(3));
    const format = formatFor(type);
    const layout = gpuLayout(kind, rows, cols);
    const words = new Uint32Array(layout.totalWords);
    format.repack(bytes, layout, words);
    const values = format.dequantize(bytes, rows * cols);
    for (let r = 0; r < rows; r++) {
      for (let k8 = 0; k8 < Math.ceil(cols / 8); k8++) {
        const got = loadW8(kind, words, layout, r, k8);
        for (let i = 0; i < 8; i++) {
          const c = k8 * 8 + i;
          expect(got[i], `${kind} row ${r} col ${c}`).toBe(c < cols ? values[r * cols + c] : 0);
        }
      }
    }
  }
});
