import { ModelFormatError } from '../errors.js';
import type { ByteSource } from '../io/byte-source.js';
import { TYPE_TRAITS, typeName } from './ggml-types.js';

export type MetadataValue = number | bigint | boolean | string | MetadataValue[] | ArrayLike<number>;

export interface TensorInfo {
  name: string;
  /** ggml order: dims[0] is the contiguous (row) length. */
  dims: number[];
  type: number;
  /** Byte offset from the start of the data section. */
  offset: number;
  elements: number;
  byteSize: number;
}

export interface GGUFFile {
  version: number;
  /** The raw header, bytes [0, dataOffset): all a cache needs to parse this file again. */
  header: Uint8Array;
  metadata: Map<string, MetadataValue>;
  tensors: TensorInfo[];
  alignment: number;
  /** Byte offset where the tensor infos start: the metadata is bytes [24, tensorInfoOffset). */
  tensorInfoOffset: number;
  /** Absolute byte offset of the tensor data section. */
  dataOffset: number;
  source: ByteSource;
}

const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian
/** The header is read through a window that starts small (a small file is not fetched whole
 * for its header) and doubles up to 4 MiB (big vocabularies take few requests). */
const FIRST_WINDOW = 64 << 10;
const MAX_WINDOW = 4 << 20;
const MAX_DIMS = 4;
/**
 * Sane maxima for what a header may claim, checked after the claim is checked against the bytes
 * the file really has (a sparse file or a server can claim terabytes). Real files stay far below:
 * chat templates are tens of KB, vocabularies a few hundred thousand tokens, models a few
 * thousand tensors and a few hundred keys.
 */
const MAX_STRING_BYTES = 16 << 20;
/** The whole header (metadata and tensor infos); the largest real vocabularies take ~20 MiB. */
const MAX_HEADER_BYTES = 64 << 20;
const MAX_ARRAY_ITEMS = 1 << 24;
const MAX_KEYS = 1 << 16;
const MAX_TENSORS = 1 << 20;
const enum VT { U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 }
const SCALAR_BYTES: Record<number, number> = {
  [VT.U8]: 1, [VT.I8]: 1, [VT.U16]: 2, [VT.I16]: 2, [VT.U32]: 4, [VT.I32]: 4, [VT.F32]: 4,
  [VT.BOOL]: 1, [VT.U64]: 8, [VT.I64]: 8, [VT.F64]: 8,
};

/**
 * Reads bytes sequentially from a ByteSource through a bounded window. Every length read from
 * the file is checked against the bytes that remain before anything is allocated for it.
 */
class Cursor {
  private buf: Uint8Array = new Uint8Array(0);
  private bufStart = 0;
  private window = FIRST_WINDOW;
  /** Every window fetched, in order: the header is kept without reading it twice. */
  private readonly windows: { start: number; bytes: Uint8Array }[] = [];
  pos = 0;
  private readonly decoder = new TextDecoder('utf-8', { fatal: false });
  constructor(private readonly src: ByteSource) {}

  get remaining(): number {
    return this.src.size - this.pos;
  }

  private async ensure(n: number, what: string): Promise<DataView> {
    if (n > this.remaining) {
      throw new ModelFormatError('truncated', `${this.src.name}: truncated while reading ${what} at byte ${this.pos}`);
    }
    this.checkHeaderSize(n, what);
    const off = this.pos - this.bufStart;
    if (off < 0 || off + n > this.buf.byteLength) {
      const want = Math.max(n, this.window);
      this.window = Math.min(MAX_WINDOW, this.window * 2);
      const bytes = await this.src.read(this.pos, want);
      if (bytes.byteLength < n) {
        throw new ModelFormatError('truncated', `${this.src.name}: truncated while reading ${what} at byte ${this.pos}`);
      }
      this.buf = bytes;
      this.bufStart = this.pos;
      this.windows.push({ start: this.pos, bytes });
    }
    const o = this.pos - this.bufStart;
    this.pos += n;
    return new DataView(this.buf.buffer, this.buf.byteOffset + o, n);
  }

  private checkHeaderSize(n: number, what: string): void {
    if (this.pos + n > MAX_HEADER_BYTES) {
      throw new ModelFormatError('malformed', `${this.src.name}: the header runs past ${MAX_HEADER_BYTES} bytes (at ${what}), more than any real file has`);
    }
  }

  /** Bytes [0, n) of the source, from the windows already fetched where they cover it. */
  async prefix(n: number): Promise<Uint8Array> {
    const out = new Uint8Array(n);
    let at = 0;
    for (const w of this.windows) {
      if (w.start !== at || at >= n) continue;
      const take = Math.min(w.bytes.byteLength, n - at);
      out.set(w.bytes.subarray(0, take), at);
      at += take;
    }
    if (at < n) out.set(await this.src.read(at, n - at), at);
    return out;
  }

  async u32(what: string): Promise<number> {
    return (await this.ensure(4, what)).getUint32(0, true);
  }
  /** A u64 that must fit in a JS number (counts, sizes, offsets). */
  async u64n(what: string): Promise<number> {
    const v = (await this.ensure(8, what)).getBigUint64(0, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new ModelFormatError('malformed', `${this.src.name}: ${what} is too large (${v})`);
    }
    return Number(v);
  }
  async string(what: string): Promise<string> {
    const len = await this.u64n(`${what} length`);
    if (len > this.remaining) {
      throw new ModelFormatError('truncated', `${this.src.name}: ${what} claims ${len} bytes, only ${this.remaining} remain`);
    }
    if (len > MAX_STRING_BYTES) {
      throw new ModelFormatError('malformed', `${this.src.name}: ${what} claims ${len} bytes, more than the ${MAX_STRING_BYTES} any real file has`);
    }
    return this.decoder.decode(await this.bytes(len, what));
  }

  /** `len` bytes (already checked against the file), read in window-sized pieces. */
  private async bytes(len: number, what: string): Promise<Uint8Array<ArrayBuffer>> {
    this.checkHeaderSize(len, what);
    const bytes = new Uint8Array(len);
    for (let at = 0; at < len; ) {
      const n = Math.min(len - at, MAX_WINDOW);
      const view = await this.ensure(n, what);
      bytes.set(new Uint8Array(view.buffer, view.byteOffset, n), at);
      at += n;
    }
    return bytes;
  }

  async scalar(type: number, what: string): Promise<number | bigint | boolean> {
    const size = SCALAR_BYTES[type];
    if (size === undefined) throw new ModelFormatError('malformed', `${this.src.name}: unknown value type ${type} in ${what}`);
    const v = await this.ensure(size, what);
    switch (type) {
      case VT.U8: return v.getUint8(0);
      case VT.I8: return v.getInt8(0);
      case VT.U16: return v.getUint16(0, true);
      case VT.I16: return v.getInt16(0, true);
      case VT.U32: return v.getUint32(0, true);
      case VT.I32: return v.getInt32(0, true);
      case VT.F32: return v.getFloat32(0, true);
      case VT.BOOL: return v.getUint8(0) !== 0;
      case VT.U64: return narrow(v.getBigUint64(0, true));
      case VT.I64: return narrow(v.getBigInt64(0, true));
      default: return v.getFloat64(0, true);
    }
  }

  async value(type: number, what: string, depth = 0): Promise<MetadataValue> {
    if (type === VT.STRING) return this.string(what);
    if (type !== VT.ARRAY) return this.scalar(type, what);
    if (depth > 2) throw new ModelFormatError('malformed', `${this.src.name}: arrays nested too deeply in ${what}`);
    const itemType = await this.u32(`${what} item type`);
    const count = await this.u64n(`${what} count`);
    // Each item takes at least one byte (strings at least 8), so a count beyond the remaining
    // bytes is a lie: refuse it before allocating.
    const minItem = itemType === VT.STRING || itemType === VT.ARRAY ? 8 : SCALAR_BYTES[itemType];
    if (minItem === undefined) throw new ModelFormatError('malformed', `${this.src.name}: unknown item type ${itemType} in ${what}`);
    if (count * minItem > this.remaining) {
      throw new ModelFormatError('truncated', `${this.src.name}: ${what} claims ${count} items, more than the file holds`);
    }
    const numeric = NUMERIC_ARRAYS[itemType];
    if (numeric) {
      // Numbers are read in bulk into a typed array (bounded by the header's size): no per-item
      // reads or boxed values. GGUF is little-endian, as every host WebGPU runs on.
      return new numeric((await this.bytes(count * minItem, what)).buffer, 0, count);
    }
    if (count > MAX_ARRAY_ITEMS) {
      throw new ModelFormatError('malformed', `${this.src.name}: ${what} claims ${count} items, more than the ${MAX_ARRAY_ITEMS} any real file has`);
    }
    const out: MetadataValue[] = new Array(count);
    for (let i = 0; i < count; i++) out[i] = await this.value(itemType, what, depth + 1);
    return out;
  }
}

type NumericArray = Uint8ArrayConstructor | Int8ArrayConstructor | Uint16ArrayConstructor | Int16ArrayConstructor
  | Uint32ArrayConstructor | Int32ArrayConstructor | Float32ArrayConstructor | Float64ArrayConstructor;
const NUMERIC_ARRAYS: Partial<Record<number, NumericArray>> = {
  [VT.U8]: Uint8Array, [VT.I8]: Int8Array, [VT.U16]: Uint16Array, [VT.I16]: Int16Array,
  [VT.U32]: Uint32Array, [VT.I32]: Int32Array, [VT.F32]: Float32Array, [VT.F64]: Float64Array,
};

function narrow(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/**
 * Parses the GGUF header: metadata, tensor infos and the start of the data section. `fileSize`
 * is the whole file's size when `source` holds only the header (a cached model).
 */
export async function readGGUF(source: ByteSource, fileSize = source.size): Promise<GGUFFile> {
  const c = new Cursor(source);
  if (source.size < 4 || (await c.u32('magic')) !== GGUF_MAGIC) {
    throw new ModelFormatError('not-gguf', `${source.name}: not a GGUF file (bad magic)`);
  }
  const version = await c.u32('version');
  if (version !== 2 && version !== 3) {
    throw new ModelFormatError(
      'unsupported-version',
      `${source.name}: GGUF version ${version} is not supported (only v2 and v3; convert v1 files with a current llama.cpp)`,
    );
  }
  const tensorCount = await c.u64n('tensor count');
  const kvCount = await c.u64n('metadata count');
  // A tensor info takes at least 24 bytes and a key/value pair at least 12.
  if (tensorCount * 24 + kvCount * 12 > c.remaining) {
    throw new ModelFormatError('truncated', `${source.name}: header claims ${tensorCount} tensors and ${kvCount} keys, more than the file holds`);
  }
  if (tensorCount > MAX_TENSORS || kvCount > MAX_KEYS) {
    throw new ModelFormatError('malformed', `${source.name}: header claims ${tensorCount} tensors and ${kvCount} keys (at most ${MAX_TENSORS} and ${MAX_KEYS})`);
  }

  const metadata = new Map<string, MetadataValue>();
  let alignmentType: number | undefined;
  for (let i = 0; i < kvCount; i++) {
    const key = await c.string('metadata key');
    // As llama.cpp: a key given twice makes the file ambiguous.
    if (metadata.has(key)) throw new ModelFormatError('malformed', `${source.name}: metadata key ${JSON.stringify(key.slice(0, 100))} appears twice`);
    const type = await c.u32(`type of ${key}`);
    if (key === 'general.alignment') alignmentType = type;
    metadata.set(key, await c.value(type, key));
  }

  const tensorInfoOffset = c.pos;
  // As llama.cpp: a u32 power of two (and, for the GPU layout, a multiple of 8 up to 1 MiB).
  const alignment = metadata.get('general.alignment') ?? 32;
  if (
    (alignmentType !== undefined && alignmentType !== VT.U32) || typeof alignment !== 'number' ||
    alignment < 8 || alignment > 1 << 20 || (alignment & (alignment - 1)) !== 0
  ) {
    throw new ModelFormatError('malformed', `${source.name}: invalid general.alignment ${String(alignment)} (must be a u32 power of two, 8 to 2^20)`);
  }

  const tensors: TensorInfo[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const name = await c.string('tensor name');
    if (names.has(name)) throw new ModelFormatError('malformed', `${source.name}: tensor ${name} appears twice`);
    names.add(name);
    const nDims = await c.u32(`${name} dims`);
    if (nDims < 1 || nDims > MAX_DIMS) throw new ModelFormatError('malformed', `${source.name}: tensor ${name} has ${nDims} dimensions`);
    const dims: number[] = [];
    let elements = 1;
    for (let d = 0; d < nDims; d++) {
      const n = await c.u64n(`${name} dim ${d}`);
      if (n < 1) throw new ModelFormatError('malformed', `${source.name}: tensor ${name} has an empty dimension`);
      dims.push(n);
      elements *= n;
      if (elements > Number.MAX_SAFE_INTEGER / 64) throw new ModelFormatError('malformed', `${source.name}: tensor ${name} is impossibly large`);
    }
    const type = await c.u32(`${name} type`);
    const offset = await c.u64n(`${name} offset`);
    const traits = TYPE_TRAITS[type];
    if (!traits) throw new ModelFormatError('unsupported-tensor-type', `${source.name}: tensor ${name} has unknown type ${type}`);
    if (offset % alignment !== 0) throw new ModelFormatError('malformed', `${source.name}: tensor ${name} is misaligned (offset ${offset})`);
    // Quantized data is a flat run of blocks; rows that are not a multiple of the block size
    // make blocks straddle rows (see quant/formats.ts for how those are handled).
    const byteSize = Math.ceil(elements / traits.blockSize) * traits.blockBytes;
    tensors.push({ name, dims, type, offset, elements, byteSize });
  }

  const dataOffset = Math.ceil(c.pos / alignment) * alignment;
  const dataSize = fileSize - dataOffset;
  for (const t of tensors) {
    if (t.offset + t.byteSize > dataSize) {
      throw new ModelFormatError('truncated', `${source.name}: tensor ${t.name} (${typeName(t.type)}, ${t.byteSize} bytes at ${t.offset}) runs past the end of the file`);
    }
  }
  return { version, header: await c.prefix(dataOffset), metadata, tensors, alignment, tensorInfoOffset, dataOffset, source };
}

/** Typed metadata access with clear errors for missing or mistyped keys. */
export function metaNumber(file: GGUFFile, key: string, fallback?: number): number {
  const v = file.metadata.get(key);
  if (v === undefined) {
    if (fallback !== undefined) return fallback;
    throw new ModelFormatError('malformed', `${file.source.name}: missing metadata ${key}`);
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ModelFormatError('malformed', `${file.source.name}: metadata ${key} is not a number`);
  return v;
}

export function metaString(file: GGUFFile, key: string): string | undefined {
  const v = file.metadata.get(key);
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new ModelFormatError('malformed', `${file.source.name}: metadata ${key} is not a string`);
  return v;
}

export function metaArray(file: GGUFFile, key: string): MetadataValue[] | ArrayLike<number> | undefined {
  const v = file.metadata.get(key);
  if (v === undefined) return undefined;
  if (typeof v !== 'object' || v === null || !('length' in v)) throw new ModelFormatError('malformed', `${file.source.name}: metadata ${key} is not an array`);
  return v as MetadataValue[] | ArrayLike<number>;
}

/** Reads one tensor's raw bytes in chunks of at most `chunkBytes`, in order. */
export async function* readTensorChunks(file: GGUFFile, t: TensorInfo, chunkBytes = 8 << 20): AsyncGenerator<Uint8Array> {
  const start = file.dataOffset + t.offset;
  for (let at = 0; at < t.byteSize; at += chunkBytes) {
    const n = Math.min(chunkBytes, t.byteSize - at);
    const bytes = await file.source.read(start + at, n);
    if (bytes.byteLength !== n) throw new ModelFormatError('truncated', `${file.source.name}: tensor ${t.name} is truncated`);
    yield bytes;
  }
}
