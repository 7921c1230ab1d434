/**
 * The whole model on the GPU against the f32 CPU reference, on every stories260K file. Both read
 * the same GGUF weights through the same dequantization, so they differ only in f32 rounding
 * and summation order (the reference accumulates in f64).
 *
 * Logit tolerance, 2e-4 absolute: each matmul's f32 sum over K <= 172 terms is off by about
 * K * 2^-24 ~ 1e-5 relative, and 5 layers compound that on logits of magnitude ~10; measured at
 * most 1.4e-5 over all four files. 2e-4 leaves 10x headroom for other adapters' rounding while
 * any real bug (a wrong weight, position, scale or mask) moves logits by 1e-2 or more.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readGGUF, readTensorChunks, type GGUFFile } from '../src/gguf/gguf.js';
import { typed, writeGGUF, type TensorToWrite } from '../src/gguf/writer.js';
import { bytesSource } from '../src/io/byte-source.js';
import { LlamaModel } from '../src/model/llama.js';
import { GGUFTokenizer } from '../src/tokenizer/tokenizer.js';
import { generate } from '../src/generate.js';
import { loadModelFile, openGGUF, type LoadedModel } from '../src/node/load.js';
import { ReferenceModel, argmax } from './helpers/reference.js';
import { testGpu } from './helpers/gpu.js';
import { HAVE_MODELS, STORIES, STORIES_QUANTS, storiesPath } from './helpers/models.js';

const PROMPTS = ['', 'Once upon a time', 'The little dog saw a big', 'Tom and Sue went to the park. They played'];
const LOGIT_TOLERANCE = 2e-4;
/** With the f16 KV cache (the default): measured 8.8e-3 on stories260K f32 (SwiftShader). */
const KV_F16_LOGIT_TOLERANCE = 2e-2;
const STEPS = 128;

/** The reference reads tensors through its own handle on the file. */
async function loadReference(path: string): Promise<ReferenceModel> {
  const { file, close } = await openGGUF(path);
  try {
    return await ReferenceModel.load(file);
  } finally {
    await close();
  }
}

async function referenceGreedy(ref: ReferenceModel, prompt: number[], steps: number): Promise<number[]> {
  let logits: Float32Array = new Float32Array();
  for (let i = 0; i < prompt.length; i++) logits = ref.forward(prompt[i]!, i);
  const out: number[] = [];
  for (let pos = prompt.length; out.length < steps; pos++) {
    const next = argmax(logits);
    out.push(next);
    logits = ref.forward(next, pos);
  }
  return out;
}

describe.skipIf(!HAVE_MODELS)('stories260K on the GPU vs the CPU reference', () => {
  for (const quant of STORIES_QUANTS) {
    describe(quant, () => {
      let loaded: LoadedModel;
      let ref: ReferenceModel;
      beforeAll(async () => {
        loaded = await loadModelFile(storiesPath(quant), { gpu: await testGpu(), kvCache: 'f32' });
        ref = await loadReference(storiesPath(quant));
      });
      afterAll(() => loaded?.dispose());

      test(`${STEPS} greedy tokens match for ${PROMPTS.length} prompts; logits within ${LOGIT_TOLERANCE}`, async () => {
        const { model, tokenizer } = loaded;
        let worst = 0;
        for (const text of PROMPTS) {
          const prompt = tokenizer.encode(text);
          const gpuTokens: number[] = [];
          // The reference has no notion of EOS; generate without stopping by keeping all tokens.
          for await (const t of generate(model, tokenizer, prompt, { temperature: 0, maxTokens: STEPS })) gpuTokens.push(t.token);
          const refTokens = await referenceGreedy(ref, prompt, gpuTokens.length);
          expect(gpuTokens, `prompt ${JSON.stringify(text)}`).toEqual(refTokens);

          // Logits after the whole sequence, through the chunked prefill path.
          const sequence = [...prompt, ...gpuTokens];
          const got = await model.logits(sequence, 0);
          let expected: Float32Array = new Float32Array();
          for (let i = 0; i < sequence.length; i++) expected = ref.forward(sequence[i]!, i);
          for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(got[i]! - expected[i]!));
        }
        console.log(`${quant}: worst logit difference ${worst.toExponential(2)}`);
        expect(worst).toBeLessThan(LOGIT_TOLERANCE);
      });
    });
  }

  test('the f16 KV cache (the default): half the bytes of f32, logits near the f32 reference, the same first tokens', async () => {
    const gpu = await testGpu();
    const half = await loadModelFile(storiesPath('f32'), { gpu });
    const full = await loadModelFile(storiesPath('f32'), { gpu, kvCache: 'f32' });
    try {
      expect(half.model.kvBits).toBe(16);
      await expect(loadModelFile(storiesPath('f32'), { gpu, kvCache: 'f8' as never })).rejects.toMatchObject({ code: 'invalid-argument' });
      expect(half.model.kvCacheBytes * 2).toBe(full.model.kvCacheBytes);
      expect(half.model.bytesOnGpu).toBeLessThan(full.model.bytesOnGpu);
      const ref = await loadReference(storiesPath('f32'));
      const prompt = half.tokenizer.encode('Once upon a time');
      const tokens: number[] = [];
      for await (const t of generate(half.model, half.tokenizer, prompt, { temperature: 0, maxTokens: 32 })) tokens.push(t.token);
      expect(tokens).toEqual(await referenceGreedy(ref, prompt, tokens.length));
      // Keys and values rounded to f16 (relative error 2^-11) move the logits far less than a real
      // bug would (1e-2 or more), but beyond the f32 path's 2e-4.
      const sequence = [...prompt, ...tokens];
      const got = await half.model.logits(sequence, 0);
      let expected: Float32Array = new Float32Array();
      for (let i = 0; i < sequence.length; i++) expected = ref.forward(sequence[i]!, i);
      let worst = 0;
      for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(got[i]! - expected[i]!));
      console.log(`f16 KV cache: worst logit difference ${worst.toExponential(2)}`);
      expect(worst).toBeGreaterThan(0);
      expect(worst).toBeLessThan(KV_F16_LOGIT_TOLERANCE);
    } finally {
      await half.dispose();
      await full.dispose();
    }
  });

  test('the original v2 Q8_0 file, whose blocks straddle rows, runs like its reference', async () => {
    const path = `${STORIES}original/tinyllamas-stories-260k-q8_0.gguf`;
    const loaded = await loadModelFile(path, { gpu: await testGpu(), kvCache: 'f32' });
    try {
      const ref = await loadReference(path);
      const prompt = loaded.tokenizer.encode('Once upon a time');
      const gpuTokens: number[] = [];
      for await (const t of generate(loaded.model, loaded.tokenizer, prompt, { temperature: 0, maxTokens: 64 })) gpuTokens.push(t.token);
      expect(gpuTokens).toEqual(await referenceGreedy(ref, prompt, gpuTokens.length));
    } finally {
      await loaded.dispose();
    }
  });
});

/** stories260K f32's metadata and tensors, to build variant files from. */
async function storiesParts(): Promise<{ plain: GGUFFile; tensors: TensorToWrite[] }> {
  const plain = await readGGUF(bytesSource(new Uint8Array(readFileSync(storiesPath('f32')))));
  const tensors: TensorToWrite[] = [];
  for (const t of plain.tensors) {
    const parts: Uint8Array[] = [];
    for await (const c of readTensorChunks(plain, t)) parts.push(c);
    tensors.push({ name: t.name, dims: t.dims, type: t.type, data: Uint8Array.from(parts.flatMap((p) => [...p])) });
  }
  return { plain, tensors };
}

/**
 * 48 greedy tokens equal the reference's, and the logits after them agree within the tolerance.
 * Returns those logits.
 */
async function expectMatchesReference(model: LlamaModel, file: GGUFFile): Promise<{ logits: Float32Array; sequence: number[] }> {
  const ref = await ReferenceModel.load(file);
  const tokenizer = GGUFTokenizer.fromGGUF(file);
  const prompt = tokenizer.encode('Once upon a time');
  const tokens: number[] = [];
  for await (const t of generate(model, tokenizer, prompt, { temperature: 0, maxTokens: 48 })) tokens.push(t.token);
  expect(tokens).toEqual(await referenceGreedy(ref, prompt, tokens.length));
  const sequence = [...prompt, ...tokens];
  const logits = await model.logits(sequence, 0);
  let expected: Float32Array = new Float32Array();
  for (let i = 0; i < sequence.length; i++) expected = ref.forward(sequence[i]!, i);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(logits[i]! - expected[i]!));
  expect(worst).toBeLessThan(LOGIT_TOLERANCE);
  return { logits, sequence };
}

describe.skipIf(!HAVE_MODELS)('Llama 3 RoPE frequency factors (rope_freqs.weight)', () => {
  test('the GPU follows the reference with factors, and the factors change the output', async () => {
    const { plain, tensors } = await storiesParts();
    const factors = new Float32Array([1, 1.5, 4, 8]); // ropeDim 8: one per pair
    tensors.push({ name: 'rope_freqs.weight', dims: [4], type: 0, data: new Uint8Array(factors.buffer) });
    const file = await readGGUF(bytesSource(writeGGUF([...plain.metadata].map(([k, v]) => [k, typed(v)]), tensors), 'llama3-rope.gguf'));
    const gpu = await testGpu();
    const model = await LlamaModel.load(gpu, file, { kvCache: 'f32' });
    const plainModel = await LlamaModel.load(gpu, plain, { kvCache: 'f32' });
    try {
      expect(model.config.ropeFactors).toEqual({ short: 'rope_freqs.weight' });
      const { logits, sequence } = await expectMatchesReference(model, file);
      const without = await plainModel.logits(sequence, 0);
      let changed = 0;
      for (let i = 0; i < logits.length; i++) changed = Math.max(changed, Math.abs(logits[i]! - without[i]!));
      expect(changed).toBeGreaterThan(0.05);
    } finally {
      model.dispose();
      plainModel.dispose();
    }
  });
});

describe.skipIf(!HAVE_MODELS)('qwen2: q/k/v biases and NEOX RoPE', () => {
  test('a qwen2 file (stories260K weights, random biases) runs like the reference', async () => {
    const { plain, tensors } = await storiesParts();
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 0.2 - 0.1;
    for (let l = 0; l < 5; l++) {
      for (const [name, n] of [['attn_q.bias', 64], ['attn_k.bias', 32], ['attn_v.bias', 32]] as const) {
        tensors.push({ name: `blk.${l}.${name}`, dims: [n], type: 0, data: new Uint8Array(Float32Array.from({ length: n }, random).buffer) });
      }
    }
    const metadata = [...plain.metadata].map(([k, v]) => [k.replace(/^llama\./, 'qwen2.'), k === 'general.architecture' ? 'qwen2' : v] as const);
    const file = await readGGUF(bytesSource(writeGGUF(metadata.map(([k, v]) => [k, typed(v)]), tensors), 'qwen2.gguf'));
    const model = await LlamaModel.load(await testGpu(), file, { kvCache: 'f32' });
    try {
      expect(model.config).toMatchObject({ architecture: 'qwen2', qkvBias: true, ropeStyle: 'neox' });
      await expectMatchesReference(model, file);
    } finally {
      model.dispose();
    }
  });
});
