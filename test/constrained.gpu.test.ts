/**
 * Constrained decoding end to end on the GPU sampler: stories260K (a real model never trained
 * for JSON) and llama-2-tiny-random (random weights, the real 32k Llama-2 vocabulary), greedy and
 * sampled over several seeds. Every output that ends before max_tokens validates against its
 * schema (or matches its grammar); logit_bias moves the GPU sampler.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createEngine, type Engine } from '../src/engine/engine.js';
import { generate, type GenerateOptions } from '../src/generate.js';
import { GrammarEngine } from '../src/grammar/constraint.js';
import { loadModelFile } from '../src/node/load.js';
import { testGpu } from './helpers/gpu.js';
import { validateJson } from './helpers/json-schema.js';
import { HAVE_MODELS, MODELS, storiesPath } from './helpers/models.js';

const SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 10 },
    mood: { enum: ['happy', 'sad', 'ünïcode €'] },
    friends: { type: 'array', items: { $ref: '#/$defs/friend' }, maxItems: 2 },
    tall: { type: ['boolean', 'null'] },
  },
  required: ['name', 'mood', 'friends', 'tall'],
  additionalProperties: false,
  $defs: { friend: { type: 'object', properties: { n: { type: 'string', minLength: 1, maxLength: 5 }, k: { const: 3 } }, required: ['n', 'k'] } },
};
const GRAMMAR = 'root ::= "The " animal " is " color "."\nanimal ::= "cat" | "dog" | "bird"\ncolor ::= [a-z]+';
const SAMPLINGS = [{ temperature: 0 }, ...[1, 2, 3].map((seed) => ({ temperature: 1, seed })), { temperature: 1.5, seed: 9, top_k: 0, top_p: 1 }];

describe.skipIf(!HAVE_MODELS)('constrained decoding on the GPU', () => {
  const engines: Record<string, Engine> = {};
  beforeAll(async () => {
    for (const [name, path] of [['stories', storiesPath('q4_0')], ['tiny32k', `${MODELS}llama-2-tiny-random/llama-2-tiny-random.gguf`]] as const) {
      engines[name] = await createEngine({ worker: false, cache: false, gpu: testGpu, contextLength: 512 });
      await engines[name]!.load(new Blob([readFileSync(path)]));
    }
  });
  afterAll(async () => {
    for (const e of Object.values(engines)) await e.unload();
  });

  test.each(['stories', 'tiny32k'])('%s: every finished json_schema output validates, greedy and sampled', async (name) => {
    const engine = engines[name]!;
    let finished = 0;
    // The 32k vocabulary's sampler is slow on SwiftShader: greedy and the hottest sampling there.
    const samplings = name === 'stories' ? SAMPLINGS : [SAMPLINGS[0]!, SAMPLINGS.at(-1)!];
    for (const sampling of samplings) {
      const r = await engine.completions.create({
        prompt: 'Once upon a time', max_tokens: 160, ...sampling,
        response_format: { type: 'json_schema', json_schema: { name: 'story', schema: SCHEMA, strict: true } },
      });
      const text = r.choices[0]!.text;
      if (r.choices[0]!.finish_reason !== 'stop') continue;
      finished++;
      expect(validateJson(SCHEMA, JSON.parse(text)), `${JSON.stringify(sampling)}: ${text}`).toBeUndefined();
    }
    expect(finished).toBeGreaterThanOrEqual(samplings.length - 1);
  }, 60_000);

  test('chat json_object and a GBNF grammar', async () => {
    const engine = engines.stories!;
    for (const sampling of SAMPLINGS.slice(0, 2)) {
      const r = await engine.chat.completions.create({ messages: [{ role: 'user', content: 'Tell me' }], max_tokens: 80, ...sampling, response_format: { type: 'json_object' } });
      if (r.choices[0]!.finish_reason === 'stop') expect(JSON.parse(r.choices[0]!.message.content!)).toBeTypeOf('object');
      const g = await engine.completions.create({ prompt: 'Once', max_tokens: 40, ...sampling, grammar: GRAMMAR });
      expect(g.choices[0]!.finish_reason).toBe('stop');
      expect(g.choices[0]!.text).toMatch(/^The (cat|dog|bird) is [a-z]+\.$/);
    }
  }, 60_000);

  test('tokens the grammar forces are fed without sampling: one GPU step for a whole forced run', async () => {
    const { model, tokenizer, dispose } = await loadModelFile(storiesPath('q4_0'), { gpu: await testGpu(), contextLength: 128 });
    try {
      const engine = await GrammarEngine.for(tokenizer, model.config.vocabSize);
      const prompt = tokenizer.encode('Once upon a time');
      const steps = { step: 0, decode: 0 };
      const step = model.step.bind(model);
      const decode = model.decode.bind(model);
      model.step = (...a) => (steps.step++, step(...a));
      model.decode = (...a) => (steps.decode++, decode(...a));
      for (const temperature of [0, 1]) {
        steps.step = steps.decode = 0;
        // stories260K's 512 tokens have no emoji: each of their UTF-8 bytes is the one byte-fallback token allowed.
        const constraint = await engine.constraint({ type: 'grammar', grammar: 'root ::= "😀🐈" ("a" | "b")' });
        const out: number[] = [];
        for await (const t of generate(model, tokenizer, prompt, { temperature, seed: 2, maxTokens: 60, constraint })) out.push(t.token);
        constraint.dispose();
        expect(tokenizer.decode(out)).toMatch(/^😀🐈[ab]$/);
        expect(out).toHaveLength(9);
        // The 8 emoji bytes go with the prompt's step, which samples a|b; one more step samples the end token.
        expect(steps).toEqual({ step: 1, decode: 1 });
      }
    } finally {
      await dispose();
    }
  });

  test('logit_bias: -100 bans the greedy token, +100 forces one even when sampling; ids outside the vocabulary are refused', async () => {
    const { model, tokenizer, dispose } = await loadModelFile(storiesPath('q4_0'), { gpu: await testGpu(), contextLength: 64 });
    try {
      const prompt = tokenizer.encode('Once upon a time');
      const run = async (options: GenerateOptions) => {
        const out: number[] = [];
        for await (const t of generate(model, tokenizer, prompt, { maxTokens: 4, ...options })) out.push(t.token);
        return out;
      };
      const [greedy] = await run({ temperature: 0 });
      expect((await run({ temperature: 0, logitBias: { [greedy!]: -100 } }))[0]).not.toBe(greedy);
      expect(await run({ temperature: 1, seed: 3, logitBias: { 400: 100 } })).toEqual([400, 400, 400, 400]);
      // The bias is per request: the next one is plain greedy again.
      expect((await run({ temperature: 0 }))[0]).toBe(greedy);
      await expect(run({ logitBias: { 512: 1 } })).rejects.toMatchObject({ code: 'invalid-argument' });
    } finally {
      await dispose();
    }
  });
});
