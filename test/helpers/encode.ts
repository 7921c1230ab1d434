/** Writes random tensors in GGUF's encodings, for kernel and format tests. */
import { GGMLType } from '../../src/gguf/ggml-types.js';
import { f32ToF16 } from '../../src/quant/f16.js';

export function encodeRandom(type: number, rows: number, cols: number, random: () => number): Uint8Array {
  const n = rows * cols;
  switch (type) {
    case GGMLType.F32: {
      const f = new Float32Array(n);
      for (let i = 0; i < n; i++) f[i] = random() * 2 - 1;
      return new Uint8Array(f.buffer);
    }
    case GGMLType.F16:
    case GGMLType.BF16: {
      const h = new Uint16Array(n);
      const f = new Float32Array(1);
      const u = new Uint32Array(f.buffer);
      for (let i = 0; i < n; i++) {
        f[0] = random() * 2 - 1;
        h[i] = type === GGMLType.F16 ? f32ToF16(f[0]!) : u[0]! >>> 16;
      }
      return new Uint8Array(h.buffer);
    }
    case GGMLType.Q8_0:
    case GGMLType.Q4_0: {
      const blockBytes = type === GGMLType.Q8_0 ? 34 : 18;
      const blocks = Math.ceil(n / 32);
      const out = new Uint8Array(blocks * blockBytes);
      const view = new DataView(out.buffer);
      for (let b = 0; b < blocks; b++) {
        view.setUint16(b * blockBytes, f32ToF16((random() * 2 - 1) * 0.1), true);
        for (let j = 2; j < blockBytes; j++) out[b * blockBytes + j] = Math.floor(random() * 256);
      }
      return out;
    }
    default: {
      // Block formats: random bytes, with their f16 scales set to small finite values.
      const layouts: Record<number, { blockBytes: number; blockSize: number; halves: number[] }> = {
        [GGMLType.Q4_1]: { blockBytes: 20, blockSize: 32, halves: [0, 2] },
        [GGMLType.Q5_0]: { blockBytes: 22, blockSize: 32, halves: [0] },
        [GGMLType.Q5_1]: { blockBytes: 24, blockSize: 32, halves: [0, 2] },
        [GGMLType.Q4_K]: { blockBytes: 144, blockSize: 256, halves: [0, 2] },
        [GGMLType.Q5_K]: { blockBytes: 176, blockSize: 256, halves: [0, 2] },
        [GGMLType.Q6_K]: { blockBytes: 210, blockSize: 256, halves: [208] },
      };
      const l = layouts[type];
      if (!l) throw new Error(`no encoder for type ${type}`);
      const blocks = Math.ceil(n / l.blockSize);
      const out = new Uint8Array(blocks * l.blockBytes);
      for (let i = 0; i < out.length; i++) out[i] = Math.floor(random() * 256);
      const view = new DataView(out.buffer);
      for (let b = 0; b < blocks; b++) {
        for (const h of l.halves) view.setUint16(b * l.blockBytes + h, f32ToF16((random() * 2 - 1) * 0.01), true);
      }
      return out;
    }
  }
}
