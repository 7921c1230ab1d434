/**
 * engine.estimate: will a model run here, before downloading it. Memory from the header alone
 * (a local server counts the bytes), the device's limits and the engine's budget, each refusal
 * with its reason, and the budget enforced by load before any weight byte is fetched.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { memoryStore } from '../src/cache/store.js';
import { createEngine as createEngineIn, defaultGpuBudget } from '../src/engine/engine.js';
import { bench, type BenchResult } from '../src/node/bench.js';
import { nodeGpuContext } from '../src/node/gpu.js';
import { makeModel, SHAPES, TINY_SHAPES } from '../scripts/make-model.js';
import { testGpu } from './helpers/gpu.js';
import { ModelServer } from './helpers/model-server.js';
import { writeSparseLlama } from './helpers/sparse-model.js';
import { HAVE_MODELS, storiesPath } from './helpers/models.js';

const MIB = 2 ** 20;

describe.skipIf(!HAVE_MODELS)('engine.estimate', () => {
  const dir = mkdtempSync(join(tmpdir(), 'webgguf-estimate-'));
  const server = new ModelServer();
  let fileBytes = 0;
  let url = '';

  beforeAll(async () => {
    await server.start();
    // TinyLlama-1.1B's shape in Q4_0, about 600 MB, its data a hole in a sparse file.
    fileBytes = writeSparseLlama(join(dir, 'tinyllama.gguf'), SHAPES['tinyllama-1.1b']!);
    server.files.set('tinyllama.gguf', join(dir, 'tinyllama.gguf'));
    url = `${server.origin}/models/tinyllama.gguf`;
  });
  afterAll(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a 600 MB model: its memory from under 1 MB of header, and how it splits', async () => {
    expect(fileBytes).toBeGreaterThan(600e6);
    const engine = await createEngineIn({ worker: false, cache: false, gpu: testGpu, maxGpuBytes: Infinity });
    try {
      server.bytes = 0;
      const e = await engine.estimate(url, { speed: false, contextLength: 1024 });
      expect(server.bytes).toBeLessThan(MIB);
      const s = SHAPES['tinyllama-1.1b']!;
      // f16 keys and values (the default cache) for 22 layers of 1024 positions of 256 values.
      expect(e).toMatchObject({ architecture: 'llama', contextLength: 1024, fileBytes, contextBytes: 2 * s.layers * 1024 * 256 * 2, fits: true, reasons: [], speed: null, budgetBytes: null });
      // The weights as uploaded: within 1% of the file's tensor data (Q4_0 keeps its bytes, in words).
      expect(e.weightBytes / fileBytes).toBeGreaterThan(0.99);
      expect(e.weightBytes / fileBytes).toBeLessThan(1.01);
      expect(e.peakGpuBytes).toBe(e.weightBytes + e.contextBytes + e.workBytes);
      expect(e.largestBufferBytes).toBeLessThanOrEqual(128 * MIB);
    } finally {
      await engine.dispose();
    }
  });

  test('the bench shapes at 4096 tokens: peak GPU bytes within weights + KV cache + 10%', async () => {
    const engine = await createEngineIn({ worker: false, cache: false, gpu: testGpu, maxGpuBytes: Infinity });
    try {
      for (const name of ['smollm2-135m', 'tinyllama-1.1b', 'llama-3.2-1b']) {
        const path = join(dir, `${name}.gguf`);
        writeSparseLlama(path, SHAPES[name]!);
        server.files.set(`${name}.gguf`, path);
        const e = await engine.estimate(`${server.origin}/models/${name}.gguf`, { speed: false, contextLength: 4096 });
        console.log(`${name}: weights ${(e.weightBytes / MIB).toFixed(0)} MiB, KV ${(e.contextBytes / MIB).toFixed(0)} MiB, work ${(e.workBytes / MIB).toFixed(1)} MiB`);
        expect(e.peakGpuBytes, name).toBeLessThanOrEqual(1.1 * (e.weightBytes + e.contextBytes));
      }
    } finally {
      await engine.dispose();
    }
  });

  test('over the budget: the estimate says by how much, and load refuses before fetching a weight byte', async () => {
    const engine = await createEngineIn({ worker: false, cache: false, gpu: testGpu, maxGpuBytes: 300 * MIB });
    try {
      const e = await engine.estimate(url, { speed: true });
      expect(e.fits).toBe(false);
      expect(e.speed).toBeNull();
      expect(e.budgetBytes).toBe(300 * MIB);
      expect(e.reasons).toEqual([expect.stringMatching(/MiB over this engine's budget of 300\.0 MiB/)]);
      server.bytes = 0;
      await expect(engine.load(url)).rejects.toMatchObject({ code: 'insufficient-memory', message: expect.stringMatching(/over this engine's budget/) });
      expect(server.bytes).toBeLessThan(MIB);
    } finally {
      await engine.dispose();
    }
  });

  test("over the device's binding limit: the buffer that does not fit is named", async () => {
    const phone = await nodeGpuContext({ limitOverrides: { maxStorageBufferBindingSize: 32 * MIB, maxBufferSize: 64 * MIB } });
    const engine = await createEngineIn({ worker: false, cache: false, gpu: async () => phone, maxGpuBytes: Infinity });
    try {
      const e = await engine.estimate(url);
      expect(e.fits).toBe(false);
      expect(e.reasons).toEqual([expect.stringMatching(/needs [\d.]+ MiB in one buffer, and the GPU allows 32\.0 MiB/)]);
    } finally {
      await engine.dispose();
      phone.device.destroy();
    }
  });

  test('a cached model is estimated from its stored header, with no request', async () => {
    const store = memoryStore();
    const engine = await createEngineIn({ worker: false, cache: true, store, gpu: testGpu });
    try {
      server.files.set('stories.gguf', storiesPath('q8_0'));
      const storiesUrl = `${server.origin}/models/stories.gguf`;
      const info = await engine.load(storiesUrl);
      const requests = server.requests;
      const e = await engine.estimate({ cached: info.id }, { speed: false });
      expect(server.requests).toBe(requests);
      expect(e).toMatchObject({ architecture: 'llama', fits: true, model: storiesUrl });
      await expect(engine.estimate({ cached: 'nothing-here' })).rejects.toMatchObject({ code: 'not-found' });
    } finally {
      await engine.dispose();
    }
  });

  test('speed: measured on this device over samples of the model, then remembered in the store', async () => {
    const store = memoryStore();
    const engine = await createEngineIn({ worker: false, cache: true, store, gpu: testGpu });
    try {
      const e = await engine.estimate(new File([readFileSync(storiesPath('q4_0'))], 'stories260K-q4_0.gguf'), { promptTokens: 100 });
      expect(e.fits).toBe(true);
      expect(e.speed).toMatchObject({ promptTokens: 100, decodeTokS: expect.any(Number), prefillTokS: expect.any(Number), ttftMs: expect.any(Number) });
      expect(e.speed!.decodeTokS).toBeGreaterThan(0);
      expect(e.speed!.ttftMs).toBeCloseTo((100 * 1000) / e.speed!.prefillTokS, 6);
      expect((await store.keys()).filter((k) => k.startsWith('speed/'))).toHaveLength(1);
      const again = await createEngineIn({ worker: false, cache: true, store, gpu: testGpu });
      try {
        const second = await again.estimate(new File([readFileSync(storiesPath('q4_0'))], 'stories260K-q4_0.gguf'), { promptTokens: 100 });
        expect(second.speed).toEqual(e.speed);
      } finally {
        await again.dispose();
      }
    } finally {
      await engine.dispose();
    }
  });

  test('an estimate aborted while its speed probe runs rejects with aborted within a step of the probe', async () => {
    // SmolLM2-135M's shape (the demo's smallest preset): a probe of tens of seconds on a CPU adapter, in steps of a second or two.
    writeSparseLlama(join(dir, 'smollm2.gguf'), SHAPES['smollm2-135m']!);
    server.files.set('smollm2.gguf', join(dir, 'smollm2.gguf'));
    const engine = await createEngineIn({ worker: false, cache: false, gpu: testGpu, maxGpuBytes: Infinity });
    try {
      const abort = new AbortController();
      const requests = server.requests;
      const settled = engine.estimate(`${server.origin}/models/smollm2.gguf`, { signal: abort.signal }).then(() => 'resolved', (e: unknown) => e);
      // The header's requests, then the probe: aborted a moment into it.
      while (server.requests === requests) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, 1000));
      const abortedAt = performance.now();
      abort.abort();
      expect(await settled).toMatchObject({ code: 'aborted', message: expect.stringContaining('estimate was aborted') });
      const settledMs = performance.now() - abortedAt;
      console.log(`estimate settled ${settledMs.toFixed(0)} ms after its abort`);
      expect(settledMs).toBeLessThan(15_000);
    } finally {
      await engine.dispose();
    }
  });

  test('max_prefill_ms: a prompt that would take longer fails fast with timeout; within it, it runs', async () => {
    const engine = await createEngineIn({ worker: false, cache: false, gpu: testGpu });
    try {
      await engine.load(new File([readFileSync(storiesPath('q4_0'))], 'stories260K-q4_0.gguf'));
      const long = 'Once upon a time there was a little girl who liked to play in the park with her dog. '.repeat(13);
      const messages = [{ role: 'user' as const, content: long }];
      const t0 = performance.now();
      await expect(engine.chat.completions.create({ messages, max_tokens: 4, max_prefill_ms: 0.5 })).rejects.toMatchObject({
        code: 'timeout', message: expect.stringMatching(/would take about \d+ ms to process here .* over max_prefill_ms 0\.5/),
      });
      // Refused after its first chunk or two, not at the end of the prompt.
      const failedAfter = performance.now() - t0;
      const t1 = performance.now();
      const whole = await engine.chat.completions.create({ messages, max_tokens: 4, temperature: 0, max_prefill_ms: 600_000 });
      expect(whole.choices[0]!.finish_reason).toBe('length');
      expect(failedAfter).toBeLessThan(performance.now() - t1);
      // The cut-off prefill left nothing behind: the same request without a limit gives the same reply.
      const again = await engine.chat.completions.create({ messages, max_tokens: 4, temperature: 0 });
      expect(again.choices[0]!.message.content).toBe(whole.choices[0]!.message.content);
      await expect(engine.chat.completions.create({ messages, max_prefill_ms: -1 })).rejects.toMatchObject({ code: 'invalid-argument', message: expect.stringContaining('max_prefill_ms') });
    } finally {
      await engine.dispose();
    }
  });

  // The prediction against the measurement (as `webgguf bench` prints them: the prediction's
  // samples timed in rounds between the measured runs). stories260K's deeper sample is the whole
  // model (5 layers, 512 rows), so its check is the samples' timing against the run's; the
  // 24-layer model with a 32k vocabulary is predicted from its first 8 layers scaled by their bytes
  // and a head sample, so a prediction that scales layers or the head wrongly is off by 1.5x to 3x.
  // The bound is the issue's ±35%; on a machine with more cores other test files run beside this
  // one, so a pair that misses is measured again, up to three pairs, before the test fails (each
  // is printed); a broken prediction misses every time.
  const predictedCases = [
    { name: 'stories260K q4_0', promptTokens: 128, genTokens: 64, file: async () => storiesPath('q4_0') },
    {
      name: '24 layers, 32k vocabulary, q4_0', promptTokens: 64, genTokens: 32,
      file: async () => {
        const path = join(dir, 'deep-32k.gguf');
        writeFileSync(path, await makeModel({ arch: 'llama', shape: 'tiny-64-32k', quant: 'q4_0', layers: 24 }));
        return path;
      },
    },
  ];
  test.for(predictedCases)('predicted decode and prefill speed within a factor of 1.35 of the measured: $name', { timeout: 600_000 }, async ({ name, file, promptTokens, genTokens }) => {
    const path = await file();
    const within = (r: BenchResult) => [r.predicted_decode_tok_s / r.decode_tok_s, r.predicted_prefill_tok_s / r.prefill_tok_s].every((x) => Math.abs(Math.log(x)) < Math.log(1.35));
    let r = await bench(path, promptTokens, genTokens, 3);
    for (let attempt = 1; ; attempt++) {
      console.log(`${name}, pair ${attempt}: decode ${r.decode_tok_s.toFixed(1)} (predicted ${r.predicted_decode_tok_s.toFixed(1)}), prefill ${r.prefill_tok_s.toFixed(1)} (predicted ${r.predicted_prefill_tok_s.toFixed(1)}) tok/s`);
      if (within(r) || attempt === 3) break;
      r = await bench(path, promptTokens, genTokens, 3);
    }
    expect(r.predicted_decode_tok_s / r.decode_tok_s).toBeGreaterThan(1 / 1.35);
    expect(r.predicted_decode_tok_s / r.decode_tok_s).toBeLessThan(1.35);
    expect(r.predicted_prefill_tok_s / r.prefill_tok_s).toBeGreaterThan(1 / 1.35);
    expect(r.predicted_prefill_tok_s / r.prefill_tok_s).toBeLessThan(1.35);
  });

  // A sample is the model's header cut to its first layers: values per layer (Gemma 4's window
  // pattern and FFN widths), its shared-KV count and per-layer embedding table, and patterns by
  // index (Qwen3.5's DeltaNet layers, Gemma 3's windows) must still describe a valid model.
  test.for(['gemma4', 'qwen35', 'gemma3'] as const)('speed: a 12-layer %s model is predicted from samples of its first layers', { timeout: 300_000 }, async (arch) => {
    const bytes = await makeModel({ arch, shape: TINY_SHAPES[arch], quant: 'q4_0', layers: 12 });
    const engine = await createEngineIn({ worker: false, cache: true, store: memoryStore(), gpu: testGpu });
    try {
      const e = await engine.estimate(new File([bytes as Uint8Array<ArrayBuffer>], `${arch}-12.gguf`), { promptTokens: 16 });
      expect(e.fits).toBe(true);
      for (const rate of [e.speed!.decodeTokS, e.speed!.prefillTokS]) {
        expect(Number.isFinite(rate)).toBe(true);
        expect(rate).toBeGreaterThan(0);
      }
    } finally {
      await engine.dispose();
    }
  });

  test('the default budget: half the memory on phones and small machines, none on others', () => {
    const gib = 2 ** 30;
    expect(defaultGpuBudget({ userAgent: 'Mozilla/5.0 (Linux; Android 14; Pixel 8) Mobile', deviceMemory: 8 })).toBe(4 * gib);
    expect(defaultGpuBudget({ userAgent: 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X)' })).toBe(2 * gib);
    expect(defaultGpuBudget({ userAgent: 'Mozilla/5.0 (X11; Linux x86_64)', deviceMemory: 4 })).toBe(2 * gib);
    expect(defaultGpuBudget({ userAgent: 'Mozilla/5.0 (X11; Linux x86_64)', deviceMemory: 8 })).toBe(Infinity);
    expect(defaultGpuBudget(undefined)).toBe(Infinity);
  });
});
