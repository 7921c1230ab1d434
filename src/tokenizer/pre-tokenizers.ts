import { SequencePreTokenizer } from '@huggingface/tokenizers';
import { ModelFormatError } from '../errors.js';

/**
 * How a byte-level BPE vocabulary (tokenizer.ggml.model = gpt2) splits text before merging: the
 * value of tokenizer.ggml.pre names one of these, as in llama.cpp's llama-vocab.cpp.
 *
 * `regexes` are applied in turn, each splitting the pieces the previous ones made (matches and
 * the gaps between them both stay pieces: Hugging Face's Split with "Isolated"). They are the
 * patterns of the models' own tokenizer.json files, in Oniguruma syntax, which
 * @huggingface/tokenizers translates to JS regexes: llama.cpp's test vectors come from those
 * tokenizers. Where llama.cpp rewrote a pattern for std::regex (case-folded contractions, letter
 * classes by lookahead) the original is kept here; the two differ only in llama.cpp's
 * approximations (it has no \p{M} in gpt-4o's and tekken's letter classes, and treats every
 * non-ASCII letter as both cases).
 */
export interface PreTokenizer {
  readonly regexes: readonly string[];
  /** Look a whole pre-token up in the vocabulary before merging (tiktoken-style vocabularies). */
  readonly ignoreMerges?: boolean;
  /** Whether BOS is prepended when tokenizer.ggml.add_bos_token is absent (llama.cpp's default). */
  readonly addBos?: boolean;
}

const CONTRACTIONS = "(?i:'s|'t|'re|'ve|'m|'ll|'d)";
const GPT2 = String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`;
const LLAMA3 = String.raw`${CONTRACTIONS}|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const QWEN2 = String.raw`${CONTRACTIONS}|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const QWEN35 = String.raw`${CONTRACTIONS}|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
/** Letters split at a lower-to-upper case change (o200k, tekken). */
const UPPER = String.raw`[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]`;
const LOWER = String.raw`[\p{Ll}\p{Lm}\p{Lo}\p{M}]`;
const GPT4O =
  String.raw`[^\r\n\p{L}\p{N}]?${UPPER}*${LOWER}+${CONTRACTIONS}?|[^\r\n\p{L}\p{N}]?${UPPER}+${LOWER}*${CONTRACTIONS}?` +
  String.raw`|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const TEKKEN =
  String.raw`[^\r\n\p{L}\p{N}]?${UPPER}*${LOWER}+|[^\r\n\p{L}\p{N}]?${UPPER}+${LOWER}*` +
  String.raw`|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
/** DeepSeek LLM's cased letters (Latin, Greek, Cyrillic, Armenian, Georgian, Cherokee, ...), from its tokenizer.json. */
const DEEPSEEK_LETTERS =
  String.raw`A-Za-z\x{b5}\x{c0}-\x{d6}\x{d8}-\x{f6}\x{f8}-\x{1ba}\x{1bc}-\x{1bf}\x{1c4}-\x{293}\x{295}-\x{2af}` +
  String.raw`\x{370}-\x{373}\x{376}\x{377}\x{37b}-\x{37d}\x{37f}\x{386}\x{388}-\x{38a}\x{38c}\x{38e}-\x{3a1}` +
  String.raw`\x{3a3}-\x{3f5}\x{3f7}-\x{481}\x{48a}-\x{52f}\x{531}-\x{556}\x{10a0}-\x{10c5}\x{13a0}-\x{13f5}` +
  String.raw`\x{13f8}-\x{13fd}\x{1c90}-\x{1cba}\x{1cbd}-\x{1cbf}\x{1d00}-\x{1d2b}\x{1d6b}-\x{1d77}\x{1d79}-\x{1d9a}` +
  String.raw`\x{1e00}-\x{1f15}\x{1f18}-\x{1f1d}\x{1f20}-\x{1f45}\x{1f48}-\x{1f4d}\x{1f50}-\x{1f57}\x{1f59}\x{1f5b}` +
  String.raw`\x{1f5d}\x{1f5f}-\x{1f7d}\x{1f80}-\x{1fb4}\x{1fb6}-\x{1fbc}\x{1fbe}\x{1fc2}-\x{1fc4}\x{1fc6}-\x{1fcc}` +
  String.raw`\x{1fd0}-\x{1fd3}\x{1fd6}-\x{1fdb}\x{1fe0}-\x{1fec}\x{1ff2}-\x{1ff4}\x{1ff6}-\x{1ffc}\x{2102}\x{2107}` +
  String.raw`\x{210a}-\x{2113}\x{2115}\x{2119}-\x{211d}\x{2124}\x{2126}\x{2128}\x{212a}-\x{212d}\x{212f}-\x{2134}` +
  String.raw`\x{2139}\x{213c}-\x{213f}\x{2145}-\x{2149}\x{214e}\x{2183}\x{2184}\x{2c00}-\x{2c7b}\x{2c7e}-\x{2ce4}` +
  String.raw`\x{2ceb}-\x{2cee}\x{2cf2}\x{2cf3}\x{a640}-\x{a66d}\x{a680}-\x{a69b}\x{a722}-\x{a76f}\x{a771}-\x{a787}` +
  String.raw`\x{a78b}-\x{a78e}\x{ab70}-\x{abbf}\x{fb00}-\x{fb06}\x{fb13}-\x{fb17}\x{ff21}-\x{ff3a}\x{ff41}-\x{ff5a}` +
  String.raw`\x{10400}-\x{1044f}\x{104b0}-\x{104d3}\x{104d8}-\x{104fb}\x{10c80}-\x{10cb2}\x{10cc0}-\x{10cf2}` +
  String.raw`\x{118a0}-\x{118df}\x{1e900}-\x{1e943}`;
/** CJK ideographs, U+0800..U+4E00 and Hangul, as one run (DeepSeek LLM and Coder). */
const DEEPSEEK_CJK = String.raw`[\x{4e00}-\x{9fa5}\x{800}-\x{4e00}\x{ac00}-\x{d7ff}]+`;
/** CJK ideographs, hiragana and katakana (DeepSeek V3 and its relatives). */
const DEEPSEEK3_CJK = String.raw`[\x{4e00}-\x{9fa5}\x{3040}-\x{309f}\x{30a0}-\x{30ff}]+`;
const DEEPSEEK3_WORDS =
  String.raw`[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_` + '`' + String.raw`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+` +
  String.raw`| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
/** BLOOM's split: runs of anything but whitespace and sentence punctuation, with one leading space. */
const BLOOM = String.raw` ?[^(\s|[.,!?…。，、।۔،])]+`;
const SEED_CODER = String.raw`${CONTRACTIONS}|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+`;
const BAILINGMOE = String.raw`'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+`;

const gpt2: PreTokenizer = { regexes: [GPT2] };
const llama3: PreTokenizer = { regexes: [LLAMA3], ignoreMerges: true, addBos: true };
const llama3Regex: PreTokenizer = { regexes: [LLAMA3] };
const qwen2: PreTokenizer = { regexes: [QWEN2] };
const starcoder: PreTokenizer = { regexes: [String.raw`\p{N}`, GPT2] };
const deepseek3: PreTokenizer = { regexes: [String.raw`\p{N}{1,3}`, DEEPSEEK3_CJK, DEEPSEEK3_WORDS] };
const gpt4o: PreTokenizer = { regexes: [GPT4O] };
const bloom: PreTokenizer = { regexes: [BLOOM] };
const bailingmoe: PreTokenizer = { regexes: [BAILINGMOE] };

/**
 * Every tokenizer.ggml.pre value we read, by llama.cpp's name for it. A GGUF without the key
 * (old conversions, such as gpt-neox's) gets GPT-2's split, which is what those models' own
 * tokenizers used.
 */
const PRE_TOKENIZERS: Readonly<Record<string, PreTokenizer>> = {
  default: gpt2,
  'gpt-2': gpt2,
  'phi-2': gpt2,
  gigachat: gpt2,
  'a.x-4.0': gpt2,
  mellum: gpt2,
  exaone4: gpt2,
  mpt: gpt2,
  olmo: gpt2,
  jais: gpt2,
  trillion: gpt2,
  'granite-docling': gpt2,
  llama3,
  'llama-v3': llama3,
  'llama-bpe': llama3,
  falcon3: llama3,
  'falcon-h1': llama3,
  pixtral: llama3,
  'midm-2.0': llama3,
  lfm2: llama3,
  dbrx: llama3Regex,
  'smaug-bpe': llama3Regex,
  'chatglm-bpe': llama3Regex,
  glm4: llama3Regex,
  qwen2,
  'deepseek-r1-qwen': qwen2,
  kormo: qwen2,
  f2llmv2: qwen2,
  megrez: qwen2,
  stablelm2: qwen2,
  hunyuan: qwen2,
  'solar-open': qwen2,
  'grok-2': qwen2,
  qwen35: { regexes: [QWEN35] },
  starcoder,
  refact: starcoder,
  'command-r': starcoder,
  smollm: starcoder,
  codeshell: starcoder,
  exaone: starcoder,
  'minerva-7b': starcoder,
  mellum2: starcoder,
  falcon: { regexes: [String.raw`[\p{P}\$\+<=>\^~\|` + '`' + ']+', GPT2, '[0-9][0-9][0-9]'] },
  'deepseek-llm': {
    regexes: [String.raw`[\r\n]`, String.raw`\s?[${DEEPSEEK_LETTERS}]+`, String.raw`\s?[!-/:-~\x{ff01}-\x{ff0f}\x{ff1a}-\x{ff5e}\x{2018}-\x{201f}\x{3000}-\x{3002}]+`, String.raw`\s+$`, DEEPSEEK_CJK, String.raw`\p{N}+`],
  },
  'deepseek-coder': { regexes: [String.raw`[\r\n]`, String.raw`\s?\p{L}+`, String.raw`\s?\p{P}+`, DEEPSEEK_CJK, String.raw`\p{N}`] },
  'deepseek-v3': deepseek3,
  'hunyuan-dense': deepseek3,
  'joyai-llm': deepseek3,
  hy_v4: deepseek3,
  'gpt-4o': gpt4o,
  llama4: gpt4o,
  kanana2: gpt4o,
  talkie: gpt4o,
  'minimax-m2': gpt4o,
  tekken: { regexes: [TEKKEN], ignoreMerges: true, addBos: true },
  'poro-chat': bloom,
  bloom,
  'gpt3-finnish': bloom,
  viking: { regexes: [BLOOM, String.raw`\p{N}`] },
  'seed-coder': { regexes: [SEED_CODER] },
  bailingmoe,
  bailingmoe2: bailingmoe,
  'llada-moe': bailingmoe,
  ufakzeka: { regexes: [String.raw`[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`] },
  'minicpm5': {
    regexes: [String.raw`\p{N}{1,3}`, String.raw`${CONTRACTIONS}|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`],
    ignoreMerges: true,
  },
  laguna: { regexes: [String.raw`[^\n]+|[\n]+`, QWEN2] },
  'tiny_aya': { regexes: [String.raw`\d{1,3}(?=(?:\d{3})*\b)`, GPT4O] },
  cohere2moe: { regexes: [String.raw`\d{1,3}(?=(?:\d{3})*\b)`, GPT4O] },
  chameleon: {
    regexes: ['<sentinel:[0-9]+>', '(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z', String.raw`([\t\n]|    |  )`, String.raw`\p{N}`, String.raw`[\p{P}!-/:-@\[-` + '`' + '{-~]', GPT2],
    addBos: true,
  },
};

/** The tokenizer.ggml.pre values this library reads. */
export const SUPPORTED_PRE_TOKENIZERS: readonly string[] = Object.keys(PRE_TOKENIZERS);

/** The pre-tokenizer a GGUF names (none: GPT-2's); an unknown name is a typed error listing the known ones. */
export function preTokenizerFor(name: string | undefined): PreTokenizer {
  const pre = Object.hasOwn(PRE_TOKENIZERS, name ?? 'default') ? PRE_TOKENIZERS[name ?? 'default'] : undefined;
  if (!pre) {
    throw new ModelFormatError(
      'unsupported-architecture',
      `pre-tokenizer "${name}" (tokenizer.ggml.pre) is not supported (supported: ${SUPPORTED_PRE_TOKENIZERS.join(', ')})`,
    );
  }
  return pre;
}

/** The pre-tokenizer's regexes as tokenizer.json Split steps (before the byte-level mapping). */
export function splitSteps(pre: PreTokenizer): object[] {
  return pre.regexes.map((r) => ({ type: 'Split', pattern: { Regex: r }, behavior: 'Isolated', invert: false }));
}

/** Text split into pre-tokens the way a vocabulary with this tokenizer.ggml.pre splits it before BPE. */
export function preTokenize(name: string | undefined, text: string): string[] {
  const steps = new SequencePreTokenizer({ type: 'Sequence', pretokenizers: splitSteps(preTokenizerFor(name)) } as never);
  return steps.pre_tokenize_text(text);
}
