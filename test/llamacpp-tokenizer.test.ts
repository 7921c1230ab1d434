/**
 * The llama.cpp tokenizer oracle (test/helpers/llamacpp.ts, wllama 3 in Chromium) against
 * llama.cpp's own test-tokenizer-0 vectors shipped with its vocabulary files: for every input, the
 * oracle's token count and last id must be those of the expected ids (which llama.cpp made with
 * add_special and parse_special off).
 */
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { HAVE_CHROMIUM } from './helpers/browser.js';
import { readGGUF } from '../src/gguf/gguf.js';
import { bytesSource } from '../src/io/byte-source.js';
import { GGUFTokenizer } from '../src/tokenizer/tokenizer.js';
import { LlamaCppTokenizer, llamaCppTokenStats, type TokenStats } from './helpers/llamacpp.js';

const DIR = new URL('../../shared/models/tokenizers/llamacpp-vocab/', import.meta.url).pathname;
const VOCABS = ['llama-spm', 'phi-3', 'gpt-2'].filter((v) => existsSync(`${DIR}ggml-vocab-${v}.gguf.out`) && existsSync(`${DIR}ggml-vocab-${v}.gguf`));

/** llama.cpp's vector format: inputs separated by a marker line, one line of ids per input. */
function vectors(vocab: string): { text: string; ids: number[] }[] {
  const inputs = readFileSync(`${DIR}ggml-vocab-${vocab}.gguf.inp`, 'utf8').split('\n__ggml_vocab_test__\n');
  const outputs = readFileSync(`${DIR}ggml-vocab-${vocab}.gguf.out`, 'utf8').split('\n');
  return inputs.map((text, i) => ({ text, ids: outputs[i]!.trim() ? outputs[i]!.trim().split(/\s+/).map(Number) : [] }));
}

describe.skipIf(!HAVE_CHROMIUM || VOCABS.length === 0)('llama.cpp tokenizer oracle vs llama.cpp test vectors', () => {
  for (const vocab of VOCABS) {
    describe(vocab, () => {
      let oracle: LlamaCppTokenizer;
      beforeAll(async () => {
        oracle = await LlamaCppTokenizer.open(`${DIR}ggml-vocab-${vocab}.gguf`);
      }, 60_000);
      afterAll(() => oracle?.close());

      test('count and last id of every vector', async () => {
        const cases = vectors(vocab);
        expect(cases.length).toBeGreaterThan(30);
        const t0 = performance.now();
        const stats = await oracle.tokenStats(cases.map((c) => c.text), { addSpecial: false, parseSpecial: false });
        console.log(`${vocab}: ${cases.length} texts in ${(performance.now() - t0).toFixed(0)} ms`);
        expect(stats).toEqual(cases.map((c) => ({ count: c.ids.length, last: c.ids.at(-1) })));
      }, 120_000);

      test('special tokens: added as the vocabulary says, and parsed from text', async () => {
        const [plain, withSpecial] = (await oracle.tokenStats(['Hello world', 'Hello world'])) as [TokenStats, TokenStats];
        const [bare] = await oracle.tokenStats(['Hello world'], { addSpecial: false });
        expect(withSpecial).toEqual(plain);
        expect(plain.count - bare!.count).toBe(vocab === 'gpt-2' ? 0 : 1); // SPM vocabularies add BOS
        // A control token's text becomes that one token when parsed, and parseSpecial: false refuses it.
        const eos = vocab === 'gpt-2' ? '<|endoftext|>' : vocab === 'phi-3' ? '<|endoftext|>' : '</s>';
        const [parsed] = await oracle.tokenStats([`Hi${eos}`], { addSpecial: false });
        expect(parsed!.count).toBeLessThanOrEqual(3);
        await expect(oracle.tokenStats([`Hi${eos}`], { parseSpecial: false })).rejects.toThrow(/control token/);
      }, 60_000);
    });
  }

  test('llamaCppTokenStats opens and closes its own oracle', async () => {
    expect(await llamaCppTokenStats(`${DIR}ggml-vocab-${VOCABS[0]}.gguf`, ['Hello world', ''], { addSpecial: false })).toEqual([{ count: 2, last: vectors(VOCABS[0]!).find((c) => c.text === 'Hello world')!.ids.at(-1) }, { count: 0, last: undefined }]);
  }, 60_000);

  // WordPiece: llama.cpp's own reduction of precomposed letters (a Hangul syllable to its first
  // jamo, "é" to "e") and its splits, where Hugging Face's BERT differs; counts with CLS and SEP.
  test('bert-bge (WordPiece): our token counts are llama.cpp\'s on accented, Hangul, CJK and control text', async () => {
    const path = `${DIR}ggml-vocab-bert-bge.gguf`;
    const texts = ['서울에서 한국어', 'Cửa Việt', 'naïve résumé ÀÉÎÕÜ', 'Straße İstanbul Å Ω', '北京欢迎你 日本語のテキスト', 'x\u0000y\u200bz\tq', 'e\u0301 vs é', '€100 ≥ 5 © ½', 'Ελληνικά русский عربى', 'unaffable don\'t @user #tag ~x'];
    const ours = GGUFTokenizer.fromGGUF(await readGGUF(bytesSource(new Uint8Array(readFileSync(path)), path)));
    const theirs = await llamaCppTokenStats(path, texts);
    expect(texts.map((t) => ours.encode(t).length)).toEqual(theirs.map((s) => s.count));
    expect(ours.encode('Hello world')).toEqual([101, 7592, 2088, 102]);
  }, 120_000);
});
