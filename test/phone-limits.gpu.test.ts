/**
 * Real model shapes on a phone-sized device: bindings of at most 128 MiB and buffers of at most
 * 256 MiB, in Q4_K_M (Gemma 4 in Q4_0): Qwen2.5-0.5B, Llama-3.2-1B, Gemma-3-1B, Qwen3.5-0.8B and Gemma-4-E2B. Their
 * embeddings (151,936 × 896, 128,256 × 2,048, 262,144 × 1,152, 248,320 × 1,024 and 262,144 × 1,536,
 * also the output heads) only fit split across two or three buffers. Each model's greedy tokens and
 * final logits must equal those of the same file on the unlimited adapter with no matrix split at
 * all. Random weights from the generator; a few tokens each. Every tensor has its real size, but
 * only the first layers are kept (enough for Gemma 3's five sliding layers and its global one):
 * each tensor is its own buffer, so only the embedding's size decides the split, and SwiftShader
 * would spend minutes on layers that change nothing here. The vocabulary tables' rows repeat after
 * a prime number of rows (makeModel's tableRowPeriod): drawing and quantizing hundreds of millions
 * of random values was most of this file's time. So the greedy tokens stay within the first
 * period, and each prompt ends with a token from the last part of the embedding (and of Gemma 4's
 * per-layer table), whose row the lookup must find there.
 */
import { describe, expect, test } from 'vitest';
import { generate } from '../src/generate.js';
import { readGGUF } from '../src/gguf/gguf.js';
import { bytesSource } from '../src/io/byte-source.js';
import { LlamaModel, type LoadOptions } from '../src/model/llama.js';
import { planWeights } from '../src/model/weights.js';
import { readConfig } from '../src/model/config.js';
import { nodeGpuContext } from '../src/node/gpu.js';
import { GGUFTokenizer } from '../src/tokenizer/tokenizer.js';
import { makeModel } from '../scripts/make-model.js';
import { testGpu } from './helpers/gpu.js';
import { HAVE_MODELS } from './helpers/models.js';

const PHONE = { maxStorageBufferBindingSize: 128 * 2 ** 20, maxBufferSize: 256 * 2 ** 20 };
// Qwen2.5's rows of 896 are not whole Q4_K blocks, so the generator (like llama.cpp) falls back
// to Q8_0 there: its 151,936 × 896 embedding takes 145 MB and needs two parts as well.
// Gemma 3's rows of 1,152 are 4.5 Q4_K blocks: its 262,144-row embedding is Q8_0 as well
// (320 MB), so three parts.
// Qwen3.5-0.8B: its first four layers are three Gated DeltaNet layers (with their recurrent state)
// and one gated-attention layer; its 248,320 × 1,024 embedding is the split one.
// Gemma-4-E2B: four sliding layers, a full one, and a sliding one that reuses the fourth's KV
// cache; its 262,144 × 1,536 embedding (216 MiB in Q4_0) is split in two, and its per-layer table
// (262,144 × 6 × 256, 216 MiB at six layers) stays on the CPU, its rows uploaded with each step.
// Its layers are Q4_0: quantizing six layers' random weights to Q4_K takes a minute on this machine.
const CASES = [
  ['qwen2', 'qwen2.5-0.5b', 'q4_k_m', 2, 2], ['llama', 'llama-3.2-1b', 'q4_k_m', 2, 2], ['gemma3', 'gemma-3-1b', 'q4_k_m', 6, 3],
  ['qwen35', 'qwen3.5-0.8b', 'q4_k_m', 4, 2], ['gemma4', 'gemma-4-e2b', 'q4_0', 6, 2],
] as const;
const ROW_PERIOD = 4099;

describe.skipIf(!HAVE_MODELS)('phone-sized limits (128 MiB bindings, 256 MiB buffers)', () => {
  for (const [arch, shape, quant, layers, embeddingParts] of CASES) {
    test(`${shape} ${quant.toUpperCase()} (first ${layers} layers): same tokens and logits as unsplit on an unlimited device`, { timeout: 900_000 }, async () => {
      const file = await readGGUF(bytesSource(await makeModel({ arch, shape, quant, seed: 4, layers, tableRowPeriod: ROW_PERIOD }), `${shape}.gguf`));
      const config = readConfig(file);
      const plans = planWeights(file, config);
      expect(plans.filter((p) => p.tensor === 'token_embd.weight')).toHaveLength(embeddingParts);
      const tokenizer = GGUFTokenizer.fromGGUF(file);
      // The last token: a row in the embedding's last part (and the per-layer table's last rows).
      const last = config.vocabSize - 1;
      expect(last).toBeGreaterThan(plans.filter((p) => p.tensor === 'token_embd.weight').at(-1)!.rowStart);
      const prompt = [...tokenizer.encode('Hello'), last];
      const run = async (gpu: Awaited<ReturnType<typeof testGpu>>, options: LoadOptions) => {
        const model = await LlamaModel.load(gpu, file, { contextLength: 32, ...options });
        try {
          const tokens: number[] = [];
          for await (const t of generate(model, tokenizer, prompt, { temperature: 0, maxTokens: 3 })) tokens.push(t.token);
          const logits = await model.logits([tokens.at(-1)!], prompt.length + tokens.length - 1);
          return { tokens, logits };
        } finally {
          model.dispose();
        }
      };
      const phone = await nodeGpuContext({ limitOverrides: PHONE });
      let limited;
      try {
        limited = await run(phone, {});
      } finally {
        phone.device.destroy();
      }
      const whole = await run(await testGpu(), { maxPartBytes: Infinity });
      expect(limited.tokens).toEqual(whole.tokens);
      let worst = 0;
      for (let i = 0; i < whole.logits.length; i++) worst = Math.max(worst, Math.abs(limited.logits[i]! - whole.logits[i]!));
      expect(worst).toBe(0); // the same arithmetic per row, whichever buffer holds the row
    });
  }
});
