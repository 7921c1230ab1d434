import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { readGGUF } from '../src/gguf/gguf.js';
import { fileSource } from '../src/node/file-source.js';
import { GGUFTokenizer } from '../src/tokenizer/tokenizer.js';
import { HAVE_MODELS, MODELS } from './helpers/models.js';

const VOCAB = `${MODELS}tokenizers/llamacpp-vocab/`;

/** llama.cpp's vectors: inputs split by a marker line, one line of expected ids per input. */
function vectors(name: string): [string, number[]][] {
  const inputs = readFileSync(`${VOCAB}ggml-vocab-${name}.gguf.inp`, 'utf8').split('\n__ggml_vocab_test__\n');
  const outputs = readFileSync(`${VOCAB}ggml-vocab-${name}.gguf.out`, 'utf8').split('\n');
  expect(inputs.length).toBe(outputs.length);
  return inputs.map((text, i) => [text, outputs[i]!.trim().split(/\s+/).filter(Boolean).map(Number)]);
}

async function ggufTokenizer(name: string): Promise<GGUFTokenizer> {
  const source = await fileSource(`${VOCAB}ggml-vocab-${name}.gguf`);
  try {
    return GGUFTokenizer.fromGGUF(await readGGUF(source));
  } finally {
    await source.close();
  }
}

describe.skipIf(!HAVE_MODELS)('tokenizer vectors from llama.cpp', () => {
  for (const name of ['llama-spm', 'phi-3', 'gpt-2']) {
    test(`${name}: all vectors`, async () => {
      const tok = await ggufTokenizer(name);
      const cases = vectors(name);
      expect(cases.length).toBe(47);
      for (const [text, ids] of cases) {
        expect(tok.encode(text, { addBos: false, parseSpecial: false }), JSON.stringify(text)).toEqual(ids);
      }
    });
  }

  test('llama-bpe (Llama 3) from the GPT-2-style files', () => {
    const encoder = JSON.parse(readFileSync(`${MODELS}tokenizers/llama3/encoder.json`, 'utf8')) as Record<string, number>;
    const merges = readFileSync(`${MODELS}tokenizers/llama3/vocab.bpe`, 'utf8').split('\n').filter((l) => l && !l.startsWith('#version'));
    const tokens: string[] = [];
    for (const [s, id] of Object.entries(encoder)) tokens[id] = s;
    const tok = new GGUFTokenizer({ model: 'gpt2', pre: 'llama-bpe', tokens, merges });
    const cases = vectors('llama-bpe');
    expect(cases.length).toBe(47);
    for (const [text, ids] of cases) expect(tok.encode(text, { addBos: false }), JSON.stringify(text)).toEqual(ids);
  });
});
