/**
 * Qwen3.5 (GGUF architecture qwen35: Gated DeltaNet layers with a recurrent state between gated
 * full-attention layers) on generated tiny models (scripts/make-model.ts' tiny-256-qwen35: three
 * DeltaNet layers with twice as many value heads as q/k heads, then one gated attention layer
 * rotating 16 of 64 dimensions):
 * - against llama.cpp (wllama 3.13.0), teacher-forced at six quants (see llamacpp.gpu.test.ts for
 *   the bounds), and greedy token for token at F32; at each quant also against the CPU reference,
 *   which computes the same dequantized weights in f32 and so checks every format exactly;
 * - a prompt run in several steps equals one step and token-by-token decoding, and the CPU reference:
 *   prefill's chunked delta rule across chunks and steps against decode's token-by-token one;
 * - the recurrent state across steps: a follow-up chat turn that reuses the prefix equals a fresh
 *   engine's, and the model refuses to resume where its state is not.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createEngine } from '../src/engine/engine.js';
import { generate } from '../src/generate.js';
import { readGGUF, type GGUFFile } from '../src/gguf/gguf.js';
import { bytesSource } from '../src/io/byte-source.js';
import { LlamaModel } from '../src/model/llama.js';
import { GGUFTokenizer } from '../src/tokenizer/tokenizer.js';
import { makeModel, TINY_SHAPES } from '../scripts/make-model.js';
import { HAVE_CHROMIUM } from './helpers/browser.js';
import { testGpu } from './helpers/gpu.js';
import { expectTeacherForcedMatch, LlamaCppPage } from './helpers/llamacpp-diff.js';
import { ModelServer } from './helpers/model-server.js';
import { HAVE_MODELS } from './helpers/models.js';
import { ReferenceModel } from './helpers/reference.js';

const SHAPE = TINY_SHAPES.qwen35;
const PROMPT = 'The cat sat on the';
const STEPS = 16;
/**
 * The quantized bound: looser than the other architectures' (0.6 worst, 0.15 mean). For quantized
 * weights llama.cpp rounds every matmul's input to 8 bits (see llamacpp.gpu.test.ts), and the
 * generated Qwen3.5 is about three times as sensitive to that as Qwen 3: the gated RMSNorm
 * rescales each head's delta-rule output, a sum that often nearly cancels in a random model, to
 * unit size. Measured by rounding the inputs of the CPU reference's matmuls the same way (Q8_0
 * blocks; 30 tokens, top 5): Qwen3.5 worst 0.41, mean 0.12 (llama.cpp: 0.43, 0.13), Qwen 3 worst
 * 0.19, mean 0.048 (llama.cpp: 0.18, 0.046); nearly all of it from the DeltaNet layers' matmuls.
 * Measured against llama.cpp here: worst 1.22 (Q4_K_M), means up to 0.33. The CPU reference check
 * below holds every quant to 2e-4 relative, so a format error cannot hide in this bound.
 */
const QUANTIZED = { worst: 1.6, mean: 0.45 };

describe.skipIf(!HAVE_MODELS || !HAVE_CHROMIUM)('qwen35: llama.cpp (wllama 3.13.0) vs our engine', () => {
  let llama: LlamaCppPage;
  beforeAll(async () => {
    llama = await new LlamaCppPage().open();
  });
  afterAll(() => llama?.close());

  for (const quant of ['f32', 'f16', 'q8_0', 'q4_0', 'q4_k_m', 'q6_k'] as const) {
    test(`teacher-forced ${quant}${quant === 'f32' ? ', and greedy generation token for token' : ''}`, async () => {
      const file = await llama.load(await makeModel({ arch: 'qwen35', shape: SHAPE, quant, seed: 11 }), `qwen35-${quant}.gguf`);
      const run = await llama.greedy(file, PROMPT, STEPS);
      const model = await LlamaModel.load(await testGpu(), file);
      try {
        await expectTeacherForcedMatch(file, quant, run, `qwen35 ${quant}`, { quantizedBound: QUANTIZED, model });
        const sequence = [...run.prompt, ...run.steps.map((s) => s.sampled)];
        expectNear(await model.logits(sequence, 0), await referenceLogits(file, sequence));
        if (quant !== 'f32') return;
        const tokens: number[] = [];
        for await (const t of generate(model, GGUFTokenizer.fromGGUF(file), run.prompt, { temperature: 0, maxTokens: STEPS, ignoreEos: true })) tokens.push(t.token);
        expect(tokens).toEqual(run.steps.map((s) => s.sampled));
      } finally {
        model.dispose();
      }
    });
  }
});

describe.skipIf(!HAVE_MODELS)('qwen35: the recurrent state', () => {
  test('a prompt in steps of 37 equals one step, token-by-token decoding and the CPU reference', async () => {
    const file = await readGGUF(bytesSource(await makeModel({ arch: 'qwen35', shape: SHAPE, quant: 'q8_0', seed: 3 }), 'qwen35.gguf'));
    // Prefill runs the delta rule in chunks of 32 tokens (delta_net_chunked), decode token by token:
    // one step of 75 tokens is two whole chunks and a part; steps of 37 are a chunk and a part of 5,
    // then a decode step, the state carried across chunks and steps.
    const sequence = Array.from({ length: 75 }, (_, i) => (i * 37 + 11) % 500);
    const gpu = await testGpu();
    const whole = await LlamaModel.load(gpu, file);
    // Sums over workgroups through workgroup memory, where the other may use subgroup operations.
    const chunked = await LlamaModel.load({ ...gpu, subgroups: false }, file, { maxBatch: 37 });
    try {
      const one = await whole.logits(sequence, 0);
      const inChunks = await chunked.logits(sequence, 0);
      let decoded: Float32Array = new Float32Array();
      for (let i = 0; i < sequence.length; i++) decoded = await whole.logits([sequence[i]!], i);
      const expected = await referenceLogits(file, sequence);
      for (const got of [one, inChunks, decoded]) expectNear(got, expected);
      // The state moves only forward: a step elsewhere than where it is (or was saved) is refused.
      await expect(whole.logits([1], 3)).rejects.toMatchObject({ code: 'invalid-argument' });
      whole.saveCheckpoint();
      const first = await whole.logits([1, 2], sequence.length);
      expect(whole.resumablePrefix(sequence.length + 1)).toBe(sequence.length);
      // Back to the checkpoint: the same logits as going on from there the first time.
      const again = await whole.logits([1, 2], sequence.length);
      expect(Array.from(again)).toEqual(Array.from(first));
    } finally {
      whole.dispose();
      chunked.dispose();
    }
  });

  describe('a follow-up chat turn', () => {
    let server: ModelServer;
    const dir = mkdtempSync(join(tmpdir(), 'webgguf-qwen35-'));
    beforeAll(async () => {
      server = await new ModelServer().start();
      writeFileSync(join(dir, 'qwen35.gguf'), await makeModel({ arch: 'qwen35', shape: SHAPE, quant: 'q8_0', seed: 5 }));
      server.files.set('qwen35.gguf', join(dir, 'qwen35.gguf'));
    });
    afterAll(async () => {
      await server?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    test('reuses the cached prefix and answers as a fresh engine would', async () => {
      const make = async () => {
        const engine = await createEngine({ worker: false, cache: false, gpu: testGpu });
        await engine.load(`${server.origin}/files/qwen35.gguf`);
        return engine;
      };
      const engine = await make();
      const fresh = await createEngine({ worker: false, cache: false, gpu: testGpu });
      try {
        const messages: { role: 'user' | 'assistant'; content: string }[] = [];
        let cached = 0;
        for (const content of ['Once upon a time', 'What happened next?']) {
          messages.push({ role: 'user', content });
          // A fresh engine for each turn's expected reply: reloaded, it has nothing to reuse.
          const reply = await engine.chat.completions.create({ messages, temperature: 0, max_tokens: 8 });
          await fresh.load(`${server.origin}/files/qwen35.gguf`);
          const expected = await fresh.chat.completions.create({ messages, temperature: 0, max_tokens: 8 });
          expect(expected.usage.prompt_tokens_details.cached_tokens).toBe(0);
          expect(reply.choices[0]!.message.content).toBe(expected.choices[0]!.message.content);
          cached += reply.usage.prompt_tokens_details.cached_tokens;
          messages.push({ role: 'assistant', content: reply.choices[0]!.message.content! });
        }
        expect(cached).toBeGreaterThan(0);
      } finally {
        await engine.dispose();
        await fresh.dispose();
      }
    });
  });
});

/** The CPU reference's logits after `sequence`, token by token. */
async function referenceLogits(file: GGUFFile, sequence: number[]): Promise<Float32Array> {
  const ref = await ReferenceModel.load(file);
  let logits: Float32Array = new Float32Array();
  for (let i = 0; i < sequence.length; i++) logits = ref.forward(sequence[i]!, i);
  return logits;
}

/** Logits within 2e-4 of the largest expected magnitude. */
function expectNear(got: Float32Array, expected: Float32Array): void {
  const scale = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(got[i]! - expected[i]!));
  expect(worst / scale).toBeLessThan(2e-4);
}
