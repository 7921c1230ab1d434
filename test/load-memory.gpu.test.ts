/**
 * The JS heap while a model loads stays bounded, whatever the model's size: weights stream from
 * the source through read-ahead, repacking (4 MiB chunks) and the weight cache's writes to the
 * GPU, and no stage keeps a whole tensor. Measured on the path a browser worker takes (an HTTP
 * URL, range requests, read-ahead, the cache's tee into a store), on a GGUF of a few hundred MB
 * whose tensor data is a sparse file of zeros (instant to make; loading does not look at values).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { serveFile } from '../scripts/serve-file.mjs';
import type { KeyValueStore } from '../src/cache/store.js';
import { createEngine } from '../src/node/index.js';
import { testGpu } from './helpers/gpu.js';
import { HAVE_MODELS } from './helpers/models.js';
import { writeSparseLlama } from './helpers/sparse-model.js';

/** The bound docs/RELIABILITY.md states: read-ahead (64 MiB at most) plus a few chunks in flight. */
const HEAP_BOUND = 96 * 2 ** 20;
const MiB = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

let dir: string;
let server: Server;
let url: string;
let fileBytes = 0;

/** A store that keeps the cache's records but not the weight bytes, so only the load's own copies are measured. */
function bytelessStore(): KeyValueStore {
  const map = new Map<string, unknown>();
  // A stored chunk is a record whose `words` hold the weights.
  const strip = (v: unknown) => (v && typeof v === 'object' && 'words' in v ? { ...v, words: new Uint32Array(0) } : v);
  return {
    get: async (key: string) => map.get(key),
    setMany: async (entries: [string, unknown][]) => void entries.forEach(([k, v]) => map.set(k, strip(v))),
    delMany: async (keys: string[]) => void keys.forEach((k) => map.delete(k)),
    keys: async () => [...map.keys()],
  } as KeyValueStore;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'webgguf-heap-'));
  const path = join(dir, 'wide-q4_0.gguf');
  // TinyLlama's width, 12 layers, a small vocabulary: 292 MB of Q4_0 zeros.
  fileBytes = writeSparseLlama(path, { dim: 2048, layers: 12, heads: 16, kvHeads: 4, ffn: 5632, vocab: 512, context: 512 }, 512);
  server = createServer((req, res) => serveFile(req, res, path));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/wide-q4_0.gguf`;
});

afterAll(async () => {
  await new Promise((r) => server?.close(r));
  rmSync(dir, { recursive: true, force: true });
});

test.skipIf(!HAVE_MODELS)('loading a ~300 MB model from a URL keeps the JS heap within the stated bound', async () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc (vitest.config sets it)');
  const gpu = await testGpu();
  const engine = await createEngine({ gpu: async () => gpu, store: bytelessStore() });
  try {
    gc();
    const used = () => { const m = process.memoryUsage(); return m.heapUsed + m.arrayBuffers; };
    const base = used();
    let peak = 0;
    const sample = () => { peak = Math.max(peak, used() - base); };
    const timer = setInterval(sample, 5);
    await engine.load(url, { onProgress: sample });
    clearInterval(timer);
    console.log(`file ${MiB(fileBytes)}: peak JS heap + ArrayBuffers above the start ${MiB(peak)} (bound ${MiB(HEAP_BOUND)})`);
    expect(fileBytes).toBeGreaterThan(3 * HEAP_BOUND);
    expect(peak).toBeLessThan(HEAP_BOUND);
  } finally {
    await engine.dispose();
  }
});
