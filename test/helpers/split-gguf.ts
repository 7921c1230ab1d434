import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bytesSource } from '../../src/io/byte-source.js';
import { readGGUF } from '../../src/gguf/gguf.js';
import { typed, writeGGUF, type TensorToWrite, type TypedValue } from '../../src/gguf/writer.js';

/**
 * Splits a GGUF file as llama.cpp's gguf-split does: `perPart` tensors per part, in file order;
 * the first part carries all the metadata, every part `split.no` (u16), `split.count` (u16) and
 * `split.tensors.count` (i32, all tensors). `emptyFirst` is gguf-split's --no-tensor-first-split;
 * `tensorsCount` overrides split.tensors.count (a lying file).
 */
export async function splitGGUF(bytes: Uint8Array, perPart: number, options: { emptyFirst?: boolean; tensorsCount?: number } = {}): Promise<Uint8Array<ArrayBuffer>[]> {
  const file = await readGGUF(bytesSource(bytes));
  const tensors: TensorToWrite[] = file.tensors.map((t) => ({
    name: t.name, dims: t.dims, type: t.type, data: bytes.subarray(file.dataOffset + t.offset, file.dataOffset + t.offset + t.byteSize),
  }));
  const groups: TensorToWrite[][] = options.emptyFirst ? [[]] : [];
  for (let i = 0; i < tensors.length; i += perPart) groups.push(tensors.slice(i, i + perPart));
  const metadata: [string, TypedValue][] = [...file.metadata].map(([k, v]) => [k, typed(v)]);
  return groups.map((group, no) => writeGGUF([
    ...(no === 0 ? metadata : []),
    ['split.no', { type: 'u16', value: no }],
    ['split.count', { type: 'u16', value: groups.length }],
    ['split.tensors.count', { type: 'i32', value: options.tensorsCount ?? tensors.length }],
  ], group, file.alignment) as Uint8Array<ArrayBuffer>);
}

/** Writes parts as PREFIX-0000i-of-0000n.gguf in a new temporary folder; returns their paths. */
export function writeParts(parts: Uint8Array[], prefix: string): { names: string[]; paths: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'webgguf-split-'));
  const pad = (n: number) => String(n).padStart(5, '0');
  const names = parts.map((_, i) => `${prefix}-${pad(i + 1)}-of-${pad(parts.length)}.gguf`);
  const paths = names.map((n, i) => {
    const path = join(dir, n);
    writeFileSync(path, parts[i]!);
    return path;
  });
  return { names, paths };
}
