/**
 * Simple quantizers for generated test and benchmark models: valid ggml blocks with plain
 * round-to-nearest scales (not llama.cpp's error-minimising search). Good enough for
 * random weights; never used on real models.
 */
import { GGMLType } from '../src/gguf/ggml-types.js';
import { f32ToF16 } from '../src/quant/f16.js';

const clamp = (v: number, lo: number, hi: number) => Math.max(lo, Math.min(hi, v));

function q8_0(x: Float32Array): Uint8Array {
  const out = new Uint8Array((x.length / 32) * 34);
  const v = new DataView(out.buffer);
  for (let b = 0; b < x.length / 32; b++) {
    let amax = 0;
    for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(x[b * 32 + i]!));
    const d = amax / 127;
    v.setUint16(b * 34, f32ToF16(d), true);
    for (let i = 0; i < 32; i++) v.setInt8(b * 34 + 2 + i, d ? Math.round(x[b * 32 + i]! / d) : 0);
  }
  return out;
}

function q4_0(x: Float32Array): Uint8Array {
  const out = new Uint8Array((x.length / 32) * 18);
  const v = new DataView(out.buffer);
  for (let b = 0; b < x.length / 32; b++) {
    let max = 0;
    for (let i = 0; i < 32; i++) if (Math.abs(x[b * 32 + i]!) > Math.abs(max)) max = x[b * 32 + i]!;
    const d = max / -8;
    v.setUint16(b * 18, f32ToF16(d), true);
    for (let j = 0; j < 16; j++) {
      const lo = d ? clamp(Math.floor(x[b * 32 + j]! / d + 8.5), 0, 15) : 8;
      const hi = d ? clamp(Math.floor(x[b * 32 + j + 16]! / d + 8.5), 0, 15) : 8;
      out[b * 18 + 2 + j] = lo | (hi << 4);
    }
  }
  return out;
}

/**
 * Q4_1/Q5_0/Q5_1: blocks of 32 with an f16 scale (and, for _1, an f16 min); element j in the low
 * nibble of byte j, j+16 in the high one; Q5's fifth bits in a u32 (bit j for element j).
 */
function blocks32(x: Float32Array, bits: 4 | 5, withMin: boolean): Uint8Array {
  const levels = (1 << bits) - 1;
  const header = withMin ? 4 : 2;
  const size = header + (bits === 5 ? 4 : 0) + 16;
  const out = new Uint8Array((x.length / 32) * size);
  const v = new DataView(out.buffer);
  for (let b = 0; b < x.length / 32; b++) {
    const o = b * size;
    const block = x.subarray(b * 32, b * 32 + 32);
    let q: (value: number) => number;
    if (withMin) {
      const lo = Math.min(...block), hi = Math.max(...block);
      const d = (hi - lo) / levels;
      v.setUint16(o, f32ToF16(d), true);
      v.setUint16(o + 2, f32ToF16(lo), true);
      q = (value) => (d ? clamp(Math.round((value - lo) / d), 0, levels) : 0);
    } else {
      // Q5_0 centres on 16 like Q4_0 on 8: the largest magnitude maps to -16.
      let max = 0;
      for (const value of block) if (Math.abs(value) > Math.abs(max)) max = value;
      const d = max / -16;
      v.setUint16(o, f32ToF16(d), true);
      q = (value) => (d ? clamp(Math.round(value / d) + 16, 0, 31) : 16);
    }
    let high = 0;
    for (let j = 0; j < 16; j++) {
      const lo = q(block[j]!), hi = q(block[j + 16]!);
      out[o + size - 16 + j] = (lo & 15) | ((hi & 15) << 4);
      high |= ((lo >> 4) << j) | ((hi >> 4) << (j + 16));
    }
    if (bits === 5) v.setUint32(o + header, high >>> 0, true);
  }
  return out;
}

/**
 * Q4_K/Q5_K: per 32, an unsigned 6-bit scale and min under f16 super-block factors; Q5_K adds 32
 * bytes of fifth bits (bit 2c of byte l for element l of sub-block 2c, bit 2c+1 for 2c+1).
 */
function kQuant(x: Float32Array, bits: 4 | 5): Uint8Array {
  const levels = (1 << bits) - 1;
  const size = bits === 4 ? 144 : 176;
  const qs = bits === 4 ? 16 : 48;
  const out = new Uint8Array((x.length / 256) * size);
  const v = new DataView(out.buffer);
  for (let b = 0; b < x.length / 256; b++) {
    const o = b * size;
    const scales: number[] = [], mins: number[] = [];
    for (let s = 0; s < 8; s++) {
      let lo = 0, hi = 0;
      for (let i = 0; i < 32; i++) {
        lo = Math.min(lo, x[b * 256 + s * 32 + i]!);
        hi = Math.max(hi, x[b * 256 + s * 32 + i]!);
      }
      scales.push((hi - lo) / levels);
      mins.push(-lo);
    }
    const d = Math.max(...scales) / 63, dmin = Math.max(...mins) / 63;
    v.setUint16(o, f32ToF16(d), true);
    v.setUint16(o + 2, f32ToF16(dmin), true);
    const sc = scales.map((s) => (d ? clamp(Math.round(s / d), 0, 63) : 0));
    const mn = mins.map((m) => (dmin ? clamp(Math.round(m / dmin), 0, 63) : 0));
    // The inverse of ggml's get_scale_min_k4.
    for (let j = 0; j < 4; j++) {
      out[o + 4 + j] = sc[j]! | ((sc[j + 4]! >> 4) << 6);
      out[o + 4 + j + 4] = mn[j]! | ((mn[j + 4]! >> 4) << 6);
      out[o + 4 + j + 8] = (sc[j + 4]! & 15) | ((mn[j + 4]! & 15) << 4);
    }
    // Sub-blocks 2c and 2c+1 share bytes; no closure per value (this runs for every weight of a
    // generated model, 100M+ values for a real vocabulary).
    for (let c = 0; c < 4; c++) {
      const scaleLo = d * sc[2 * c]!, offsetLo = dmin * mn[2 * c]!;
      const scaleHi = d * sc[2 * c + 1]!, offsetHi = dmin * mn[2 * c + 1]!;
      const at = b * 256 + 64 * c;
      for (let l = 0; l < 32; l++) {
        const lo = scaleLo ? clamp(Math.round((x[at + l]! + offsetLo) / scaleLo), 0, levels) : 0;
        const hi = scaleHi ? clamp(Math.round((x[at + 32 + l]! + offsetHi) / scaleHi), 0, levels) : 0;
        out[o + qs + 32 * c + l] = (lo & 15) | ((hi & 15) << 4);
        if (bits === 5) out[o + 16 + l] = out[o + 16 + l]! | ((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1));
      }
    }
  }
  return out;
}

/** Q6_K: per 16, a signed 8-bit scale under an f16 super-block factor; values -32..31. */
function q6_k(x: Float32Array): Uint8Array {
  const out = new Uint8Array((x.length / 256) * 210);
  const v = new DataView(out.buffer);
  for (let b = 0; b < x.length / 256; b++) {
    const o = b * 210;
    const groupScale: number[] = [];
    for (let g = 0; g < 16; g++) {
      let amax = 0;
      for (let i = 0; i < 16; i++) amax = Math.max(amax, Math.abs(x[b * 256 + g * 16 + i]!));
      groupScale.push(amax / 31);
    }
    const d = Math.max(...groupScale) / 127;
    v.setUint16(o + 208, f32ToF16(d), true);
    const sc = groupScale.map((s) => (d ? clamp(Math.round(s / d), -128, 127) : 0));
    // Element e = 128n + 32q + l uses scale index 8n + l/16 + 2q, i.e. group (e / 16) reordered.
    for (let n = 0; n < 2; n++) for (let q = 0; q < 4; q++) for (let h = 0; h < 2; h++) {
      v.setInt8(o + 192 + 8 * n + h + 2 * q, sc[(128 * n + 32 * q + 16 * h) / 16]!);
    }
    for (let n = 0; n < 2; n++) {
      for (let l = 0; l < 32; l++) {
        let qh = 0;
        for (let q = 0; q < 4; q++) {
          const e = 128 * n + 32 * q + l;
          const scale = d * sc[e >> 4]!;
          const value = scale ? clamp(Math.round(x[b * 256 + e]! / scale), -32, 31) + 32 : 32;
          const at = o + 64 * n + (q & 1) * 32 + l;
          out[at] = q < 2 ? (out[at]! & 0xf0) | (value & 15) : (out[at]! & 0x0f) | ((value & 15) << 4);
          qh |= (value >> 4) << (2 * q);
        }
        out[o + 128 + 32 * n + l] = qh;
      }
    }
  }
  return out;
}

/** bf16: the top half of the f32, rounded to nearest even. */
function bf16(x: Float32Array): Uint8Array {
  const bits = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = (bits[i]! + 0x7fff + ((bits[i]! >>> 16) & 1)) >>> 16;
  return new Uint8Array(out.buffer);
}

function f16(x: Float32Array): Uint8Array {
  const out = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = f32ToF16(x[i]!);
  return new Uint8Array(out.buffer);
}

const QUANTIZERS: Record<number, { block: number; quantize: (x: Float32Array) => Uint8Array }> = {
  [GGMLType.F32]: { block: 1, quantize: (x) => new Uint8Array(x.slice().buffer) },
  [GGMLType.F16]: { block: 1, quantize: f16 },
  [GGMLType.Q8_0]: { block: 32, quantize: q8_0 },
  [GGMLType.Q4_0]: { block: 32, quantize: q4_0 },
  [GGMLType.BF16]: { block: 1, quantize: bf16 },
  [GGMLType.Q4_1]: { block: 32, quantize: (x) => blocks32(x, 4, true) },
  [GGMLType.Q5_0]: { block: 32, quantize: (x) => blocks32(x, 5, false) },
  [GGMLType.Q5_1]: { block: 32, quantize: (x) => blocks32(x, 5, true) },
  [GGMLType.Q4_K]: { block: 256, quantize: (x) => kQuant(x, 4) },
  [GGMLType.Q5_K]: { block: 256, quantize: (x) => kQuant(x, 5) },
  [GGMLType.Q6_K]: { block: 256, quantize: q6_k },
};

/** Quantizes rows of `cols`; rows that do not fit the type's block fall back to Q8_0, then F16. */
export function quantize(x: Float32Array, cols: number, type: number): { type: number; data: Uint8Array } {
  for (const t of [type, GGMLType.Q8_0, GGMLType.F16]) {
    const q = QUANTIZERS[t];
    if (q && cols % q.block === 0) return { type: t, data: q.quantize(x) };
  }
  throw new Error('unreachable');
}
