import type { MetadataValue } from './gguf.js';
import { TYPE_TRAITS } from './ggml-types.js';

/** A metadata value with its GGUF type spelled out where a JS value alone is ambiguous. */
export type TypedValue =
  | { type: 'u16' | 'u32' | 'i32' | 'f32' | 'u64' | 'bool' | 'string'; value: number | bigint | boolean | string }
  | { type: 'array'; itemType: 'u32' | 'i32' | 'f32' | 'bool' | 'string'; value: ArrayLike<number> | string[] | boolean[] };

export interface TensorToWrite {
  name: string;
  dims: number[];
  type: number;
  data: Uint8Array;
}

const VT = { u16: 2, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10 } as const;

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

/** Little-endian GGUF primitives appended to a list of parts. */
class ByteWriter {
  readonly parts: Uint8Array[] = [];
  private readonly enc = new TextEncoder();
  get length(): number {
    return this.parts.reduce((s, p) => s + p.byteLength, 0);
  }
  bytes(b: Uint8Array): void {
    this.parts.push(b);
  }
  private scalar(bytes: number, set: (v: DataView) => void): void {
    const b = new Uint8Array(bytes);
    set(new DataView(b.buffer));
    this.parts.push(b);
  }
  u32(n: number): void {
    this.scalar(4, (v) => v.setUint32(0, n, true));
  }
  u64(n: number | bigint): void {
    this.scalar(8, (v) => v.setBigUint64(0, BigInt(n), true));
  }
  str(s: string): void {
    const b = this.enc.encode(s);
    this.u64(b.length);
    this.parts.push(b);
  }
  item(type: string, x: number | bigint | boolean | string): void {
    if (type === 'string') this.str(x as string);
    else if (type === 'u16') this.scalar(2, (v) => v.setUint16(0, x as number, true));
    else if (type === 'u32') this.u32(x as number);
    else if (type === 'i32') this.scalar(4, (v) => v.setInt32(0, x as number, true));
    else if (type === 'f32') this.scalar(4, (v) => v.setFloat32(0, x as number, true));
    else if (type === 'u64') this.u64(x as number | bigint);
    else this.scalar(1, (v) => v.setUint8(0, x ? 1 : 0));
  }
  tensorInfo(t: { name: string; dims: number[]; type: number }, offset: number): void {
    this.str(t.name);
    this.u32(t.dims.length);
    for (const d of t.dims) this.u64(d);
    this.u32(t.type);
    this.u64(offset);
  }
  /** The parts joined, zero-padded to `size` bytes. */
  join(size = this.length): Uint8Array {
    const out = new Uint8Array(size);
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.byteLength;
    }
    return out;
  }
}

/**
 * Serialises a GGUF v3 file in memory (the model generator and the tests' malformed files).
 * Tensor data is laid out in order, each aligned to `alignment`.
 */
export function writeGGUF(metadata: [string, TypedValue][], tensors: TensorToWrite[], alignment = 32): Uint8Array {
  for (const t of tensors) {
    const size = tensorBytes(t);
    if (size !== undefined && size !== t.data.byteLength) throw new Error(`${t.name}: ${t.data.byteLength} bytes of data, expected ${size}`);
  }
  const { header, offsets, fileBytes } = ggufLayout(metadata, tensors.map((t) => ({ ...t, byteSize: t.data.byteLength })), alignment);
  const out = new Uint8Array(fileBytes);
  out.set(header);
  tensors.forEach((t, i) => out.set(t.data, header.byteLength + offsets[i]!));
  return out;
}

/** Bytes of a tensor of a known type, from its dims. */
function tensorBytes(t: { dims: number[]; type: number }): number | undefined {
  const traits = TYPE_TRAITS[t.type];
  return traits && Math.ceil(t.dims.reduce((a, b) => a * b, 1) / traits.blockSize) * traits.blockBytes;
}

/**
 * A GGUF v3 file's header (padded to where the data starts) and its total size, for tensors of
 * known types given by shape alone: a model's layout without its data (tests write the header and
 * leave the rest of a large file sparse).
 */
export function ggufLayout(
  metadata: [string, TypedValue][], tensors: { name: string; dims: number[]; type: number; byteSize?: number }[], alignment = 32,
): { header: Uint8Array; offsets: number[]; fileBytes: number } {
  const w = new ByteWriter();
  w.u32(0x46554747);
  w.u32(3);
  w.u64(tensors.length);
  w.u64(metadata.length);
  for (const [key, tv] of metadata) {
    w.str(key);
    w.u32(VT[tv.type]);
    if (tv.type === 'array') {
      w.u32(VT[tv.itemType]);
      w.u64(tv.value.length);
      for (const x of Array.from(tv.value as ArrayLike<number | string | boolean>)) w.item(tv.itemType, x);
    } else {
      w.item(tv.type, tv.value);
    }
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    const size = t.byteSize ?? tensorBytes(t);
    if (size === undefined) throw new Error(`${t.name}: unknown type ${t.type}`);
    w.tensorInfo(t, offset);
    offsets.push(offset);
    offset = Math.ceil((offset + size) / alignment) * alignment;
  }
  const dataStart = Math.ceil(w.length / alignment) * alignment;
  return { header: w.join(dataStart), offsets, fileBytes: dataStart + offset };
}

/**
 * A GGUF header (everything before the tensor data, zero-padded to `alignment`) from metadata
 * already serialised (`kvCount` pairs, copied from another file's header as they are) and
 * tensor infos with their data offsets.
 */
export function writeGGUFHeader(
  version: number, kvCount: number, metadataBytes: Uint8Array, tensors: { name: string; dims: number[]; type: number; offset: number }[], alignment: number,
): Uint8Array {
  const w = new ByteWriter();
  w.u32(0x46554747);
  w.u32(version);
  w.u64(tensors.length);
  w.u64(kvCount);
  w.bytes(metadataBytes);
  for (const t of tensors) w.tensorInfo(t, t.offset);
  return w.join(Math.ceil(w.length / alignment) * alignment);
}
