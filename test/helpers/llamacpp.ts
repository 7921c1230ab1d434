/**
 * llama.cpp as a tokenizer oracle, from @wllama/wllama 3 (wasm) in Chromium, under any vocabulary
 * GGUF (llama.cpp's vocabulary-only ggml-vocab-*.gguf files included):
 *
 *   const [stats] = await llamaCppTokenStats('../shared/models/tokenizers/llamacpp-vocab/ggml-vocab-gpt-2.gguf', ['Hello world']);
 *   // stats = { count: 2, last: 995 }
 *
 * What it can give is limited by wllama 3, which is llama-server's core: it has no tokenize call
 * (removed in 3.0), it cannot load a vocabulary-only file (llama-server needs tensors and a
 * context), and its embedding answers (OpenAI-shaped) carry one vector per text even with pooling
 * "none". So per text it gives llama.cpp's token count and its last token's id, not the ids in
 * between. It writes a model that carries the file's `tokenizer.*` metadata unchanged and spells
 * each token id out in its output: a one-layer llama whose blocks add nothing (zero output
 * projections) and whose embedding row i is (cos, sin) pairs of 2π·digit/64 for the base-64 digits
 * of i. llama.cpp tokenizes each text itself (llama-server's embedding task), runs that model with
 * pooling "last", and the vector is read back as an id. The tokenizer is llama.cpp's own code; the
 * architecture takes no part in tokenization. Full id sequences need llama.cpp's own
 * test-tokenizer-0 vectors (ggml-vocab-*.gguf.inp/.out) or a native llama-tokenize.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { readGGUF, type GGUFFile } from '../../src/gguf/gguf.js';
import { GGMLType } from '../../src/gguf/ggml-types.js';
import { typed, writeGGUF, type TensorToWrite, type TypedValue } from '../../src/gguf/writer.js';
import { bytesSource } from '../../src/io/byte-source.js';
import { launchChromium } from './browser.js';
import { ModelServer } from './model-server.js';

export interface TokenStats {
  /** How many tokens llama.cpp makes of the text. */
  count: number;
  /** The last one's id; undefined when there are none. */
  last: number | undefined;
}

export interface LlamaCppTokenizeOptions {
  /** Add the model's special tokens (BOS/EOS/CLS/SEP as llama.cpp does for this vocabulary). Default true. */
  addSpecial?: boolean;
  /**
   * Parse control-token text (e.g. `<s>`) as those tokens. Default true. llama-server always parses
   * them, so `false` is accepted only for texts that contain no control or unknown token's text
   * (where the two agree); others throw.
   */
  parseSpecial?: boolean;
}

/** The id-spelling model's width: 4 (cos, sin) pairs, so ids up to 64^4. */
const DIM = 8;
const BASE = 64;

/** One Chromium page with llama.cpp loaded on the id-spelling model of one vocabulary. */
export class LlamaCppTokenizer {
  private constructor(
    private readonly browser: Browser,
    private readonly server: ModelServer,
    private readonly dir: string,
    private readonly page: Page,
    private readonly vocab: GGUFFile,
    private readonly info: { addBos: boolean; addEos: boolean; bos: number; eos: number },
    /** Longest text (in UTF-8 bytes) the loaded context surely holds. */
    private readonly maxBytes: number,
  ) {}

  /** Loads the vocabulary of `ggufPath` (a vocabulary-only GGUF or a whole model) into llama.cpp. */
  static async open(ggufPath: string, { context = 8192 }: { context?: number } = {}): Promise<LlamaCppTokenizer> {
    const vocab = await readGGUF(bytesSource(new Uint8Array(readFileSync(ggufPath)), ggufPath));
    const model = idSpellingModel(vocab, context);
    const server = await new ModelServer().start();
    server.isolated = true;
    const dir = mkdtempSync(join(tmpdir(), 'webgguf-vocab-'));
    writeFileSync(join(dir, 'model.gguf'), model);
    server.files.set('model.gguf', join(dir, 'model.gguf'));
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      page.on('pageerror', (e) => console.error('page error:', e));
      await page.goto(`${server.origin}/repo/test/browser/llamacpp.html`);
      await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
      const info = await call<LlamaCppTokenizer['info']>(page, 'llamaLoad', `${server.origin}/files/model.gguf`, { threads: 1, context, embeddings: true });
      return new LlamaCppTokenizer(browser, server, dir, page, vocab, info, context - 8);
    } catch (e) {
      await browser.close();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }

  /** Per text, llama.cpp's token count and last token id (undefined when it makes no tokens). */
  async tokenStats(texts: string[], { addSpecial = true, parseSpecial = true }: LlamaCppTokenizeOptions = {}): Promise<TokenStats[]> {
    const encoder = new TextEncoder();
    for (const t of texts) {
      if (encoder.encode(t).byteLength > this.maxBytes) throw new Error(`text of ${encoder.encode(t).byteLength} bytes is longer than this oracle's context allows (${this.maxBytes}); open it with a larger context`);
      if (!parseSpecial) {
        const special = this.controlTexts().find((s) => t.includes(s));
        if (special !== undefined) throw new Error(`parseSpecial: false is not available through wllama 3 for a text containing the control token ${JSON.stringify(special)}`);
      }
    }
    // llama-server refuses a text that tokenizes to nothing: an empty text without specials.
    const sent = texts.map((t, i) => ({ t, i })).filter(({ t }) => t !== '' || this.addsSpecial());
    const stats = sent.length ? await call<{ count: number; last: number }[]>(this.page, 'llamaTokenStats', sent.map((s) => s.t), BASE) : [];
    const out: TokenStats[] = texts.map(() => ({ count: 0, last: undefined }));
    sent.forEach((s, k) => (out[s.i] = addSpecial ? stats[k]! : this.withoutSpecial(stats[k]!, s.t)));
    return out;
  }

  async close(): Promise<void> {
    await this.browser.close();
    await this.server.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private meta(key: string): unknown {
    return this.vocab.metadata.get(key);
  }

  private addsSpecial(): boolean {
    return this.info.addBos || this.info.addEos || this.addsSep();
  }

  /** WordPiece (BERT) vocabularies end with SEP when special tokens are added. */
  private addsSep(): boolean {
    return (this.meta('tokenizer.ggml.add_sep_token') ?? this.meta('tokenizer.ggml.model') === 'bert') === true;
  }

  /**
   * The stats without what add_special put around the text: BOS (or CLS) first, EOS or SEP last.
   * When a trailing EOS/SEP comes off, the token before it is unknown here: that case throws.
   */
  private withoutSpecial(s: { count: number; last: number }, text: string): TokenStats {
    let count = s.count;
    if (this.info.addBos) count--;
    const sep = Number(this.meta('tokenizer.ggml.seperator_token_id') ?? 102);
    const trailing = (this.info.addEos && s.last === this.info.eos) || (this.addsSep() && s.last === sep);
    if (trailing) {
      if (count - 1 > 0) throw new Error(`addSpecial: false for ${JSON.stringify(text)}: this vocabulary adds a trailing special token, which hides the last text token`);
      count--;
    }
    return { count, last: count > 0 ? s.last : undefined };
  }

  /** Texts of control and unknown tokens: what parse_special decides about. */
  private controlTexts(): string[] {
    const tokens = this.meta('tokenizer.ggml.tokens') as string[];
    const types = this.meta('tokenizer.ggml.token_type') as ArrayLike<number> | undefined;
    if (!types) return [];
    return tokens.filter((t, i) => (types[i] === 2 || types[i] === 3) && t !== '');
  }
}

/**
 * llama.cpp's token count and last token id for each text under the vocabulary of `ggufPath`.
 * Starts Chromium and llama.cpp for the call (seconds); keep a LlamaCppTokenizer open for many.
 */
export async function llamaCppTokenStats(ggufPath: string, texts: string[], options: LlamaCppTokenizeOptions = {}): Promise<TokenStats[]> {
  const oracle = await LlamaCppTokenizer.open(ggufPath);
  try {
    return await oracle.tokenStats(texts, options);
  } finally {
    await oracle.close();
  }
}

async function call<T>(page: Page, fn: string, ...args: unknown[]): Promise<T> {
  const r = await page.evaluate(([f, a]) => (window as unknown as Record<string, (...x: unknown[]) => Promise<unknown>>)[f as string]!(...(a as unknown[])), [fn, args] as const);
  const error = (r as { error?: { message: string } } | null)?.error;
  if (error) throw new Error(`llama.cpp ${fn}: ${error.message}`);
  return r as T;
}

/** The one-layer llama described above, carrying `vocab`'s tokenizer metadata. */
function idSpellingModel(vocab: GGUFFile, context: number): Uint8Array {
  const tokens = vocab.metadata.get('tokenizer.ggml.tokens') as string[] | undefined;
  if (!tokens) throw new Error('the file has no tokenizer.ggml.tokens');
  const n = tokens.length;
  if (n > BASE ** (DIM / 2)) throw new Error(`vocabulary of ${n} tokens is too large`);
  const f32 = (name: string, dims: number[], fill: (i: number) => number): TensorToWrite => {
    const x = new Float32Array(dims.reduce((a, b) => a * b, 1));
    for (let i = 0; i < x.length; i++) x[i] = fill(i);
    return { name, dims, type: GGMLType.F32, data: new Uint8Array(x.buffer) };
  };
  const spell = (i: number) => {
    const id = Math.floor(i / DIM), d = (i % DIM) >> 1;
    const angle = (2 * Math.PI * (Math.floor(id / BASE ** d) % BASE)) / BASE;
    return i % 2 ? Math.sin(angle) : Math.cos(angle);
  };
  const one = () => 1, zero = () => 0;
  const tensors = [
    f32('token_embd.weight', [DIM, n], spell),
    f32('output_norm.weight', [DIM], one),
    f32('blk.0.attn_norm.weight', [DIM], one),
    ...['attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_gate', 'ffn_up', 'ffn_down'].map((t) => f32(`blk.0.${t}.weight`, [DIM, DIM], zero)),
    f32('blk.0.ffn_norm.weight', [DIM], one),
  ];
  const u32 = (value: number): TypedValue => ({ type: 'u32', value });
  const metadata: [string, TypedValue][] = [
    ['general.architecture', { type: 'string', value: 'llama' }],
    ['general.name', { type: 'string', value: 'token-id oracle' }],
    ['llama.context_length', u32(context)], ['llama.embedding_length', u32(DIM)], ['llama.block_count', u32(1)],
    ['llama.feed_forward_length', u32(DIM)], ['llama.attention.head_count', u32(1)], ['llama.attention.head_count_kv', u32(1)],
    ['llama.rope.dimension_count', u32(DIM)], ['llama.attention.layer_norm_rms_epsilon', { type: 'f32', value: 1e-5 }],
    ...[...vocab.metadata].filter(([k]) => k.startsWith('tokenizer.')).map(([k, v]): [string, TypedValue] => [k, typed(v)]),
  ];
  return writeGGUF(metadata, tensors);
}

/**
 * llama.cpp's pooled, L2-normalized embedding of each text under each model of `ggufPaths` (its
 * own pooling type and tokenizer), with the token count it made: the oracle for the encoder
 * models. `texts`: the same texts for every model, or one list per model. Starts Chromium and
 * llama.cpp once for the call (seconds), and loads the models in turn.
 */
export async function llamaCppEmbeddings(ggufPaths: string[], texts: string[] | string[][], { context = 512 }: { context?: number } = {}): Promise<{ tokens: number; embedding: number[] }[][]> {
  const textsOf = (i: number): string[] => (Array.isArray(texts[0]) ? (texts as string[][])[i]! : (texts as string[]));
  const server = await new ModelServer().start();
  server.isolated = true;
  ggufPaths.forEach((path, i) => server.files.set(`model-${i}.gguf`, path));
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    page.on('pageerror', (e) => console.error('page error:', e));
    await page.goto(`${server.origin}/repo/test/browser/llamacpp.html`);
    await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
    const out = [];
    for (let i = 0; i < ggufPaths.length; i++) {
      await call(page, 'llamaLoad', `${server.origin}/files/model-${i}.gguf`, { threads: 1, context, embeddings: true, pooling: 'unspecified' });
      out.push(await call<{ tokens: number; embedding: number[] }[]>(page, 'llamaEmbed', textsOf(i)));
    }
    await call(page, 'llamaExit');
    return out;
  } finally {
    await browser.close();
    await server.stop();
  }
}
