import { ModelFormatError, WebGGUFError } from '../errors.js';
import { blobSource, urlSource, type ByteSource, type UrlSourceOptions } from '../io/byte-source.js';
import { RequestSlots } from '../io/request-slots.js';
import { readGGUF, type GGUFFile, type TensorInfo } from './gguf.js';
import { writeGGUFHeader } from './writer.js';

/**
 * Split GGUF models, as llama.cpp's gguf-split writes them: `NAME-00001-of-00003.gguf`, … Each
 * part is a complete GGUF file. The first holds all the metadata plus `split.no` (u16, from 0),
 * `split.count` (u16) and `split.tensors.count` (i32, tensors in all parts); the others hold only
 * the split keys. Each tensor lives in exactly one part.
 */

/** What a caller names: one file (or the first part of a split model), or every part. */
export type ModelFiles = string | Blob | (string | Blob)[];

/** A source over a whole model; `parts` are the files it reads (one unless the model is split). */
export interface ModelByteSource extends ByteSource {
  readonly parts: readonly ByteSource[];
}

interface Part {
  source: ByteSource;
  file: GGUFFile;
}

const PART_NAME = /-(\d{5,})-of-(\d{5,})\.gguf$/i;

/** The URL of part `no` (from 0) of `count`, from any part's URL; undefined if it is not so named. */
export function splitPartUrl(url: string, no: number, count: number): string | undefined {
  const cut = url.search(/[?#]/);
  const path = cut < 0 ? url : url.slice(0, cut);
  const m = PART_NAME.exec(path);
  if (!m) return undefined;
  const pad = (n: number) => String(n).padStart(5, '0');
  return `${path.slice(0, m.index)}-${pad(no + 1)}-of-${pad(count)}.gguf${cut < 0 ? '' : url.slice(cut)}`;
}

/**
 * Opens a model for readGGUF: a single file as it is, a split one as one virtual GGUF file whose
 * header (made here) lists every part's tensors and whose data maps onto the parts. Given the
 * first part's URL, the other URLs follow from the naming rule; given a list (URLs or Files, in
 * any order), the parts are placed by their `split.no`. Every part is checked against the first:
 * its number, the part count, and in the end the total tensor count. Range requests of all parts
 * share one bound of 4 in flight.
 */
export async function openModel(files: ModelFiles, options: UrlSourceOptions = {}): Promise<ModelByteSource> {
  const urlOptions = { ...options, slots: options.slots ?? new RequestSlots(4) };
  const openOne = async (f: string | Blob): Promise<Part> => {
    const source = replaying(typeof f === 'string' ? await urlSource(f, urlOptions) : blobSource(f));
    const file = await readGGUF(source);
    source.replay();
    return { source, file };
  };
  const list = Array.isArray(files) ? files : [files];
  if (!list.length) throw new WebGGUFError('invalid-argument', 'no model files were given');
  const given = await mapLimited(list, 4, openOne);

  const first = given.find((p) => splitNo(p) === 0 && splitCount(p) > 1) ?? given[0]!;
  const count = splitCount(first);
  if (count <= 1) {
    if (given.length > 1) throw new WebGGUFError('invalid-argument', `${given.length} files were given, but ${first.source.name} is a whole model, not part of a split one`);
    return { ...first.source, parts: [first.source] };
  }
  const parts: (Part | undefined)[] = new Array(count);
  for (const p of given) {
    const no = checkPart(p, count, first.source.name);
    if (parts[no]) throw new WebGGUFError('invalid-argument', `part ${no + 1} of ${count} was given twice (${parts[no]!.source.name}, ${p.source.name})`);
    parts[no] = p;
  }
  const firstUrl = typeof list[0] === 'string' && list.length === 1 ? list[0] : undefined;
  if (!parts[0]) {
    const hint = firstUrl && splitPartUrl(firstUrl, 0, count);
    throw new WebGGUFError('invalid-argument', `${first.source.name} is part ${splitNo(first) + 1} of ${count} of a split model; load the first part${hint ? ` (${hint})` : ''}, which holds the metadata`);
  }
  const missing = [...parts.keys()].filter((i) => !parts[i]);
  if (missing.length && firstUrl) {
    // The first part's URL alone: the others are named after it.
    const urls = missing.map((i) => splitPartUrl(firstUrl, i, count));
    if (urls.some((u) => u === undefined)) {
      throw new WebGGUFError('invalid-argument', `${firstUrl} is part 1 of ${count} of a split model, but is not named NAME-00001-of-${String(count).padStart(5, '0')}.gguf, so the other parts cannot be found; pass all their URLs as a list`);
    }
    const opened = await mapLimited(urls as string[], 4, openOne);
    missing.forEach((i, k) => {
      const p = opened[k]!;
      if (checkPart(p, count, first.source.name) !== i) throw new ModelFormatError('malformed', `${p.source.name} says it is part ${splitNo(p) + 1} of ${count}, not part ${i + 1}`);
      parts[i] = p;
    });
  } else if (missing.length) {
    throw new WebGGUFError('invalid-argument', `${first.source.name} is part 1 of ${count} of a split model; part${missing.length > 1 ? 's' : ''} ${missing.map((i) => i + 1).join(', ')} ${missing.length > 1 ? 'are' : 'is'} missing: give all ${count} files`);
  }
  return mergeParts(parts as Part[]);
}

function splitNo(p: Part): number {
  const v = p.file.metadata.get('split.no');
  return typeof v === 'number' ? v : 0;
}

function splitCount(p: Part): number {
  const v = p.file.metadata.get('split.count');
  if (v === undefined) return 1;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 65535) throw new ModelFormatError('malformed', `${p.source.name}: invalid split.count ${String(v)}`);
  return v;
}

/** The part's number, checked against the count the first part gives. */
function checkPart(p: Part, count: number, firstName: string): number {
  const no = p.file.metadata.get('split.no');
  if (typeof no !== 'number' || splitCount(p) !== count) {
    throw new ModelFormatError('malformed', `${p.source.name} is not part of the same split model as ${firstName} (split.no ${String(no)}, split.count ${String(p.file.metadata.get('split.count'))}; expected ${count} parts)`);
  }
  if (!Number.isInteger(no) || no < 0 || no >= count) throw new ModelFormatError('malformed', `${p.source.name}: split.no ${no} is outside 0..${count - 1}`);
  return no;
}

/** A piece of the virtual file: `length` bytes at `at`, read from `source` at `from`. */
interface Segment {
  at: number;
  length: number;
  read: (from: number, length: number) => Promise<Uint8Array>;
  from: number;
}

/**
 * The parts as one GGUF file: the first part's metadata bytes as they are (split.* keys
 * included; nothing reads them after this), then every part's tensors, each at an aligned offset
 * of a virtual data section and read from its part. Part order and, within a part, file order are
 * kept, so a loader reading front to back reads each part front to back.
 */
function mergeParts(parts: Part[]): ModelByteSource {
  const first = parts[0]!.file;
  const expected = first.metadata.get('split.tensors.count');
  const total = parts.reduce((s, p) => s + p.file.tensors.length, 0);
  if (expected !== undefined && expected !== total) {
    throw new ModelFormatError('malformed', `${parts[0]!.source.name}: split.tensors.count is ${String(expected)}, but the ${parts.length} parts hold ${total} tensors`);
  }
  const names = new Set<string>();
  const infos: TensorInfo[] = [];
  const data: Omit<Segment, 'at'>[] = [];
  let offset = 0;
  for (const p of parts) {
    for (const t of [...p.file.tensors].sort((a, b) => a.offset - b.offset)) {
      if (names.has(t.name)) throw new ModelFormatError('malformed', `${p.source.name}: tensor ${t.name} is also in another part`);
      names.add(t.name);
      infos.push({ ...t, offset });
      data.push({ length: t.byteSize, read: (o, n) => p.source.read(o, n), from: p.file.dataOffset + t.offset });
      offset = Math.ceil((offset + t.byteSize) / first.alignment) * first.alignment;
    }
  }
  const kvCount = Number(new DataView(first.header.buffer, first.header.byteOffset).getBigUint64(16, true));
  const header = writeGGUFHeader(first.version, kvCount, first.header.subarray(24, first.tensorInfoOffset), infos, first.alignment);
  const segments: Segment[] = [
    { at: 0, length: header.byteLength, read: async (o, n) => header.subarray(o, o + n), from: 0 },
    ...data.map((d, i) => ({ ...d, at: header.byteLength + infos[i]!.offset })),
  ];
  const last = segments[segments.length - 1]!;
  const size = last.at + last.length;
  const validators = parts.map((p) => p.source.validator);
  return {
    size,
    name: parts[0]!.source.name,
    validator: validators.some((v) => v !== undefined) ? validators.map((v) => v ?? '').join(' ') : undefined,
    parts: parts.map((p) => p.source),
    read: async (offset, length) => {
      const end = Math.min(size, offset + length);
      if (end <= offset) return new Uint8Array(0);
      // The first segment ending after `offset` (binary search), then forward.
      let lo = 0;
      for (let hi = segments.length - 1; lo < hi; ) {
        const mid = (lo + hi) >> 1;
        if (segments[mid]!.at + segments[mid]!.length <= offset) lo = mid + 1;
        else hi = mid;
      }
      const s = segments[lo]!;
      if (s.at <= offset && end <= s.at + s.length) return s.read(s.from + offset - s.at, end - offset);
      // Across segments: the bytes between tensors are zeros (padding).
      const out = new Uint8Array(end - offset);
      for (let i = lo; i < segments.length && segments[i]!.at < end; i++) {
        const g = segments[i]!;
        const from = Math.max(g.at, offset);
        const to = Math.min(g.at + g.length, end);
        if (to > from) out.set(await g.read(g.from + from - g.at, to - from), from - offset);
      }
      return out;
    },
  };
}

/**
 * Keeps the bytes read while a header is parsed, and after `replay()` serves reads within them
 * again: the loader parses the header a second time, and must not download it twice (nor, from a
 * server that ignores Range, find it already passed). The first read outside them frees them.
 */
function replaying(source: ByteSource): ByteSource & { replay(): void } {
  let kept: { offset: number; bytes: Uint8Array }[] | undefined = [];
  let recording = true;
  return {
    size: source.size,
    name: source.name,
    validator: source.validator,
    replay: () => {
      recording = false;
    },
    read: async (offset, length) => {
      if (!recording && kept) {
        const end = Math.min(source.size, offset + length);
        const hit = kept.find((k) => k.offset <= offset && end <= k.offset + k.bytes.byteLength);
        if (hit) return hit.bytes.subarray(offset - hit.offset, end - hit.offset);
        kept = undefined;
      }
      const bytes = await source.read(offset, length);
      if (recording) kept!.push({ offset, bytes });
      return bytes;
    },
  };
}

/** `f` over `items` with at most `limit` running at once, results in order. */
async function mapLimited<T, R>(items: T[], limit: number, f: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await f(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
