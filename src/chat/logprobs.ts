/**
 * Log-probs in OpenAI's shapes: chat's `logprobs.content` (token, logprob, bytes, top_logprobs)
 * and legacy completions' `logprobs` (tokens, token_logprobs, top_logprobs, text_offset), from
 * the per-step records the GPU computes (LlamaModel's SampledLogprobs: log-softmax of the logits
 * plus logit_bias).
 */
import type { ChatCompletionTokenLogprob, CompletionLogprobs } from '../engine/types.js';
import type { SampledLogprobs } from '../model/llama.js';
import { BYTE_LEVEL_CHARS, TokenType, type GGUFTokenizer } from '../tokenizer/tokenizer.js';

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const fromByteLevel = new Map(BYTE_LEVEL_CHARS.map((c, b) => [c, b]));

/**
 * The bytes a token stands for: a byte token's byte, a SentencePiece piece with ▁ as a space, a
 * byte-level BPE token's bytes; control and added tokens as their text.
 */
export function tokenBytes(tokenizer: GGUFTokenizer, id: number): number[] {
  const { model, tokens, tokenTypes } = tokenizer.spec;
  const text = tokens[id] ?? '';
  const type = tokenTypes?.[id] ?? TokenType.NORMAL;
  if (type === TokenType.NORMAL || type === TokenType.BYTE) {
    if (model === 'gpt2') {
      const bytes = Array.from(text, (c) => fromByteLevel.get(c));
      if (bytes.every((b) => b !== undefined)) return bytes as number[];
    } else if (model === 'llama' || model === 'gemma4') {
      const byte = /^<0x([0-9A-Fa-f]{2})>$/.exec(text);
      if (byte) return [parseInt(byte[1]!, 16)];
      return Array.from(utf8.encode(text.replaceAll('\u2581', ' ')));
    }
  }
  return Array.from(utf8.encode(text));
}

/** A token's text for a log-prob entry: its bytes as UTF-8, or `bytes:\xNN…` where they are part of a character (OpenAI's form). */
function tokenString(bytes: number[]): string {
  try {
    return strictUtf8.decode(new Uint8Array(bytes));
  } catch {
    return `bytes:${bytes.map((b) => `\\x${b.toString(16).padStart(2, '0')}`).join('')}`;
  }
}

/** One chat `logprobs.content` entry: the chosen token and its step's `top` most likely tokens. */
export function chatTokenLogprob(tokenizer: GGUFTokenizer, step: SampledLogprobs): ChatCompletionTokenLogprob {
  const entry = (token: number, logprob: number) => {
    const bytes = tokenBytes(tokenizer, token);
    return { token: tokenString(bytes), logprob, bytes };
  };
  return { ...entry(step.token, step.logprob), top_logprobs: step.top.map((t) => entry(t.token, t.logprob)) };
}

/**
 * Legacy completions' log-probs, built token by token: each token's text, its logprob, its step's
 * most likely tokens as text -> logprob (the likelier kept where two tokens spell the same text),
 * and where its text starts in the choice's text.
 */
export class CompletionLogprobsBuilder {
  readonly logprobs: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };

  constructor(private readonly tokenizer: GGUFTokenizer) {}

  /** Adds a token whose text starts at `offset`; returns the entries it added (for a streamed chunk). */
  add(step: SampledLogprobs, offset: number): CompletionLogprobs {
    const text = (token: number) => tokenString(tokenBytes(this.tokenizer, token));
    // No prototype: a token that spells __proto__ is a key like any other.
    const top = Object.create(null) as Record<string, number>;
    for (const t of step.top) {
      const key = text(t.token);
      if (!(key in top)) top[key] = t.logprob;
    }
    const added: CompletionLogprobs = { tokens: [text(step.token)], token_logprobs: [step.logprob], top_logprobs: [top], text_offset: [offset] };
    for (const key of Object.keys(added) as (keyof CompletionLogprobs)[]) (this.logprobs[key] as unknown[]).push(...(added[key] as unknown[]));
    return added;
  }
}
