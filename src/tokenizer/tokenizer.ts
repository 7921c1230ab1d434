import { Tokenizer as HFTokenizer } from '@huggingface/tokenizers';
import { ModelFormatError } from '../errors.js';
import { metaArray, metaString, type GGUFFile } from '../gguf/gguf.js';
import { preTokenizerFor, splitSteps } from './pre-tokenizers.js';

/**
 * The longest token a vocabulary may hold, in UTF-8 bytes. Real vocabularies stop at 1024
 * (gpt-neox's and mpt's runs of spaces); a longer one is a hostile or broken file.
 */
export const MAX_TOKEN_BYTES = 4096;

/** GGUF token types (tokenizer.ggml.token_type). */
export const TokenType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

/** What a GGUF's tokenizer.* metadata says, independent of where it was read from. */
export interface VocabSpec {
  /**
   * tokenizer.ggml.model: 'llama' (SentencePiece with scores), 'gpt2' (byte-level BPE), 'gemma4'
   * (SentencePiece-style BPE with its merges given) or 'bert' (WordPiece).
   */
  model: string;
  /** tokenizer.ggml.pre: which pre-tokenizer splits text before BPE. */
  pre?: string;
  tokens: string[];
  scores?: ArrayLike<number>;
  tokenTypes?: ArrayLike<number>;
  merges?: string[];
  bosId?: number;
  eosId?: number;
  eotId?: number;
  unkId?: number;
  /** WordPiece's CLS (its BOS) and SEP (put after the text). */
  clsId?: number;
  sepId?: number;
  addBos?: boolean;
  addSep?: boolean;
  addEos?: boolean;
  addSpacePrefix?: boolean;
  chatTemplate?: string;
}

export function vocabFromGGUF(file: GGUFFile): VocabSpec {
  const name = file.source.name;
  const model = metaString(file, 'tokenizer.ggml.model');
  const tokens = metaArray(file, 'tokenizer.ggml.tokens');
  if (model === undefined || tokens === undefined) {
    throw new ModelFormatError('malformed', `${name}: no tokenizer in the GGUF metadata (tokenizer.ggml.model/tokens)`);
  }
  const strings = (key: string, v: unknown): string[] => {
    if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) throw new ModelFormatError('malformed', `${name}: ${key} must be an array of strings`);
    return v as string[];
  };
  const num = (key: string) => {
    const v = file.metadata.get(key);
    return typeof v === 'number' ? v : undefined;
  };
  const bool = (key: string) => {
    const v = file.metadata.get(key);
    return typeof v === 'boolean' ? v : undefined;
  };
  const merges = metaArray(file, 'tokenizer.ggml.merges');
  const spec: VocabSpec = {
    model,
    pre: metaString(file, 'tokenizer.ggml.pre'),
    tokens: strings('tokenizer.ggml.tokens', tokens),
    scores: metaArray(file, 'tokenizer.ggml.scores') as ArrayLike<number> | undefined,
    tokenTypes: metaArray(file, 'tokenizer.ggml.token_type') as ArrayLike<number> | undefined,
    merges: merges === undefined ? undefined : strings('tokenizer.ggml.merges', merges),
    bosId: num('tokenizer.ggml.bos_token_id'),
    eosId: num('tokenizer.ggml.eos_token_id'),
    eotId: num('tokenizer.ggml.eot_token_id'),
    unkId: num('tokenizer.ggml.unknown_token_id'),
    clsId: num('tokenizer.ggml.cls_token_id'),
    // llama.cpp's spelling of the key.
    sepId: num('tokenizer.ggml.seperator_token_id'),
    addBos: bool('tokenizer.ggml.add_bos_token'),
    addSep: bool('tokenizer.ggml.add_sep_token'),
    addEos: bool('tokenizer.ggml.add_eos_token'),
    addSpacePrefix: bool('tokenizer.ggml.add_space_prefix'),
    chatTemplate: metaString(file, 'tokenizer.chat_template'),
  };
  for (const key of ['scores', 'tokenTypes'] as const) {
    const arr = spec[key];
    if (arr !== undefined && arr.length !== spec.tokens.length) {
      throw new ModelFormatError('malformed', `${name}: tokenizer ${key} has ${arr.length} entries for ${spec.tokens.length} tokens`);
    }
  }
  return spec;
}

export interface EncodeOptions {
  /**
   * Add the vocabulary's special tokens around the text (default: what the vocabulary says): BOS
   * first (CLS for WordPiece) and, for WordPiece, SEP last.
   */
  addBos?: boolean;
  /**
   * With the special tokens, EOS last where the vocabulary asks for it (tokenizer.ggml.add_eos_token,
   * as llama.cpp adds it: Qwen3-Embedding pools its EOS). Default false: a prompt to continue never
   * ends in EOS.
   */
  addEos?: boolean;
  /** Turn control-token text such as "<|im_start|>" into those tokens (default true). */
  parseSpecial?: boolean;
  /**
   * Ranges [start, end) of the text where control-token text stays plain text even with
   * `parseSpecial` (a chat message's content inside the rendered template).
   */
  literalRanges?: readonly (readonly [number, number])[];
}

/**
 * A tokenizer built from GGUF metadata on top of @huggingface/tokenizers: the vocabulary is
 * translated into the equivalent tokenizer.json once, and HF's implementation does the work.
 */
export class GGUFTokenizer {
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  /** The token put after the text with the special tokens (WordPiece's SEP), if any. */
  readonly sepId: number | undefined;
  readonly addBos: boolean;
  /** tokenizer.ggml.add_eos_token (SentencePiece and BPE vocabularies; WordPiece ends in SEP instead). */
  readonly addEos: boolean;
  readonly chatTemplate: string | undefined;
  /** Tokens that end generation (EOS, EOT and similar control tokens). */
  readonly endOfGeneration: ReadonlySet<number>;
  /**
   * The most input bytes one token can stand for (Infinity where unknown text can fuse into one
   * token): a text of n UTF-8 bytes encodes to at least n / maxTokenBytes tokens.
   */
  readonly maxTokenBytes: number;
  private readonly controlTokens: string[];
  /** Control-token text -> id. */
  private readonly controlIds = new Map<string, number>();
  private controlRegex: RegExp | undefined;
  private readonly hf: HFTokenizer;
  private plainHf: HFTokenizer | undefined;

  constructor(readonly spec: VocabSpec) {
    const t = spec.tokens;
    this.vocabSize = t.length;
    this.maxTokenBytes = checkTokenLengths(spec);
    const valid = (id: number | undefined) => (id !== undefined && id >= 0 && id < t.length ? id : undefined);
    // llama.cpp's defaults for WordPiece: CLS 101 is its BOS, SEP 102 follows the text.
    const wordPiece = spec.model === 'bert';
    this.bosId = valid(spec.bosId ?? (wordPiece ? spec.clsId ?? 101 : undefined));
    this.eosId = valid(spec.eosId);
    this.sepId = wordPiece && (spec.addSep ?? true) ? valid(spec.sepId ?? 102) : undefined;
    // Without tokenizer.ggml.add_bos_token, llama.cpp's defaults: SentencePiece, WordPiece and some pre-tokenizers add BOS.
    const bosByDefault = spec.model === 'llama' || spec.model === 'gemma4' || wordPiece || (spec.model === 'gpt2' && preTokenizerFor(spec.pre).addBos === true);
    this.addBos = (spec.addBos ?? bosByDefault) && this.bosId !== undefined;
    this.addEos = spec.addEos === true && !wordPiece && this.eosId !== undefined;
    this.chatTemplate = spec.chatTemplate;
    const types = spec.tokenTypes;
    this.controlTokens = t.filter((_, i) => types?.[i] === TokenType.CONTROL && t[i]!.length > 0);
    for (const [i, s] of t.entries()) if (types?.[i] === TokenType.CONTROL && s.length > 0 && !this.controlIds.has(s)) this.controlIds.set(s, i);
    const eog = new Set<number>();
    for (const id of [this.eosId, valid(spec.eotId)]) if (id !== undefined) eog.add(id);
    // Chat models end turns with control tokens the metadata does not always name.
    for (const [i, s] of t.entries()) {
      if (types?.[i] === TokenType.CONTROL && /^(<\|eot_id\|>|<\|im_end\|>|<\|end\|>|<end_of_turn>|<\|endoftext\|>|<\/s>)$/.test(s)) eog.add(i);
    }
    this.endOfGeneration = eog;
    this.hf = this.build(true);
  }

  static fromGGUF(file: GGUFFile): GGUFTokenizer {
    return new GGUFTokenizer(vocabFromGGUF(file));
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    const parseSpecial = options.parseSpecial ?? true;
    let ids: number[];
    if (!this.hasControlText(text)) {
      ids = text.length ? this.run(this.hf, text) : [];
    } else if (!parseSpecial) {
      ids = this.plain(text);
    } else if (options.literalRanges?.length) {
      ids = this.encodeAround(text, options.literalRanges);
    } else {
      ids = this.run(this.hf, text);
    }
    const eos = options.addEos && this.addEos && options.addBos !== false ? [this.eosId!] : [];
    if (!(options.addBos ?? this.addBos)) return [...ids, ...eos];
    return [...(this.bosId !== undefined ? [this.bosId] : []), ...ids, ...(this.sepId !== undefined ? [this.sepId] : []), ...eos];
  }

  /** One HF encode, after WordPiece's own reduction of accented letters (see baseLetters). */
  private run(hf: HFTokenizer, text: string): number[] {
    return hf.encode(this.spec.model === 'bert' ? baseLetters(text) : text, { add_special_tokens: false }).ids;
  }

  /** Whether the text holds the text of a control token (such as "</s>" or "<|im_start|>"). */
  hasControlText(text: string): boolean {
    return this.controlTokens.length > 0 && this.controlPattern().test(text);
  }

  /**
   * The text with every control-token text broken by a word joiner (U+2060) after its first
   * character: it reads the same but can no longer become a control token.
   */
  breakControlText(text: string): string {
    if (!this.hasControlText(text)) return text;
    return text.replace(new RegExp(this.controlPattern().source, 'gu'), (c) => {
      const first = String.fromCodePoint(c.codePointAt(0)!);
      return `${first}\u2060${c.slice(first.length)}`;
    });
  }

  /** The fewest tokens a text can encode to: no token stands for more than maxTokenBytes bytes. */
  minTokens(text: string): number {
    return Number.isFinite(this.maxTokenBytes) ? Math.ceil(utf8Length(text) / this.maxTokenBytes) : 0;
  }

  /** Text without special-token parsing: control-token text is encoded as the characters it is. */
  private plain(text: string): number[] {
    this.plainHf ??= this.build(false);
    return text.length ? this.run(this.plainHf, text) : [];
  }

  /**
   * Splits the text at control-token text outside `literal` (as HF does at every one) and encodes
   * what lies between as plain text, so control-token text inside the ranges stays text and the
   * rest tokenizes exactly as a whole-text encode would.
   */
  private encodeAround(text: string, literal: readonly (readonly [number, number])[]): number[] {
    const ids: number[] = [];
    const inLiteral = (start: number, end: number) => literal.some(([a, b]) => a < end && start < b);
    const pattern = new RegExp(this.controlPattern().source, 'gu');
    let from = 0;
    for (const m of text.matchAll(pattern)) {
      const start = m.index;
      const end = start + m[0].length;
      if (inLiteral(start, end)) continue;
      ids.push(...this.plain(text.slice(from, start)), this.controlIds.get(m[0])!);
      from = end;
    }
    ids.push(...this.plain(text.slice(from)));
    return ids;
  }

  /** Control-token texts, longest first (HF matches the longest at a position). */
  private controlPattern(): RegExp {
    return (this.controlRegex ??= new RegExp(
      [...new Set(this.controlTokens)].sort((a, b) => b.length - a.length).map((c) => c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'),
      'u',
    ));
  }

  /** The vocabulary string of a token (as in the GGUF), or '' for ids out of range. */
  tokenText(id: number | undefined): string {
    return id === undefined ? '' : this.spec.tokens[id] ?? '';
  }

  /** Decodes ids to text; control tokens are dropped unless `keepSpecial`. */
  decode(ids: number[], options: { keepSpecial?: boolean } = {}): string {
    const types = this.spec.tokenTypes;
    const kept = options.keepSpecial ? ids : ids.filter((id) => types?.[id] !== TokenType.CONTROL);
    const inRange = kept.filter((id) => Number.isInteger(id) && id >= 0 && id < this.vocabSize);
    if (inRange.length === 0) return '';
    return this.hf.decode(inRange, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }

  private build(withControl: boolean): HFTokenizer {
    const s = this.spec;
    const types = s.tokenTypes;
    const added = s.tokens
      .map((content, id) => ({ content, id, type: types?.[id] ?? TokenType.NORMAL }))
      .filter((a) => a.content.length > 0 && (a.type === TokenType.USER_DEFINED || (withControl && a.type === TokenType.CONTROL)))
      .map((a) => ({
        id: a.id, content: a.content, single_word: false, lstrip: false, rstrip: false,
        normalized: false, special: a.type === TokenType.CONTROL,
      }));
    const vocab = Object.fromEntries(s.tokens.map((tok, i) => [tok, i]));
    const json = s.model === 'llama' || s.model === 'gemma4' ? this.sentencePiece(vocab, added) : s.model === 'gpt2' ? this.byteLevelBpe(vocab, added) : s.model === 'bert' ? this.wordPiece(added) : null;
    if (!json) {
      throw new ModelFormatError('unsupported-architecture', `tokenizer model "${s.model}" is not supported (supported: llama, gpt2, gemma4, bert)`);
    }
    return new HFTokenizer(json, { clean_up_tokenization_spaces: false });
  }

  /** The unknown token: the one the metadata names, else the first typed UNKNOWN (-1: none). */
  private unknownId(): number {
    const types = this.spec.tokenTypes;
    return this.spec.unkId ?? (types ? Array.from(types).indexOf(TokenType.UNKNOWN) : -1);
  }

  /**
   * SentencePiece BPE (tokenizer.ggml.model = llama): merges are derived from the scores, a
   * pair ranking by the score of the piece it makes (as HF's converters do), bytes fall back to
   * <0xXX> tokens, and spaces become U+2581 with one prepended. Gemma 4's (gemma4) is the same
   * with its merges in tokenizer.ggml.merges (pieces never hold a plain space) and, as its files
   * say, no space prepended.
   */
  private sentencePiece(vocab: Record<string, number>, added: object[]): object {
    const s = this.spec;
    if (s.model === 'gemma4' && !s.merges) throw new ModelFormatError('malformed', 'a gemma4 tokenizer needs tokenizer.ggml.merges');
    const scores = s.scores;
    const types = s.tokenTypes;
    const candidates: { left: string; right: string; score: number; l: number; r: number }[] = [];
    const mergeable = (id: number | undefined) =>
      id !== undefined && (types === undefined || types[id] === TokenType.NORMAL || types[id] === TokenType.USER_DEFINED);
    const ids = new Map<string, number>();
    for (const [id, piece] of s.tokens.entries()) ids.set(piece, id);
    const isPiece = (id: number) => mergeable(id) && ids.get(s.tokens[id]!) === id;
    for (const { piece, id, split } of s.model === 'gemma4' ? [] : pieceSplits(s.tokens, mergeable, isPiece)) {
      const left = piece.slice(0, split);
      const right = piece.slice(split);
      const l = ids.get(left);
      const r = ids.get(right);
      if (mergeable(l) && mergeable(r)) candidates.push({ left, right, score: scores?.[id] ?? -id, l: l!, r: r! });
    }
    candidates.sort((a, b) => b.score - a.score || a.l - b.l || a.r - b.r);
    const unk = this.unknownId();
    const addPrefix = s.addSpacePrefix ?? true;
    return {
      version: '1.0',
      added_tokens: added,
      normalizer: {
        type: 'Sequence',
        normalizers: [
          ...(addPrefix ? [{ type: 'Prepend', prepend: '▁' }] : []),
          { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
        ],
      },
      pre_tokenizer: null,
      post_processor: null,
      decoder: {
        type: 'Sequence',
        decoders: [
          { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
          { type: 'ByteFallback' },
          { type: 'Fuse' },
          ...(addPrefix ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : []),
        ],
      },
      model: {
        type: 'BPE', dropout: null, unk_token: unk >= 0 ? s.tokens[unk] : null, continuing_subword_prefix: null,
        end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false,
        vocab, merges: s.model === 'gemma4' ? s.merges!.map((m) => splitMerge(m)) : candidates.map((c) => [c.left, c.right]),
      },
    };
  }

  /** GPT-2-style byte-level BPE (tokenizer.ggml.model = gpt2) with the pre-tokenizer named by `pre`. */
  private byteLevelBpe(vocab: Record<string, number>, added: object[]): object {
    const s = this.spec;
    const pre = preTokenizerFor(s.pre);
    if (!s.merges) throw new ModelFormatError('malformed', 'a gpt2 tokenizer needs tokenizer.ggml.merges');
    return {
      version: '1.0',
      added_tokens: added,
      normalizer: null,
      pre_tokenizer: {
        type: 'Sequence',
        pretokenizers: [
          ...splitSteps(pre),
          { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
        ],
      },
      post_processor: null,
      decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
      model: {
        type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
        fuse_unk: false, byte_fallback: false, ignore_merges: pre.ignoreMerges ?? false,
        vocab, merges: s.merges.map((m) => splitMerge(m)),
      },
    };
  }

  /**
   * WordPiece (tokenizer.ggml.model = bert), as llama.cpp's WPM tokenizer runs it: each
   * precomposed character reduced to its base (baseLetters), lower-cased, control characters
   * dropped, split at whitespace and around punctuation, ASCII symbols and CJK ideographs; then
   * each word greedily into the longest pieces from its start (a word with a piece missing becomes
   * one [UNK]). Combining marks typed as such stay in the word. The GGUF spells a word's first piece with a
   * U+2581 prefix and a continuing piece bare (llama.cpp's converter drops BERT's "##"); here they
   * become BERT's own spelling again.
   */
  private wordPiece(added: object[]): object {
    const s = this.spec;
    const types = s.tokenTypes;
    const vocab: Record<string, number> = {};
    for (const [id, token] of s.tokens.entries()) {
      const type = types?.[id] ?? TokenType.NORMAL;
      const piece = type === TokenType.CONTROL || type === TokenType.UNKNOWN ? token : token.startsWith('▁') ? token.slice(1) : CONTINUATION + token;
      if (!(piece in vocab)) vocab[piece] = id;
    }
    const unk = this.unknownId();
    return {
      version: '1.0',
      added_tokens: added,
      normalizer: {
        type: 'Sequence',
        normalizers: [
          { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: false, lowercase: true },
        ],
      },
      pre_tokenizer: { type: 'BertPreTokenizer' },
      post_processor: null,
      decoder: { type: 'WordPiece', prefix: CONTINUATION, cleanup: false },
      model: {
        type: 'WordPiece', unk_token: unk >= 0 ? s.tokens[unk] : '[UNK]', continuing_subword_prefix: CONTINUATION,
        max_input_chars_per_word: Number.MAX_SAFE_INTEGER, vocab,
      },
    };
  }
}

/**
 * Each character replaced by the first code point of its canonical decomposition: "é" -> "e",
 * "ü" -> "u", a Hangul syllable -> its first jamo. This is what llama.cpp's WPM tokenizer calls
 * NFD (its table keeps one code point per character), so accents on precomposed letters vanish
 * while combining marks already in the text stay.
 */
function baseLetters(text: string): string {
  // Only characters NFD changes matter; ASCII-only text is returned as it is.
  if (/^[\x00-\x7f]*$/.test(text)) return text;
  let out = '';
  for (const c of text) {
    const d = c.normalize('NFD');
    out += d === c ? c : String.fromCodePoint(d.codePointAt(0)!);
  }
  return out;
}

/** WordPiece's mark of a piece that continues a word (GGUF marks the other kind instead). */
const CONTINUATION = '##';

/**
 * "a b" -> ["a", "b"]; byte-level and gemma4 tokens never contain a plain space, so the first one
 * (after the first character) splits.
 */
function splitMerge(m: string): [string, string] {
  const i = m.indexOf(' ', 1);
  return i < 0 ? [m, ''] : [m.slice(0, i), m.slice(i + 1)];
}

/** Checks every token against MAX_TOKEN_BYTES; returns GGUFTokenizer.maxTokenBytes. */
function checkTokenLengths(spec: VocabSpec): number {
  let longest = 0;
  for (const [id, token] of spec.tokens.entries()) {
    // A UTF-16 code unit takes 1 to 3 UTF-8 bytes (a surrogate pair 4): count only when it matters.
    const bytes = token.length * 3 <= MAX_TOKEN_BYTES ? token.length * 3 : utf8Length(token);
    if (bytes > MAX_TOKEN_BYTES) {
      throw new ModelFormatError('malformed', `token ${id} of the vocabulary is ${utf8Length(token)} bytes long (at most ${MAX_TOKEN_BYTES})`);
    }
    if (bytes > longest) longest = Math.max(longest, utf8Length(token));
  }
  // Without a token for every byte, unknown text may fuse into one <unk> or be dropped.
  const types = spec.tokenTypes;
  let byteTokens = 0;
  if (spec.model === 'llama' || spec.model === 'gemma4') {
    for (let i = 0; i < spec.tokens.length; i++) if (types?.[i] === TokenType.BYTE) byteTokens++;
  } else {
    const present = new Set(spec.tokens);
    for (let b = 0; b < 256; b++) if (present.has(BYTE_LEVEL_CHARS[b]!)) byteTokens++;
  }
  return byteTokens >= 256 ? Math.max(longest, 1) : Infinity;
}

function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** GPT-2's byte-to-character table: printable bytes stand for themselves, the rest from U+0100. */
export const BYTE_LEVEL_CHARS: string[] = (() => {
  const out: string[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    out.push(String.fromCharCode(printable ? b : next++));
  }
  return out;
})();

/**
 * Every split of a token (those `isWhole` accepts) into two pieces that might both be tokens
 * (`isPiece` says which ids count), found in time linear in the vocabulary's length: polynomial hashes of every prefix
 * and suffix are looked up in a set of token hashes (random base, so a file cannot aim for
 * collisions). Candidates still need checking by string; splits fall between code points.
 */
function* pieceSplits(tokens: string[], isWhole: (id: number) => boolean, isPiece: (id: number) => boolean): Generator<{ piece: string; id: number; split: number }> {
  const P = 94906249; // the largest prime with P * P + 2^16 < 2^53: products stay exact doubles
  const B = 65537 + Math.floor(Math.random() * (P - 65537));
  const hashOf = (t: string) => {
    let h = 0;
    for (let i = 0; i < t.length; i++) h = (h * B + t.charCodeAt(i) + 1) % P;
    return h;
  };
  const pieces = new Set<number>();
  let longest = 0;
  for (const [id, t] of tokens.entries()) {
    if (!isPiece(id)) continue;
    pieces.add(hashOf(t));
    longest = Math.max(longest, t.length);
  }
  const pow = new Float64Array(longest + 1);
  pow[0] = 1;
  for (let i = 1; i <= longest; i++) pow[i] = (pow[i - 1]! * B) % P;
  const prefix = new Float64Array(longest + 1);
  for (const [id, t] of tokens.entries()) {
    const n = t.length;
    if (n < 2 || n > longest || !isWhole(id)) continue;
    for (let i = 0; i < n; i++) prefix[i + 1] = (prefix[i]! * B + t.charCodeAt(i) + 1) % P;
    for (let i = 1; i < n; i++) {
      if ((t.charCodeAt(i) & 0xfc00) === 0xdc00 && (t.charCodeAt(i - 1) & 0xfc00) === 0xd800) continue;
      if (!pieces.has(prefix[i]!)) continue;
      const suffix = (((prefix[n]! - ((prefix[i]! * pow[n - i]!) % P)) % P) + P) % P;
      if (pieces.has(suffix)) yield { piece: t, id, split: i };
    }
  }
}
