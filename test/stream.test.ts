import { describe, expect, test } from 'vitest';
import { readGGUF } from '../src/gguf/gguf.js';
import { fileSource } from '../src/node/file-source.js';
import { StreamDecoder } from '../src/tokenizer/stream.js';
import { GGUFTokenizer } from '../src/tokenizer/tokenizer.js';
import { HAVE_MODELS, MODELS } from './helpers/models.js';

async function vocab(name: string): Promise<GGUFTokenizer> {
  const src = await fileSource(`${MODELS}tokenizers/llamacpp-vocab/ggml-vocab-${name}.gguf`);
  try {
    return GGUFTokenizer.fromGGUF(await readGGUF(src));
  } finally {
    await src.close();
  }
}

describe.skipIf(!HAVE_MODELS)('streaming detokenization', () => {
  const TEXTS = ['Hello world, how are you?', ' leading space', 'Führer 🦙 emoji and 中文 text\nnew line', '🚀🚀 ✨ 👍🏽', 'a  b   c'];
  for (const name of ['llama-spm', 'gpt-2']) {
    test(`${name}: pieces concatenate to the full decode and never split a character`, async () => {
      const tok = await vocab(name);
      for (const text of TEXTS) {
        const ids = tok.encode(text, { addBos: false });
        const stream = new StreamDecoder(tok);
        let joined = '';
        for (const id of ids) {
          const piece = stream.push(id);
          expect(piece).not.toContain('\uFFFD');
          joined += piece;
        }
        joined += stream.flush();
        expect(joined).toBe(tok.decode(ids));
      }
    });
  }

  test('a continuation keeps the space that depends on the prompt', async () => {
    const tok = await vocab('llama-spm');
    const prompt = tok.encode('Once upon a');
    const next = tok.encode('Once upon a time').slice(prompt.length);
    const stream = new StreamDecoder(tok, prompt);
    expect(next.map((id) => stream.push(id)).join('') + stream.flush()).toBe(' time');
  });
});
