/**
 * Constrained decoding: the Constraint that enforces a ConstraintSpec (grammar/spec.ts) token by
 * token. XGrammar (WebAssembly,
 * loaded on first use) compiles the grammar against the model's vocabulary and gives, at each
 * step, the packed set of tokens that keep the output a valid prefix; the GPU sampler masks the
 * rest (LlamaModel.setAllowedTokens).
 */
import type { CompiledGrammar, Grammar, GrammarCompiler, GrammarMatcher } from '@mlc-ai/web-xgrammar';
import { WebGGUFError } from '../errors.js';
import { BYTE_LEVEL_CHARS, TokenType, type GGUFTokenizer } from '../tokenizer/tokenizer.js';
import { checkConstraintSpec, type ConstraintSpec } from './spec.js';

export type { ConstraintSpec };
import { loadXGrammar, compiling } from './xgrammar.js';

/** Enforces a ConstraintSpec over one generation. */
export interface Constraint {
  /**
   * The tokens allowed next, packed: token i is allowed when bit i % 32 of word i / 32 is set.
   * None set: the output is complete and the vocabulary has no end-of-generation token to take.
   */
  allowedTokens(): Promise<Uint32Array<ArrayBuffer>>;
  /** Advances past `token`; throws if it was not allowed. */
  accept(token: number): void;
  /**
   * The output is complete and its end token taken: generation must stop (or, made
   * `untilComplete`, the output is complete and goes on free).
   */
  readonly finished: boolean;
  /** Frees the WebAssembly state; the constraint is unusable afterwards. */
  dispose(): void;
}

/**
 * One model's grammar compiler: the vocabulary as XGrammar sees it (built once, the slow part at
 * a large vocabulary) and its cache of compiled grammars.
 */
export class GrammarEngine {
  private static readonly engines = new WeakMap<GGUFTokenizer, Promise<GrammarEngine>>();

  private constructor(
    private readonly grammar: typeof Grammar,
    private readonly compiler: GrammarCompiler,
    private readonly matcherClass: typeof GrammarMatcher,
    /** Tokens free of control bytes (U+0000-U+001F), packed like a mask: see withoutControlBytes. */
    private readonly printable: Uint32Array,
  ) {}

  /** The engine of `tokenizer` for a model of `vocabSize` logits (the first call loads XGrammar). */
  static for(tokenizer: GGUFTokenizer, vocabSize: number): Promise<GrammarEngine> {
    let engine = GrammarEngine.engines.get(tokenizer);
    if (!engine) {
      engine = GrammarEngine.create(tokenizer, vocabSize).catch((e: unknown) => {
        if (e instanceof WebGGUFError) throw e;
        const reason = e instanceof Error ? e.message : String(e);
        throw new WebGGUFError('invalid-argument', `constrained decoding could not start XGrammar (WebAssembly): ${reason}; a Content-Security-Policy must allow 'wasm-unsafe-eval' for it`, { cause: e });
      });
      engine.catch(() => GrammarEngine.engines.delete(tokenizer));
      GrammarEngine.engines.set(tokenizer, engine);
    }
    return engine;
  }

  private static async create(tokenizer: GGUFTokenizer, vocabSize: number): Promise<GrammarEngine> {
    const xg = await loadXGrammar();
    const { model, tokens, tokenTypes } = tokenizer.spec;
    const stops = [...tokenizer.endOfGeneration];
    // Tokens that are not text (control, unknown, unused) are given as empty strings, which
    // XGrammar never allows; end-of-generation tokens are allowed through `stops` where the
    // output is complete. User-defined tokens are text (`<tool_call>`, `</think>`: a tool call's
    // closer can be the model's own token): those spelled in printable ASCII without spaces,
    // which both vocabulary types read as themselves.
    const pieces = tokens.map((t, i) => {
      const type = tokenTypes?.[i] ?? TokenType.NORMAL;
      if (type === TokenType.USER_DEFINED) return /^[\x21-\x7e]+$/.test(t) ? t : '';
      return type === TokenType.NORMAL || type === TokenType.BYTE ? t : '';
    });
    const vocabType = model === 'llama' ? 'byte_fallback' : model === 'gpt2' ? 'byte_level' : undefined;
    if (!vocabType) throw new WebGGUFError('invalid-argument', `constrained decoding does not support the tokenizer model ${JSON.stringify(model)}`);
    const info = await xg.TokenizerInfo.createTokenizerInfo(pieces, vocabType, false, Math.max(vocabSize, pieces.length), stops);
    return new GrammarEngine(xg.Grammar, await xg.GrammarCompiler.createGrammarCompiler(info, true), xg.GrammarMatcher, printableTokens(tokenizer, vocabSize));
  }

  /**
   * A constraint for one generation; invalid-argument when the grammar or schema does not
   * compile. With `untilComplete`, it is finished as soon as the output matches, without an end
   * token: the output goes on past it (a tool call inside a free reply).
   */
  async constraint(spec: ConstraintSpec, options: { untilComplete?: boolean } = {}): Promise<Constraint> {
    checkConstraintSpec(spec);
    let compiled: CompiledGrammar;
    if (spec.type === 'json_object') {
      // Not strict: any properties (OpenAI's JSON mode); the grammar allows objects only.
      compiled = await compiling('response_format json_object', () => this.compiler.compileJSONSchema('{"type":"object"}', false, -1, undefined, false));
    } else if (spec.type === 'json_schema') {
      // Strict: properties a schema does not list are left out (still valid against it, and a
      // small model cannot wander off into invented keys).
      compiled = await compiling('json_schema', () => this.compiler.compileJSONSchema(JSON.stringify(spec.schema), false, -1, undefined, true));
    } else if (spec.type === 'tool_call') {
      // The rest of the opener, a newline if the model writes one (as the templates write calls),
      // the call's JSON (strict, as for json_schema) as a rule of its own, then the closing text,
      // which may hold a newline.
      // Spaced as the chat templates write calls (`tojson`, Python's json.dumps: ", " and ": "),
      // the form models were trained on.
      const grammar = await compiling('the tool call schema', () => this.grammar.fromJSONSchema(JSON.stringify(spec.schema), false, -1, [', ', ': '], true));
      const json = grammar.toString();
      grammar.dispose();
      const prefix = spec.prefix ? `${JSON.stringify(spec.prefix)} ` : '';
      const ebnf = `${json.replace(/^root ::=/m, 'tool_call_json ::=')}\nroot ::= ${prefix}"\\n"? tool_call_json ${JSON.stringify(spec.suffix)}\n`;
      compiled = await compiling('the tool call schema', () => this.compiler.compileGrammar(ebnf, 'root'));
    } else {
      compiled = await compiling('grammar', () => this.compiler.compileGrammar(spec.grammar, 'root'));
    }
    // JSON alone never needs a control character; a tool call's closing text may (a newline).
    const json = spec.type === 'json_object' || spec.type === 'json_schema';
    const matcher = await this.matcherClass.createGrammarMatcher(compiled, undefined, options.untilComplete === true);
    return new XGrammarConstraint(compiled, matcher, json ? this.printable : undefined);
  }
}

class XGrammarConstraint implements Constraint {
  private disposed = false;
  constructor(private readonly compiled: CompiledGrammar, private readonly matcher: GrammarMatcher, private readonly only?: Uint32Array) {}

  async allowedTokens(): Promise<Uint32Array<ArrayBuffer>> {
    const mask = await this.matcher.getNextTokenBitmask();
    const words = new Uint32Array(mask.buffer as ArrayBuffer, mask.byteOffset, mask.length);
    if (this.only) for (let i = 0; i < words.length; i++) words[i]! &= this.only[i] ?? 0;
    return words;
  }

  accept(token: number): void {
    if (!this.matcher.acceptToken(token)) throw new WebGGUFError('gpu', `the sampler chose token ${token}, which the grammar does not allow`);
  }

  get finished(): boolean {
    return this.matcher.isTerminated();
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.matcher.dispose();
    this.compiled.dispose();
  }
}

/**
 * The tokens whose bytes hold no control character (U+0000-U+001F). XGrammar's JSON grammars let
 * strings hold raw control characters other than CR and LF, which JSON forbids (they must be
 * escaped); the compact JSON these grammars print needs none anywhere, so JSON constraints allow
 * only these tokens.
 */
function printableTokens(tokenizer: GGUFTokenizer, vocabSize: number): Uint32Array {
  const { model, tokens } = tokenizer.spec;
  const words = new Uint32Array(Math.ceil(Math.max(vocabSize, tokens.length) / 32));
  const fromByteLevel = new Map(BYTE_LEVEL_CHARS.map((c, b) => [c, b]));
  for (const [i, t] of tokens.entries()) {
    let control = false;
    const byte = /^<0x([0-9A-Fa-f]{2})>$/.exec(t);
    if (model === 'llama' && byte) control = parseInt(byte[1]!, 16) < 0x20;
    else for (const ch of t) if ((model === 'gpt2' ? fromByteLevel.get(ch) ?? 0x20 : ch.codePointAt(0)!) < 0x20) control = true;
    if (!control) words[i >> 5]! |= 1 << (i & 31);
  }
  return words;
}
