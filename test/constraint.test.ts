/**
 * Constrained decoding on the CPU side: XGrammar's masks over real vocabularies, walked at random
 * (every allowed token is as likely as any other, the worst case for a model that never saw
 * JSON), and every finished output checked by a JSON Schema validator. The GPU path is in
 * constrained.gpu.test.ts.
 */
import { describe, expect, test } from 'vitest';
import { validateChatRequest, validateCompletionRequest } from '../src/chat/request.js';
import { GrammarEngine, type ConstraintSpec } from '../src/grammar/constraint.js';
import { useXGrammarLoader } from '../src/grammar/xgrammar.js';
import { readGGUF } from '../src/gguf/gguf.js';
import { bytesSource } from '../src/io/byte-source.js';
import { makeModel } from '../scripts/make-model.js';
import { fileSource } from '../src/node/file-source.js';
import { loadXGrammarInNode } from '../src/node/xgrammar.js';
import { GGUFTokenizer } from '../src/tokenizer/tokenizer.js';
import { validateJson } from './helpers/json-schema.js';
import { HAVE_MODELS, MODELS } from './helpers/models.js';

useXGrammarLoader(loadXGrammarInNode);

async function vocabTokenizer(name: string): Promise<GGUFTokenizer> {
  // Qwen2's size: make-model's GPT-2 vocabulary padded to 151,936 tokens (masks past 2^17 bits).
  if (name === 'qwen2-152k') return GGUFTokenizer.fromGGUF(await readGGUF(bytesSource(await makeModel({ arch: 'qwen2', shape: 'tiny-64-152k', quant: 'q4_0' }), 'tiny-152k.gguf')));
  const source = await fileSource(`${MODELS}tokenizers/llamacpp-vocab/ggml-vocab-${name}.gguf`);
  try {
    return GGUFTokenizer.fromGGUF(await readGGUF(source));
  } finally {
    await source.close();
  }
}

export const SCHEMAS: Record<string, object> = {
  person: {
    type: 'object',
    properties: {
      name: { type: 'string', minLength: 1, maxLength: 12 },
      age: { type: 'integer' },
      email: { type: ['string', 'null'], maxLength: 20 },
      tags: { type: 'array', items: { enum: ['a', 'b', 'ü€', 7, null] }, minItems: 1, maxItems: 3 },
      ok: { type: 'boolean' },
    },
    required: ['name', 'age', 'tags'],
    additionalProperties: false,
  },
  refs: {
    $defs: { point: { type: 'object', properties: { x: { type: 'number' }, y: { const: 'y' } }, required: ['x', 'y'] } },
    type: 'object',
    properties: {
      kind: { oneOf: [{ const: 'circle' }, { const: 'square' }] },
      at: { $ref: '#/$defs/point' },
      path: { type: 'array', items: { $ref: '#/$defs/point' }, maxItems: 2 },
      label: { anyOf: [{ type: 'string', maxLength: 4 }, { type: 'null' }] },
    },
    required: ['kind', 'at', 'label'],
  },
};

/** Random allowed tokens until the constraint finishes or `steps` run out; the tokens before the end token. */
async function randomWalk(engine: GrammarEngine, vocabSize: number, spec: ConstraintSpec, seed: number, steps: number): Promise<number[] | undefined> {
  const c = await engine.constraint(spec);
  let s = seed >>> 0;
  const rand = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const out: number[] = [];
  try {
    for (let i = 0; i < steps; i++) {
      const mask = await c.allowedTokens();
      const allowed: number[] = [];
      for (let i = 0; i < vocabSize; i++) if ((mask[i >> 5]! >>> (i & 31)) & 1) allowed.push(i);
      expect(allowed.length).toBeGreaterThan(0);
      // Half the steps take the lowest allowed id: punctuation and short tokens, so walks end.
      const token = rand() < 0.5 ? allowed[0]! : allowed[Math.floor(rand() * allowed.length)]!;
      c.accept(token);
      if (c.finished) return out;
      out.push(token);
    }
    return undefined;
  } finally {
    c.dispose();
  }
}

describe.skipIf(!HAVE_MODELS)('constrained decoding masks (XGrammar)', () => {
  test.each(['llama-spm', 'gpt-2', 'qwen2-152k'])('%s vocabulary: random walks through JSON schemas validate', async (name) => {
    const tok = await vocabTokenizer(name);
    const engine = await GrammarEngine.for(tok, tok.vocabSize);
    let finished = 0;
    for (const [label, schema] of Object.entries(SCHEMAS)) {
      for (let seed = 1; seed <= 6; seed++) {
        const tokens = await randomWalk(engine, tok.vocabSize, { type: 'json_schema', schema }, seed, 400);
        if (!tokens) continue;
        finished++;
        const text = tok.decode(tokens);
        let value: unknown;
        try { value = JSON.parse(text); } catch (e) { throw new Error(`${label} seed ${seed}: ${JSON.stringify(text)} ${tokens.map((t) => tok.spec.tokens[t]).join("|")}: ${String(e)}`); }
        expect(validateJson(schema as never, value), `${label} seed ${seed}: ${text}`).toBeUndefined();
      }
    }
    expect(finished).toBeGreaterThanOrEqual(6);
    const tokens = await randomWalk(engine, tok.vocabSize, { type: 'json_object' }, 3, 400);
    if (tokens) expect(typeof JSON.parse(tok.decode(tokens))).toBe('object');
  }, 60_000);

  test('a GBNF grammar: every finished walk matches it; a bad grammar is invalid-argument', async () => {
    const tok = await vocabTokenizer('llama-spm');
    const engine = await GrammarEngine.for(tok, tok.vocabSize);
    const grammar = 'root ::= answer " " num\nanswer ::= "yes" | "no" | "peut-être"\nnum ::= [0-9] | [1-9] [0-9]';
    for (let seed = 1; seed <= 8; seed++) {
      const tokens = await randomWalk(engine, tok.vocabSize, { type: 'grammar', grammar }, seed, 50);
      expect(tokens).toBeDefined();
      expect(tok.decode(tokens!)).toMatch(/^(yes|no|peut-être) ([0-9]|[1-9][0-9])$/);
    }
    await expect(engine.constraint({ type: 'grammar', grammar: 'root ::= foo' })).rejects.toMatchObject({ code: 'invalid-argument', message: expect.stringMatching(/^grammar does not compile/) });
    // The module survives the failed compile.
    expect(await randomWalk(engine, tok.vocabSize, { type: 'grammar', grammar: 'root ::= "ok"' }, 1, 10)).toBeDefined();
  });

  test('unsupported schema keywords are invalid-argument errors naming them', async () => {
    const tok = await vocabTokenizer('llama-spm');
    const engine = await GrammarEngine.for(tok, tok.vocabSize);
    for (const [schema, keyword] of [
      [{ type: 'object', patternProperties: { a: {} } }, 'patternProperties'],
      [{ type: 'object', properties: { n: { type: 'integer', maximum: 3 } } }, 'maximum'],
      [{ allOf: [{ type: 'string' }] }, 'allOf'],
      [{ type: 'array', items: { not: {} } }, 'not'],
      [{ type: 'string', format: 'email' }, 'format'],
    ] as const) {
      await expect(engine.constraint({ type: 'json_schema', schema })).rejects.toMatchObject({ code: 'invalid-argument', message: expect.stringContaining(`"${keyword}"`) });
    }
    await expect(engine.constraint({ type: 'json_schema', schema: { $ref: '#/$defs/missing' } })).rejects.toMatchObject({ code: 'invalid-argument' });
    await expect(engine.constraint({ type: 'json_schema', schema: { type: 'strin' } })).rejects.toMatchObject({ code: 'invalid-argument' });
  });
});

describe('structured output and logit_bias request fields', () => {
  const MESSAGES = [{ role: 'user', content: 'Hi' }];
  const schema = { type: 'object', properties: { a: { type: 'string' } } };
  const invalid = (run: () => unknown, message: RegExp) => expect(run).toThrow(expect.objectContaining({ code: 'invalid-argument', message: expect.stringMatching(message) }));

  test('response_format and grammar become the constraint, in chat and legacy completions', () => {
    const chat = (fields: object) => validateChatRequest({ messages: MESSAGES, ...fields }).params.constraint;
    expect(chat({ response_format: { type: 'json_object' } })).toEqual({ type: 'json_object' });
    expect(chat({ response_format: { type: 'json_schema', json_schema: { name: 'x', schema, strict: true } } })).toEqual({ type: 'json_schema', schema });
    expect(chat({ response_format: { type: 'json_schema', json_schema: { name: 'x' } } })).toEqual({ type: 'json_object' });
    expect(chat({ response_format: { type: 'text' } })).toBeUndefined();
    expect(chat({ grammar: 'root ::= "a"' })).toEqual({ type: 'grammar', grammar: 'root ::= "a"' });
    const completion = (fields: object) => validateCompletionRequest({ prompt: 'x', ...fields }).params.constraint;
    expect(completion({ response_format: { type: 'json_schema', json_schema: { name: 'x', schema } } })).toEqual({ type: 'json_schema', schema });
    expect(completion({ grammar: 'root ::= "a"' })).toEqual({ type: 'grammar', grammar: 'root ::= "a"' });
  });

  test('bad constraints are invalid-argument errors naming the problem', () => {
    const chat = (fields: object) => () => validateChatRequest({ messages: MESSAGES, ...fields });
    invalid(chat({ response_format: { type: 'yaml' } }), /^response_format type "yaml"/);
    invalid(chat({ response_format: { type: 'json_schema' } }), /json_schema must be an object/);
    invalid(chat({ response_format: { type: 'json_schema', json_schema: { schema } } }), /json_schema\.name/);
    invalid(chat({ response_format: { type: 'json_schema', json_schema: { name: 'x', schema, strcit: true } } }), /strcit is not a known/);
    invalid(chat({ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'string', format: 'date' } } } }), /"format"/);
    invalid(chat({ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', properties: { a: { type: 'number', minimum: 0 } } } } } }), /"minimum" \(at \/properties\/a\/minimum\)/);
    invalid(chat({ response_format: { type: 'json_object' }, grammar: 'root ::= "a"' }), /give one/);
    invalid(chat({ grammar: 'start ::= "a"' }), /root/);
    invalid(chat({ grammar: 5 }), /^grammar must be a string/);
    let deep: object = { type: 'string' };
    for (let i = 0; i < 100; i++) deep = { type: 'array', items: deep };
    invalid(chat({ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: deep } } }), /deeper/);
  });

  test('logit_bias: token ids to [-100, 100]', () => {
    expect(validateChatRequest({ messages: MESSAGES, logit_bias: { 5: -100, 7: 2.5 } }).params.logitBias).toEqual({ 5: -100, 7: 2.5 });
    expect(validateChatRequest({ messages: MESSAGES, logit_bias: {} }).params.logitBias).toBeUndefined();
    for (const bad of [{ 5: 101 }, { x: 1 }, { '-1': 1 }, { 5: 'a' }, { '01': 1 }, []]) {
      invalid(() => validateCompletionRequest({ prompt: 'x', logit_bias: bad }), /^logit_bias/);
    }
    invalid(() => validateChatRequest({ messages: MESSAGES, logit_bias: Object.fromEntries(Array.from({ length: 301 }, (_, i) => [i, 1])) }), /at most 300/);
  });
});
