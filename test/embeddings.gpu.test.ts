/**
 * Embeddings from encoder models (BERT, nomic-bert) and decoders used for embeddings (qwen3 with
 * last-token pooling, gemma-embedding) against llama.cpp (@wllama/wllama 3.13.0's wasm build, CPU
 * backend, in Chromium): generated BERTs (scripts/make-bert.ts) with the real BERT uncased
 * WordPiece vocabulary, mean and CLS pooling, at F32, F16, Q8_0 and Q4_K_M. llama.cpp tokenizes
 * each text itself, runs the model with the file's own pooling and L2-normalizes; our engine does
 * the same through engine.embeddings.create, and the two vectors must point the same way.
 *
 * Bounds: llama.cpp's CPU path rounds activations to f16 for F16 weights and to 8 bits for the
 * quantized types (and its GELU reads an f16 table), where we keep f32. Measured with wllama 3.13.0
 * on these models (worst cosine over the texts): F16 1 - 1.3e-6, Q8_0 1 - 9.2e-5, Q4_K_M
 * 1 - 1.0e-3, nomic Q8_0 1 - 1.3e-4, qwen3-embedding Q8_0 1 - 1.3e-4, gemma-embedding Q8_0
 * 1 - 6.7e-5 and F16 1 - 1e-7. Without EOS added (Qwen3-Embedding's pooled token) the token counts
 * differ; without EmbeddingGemma's symmetric windows the cosines fall to 0.75-0.95. The bounds
 * leave headroom; causal attention instead of bidirectional moves the cosines to 0.69-0.81,
 * adjacent-pair RoPE instead of NEOX (nomic) to 0.78-0.87.
 *
 * Real shapes (REAL_SHAPES: each model's width, heads, head width, FFN, vocabulary size and
 * tokenizer metadata, a few layers deep; EmbeddingGemma's and Qwen's vocabularies are the
 * generator's stand-ins, SentencePiece and GPT-2 BPE with their special tokens), measured the same
 * way: EmbeddingGemma-300M Q4_K_M 1 - 1.1e-4, Qwen3-Embedding-0.6B F16 1 - 4e-7 and Q4_K_M
 * 1 - 2.6e-4, nomic-embed-text-v1.5 F16 1 - 2e-7, bge-small-en-v1.5 F16 1 - 5e-7 (over all five
 * texts, Qwen3-Embedding two layers deep: EmbeddingGemma Q4_K_M 1 - 1.2e-4, Qwen3-Embedding Q4_K_M
 * 1 - 4.4e-4). The bounds keep 5-10x headroom at Q4_K_M and 250x at F16; at these shapes causal
 * attention in EmbeddingGemma gives 0.76-0.83, and mean pooling in Qwen3-Embedding instead of its
 * last token 0.34-0.44. EmbeddingGemma's real shape runs at Q4_K_M only (F16 in small): at F16 its
 * 262144 x 768 table makes a 450 MiB file, 30-60 s more of CI here.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { BERT_SHAPES, makeBertModel } from '../scripts/make-bert.js';
import { makeModel, TINY_SHAPES } from '../scripts/make-model.js';
import type { EmbedBenchResult } from '../src/node/embed-bench.js';
import { cosineSimilarity, createEngine, type EmbeddingResponse, type Engine } from '../src/node/index.js';
import { HAVE_CHROMIUM } from './helpers/browser.js';
import { testGpu } from './helpers/gpu.js';
import { llamaCppEmbeddings } from './helpers/llamacpp.js';
import { HAVE_MODELS } from './helpers/models.js';

const BIN = fileURLToPath(new URL('../bin/webgguf.js', import.meta.url));

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

const TEXTS = [
  'Hello world',
  'The quick brown fox jumps over the lazy dog.',
  'Café déjà vu: naïve résumés, 42 times!',
  'a',
  'Search over a user\'s own notes, without sending them anywhere, is the other thing people run local models for. ' +
    'The embedding models people use are small and published as GGUF.',
];
/** Per model: [shape, quant, the least cosine against llama.cpp]. */
const CASES = [
  ['tiny-bert', 'f32', 0.9999], ['tiny-bert-cls', 'f16', 0.9999], ['tiny-bert', 'q8_0', 0.999], ['tiny-bert-cls', 'q4_k_m', 0.995],
  // nomic-bert: RoPE, fused qkv (row views of one quantized tensor), SwiGLU.
  ['tiny-nomic', 'q8_0', 0.999],
  // Decoders used for embeddings (scripts/make-model.ts): Qwen3-Embedding's form (qwen3 with
  // last-token pooling, EOS added and pooled); EmbeddingGemma (gemma-embedding: Gemma 3 blocks
  // without the causal mask, symmetric windows, mean pooling, dense_2/dense_3).
  ['qwen3-embedding', 'q8_0', 0.999], ['gemma-embedding', 'q8_0', 0.999], ['gemma-embedding', 'f16', 0.9999],
  // The real models' shapes (REAL_SHAPES), a few layers deep.
  ['embeddinggemma-300m', 'q4_k_m', 0.999], ['qwen3-embedding-0.6b', 'f16', 0.9999], ['qwen3-embedding-0.6b', 'q4_k_m', 0.998],
  ['nomic-embed-text-v1.5', 'f16', 0.9999], ['bge-small-en-v1.5', 'f16', 0.9999],
] as const;

/**
 * Real embedding models at their real width, heads, head width, FFN, vocabulary and tokenizer
 * metadata, with only the first layers (the vocabulary tables' rows repeat after a prime period,
 * so a 262k-row file is written in seconds). EmbeddingGemma keeps six layers: llama.cpp fails
 * (GGML_ASSERT(buffer) in the attention mask's set_input) on a gemma-embedding whose layers are
 * all sliding ones, and the sixth is its first global layer.
 */
const REAL_SHAPES: Record<string, (quant: string) => Promise<Uint8Array>> = {
  'embeddinggemma-300m': (quant) => makeModel({ arch: 'gemma-embedding', shape: 'embeddinggemma-300m', quant, layers: 6, tableRowPeriod: 8191 }),
  'qwen3-embedding-0.6b': (quant) => makeModel({ arch: 'qwen3', shape: 'qwen3-0.6b', quant, pooling: 'last', layers: 1, tableRowPeriod: 8191 }),
  'nomic-embed-text-v1.5': (quant) => makeBertModel({ shape: 'nomic-embed-text-v1.5', quant, layers: 2 }),
  'bge-small-en-v1.5': (quant) => makeBertModel({ shape: 'bge-small-en-v1.5', quant, layers: 2 }),
};

/**
 * The real shapes embed two of the texts: their cost is per token (SwiftShader), and the shapes,
 * not the texts, are what they add (both texts have words split into pieces; the second, accents).
 */
const REAL_TEXTS = TEXTS.slice(1, 3);
const textsOf = (shape: string): string[] => (shape in REAL_SHAPES ? REAL_TEXTS : TEXTS);

function makeCase(shape: string, quant: string): Promise<Uint8Array> {
  if (shape === 'qwen3-embedding') return makeModel({ arch: 'qwen3', shape: TINY_SHAPES.qwen3, quant, pooling: 'last' });
  if (shape === 'gemma-embedding') return makeModel({ arch: 'gemma-embedding', shape: TINY_SHAPES['gemma-embedding'], quant });
  return REAL_SHAPES[shape]?.(quant) ?? makeBertModel({ shape, quant });
}

describe.skipIf(!HAVE_MODELS || !HAVE_CHROMIUM)('embeddings vs llama.cpp (wllama 3.13.0)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'webgguf-embed-'));
  const paths = CASES.map(([shape, quant]) => join(dir, `${shape}-${quant}.gguf`));
  /** A tiny BERT named as bge-small-en-v1.5 is (general.basename), which gives it bge's query prefix. */
  const namedBge = join(dir, 'named-bge.gguf');
  let oracle: { tokens: number; embedding: number[] }[][];
  let engine: Engine;

  beforeAll(async () => {
    for (const [i, [shape, quant]] of CASES.entries()) writeFileSync(paths[i]!, await makeCase(shape, quant));
    writeFileSync(namedBge, await makeBertModel({ shape: 'tiny-bert', quant: 'f32', basename: 'bge-small-en-v1.5' }));
    oracle = await llamaCppEmbeddings(paths, CASES.map(([shape]) => textsOf(shape)), { context: BERT_SHAPES['tiny-bert']!.context });
    const gpu = await testGpu();
    engine = await createEngine({ gpu: async () => gpu });
  }, 600_000);

  afterAll(async () => {
    await engine?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  test.each(CASES.map((c, i) => [...c, i] as const))('%s %s: cosine with llama.cpp at least %s per text', async (shape, quant, bound, i) => {
    await engine.load(paths[i]!);
    const response = await engine.embeddings.create({ input: textsOf(shape) });
    const cosines = response.data.map((d, t) => cosineSimilarity(d.embedding as number[], oracle[i]![t]!.embedding));
    // Same tokens as llama.cpp's WordPiece, CLS and SEP included.
    expect(response.usage.prompt_tokens).toBe(oracle[i]!.reduce((n, o) => n + o.tokens, 0));
    console.log(`${shape} ${quant}: cosines with llama.cpp ${cosines.map((c) => c.toFixed(7)).join(' ')}`);
    expect(Math.min(...cosines), `cosines ${cosines.map((c) => c.toFixed(6)).join(' ')}`).toBeGreaterThanOrEqual(bound);
    // Every embedding model refuses chat (a decoder whose file names a pooling too).
    const chat = engine.chat.completions.create({ messages: [{ role: 'user', content: 'hi' }] });
    expect(await chat.then(() => 'resolved', (e: { code?: string }) => e.code)).toBe('invalid-argument');
  }, 180_000);

  test('inputs packed into one pass (block-diagonal attention) equal the same inputs one by one', async () => {
    // More tokens than one pass of the tiny models' 128 holds: two passes.
    const inputs = [...TEXTS, ...[1, 2, 3].map((i) => `${i} ${TEXTS[4]}`)];
    for (const shape of ['tiny-bert', 'tiny-nomic']) {
      await engine.load(paths[CASES.findIndex((c) => c[0] === shape)]!);
      const packed = await engine.embeddings.create({ input: inputs });
      expect(packed.usage.prompt_tokens).toBeGreaterThan(BERT_SHAPES[shape]!.context);
      for (const [i, text] of inputs.entries()) {
        const alone = await engine.embeddings.create({ input: text });
        expect(cosineSimilarity(packed.data[i]!.embedding as number[], alone.data[0]!.embedding as number[]), `${shape} input ${i}`).toBeGreaterThan(1 - 1e-5);
      }
    }
  }, 60_000);

  test('engine.estimate answers for embedding models: weights and work buffers, as the load allocates them', async () => {
    for (const i of [0, CASES.findIndex((c) => c[0] === 'gemma-embedding')]) {
      const estimate = await engine.estimate(paths[i]!, { speed: false });
      expect(estimate.fits, estimate.reasons.join('; ')).toBe(true);
      expect(estimate.workBytes).toBeGreaterThan(0);
      const info = await engine.load(paths[i]!);
      expect(estimate.architecture).toBe(info.architecture);
      expect(estimate.peakGpuBytes / info.bytesOnGpu, CASES[i]![0]).toBeGreaterThan(0.9);
      expect(estimate.peakGpuBytes / info.bytesOnGpu, CASES[i]![0]).toBeLessThan(1.1);
    }
  }, 60_000);

  test('input_type: the query or document prefix of the model family the file names', async () => {
    // input_type: the family's prefix (from general.basename) before each input; none without one.
    await engine.load(paths[0]!);
    const plain = await engine.embeddings.create({ input: 'one text' });
    expect((await engine.embeddings.create({ input: 'one text', input_type: 'query' })).data[0]!.embedding).toEqual(plain.data[0]!.embedding);
    await engine.load(namedBge);
    const query = await engine.embeddings.create({ input: ['one text'], input_type: 'query' });
    const spelled = await engine.embeddings.create({ input: ['Represent this sentence for searching relevant passages: one text'] });
    expect(query.data[0]!.embedding).toEqual(spelled.data[0]!.embedding);
    expect(query.usage.prompt_tokens).toBeGreaterThan(4);
    expect((await engine.embeddings.create({ input: 'one text', input_type: 'document' })).usage.prompt_tokens).toBe(4);
  }, 60_000);

  test('the OpenAI response shape; dimensions and base64; typed errors', async () => {
    await engine.load(paths[0]!);
    const r = await engine.embeddings.create({ input: ['one text', 'another'], model: 'ignored' });
    expect(r.object).toBe('list');
    expect(r.data.map((d) => [d.object, d.index])).toEqual([['embedding', 0], ['embedding', 1]]);
    const v = r.data[0]!.embedding as number[];
    expect(v).toHaveLength(BERT_SHAPES['tiny-bert']!.dim);
    expect(Math.hypot(...v)).toBeCloseTo(1, 5);
    expect(r.usage.total_tokens).toBe(r.usage.prompt_tokens);
    expect(r.usage.prompt_tokens).toBe(4 + 3); // [CLS] one text [SEP], [CLS] another [SEP]

    // Matryoshka: the first 32 values, renormalized; base64 carries the same floats.
    const short = await engine.embeddings.create({ input: 'one text', dimensions: 32 });
    const s = short.data[0]!.embedding as number[];
    expect(s).toHaveLength(32);
    expect(Math.hypot(...s)).toBeCloseTo(1, 5);
    const norm32 = Math.hypot(...v.slice(0, 32));
    s.forEach((x, k) => expect(x).toBeCloseTo(v[k]! / norm32, 5));
    const b64 = await engine.embeddings.create({ input: 'one text', encoding_format: 'base64' });
    const bytes = Uint8Array.from(atob(b64.data[0]!.embedding as string), (c) => c.charCodeAt(0));
    expect(Array.from(new Float32Array(bytes.buffer))).toEqual(Array.from(Float32Array.from(v)));

    const code = (p: Promise<unknown>) => p.then(() => 'resolved', (e: { code?: string }) => e.code);
    expect(await code(engine.embeddings.create({ input: '' }))).toBe('invalid-argument');
    expect(await code(engine.embeddings.create({ input: [] }))).toBe('invalid-argument');
    expect(await code(engine.embeddings.create({ input: 'x', dimensions: 0 }))).toBe('invalid-argument');
    expect(await code(engine.embeddings.create({ input: 'x', dimensions: 10_000 }))).toBe('invalid-argument');
    expect(await code(engine.embeddings.create({ input: 'x', encoding_format: 'hex' as 'float' }))).toBe('invalid-argument');
    expect(await code(engine.embeddings.create({ input: ['fits', 'word '.repeat(200)] }))).toBe('context-overflow');
    // An embedding model makes no text, and a text model no embeddings.
    expect(await code(engine.chat.completions.create({ messages: [{ role: 'user', content: 'hi' }] }))).toBe('invalid-argument');
    await engine.load('../shared/models/stories260K/stories260K-f32.gguf');
    expect(await code(engine.embeddings.create({ input: 'hi' }))).toBe('invalid-argument');
  }, 60_000);

  test("README's embeddings example runs as written (test/consumer/node/embed.js, on the built package)", async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'webgguf-readme-'));
    try {
      copyFileSync(paths[0]!, join(cwd, 'bge-small-en-v1.5-q8_0.gguf'));
      const script = fileURLToPath(new URL('./consumer/node/embed.js', import.meta.url));
      const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
        execFile(process.execPath, [script], { cwd }, (error, stdout, stderr) => resolve({ code: error ? 1 : 0, stdout, stderr })));
      expect(code, stderr).toBe(0);
      const lines = stdout.trim().split('\n');
      expect(lines).toHaveLength(3);
      const scores = lines.map((l) => Number(l.split(' ')[0]));
      expect([...scores].sort((a, b) => b - a)).toEqual(scores);
      for (const l of lines) expect(l).toMatch(/^-?\d\.\d{3} (The|Buy) /);
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  }, 60_000);

  test('webgguf embed: the same vectors on the command line, as JSON or as text with their similarities', async () => {
    const texts = ['the cat sat', 'a dog ran'];
    await engine.load(paths[0]!);
    const expected = await engine.embeddings.create({ input: texts });
    const json = await cli(['embed', '-m', paths[0]!, '--text', texts[0]!, '--text', texts[1]!, '--json']);
    expect(json.code, json.stderr).toBe(0);
    const out = JSON.parse(json.stdout) as EmbeddingResponse;
    expect(out.usage).toEqual(expected.usage);
    out.data.forEach((d, i) => expect(cosineSimilarity(d.embedding as number[], expected.data[i]!.embedding as number[])).toBeGreaterThan(0.99999));
    const text = await cli(['embed', '-m', paths[0]!, '--text', texts[0]!, '--text', texts[1]!, '--dimensions', '8']);
    expect(text.code, text.stderr).toBe(0);
    const lines = text.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^embedding 0:( -?\d\.\d{6}){8}$/);
    expect(lines[2]).toBe('cosine similarities:');
    expect(lines[3]!.trim().split(/\s+/)[0]).toBe('1.000');

    // --input-type: the prefix embeddings.create's input_type puts before each text (bge's query instruction).
    await engine.load(namedBge);
    const query = await engine.embeddings.create({ input: texts, input_type: 'query' });
    const cliQuery = await cli(['embed', '-m', namedBge, '--text', texts[0]!, '--text', texts[1]!, '--input-type', 'query', '--json']);
    expect(cliQuery.code, cliQuery.stderr).toBe(0);
    const outQuery = JSON.parse(cliQuery.stdout) as EmbeddingResponse;
    expect(outQuery.usage).toEqual(query.usage);
    expect(outQuery.usage.prompt_tokens).toBeGreaterThan(out.usage.prompt_tokens);
    outQuery.data.forEach((d, i) => expect(cosineSimilarity(d.embedding as number[], query.data[i]!.embedding as number[])).toBeGreaterThan(0.99999));
    // Checked before the GPU starts: a usage error (exit status 2).
    const wrong = await cli(['embed', '-m', namedBge, '--text', 'x', '--input-type', 'question']);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/--input-type must be query or document, got "question"/);
  }, 90_000);

  test('webgguf bench on a decoder embedding model (Qwen3-Embedding, EmbeddingGemma) times embeddings, as on a BERT', async () => {
    for (const shape of ['qwen3-embedding', 'gemma-embedding']) {
      const r = await cli(['bench', '-m', paths[CASES.findIndex((c) => c[0] === shape)]!, '--prompt-tokens', '16', '--inputs', '2', '--runs', '1', '--json']);
      expect(r.code, r.stderr).toBe(0);
      const result = JSON.parse(r.stdout) as EmbedBenchResult;
      expect([result.input_tokens, result.inputs, result.runs], shape).toEqual([16, 2, 1]);
      expect(result.inputs_per_s, shape).toBeGreaterThan(0);
      expect(result.tokens_per_s / result.inputs_per_s, shape).toBeCloseTo(16, 6);
      expect(result.gpu_bytes, shape).toBeGreaterThan(0);
    }
  }, 90_000);
});
