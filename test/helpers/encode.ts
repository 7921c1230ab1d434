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
    default:
      throw new Error(`no encoder for type ${type}`);
  }
}
