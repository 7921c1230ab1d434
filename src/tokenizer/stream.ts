import type { GGUFTokenizer } from './tokenizer.js';

/** Tokens of context kept to decode against: enough for any decoder's leading-space rules. */
const CONTEXT = 4;
/** Tokens held back at most while waiting for the rest of a UTF-8 sequence. */
const MAX_PENDING = 8;

/**
 * Turns a stream of token ids into text pieces that never end inside a UTF-8 sequence (byte
 * tokens can split a character). Each new piece is the decode of (context + new tokens) minus the
 * decode of the context, so spaces that depend on the previous token come out right.
 */
export class StreamDecoder {
  private context: number[];
  private pending: number[] = [];

  constructor(private readonly tokenizer: GGUFTokenizer, context: number[] = []) {
    this.context = context.slice(-CONTEXT);
  }

  /** Adds a token; returns the text it completes (possibly empty). */
  push(id: number): string {
    this.pending.push(id);
    const text = this.diff();
    if (text.endsWith('\uFFFD') && this.pending.length < MAX_PENDING) return '';
    return this.commit(text);
  }

  /** Whatever is still held back, replacement characters included. */
  flush(): string {
    return this.pending.length ? this.commit(this.diff()) : '';
  }

  private diff(): string {
    const base = this.tokenizer.decode(this.context);
    const full = this.tokenizer.decode([...this.context, ...this.pending]);
    if (full.startsWith(base)) return full.slice(base.length);
    let i = 0;
    while (i < base.length && base[i] === full[i]) i++;
    return full.slice(i);
  }

  private commit(text: string): string {
    this.context = [...this.context, ...this.pending].slice(-CONTEXT);
    this.pending = [];
    return text;
  }
}
