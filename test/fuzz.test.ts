/**
 * A seeded mutation fuzzer over every GGUF in ../shared/models. Each mutated file goes through
 * the whole CPU side of a load (header, config, tokenizer, weight planning and repacking); every
 * case must end in a typed error or a load, never a crash, a hang or a huge allocation.
 * FUZZ_CASES=100000 runs more on demand.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { WebGGUFError } from '../src/errors.js';
import { readGGUF } from '../src/gguf/gguf.js';
import { bytesSource } from '../src/io/byte-source.js';
import { readConfig } from '../src/model/config.js';
import { planWeights, repackWeights } from '../src/model/weights.js';
import { GGUFTokenizer } from '../src/tokenizer/tokenizer.js';
import { rng } from './helpers/gpu.js';
import { HAVE_MODELS, MODELS } from './helpers/models.js';

const CASES = Number(process.env.FUZZ_CASES ?? 10_000);

function ggufFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? ggufFiles(`${dir}${e.name}/`) : e.name.endsWith('.gguf') ? [`${dir}${e.name}`] : []);
}

/** Offsets of the header's structure (counts, lengths, types, dims, offsets) worth aiming at. */
function interestingOffsets(bytes: Uint8Array, limit: number): number[] {
  const out = [8, 16, 24];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 24; i + 8 <= limit; i += 4) {
    const v = view.getUint32(i, true);
    if (v > 0 && v < 1 << 20 && view.getUint32(i + 4, true) === 0) out.push(i);
  }
  return out;
}

type Mutation = (b: Uint8Array, r: () => number, aims: number[], headerEnd: number) => Uint8Array;
const pick = <T>(xs: T[], r: () => number): T => xs[Math.floor(r() * xs.length)]!;
const HUGE = [0xffffffffn, 1n << 32n, 1n << 40n, 1n << 53n, 1n << 63n, 0xffffffffffffffffn, 0n, 1n, 7n];
const MUTATIONS: [string, Mutation][] = [
  ['truncate', (b, r) => b.slice(0, Math.floor(r() * b.length))],
  ['flip bytes', (b, r, _a, h) => {
    const c = b.slice();
    for (let n = 1 + Math.floor(r() * 8); n > 0; n--) {
      const i = Math.floor(r() * Math.min(c.length, h + 64));
      c[i] = c[i]! ^ (1 << Math.floor(r() * 8));
    }
    return c;
  }],
  ['huge count or length', (b, r, aims) => {
    const c = b.slice();
    new DataView(c.buffer).setBigUint64(pick(aims, r), pick(HUGE, r), true);
    return c;
  }],
  ['huge u32 (type, dims, counts)', (b, r, aims) => {
    const c = b.slice();
    new DataView(c.buffer).setUint32(pick(aims, r) + (r() < 0.5 ? 0 : 4), Math.floor(r() * 2 ** 32), true);
    return c;
  }],
  ['unknown value or tensor type', (b, r, aims) => {
    const c = b.slice();
    new DataView(c.buffer).setUint32(pick(aims, r), 13 + Math.floor(r() * 100), true);
    return c;
  }],
  ['offset past the end or misaligned', (b, r, aims) => {
    const c = b.slice();
    new DataView(c.buffer).setBigUint64(pick(aims, r), BigInt(b.length + Math.floor(r() * 1e6)) + (r() < 0.5 ? 1n : 0n), true);
    return c;
  }],
  ['garbage tensor data', (b, r, _a, h) => {
    const c = b.slice();
    for (let i = h; i < c.length; i += 1 + Math.floor(r() * 64)) c[i] = Math.floor(r() * 256);
    return c;
  }],
];

/** The CPU side of a model load; GPU upload is covered by the model and engine tests. */
async function loadOnCpu(bytes: Uint8Array): Promise<'loaded' | 'vocab-only'> {
  const file = await readGGUF(bytesSource(bytes, 'fuzz.gguf'));
  if (file.metadata.has('tokenizer.ggml.model')) GGUFTokenizer.fromGGUF(file);
  if (!file.tensors.length) return 'vocab-only';
  const config = readConfig(file);
  for await (const chunk of repackWeights(file, planWeights(file, config))) void chunk;
  return 'loaded';
}

describe.skipIf(!HAVE_MODELS)('GGUF fuzzer', () => {
  test(`${CASES} seeded mutations end in a typed error or a load`, async () => {
    const files = ggufFiles(MODELS).map((path) => {
      const bytes = new Uint8Array(readFileSync(path));
      return { path, bytes, aims: interestingOffsets(bytes, Math.min(bytes.length, 1 << 16)) };
    });
    // Small files get most of the cases: the big vocabularies cost far more per parse.
    const weighted = files.flatMap((f) => (f.bytes.length < 1.5e6 ? [f, f, f, f, f, f, f, f] : [f]));
    const random = rng(20261128);
    const outcomes = new Map<string, number>();
    const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
    gc();
    // Counts are checked before anything is allocated, so nothing accumulates across cases.
    const heapLimit = process.memoryUsage().heapUsed + 64 * 2 ** 20;
    for (let n = 0; n < CASES; n++) {
      const f = pick(weighted, random);
      const headerEnd = Math.min(f.bytes.length, 1 << 16);
      const [name, mutate] = pick(MUTATIONS, random);
      const mutated = mutate(f.bytes, random, f.aims, headerEnd);
      const started = performance.now();
      let outcome: string;
      try {
        outcome = await loadOnCpu(mutated);
      } catch (e) {
        if (!(e instanceof WebGGUFError)) {
          throw new Error(`case ${n} (${name} on ${f.path.split('/').pop()}): untyped ${(e as Error)?.name}: ${(e as Error)?.message}`);
        }
        outcome = e.code;
      }
      const ms = performance.now() - started;
      if (ms > 5000) throw new Error(`case ${n} (${name} on ${f.path}) took ${ms.toFixed(0)} ms`);
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      if (n % 500 === 0) {
        gc();
        if (process.memoryUsage().heapUsed > heapLimit) throw new Error(`case ${n}: the heap grew past its bound`);
      }
    }
    console.log(`fuzz outcomes over ${CASES} cases:`, Object.fromEntries([...outcomes].sort((a, b) => b[1] - a[1])));
    expect([...outcomes.values()].reduce((a, b) => a + b, 0)).toBe(CASES);
    expect(outcomes.get('loaded') ?? 0).toBeGreaterThan(0);
  }, 600_000);
});
