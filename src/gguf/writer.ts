import type { MetadataValue } from './gguf.js';
import { TYPE_TRAITS } from './ggml-types.js';

/** A metadata value with its GGUF type spelled out where a JS value alone is ambiguous. */
export type TypedValue =
  | { type: 'u32' | 'i32' | 'f32' | 'u64' | 'bool' | 'string'; value: number | bigint | boolean | string }
  | { type: 'array'; itemType: 'u32' | 'i32' | 'f32' | 'string'; value: ArrayLike<number> | string[] };

export interface TensorToWrite {
  name: string;
  dims: number[];
  type: number;
  data: Uint8Array;
}

const VT = { u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10 } as const;

/** Infers a GGUF type for values as readGGUF returns them. */
export function typed(v: MetadataValue): TypedValue {
  if (typeof v === 'string') return { type: 'string', value: v };
  if (typeof v === 'boolean') return { type: 'bool', value: v };
  if (typeof v === 'bigint') return { type: 'u64', value: v };
  if (typeof v === 'number') return { type: Number.isInteger(v) ? (v < 0 ? 'i32' : 'u32') : 'f32', value: v };
  if (v instanceof Float32Array) return { type: 'array', itemType: 'f32', value: v };
  if (v instanceof Int32Array) return { type: 'array', itemType: 'i32', value: v };
  if (v instanceof Uint32Array) return { type: 'array', itemType: 'u32', value: v };
  const arr = Array.from(v as ArrayLike<MetadataValue>);
  if (arr.every((x) => typeof x === 'string')) return { type: 'array', itemType: 'string', value: arr as string[] };
  return { type: 'array', itemType: arr.every((x) => typeof x === 'number' && Number.isInteger(x)) ? 'i32' : 'f32', value: arr as number[] };
}

/**
 * Serialises a GGUF v3 file in memory (the model generator and the tests' malformed files).
 * Tensor data is laid out in order, each aligned to `alignment`.
 */
export function writeGGUF(metadata: [string, TypedValue][], tensors: TensorToWrite[], alignment = 32): Uint8Array {
  const parts: Uint8Array[] = [];
  const enc = new TextEncoder();
  const scalar = (bytes: number, set: (v: DataView) => void) => {
    const b = new Uint8Array(bytes);
    set(new DataView(b.buffer));
    parts.push(b);
  };
  const u32 = (n: number) => scalar(4, (v) => v.setUint32(0, n, true));
  const u64 = (n: number | bigint) => scalar(8, (v) => v.setBigUint64(0, BigInt(n), true));
  const str = (s: string) => {
    const b = enc.encode(s);
    u64(b.length);
    parts.push(b);
  };
  const item = (type: string, x: number | bigint | boolean | string) => {
    if (type === 'string') str(x as string);
    else if (type === 'u32') u32(x as number);
    else if (type === 'i32') scalar(4, (v) => v.setInt32(0, x as number, true));
    else if (type === 'f32') scalar(4, (v) => v.setFloat32(0, x as number, true));
    else if (type === 'u64') u64(x as number | bigint);
    else scalar(1, (v) => v.setUint8(0, x ? 1 : 0));
  };

  u32(0x46554747);
  u32(3);
  u64(tensors.length);
  u64(metadata.length);
  for (const [key, tv] of metadata) {
    str(key);
    u32(VT[tv.type]);
    if (tv.type === 'array') {
      u32(VT[tv.itemType]);
      u64(tv.value.length);
      for (const x of Array.from(tv.value as ArrayLike<number | string>)) item(tv.itemType, x);
    } else {
      item(tv.type, tv.value);
    }
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    const traits = TYPE_TRAITS[t.type];
    const elements = t.dims.reduce((a, b) => a * b, 1);
    const size = traits ? Math.ceil(elements / traits.blockSize) * traits.blockBytes : t.data.byteLength;
    if (traits && size !== t.data.byteLength) throw new Error(`${t.name}: ${t.data.byteLength} bytes of data, expected ${size}`);
    str(t.name);
    u32(t.dims.length);
    for (const d of t.dims) u64(d);
    u32(t.type);
    u64(offset);
    offsets.push(offset);
    offset = Math.ceil((offset + t.data.byteLength) / alignment) * alignment;
  }
  const headerSize = parts.reduce((s, p) => s + p.byteLength, 0);
  const dataStart = Math.ceil(headerSize / alignment) * alignment;
  const out = new Uint8Array(dataStart + offset);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  tensors.forEach((t, i) => out.set(t.data, dataStart + offsets[i]!));
  return out;
}
