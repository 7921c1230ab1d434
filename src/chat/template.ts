import { Environment, Interpreter, Template } from '@huggingface/jinja';
import { WebGGUFError } from '../errors.js';
import type { ChatMessage } from './messages.js';
import { callText, genericToolPrompt, templateFeatures, toolFormat, type FunctionDefinition } from './tool-format.js';
import type { GGUFTokenizer } from '../tokenizer/tokenizer.js';

/** What a request adds to the messages when rendering. */
export interface RenderOptions {
  /** Functions the model may call (absent with tool_choice 'none'). */
  tools?: FunctionDefinition[];
  /** chat_template_kwargs: extra variables for the template (enable_thinking, ...). */
  kwargs?: Record<string, unknown>;
  /**
   * End with the template's generation prompt (default true); false renders the conversation
   * alone, where a model with a recurrent state keeps its checkpoint for the next turn.
   */
  generationPrompt?: boolean;
}

/** A message as the template sees it. */
interface TemplateMessage {
  role: string;
  content: string;
  [field: string]: unknown;
}

/** Tool output wrapped for templates that have no tool role. */
const toolResponse = (content: string) => `<tool_response>\n${content}\n</tool_response>`;

/**
 * The messages (and tools) shaped for this template: what it renders itself it gets as OpenAI
 * sends it (arguments as an object where it writes them with tojson; 9-character ids where it
 * insists on them); what it cannot render is written in the model's own call format: calls into
 * the assistant's content, tool results as user turns, and the offered functions into the system
 * message (Phi-4-mini's `tools` field, or the generic instructions).
 */
export function templateMessages(template: string | undefined, messages: ChatMessage[], tools: FunctionDefinition[] | undefined): TemplateMessage[] {
  const features = templateFeatures(template);
  const format = toolFormat(template);
  const id = (callId: string) => (features.nineCharIds ? nineCharId(callId) : callId);
  const out = messages.map((m): TemplateMessage => {
    const t: TemplateMessage = { role: m.role, content: m.content };
    if (m.name !== undefined) t.name = m.name;
    if (m.reasoning_content !== undefined) t.reasoning_content = m.reasoning_content;
    if (m.tool_calls) {
      if (features.toolCalls) {
        t.tool_calls = m.tool_calls.map((c) => ({
          id: id(c.id), type: 'function',
          function: { name: c.function.name, arguments: features.objectArguments ? JSON.parse(c.function.arguments) as unknown : c.function.arguments },
        }));
      } else {
        const calls = m.tool_calls.map((c) => callText(format, { name: c.function.name, arguments: JSON.parse(c.function.arguments) as Record<string, unknown> }));
        t.content = [m.content, ...calls].filter((x) => x !== '').join('\n');
      }
    }
    if (m.role === 'tool') {
      if (features.toolRole) t.tool_call_id = id(m.tool_call_id ?? '');
      else Object.assign(t, { role: 'user', content: toolResponse(m.content) });
    }
    return t;
  });
  if (tools?.length && !features.tools) {
    const system = out.findIndex((m) => m.role === 'system' || m.role === 'developer');
    if (features.messageTools) {
      const list = JSON.stringify(tools);
      if (system >= 0) out[system] = { ...out[system]!, tools: list };
      else out.unshift({ role: 'system', content: 'You are a helpful assistant with some tools.', tools: list });
    } else {
      const prompt = genericToolPrompt(tools);
      if (system >= 0) out[system] = { ...out[system]!, content: `${out[system]!.content}\n\n${prompt}` };
      else out.unshift({ role: 'system', content: prompt });
    }
  }
  return out;
}

/** Mistral's templates want call ids of 9 letters and digits: others are mapped to one, the same each time. */
function nineCharId(id: string): string {
  if (/^[A-Za-z0-9]{9}$/.test(id)) return id;
  const digits = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
  let a = 0x811c9dc5;
  let b = 0x9e3779b9;
  for (let i = 0; i < id.length; i++) {
    a = Math.imul(a ^ id.charCodeAt(i), 0x01000193) >>> 0;
    b = Math.imul(b ^ id.charCodeAt(i), 0x85ebca6b) >>> 0;
  }
  let out = '';
  for (let i = 0; i < 9; i++) {
    const word = i < 5 ? a : b;
    out += digits[(word >>> ((i % 5) * 6)) % 62];
  }
  return out;
}

/**
 * What one render may cost. A template comes with the model file, so it is untrusted code: loops
 * over `range(10**9)`, nested loops and strings that double each step must stop early.
 */
export const TEMPLATE_LIMITS = {
  /** Interpreter steps (node evaluations); real templates take a few hundred per message. */
  steps: 1_000_000,
  /** Wall-clock time of one render. */
  ms: 5_000,
  /** Items `range()` may make. */
  rangeItems: 100_000,
  /** Largest integer argument of a filter or method (`indent(n)`, `center(n)`, ...). */
  intArgument: 100_000,
  /** Characters of any one value or the output, beyond what the messages bring (times 4). */
  chars: 1 << 20,
  /** Characters produced over a whole render, as a multiple of `chars`. */
  producedFactor: 16,
};

/**
 * Renders the model's own chat template (tokenizer.chat_template) in @huggingface/jinja's
 * sandboxed interpreter, within TEMPLATE_LIMITS. A base model without one gets a plain transcript.
 */
export function renderChat(template: string | undefined, messages: ChatMessage[], tokens: { bos: string; eos: string }, options: RenderOptions = {}): string {
  const generationPrompt = options.generationPrompt ?? true;
  const shaped = templateMessages(template, messages, options.tools);
  if (!template) {
    const lines = shaped.map((m) => (m.role === 'system' || m.role === 'developer' ? `${m.content}\n` : `${m.role === 'user' ? 'User' : 'Assistant'}: ${m.content}`));
    return `${lines.join('\n')}${generationPrompt ? '\nAssistant:' : ''}`;
  }
  try {
    const env = new Environment();
    const tools = options.tools?.length ? { tools: options.tools.map((f) => ({ type: 'function', function: f })) } : {};
    for (const [name, value] of Object.entries({
      ...options.kwargs,
      ...tools,
      false: false, true: true, none: null, False: false, True: true, None: null,
      raise_exception: (message: string) => {
        throw new Error(message);
      },
      range: boundedRange,
      strftime_now: strftimeNow,
      messages: shaped,
      add_generation_prompt: generationPrompt,
      bos_token: tokens.bos,
      eos_token: tokens.eos,
    })) env.set(name, value);
    const content = shaped.reduce((n, m) => n + m.content.length, 0) + JSON.stringify(options.tools ?? []).length;
    const chars = TEMPLATE_LIMITS.chars + 4 * content;
    const interpreter = new BoundedInterpreter(env, {
      steps: TEMPLATE_LIMITS.steps,
      deadline: performance.now() + TEMPLATE_LIMITS.ms,
      chars,
      produced: chars * TEMPLATE_LIMITS.producedFactor,
    });
    const out = interpreter.run(new Template(template).parsed) as RuntimeValue;
    return String(out.value);
  } catch (e) {
    throw new WebGGUFError('invalid-argument', `the model's chat template failed: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Renders a chat and encodes it. The template's own markup keeps its control tokens, but text
 * in the messages never becomes one ("</s><s>" or "<|im_start|>" typed by a user stays text,
 * so no one can forge a turn) unless `allowSpecial`.
 */
export function encodeChat(
  tokenizer: GGUFTokenizer, messages: ChatMessage[], options: RenderOptions & { allowSpecial?: boolean; prefill?: string } = {},
): number[] {
  const tokens = { bos: tokenizer.tokenText(tokenizer.bosId), eos: tokenizer.tokenText(tokenizer.eosId) };
  // The reply's forced start (a tool call's opener) is template-like text: its control tokens count.
  const prefill = options.prefill ?? '';
  const encode = (text: string, literalRanges?: [number, number][]) =>
    // Templates that write BOS themselves must not get a second one.
    tokenizer.encode(text + (options.generationPrompt === false ? '' : prefill), { addBos: tokens.bos && text.startsWith(tokens.bos) ? false : undefined, literalRanges });
  const render: RenderOptions = { tools: options.tools, kwargs: options.kwargs, generationPrompt: options.generationPrompt };
  if (!options.allowSpecial) {
    // Tool definitions and call arguments are rendered as JSON, out of reach of content spans.
    const neutral = (v: unknown) => neutralized(tokenizer, v);
    render.tools = render.tools && (neutral(render.tools) as FunctionDefinition[]);
    messages = messages.map((m) => ({
      ...m,
      ...(m.tool_calls ? { tool_calls: neutral(m.tool_calls) as ChatMessage['tool_calls'] } : {}),
      ...(m.tool_call_id !== undefined ? { tool_call_id: neutral(m.tool_call_id) as string } : {}),
      ...(m.reasoning_content !== undefined ? { reasoning_content: neutral(m.reasoning_content) as string } : {}),
    }));
  }
  const text = renderChat(tokenizer.chatTemplate, messages, tokens, render);
  if (options.allowSpecial || !messages.some((m) => tokenizer.hasControlText(m.content))) return encode(text);
  const spans = contentSpans(tokenizer.chatTemplate, messages, tokens, text, render);
  if (spans) return encode(text, spans);
  // The template changes the content (or branches on it), so where it lands is unknown: break
  // up control-token text in the content instead.
  const neutral = messages.map((m) => ({ ...m, content: tokenizer.breakControlText(m.content) }));
  return encode(renderChat(tokenizer.chatTemplate, neutral, tokens, render));
}

/** Strings inside a JSON value (or JSON texts) with control-token text broken up, so none becomes a control token. */
function neutralized(tokenizer: GGUFTokenizer, value: unknown): unknown {
  if (typeof value === 'string') return tokenizer.hasControlText(value) ? tokenizer.breakControlText(value) : value;
  if (Array.isArray(value)) return value.map((v) => neutralized(tokenizer, v));
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [neutralized(tokenizer, k), neutralized(tokenizer, v)]));
  return value;
}

/**
 * Where each message's content lands in `text`: the template is rendered again with each
 * content replaced by a unique marker, and the markers are swapped back. Undefined unless that
 * gives `text` exactly (a template that transforms or inspects content).
 */
function contentSpans(
  template: string | undefined, messages: ChatMessage[], tokens: { bos: string; eos: string }, text: string, options: RenderOptions,
): [number, number][] | undefined {
  const nonce = Math.random().toString(36).slice(2, 10);
  const marker = (i: number) => `\uE000${nonce}:${i}\uE001`;
  let marked: string;
  try {
    // Empty content stays empty: templates branch on it (an assistant turn that only calls tools).
    marked = renderChat(template, messages.map((m, i) => ({ ...m, content: m.content === '' ? '' : marker(i) })), tokens, options);
  } catch {
    return undefined;
  }
  const spans: [number, number][] = [];
  let rebuilt = '';
  let from = 0;
  for (const m of marked.matchAll(new RegExp(`\uE000${nonce}:(\\d+)\uE001`, 'g'))) {
    const content = messages[Number(m[1])]?.content;
    if (content === undefined) return undefined;
    rebuilt += marked.slice(from, m.index);
    spans.push([rebuilt.length, rebuilt.length + content.length]);
    rebuilt += content;
    from = m.index + m[0].length;
  }
  rebuilt += marked.slice(from);
  return rebuilt === text ? spans : undefined;
}

/** @huggingface/jinja's runtime values, as far as the limits look at them. */
interface RuntimeValue {
  type: string;
  value: unknown;
}
interface AstNode {
  type: string;
  [field: string]: unknown;
}
/** Filters that take an undefined value as '' (as Python's Jinja does). */
const STRING_FILTERS = new Set(['trim', 'lower', 'upper', 'capitalize', 'title', 'string', 'length']);
/** An argument or operand evaluated ahead of the interpreter (to check it), passed back as is. */
const EVALUATED = 'WebGGUFEvaluated';
const LITERAL = /^(String|Integer|Float|Boolean)Literal$/;

/** The interpreter's own methods that the limits hook into (private in its typings). */
interface InterpreterInternals {
  run(program: unknown): unknown;
  evaluate(node: AstNode | undefined, env: Environment): RuntimeValue;
  applyFilter(operand: RuntimeValue, filter: AstNode, env: Environment): RuntimeValue;
}
const InterpreterBase = Interpreter as unknown as new (env: Environment) => InterpreterInternals;

/**
 * Counts every evaluation against a step budget and the clock, and checks every value it
 * produces: strings and arrays stay under the size caps, and so does the sum of all strings
 * produced (output grows in loops by appending values that each passed through here). Filter
 * and method arguments are evaluated first, so a call that would blow up in one step
 * (`indent(10**9)`, `replace('', big)`) is refused before it runs.
 */
class BoundedInterpreter extends InterpreterBase {
  private steps = 0;
  private produced = 0;
  constructor(env: Environment, private readonly limits: { steps: number; deadline: number; chars: number; produced: number }) {
    super(env);
  }

  override evaluate(node: AstNode | undefined, env: Environment): RuntimeValue {
    if (node?.type === EVALUATED) return node.value as RuntimeValue;
    if (++this.steps > this.limits.steps) throw new Error(`it took more than ${this.limits.steps} steps`);
    if ((this.steps & 1023) === 0 && performance.now() > this.limits.deadline) throw new Error(`it ran for more than ${TEMPLATE_LIMITS.ms} ms`);
    if (node?.type === 'CallExpression') node = this.checkedCall(node, env);
    const value = super.evaluate(node, env);
    this.check(value);
    return value;
  }

  override applyFilter(operand: RuntimeValue, filter: AstNode, env: Environment): RuntimeValue {
    const filterName = (filter.type === 'CallExpression' ? (filter.callee as AstNode).value : filter.value) as string;
    // Python's Jinja reads an undefined value as '' in string filters (Hermes' tool template
    // trims each parameter's description, which tools often leave out).
    if (operand.type === 'UndefinedValue' && STRING_FILTERS.has(filterName)) operand = super.evaluate({ type: 'StringLiteral', value: '' }, env);
    if (filter.type === 'CallExpression') {
      const name = (filter.callee as AstNode).value as string;
      const args = this.evaluatedArgs(filter.args as AstNode[], env);
      this.checkArgs(name, operand, args);
      filter = { ...filter, args: args.map(([node]) => node) };
    }
    return super.applyFilter(operand, filter, env);
  }

  /** A call with its arguments (and a method's object) evaluated and checked. */
  private checkedCall(node: AstNode, env: Environment): AstNode {
    let callee = node.callee as AstNode;
    let object: RuntimeValue | undefined;
    if (callee.type === 'MemberExpression' && !callee.computed) {
      object = this.evaluate(callee.object as AstNode, env);
      callee = { ...callee, object: evaluated(object) };
    }
    const args = this.evaluatedArgs(node.args as AstNode[], env);
    if (object) this.checkArgs(String((callee.property as AstNode).value), object, args);
    return { ...node, callee, args: args.map(([n]) => n) };
  }

  /** Each argument node with its value: keyword and spread arguments keep their shape. */
  private evaluatedArgs(args: AstNode[], env: Environment): [AstNode, RuntimeValue][] {
    return args.map((arg) => {
      const field = arg.type === 'KeywordArgumentExpression' ? 'value' : arg.type === 'SpreadExpression' ? 'argument' : undefined;
      const value = this.evaluate(field ? (arg[field] as AstNode) : arg, env);
      // Literals stay as they are: some filters look at their node type (selectattr).
      if (LITERAL.test(arg.type)) return [arg, value];
      return [field ? { ...arg, [field]: evaluated(value) } : evaluated(value), value];
    });
  }

  private checkArgs(name: string, operand: RuntimeValue, args: [AstNode, RuntimeValue][]): void {
    for (const [, v] of args) {
      if (v.type === 'IntegerValue' && Math.abs(v.value as number) > TEMPLATE_LIMITS.intArgument) {
        throw new Error(`${name}() was given ${String(v.value)} (at most ${TEMPLATE_LIMITS.intArgument})`);
      }
    }
    if (name === 'replace' && operand.type === 'StringValue') {
      const [from, to] = args.map(([, v]) => v);
      if (from?.type === 'StringValue' && to?.type === 'StringValue') {
        const text = operand.value as string;
        const size = text.length + occurrences(text, from.value as string) * ((to.value as string).length - (from.value as string).length);
        if (size > this.limits.chars) throw new Error(`replace() would make ${size} characters (at most ${this.limits.chars})`);
      }
    }
  }

  private check(value: RuntimeValue): void {
    if (value.type === 'StringValue') {
      const n = (value.value as string).length;
      if (n > this.limits.chars) throw new Error(`it made a string of ${n} characters (at most ${this.limits.chars})`);
      this.produced += n;
      if (this.produced > this.limits.produced) throw new Error(`it produced more than ${this.limits.produced} characters`);
    } else if (value.type === 'ArrayValue' && (value.value as unknown[]).length > TEMPLATE_LIMITS.rangeItems) {
      throw new Error(`it made a list of ${(value.value as unknown[]).length} items (at most ${TEMPLATE_LIMITS.rangeItems})`);
    }
  }
}

function evaluated(value: RuntimeValue): AstNode {
  return { type: EVALUATED, value };
}

function occurrences(text: string, part: string): number {
  if (part === '') return text.length + 1;
  let n = 0;
  for (let at = text.indexOf(part); at >= 0; at = text.indexOf(part, at + part.length)) n++;
  return n;
}

/** Python's range, refusing more than TEMPLATE_LIMITS.rangeItems items before making any. */
function boundedRange(start: number, stop?: number, step = 1): number[] {
  if (stop === undefined) [start, stop] = [0, start];
  if (step === 0) throw new Error('range() step must not be zero');
  const count = Math.max(0, Math.ceil((stop - start) / step));
  if (!(count <= TEMPLATE_LIMITS.rangeItems)) throw new Error(`range() of ${count} items (at most ${TEMPLATE_LIMITS.rangeItems})`);
  return Array.from({ length: count }, (_, i) => start + i * step);
}

/** strftime_now as templates use it (Llama 3.1's date line): %Y %m %d %b %B %H %M %%. */
function strftimeNow(format: string): string {
  const d = new Date();
  const pad = (n: number) => String(n).padStart(2, '0');
  const month = (style: 'short' | 'long') => new Intl.DateTimeFormat('en-US', { month: style }).format(d);
  return String(format).replace(/%[YmdbBHM%]/g, (t) =>
    ({ '%Y': String(d.getFullYear()), '%m': pad(d.getMonth() + 1), '%d': pad(d.getDate()), '%b': month('short'), '%B': month('long'), '%H': pad(d.getHours()), '%M': pad(d.getMinutes()), '%%': '%' })[t] ?? t);
}
