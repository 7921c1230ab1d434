/**
 * How a model writes tool calls, read from its chat template's text (never from a model name),
 * and the parser that turns its output back into OpenAI's `tool_calls`.
 *
 * Formats: `hermes` (Qwen 2.5, Qwen 3, Hermes: `<tool_call>{"name", "arguments"}</tool_call>`),
 * `llama3` (Llama 3.1-3.3: a bare `{"name", "parameters"}` reply, or one after `<|python_tag|>`),
 * `mistral` (`[TOOL_CALLS][{"name", "arguments"}, ...]`, or `[TOOL_CALLS]name[ARGS]{...}`),
 * `phi4` (Phi-4-mini: `<|tool_call|>{...}<|/tool_call|>`), and `generic` for templates that define
 * none: the engine describes the tools itself and asks for `<tool_call>` tags.
 */

export type ToolFormatName = 'hermes' | 'llama3' | 'mistral' | 'phi4' | 'generic';

export interface ToolFormat {
  name: ToolFormatName;
  /** Texts that open a call. */
  openers: string[];
  /** Text that closes a call; undefined: the call is one JSON value (or Mistral's name[ARGS]{...}). */
  closer: string | undefined;
  /**
   * A reply that starts with a JSON call object naming an offered function (no opener) is a
   * call: Llama 3's own form, and what small models of the other families often write.
   */
  bareJson: boolean;
  /** The call object's key for the arguments. */
  argumentsKey: 'arguments' | 'parameters';
  /** Calls are written as a JSON list after the opener. */
  list: boolean;
  /** Control-token texts the parser must see in the decoded output (decoding drops control tokens). */
  markers: string[];
}

const FORMATS: Record<ToolFormatName, ToolFormat> = {
  hermes: { name: 'hermes', openers: ['<tool_call>'], closer: '</tool_call>', bareJson: true, argumentsKey: 'arguments', list: false, markers: ['<tool_call>', '</tool_call>'] },
  llama3: { name: 'llama3', openers: ['<|python_tag|>'], closer: undefined, bareJson: true, argumentsKey: 'parameters', list: false, markers: ['<|python_tag|>'] },
  mistral: { name: 'mistral', openers: ['[TOOL_CALLS]'], closer: undefined, bareJson: false, argumentsKey: 'arguments', list: true, markers: ['[TOOL_CALLS]', '[ARGS]', '[CALL_ID]'] },
  phi4: { name: 'phi4', openers: ['<|tool_call|>'], closer: '<|/tool_call|>', bareJson: true, argumentsKey: 'arguments', list: false, markers: ['<|tool_call|>', '<|/tool_call|>'] },
  generic: { name: 'generic', openers: ['<tool_call>'], closer: '</tool_call>', bareJson: true, argumentsKey: 'arguments', list: false, markers: ['<tool_call>', '</tool_call>'] },
};

/** The template's tool-call format, from the markers its text writes. */
export function toolFormat(template: string | undefined): ToolFormat {
  const t = template ?? '';
  if (t.includes('[TOOL_CALLS]')) return FORMATS.mistral;
  if (t.includes('<|tool_call|>') || t.includes('<|/tool|>')) return FORMATS.phi4;
  if (t.includes('<tool_call>')) return FORMATS.hermes;
  if (t.includes('<|python_tag|>') || (t.includes('<|start_header_id|>') && /"parameters"/.test(t))) return FORMATS.llama3;
  return FORMATS.generic;
}

/** What a template does with tools, read from its code (string literals removed). */
export interface TemplateFeatures {
  /** It reads the `tools` variable. */
  tools: boolean;
  /** It reads a system message's `tools` field (Phi-4-mini). */
  messageTools: boolean;
  /** It renders assistant `tool_calls`. */
  toolCalls: boolean;
  /** It renders `role: 'tool'` messages (it names that role). */
  toolRole: boolean;
  /** It writes call arguments with `tojson` (wants an object) rather than as text. */
  objectArguments: boolean;
  /** It insists on 9-character call ids (Mistral). */
  nineCharIds: boolean;
  /** It thinks in `<think>...</think>`. */
  thinking: boolean;
}

export function templateFeatures(template: string | undefined): TemplateFeatures {
  const t = template ?? '';
  const blocks = [...t.matchAll(/\{%-?([\s\S]*?)-?%\}|\{\{-?([\s\S]*?)-?\}\}/g)].map((m) => m[1] ?? m[2] ?? '');
  const code = blocks.map((b) => b.replace(/'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"/g, '""')).join('\n');
  return {
    tools: /(?<![.\w[])tools\b/.test(code),
    messageTools: /message\s*(?:\.\s*tools\b|\[\s*['"]tools['"]\s*\])/.test(t),
    toolCalls: /tool_calls/.test(t),
    toolRole: /==\s*['"]tool['"]|['"]tool['"]\s*==/.test(t),
    objectArguments: /arguments['"]?\]?\s*\|\s*(?:tojson|items)|function['"]?\]?\s*\|\s*tojson/.test(t),
    nineCharIds: /\|\s*length\s*!=\s*9/.test(t),
    thinking: t.includes('</think>') || t.includes('<think>'),
  };
}

/** One call as the model wrote it: arguments normalized to a JSON object. */
export interface ParsedCall {
  name: string;
  arguments: Record<string, unknown>;
}

/** Output split so far: plain text, and calls completed. */
export interface ToolParse {
  content: string;
  calls: ParsedCall[];
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Finds where the JSON object or array starting at `start` ends, over a text that grows: each
 * call goes on from where the last stopped, so a value streamed in pieces is scanned once.
 * Strings and escapes are followed, so brackets inside strings do not count.
 */
export class JsonScanner {
  private at: number;
  private depth = 0;
  private inString = false;
  private escaped = false;
  private ended = -1;

  constructor(readonly start: number) {
    this.at = start;
  }

  /** The index after the value, or -1 while `text` ends first (or it is not well nested). */
  end(text: string): number {
    if (this.ended >= 0) return this.ended;
    for (; this.at < text.length; this.at++) {
      const c = text[this.at];
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === '\\') this.escaped = true;
        else if (c === '"') this.inString = false;
      } else if (c === '"') this.inString = true;
      else if (c === '{' || c === '[') this.depth++;
      else if (c === '}' || c === ']') {
        if (--this.depth <= 0) {
          this.at++;
          return (this.ended = this.depth === 0 ? this.at : -1);
        }
      }
    }
    return -1;
  }
}

/** Where the JSON object or array starting at `from` ends (the index after it), or -1. */
export function jsonEnd(text: string, from: number): number {
  return new JsonScanner(from).end(text);
}

/** The calls a JSON text holds (one call object, `{function: {...}}`, or a list of them); undefined if it is not calls. */
export function callsFromJson(text: string): ParsedCall[] | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  const items = Array.isArray(value) ? value : [value];
  if (items.length === 0) return undefined;
  const calls: ParsedCall[] = [];
  for (const item of items) {
    const call = callFromObject(item);
    if (!call) return undefined;
    calls.push(call);
  }
  return calls;
}

function callFromObject(item: unknown): ParsedCall | undefined {
  if (!isObject(item)) return undefined;
  const fn = isObject(item.function) ? item.function : item;
  if (typeof fn.name !== 'string' || fn.name === '') return undefined;
  let args = fn.arguments ?? fn.parameters ?? {};
  if (typeof args === 'string') {
    try {
      args = JSON.parse(args);
    } catch {
      return undefined;
    }
  }
  return isObject(args) ? { name: fn.name, arguments: args } : undefined;
}

/**
 * Splits a reply into content and tool calls as it streams. Text that may be the start of a call
 * is held until it is known not to be one; a call is given out only once complete; a call that
 * does not parse goes back into the content as the text it was. The same object serves whole
 * replies (push everything, then flush), so streamed and whole results agree by construction.
 */
export class ToolCallParser {
  private buffer = '';
  /** 'start': a bare JSON call may still begin; 'text'; 'call': inside an opener. */
  private state: 'start' | 'text' | 'call';
  private opener = '';
  /** Bare JSON calls were read: a ';' may separate the next. */
  private bareCalls = false;
  /** The JSON value being scanned at the buffer's start, and how far the closer was looked for. */
  private json: JsonScanner | undefined;
  private searched = 0;

  /** `known`: function names a bare JSON reply must use to count as a call. */
  constructor(private readonly format: ToolFormat, private readonly known: ReadonlySet<string>) {
    this.state = format.bareJson ? 'start' : 'text';
  }

  push(text: string): ToolParse {
    this.buffer += text;
    return this.drain(false);
  }

  flush(): ToolParse {
    return this.drain(true);
  }

  /** The scanner of the JSON value at `start` of the buffer, kept while the buffer only grows. */
  private scanner(start: number): JsonScanner {
    if (this.json?.start !== start) this.json = new JsonScanner(start);
    return this.json;
  }

  private drain(final: boolean): ToolParse {
    const out: ToolParse = { content: '', calls: [] };
    for (;;) {
      if (this.state === 'start') {
        // Llama 3.2 separates several bare calls with ';'.
        const lead = this.json?.start ?? this.buffer.length - (this.bareCalls ? this.buffer.replace(/^\s*;?/, '') : this.buffer).trimStart().length;
        if (lead === this.buffer.length) {
          if (final) this.text(out, this.buffer.length);
          return out;
        }
        if (this.buffer[lead] !== '{') {
          this.state = 'text';
          continue;
        }
        const end = this.scanner(lead).end(this.buffer);
        if (end < 0) {
          if (!final) return out;
          this.state = 'text';
          continue;
        }
        const calls = callsFromJson(this.buffer.slice(lead, end));
        if (!calls || !calls.every((c) => this.known.has(c.name))) {
          this.state = 'text';
          continue;
        }
        out.calls.push(...calls);
        this.bareCalls = true;
        this.cut(end);
        continue;
      }
      if (this.state === 'text') {
        let at = -1;
        let opener = '';
        for (const o of this.format.openers) {
          const i = this.buffer.indexOf(o);
          if (i >= 0 && (at < 0 || i < at)) [at, opener] = [i, o];
        }
        if (at < 0) {
          this.text(out, final ? this.buffer.length : this.buffer.length - heldPrefix(this.buffer, this.format.openers));
          return out;
        }
        this.text(out, at);
        this.cut(opener.length);
        this.opener = opener;
        this.state = 'call';
        continue;
      }
      // Inside a call.
      const body = this.callBody();
      if (!body) {
        if (!final) return out;
        // The reply ended inside a call: what it wrote stays text.
        out.content += this.opener + this.buffer;
        this.cut(this.buffer.length);
        this.state = 'text';
        return out;
      }
      const calls = body.calls;
      if (calls) out.calls.push(...calls);
      else out.content += this.opener + this.buffer.slice(0, body.end);
      this.cut(body.end);
      this.state = 'text';
    }
  }

  /** Moves the first `n` buffered characters to the content. */
  private text(out: ToolParse, n: number): void {
    out.content += this.buffer.slice(0, n);
    this.cut(n);
  }

  /** Drops the first `n` buffered characters; positions into the buffer start over. */
  private cut(n: number): void {
    this.buffer = this.buffer.slice(n);
    if (n > 0) {
      this.json = undefined;
      this.searched = 0;
    }
  }

  /** The complete call at the buffer's start: where it ends and its calls (undefined if malformed), or undefined while incomplete. */
  private callBody(): { end: number; calls: ParsedCall[] | undefined } | undefined {
    const b = this.buffer;
    const closer = this.format.closer;
    if (closer !== undefined) {
      const at = b.indexOf(closer, this.searched);
      if (at < 0) {
        this.searched = Math.max(0, b.length - closer.length + 1);
        return undefined;
      }
      return { end: at + closer.length, calls: callsFromJson(b.slice(0, at).trim()) };
    }
    const lead = b.length - b.trimStart().length;
    if (lead === b.length) return undefined;
    if (b[lead] === '{' || b[lead] === '[') {
      const end = this.scanner(lead).end(b);
      return end < 0 ? undefined : { end, calls: callsFromJson(b.slice(lead, end)) };
    }
    // Mistral's newer form: name[ARGS]{...}, the name optionally followed by [CALL_ID]id.
    // Not JSON after Llama's python tag (its built-in python calls): the text it is.
    if (this.format.name !== 'mistral') return { end: b.length, calls: undefined };
    const args = b.indexOf('[ARGS]');
    if (args < 0) return undefined;
    const name = b.slice(0, args).replace(/\[CALL_ID\][\s\S]*$/, '').trim();
    const start = args + '[ARGS]'.length;
    const end = this.scanner(start).end(b);
    if (end < 0) return undefined;
    let parsed: unknown;
    try {
      parsed = JSON.parse(b.slice(start, end));
    } catch {
      return { end, calls: undefined };
    }
    return { end, calls: name && isObject(parsed) ? [{ name, arguments: parsed }] : undefined };
  }
}

/** Length of the longest tail of `text` that begins one of `markers` (held back while streaming). */
export function heldPrefix(text: string, markers: string[]): number {
  let keep = 0;
  for (const m of markers) {
    for (let k = Math.min(m.length - 1, text.length); k > keep; k--) {
      if (text.endsWith(m.slice(0, k))) {
        keep = k;
        break;
      }
    }
  }
  return keep;
}

/** A function the caller offers (OpenAI's `tools[i].function`). */
export interface FunctionDefinition {
  name: string;
  description?: string;
  parameters?: Record<string, unknown>;
  strict?: boolean;
}

export type ToolChoice = 'auto' | 'none' | 'required' | { type: 'function'; function: { name: string } };

/**
 * What the constraint engine needs to force a call: the reply starts with `prefix`, then one JSON
 * value matching `schema`, then `suffix`, then the turn ends. With `triggers` (tool_choice
 * 'auto') the reply is free until it writes one of them; from there the rest of the call is
 * constrained the same way (the trigger stands for `prefix`). The engine that applies it lives
 * elsewhere (see `toolCallConstraint`, `toolCallTrigger`); this is the whole interface between the two.
 */
export interface OutputConstraint {
  kind: 'tool-call';
  prefix: string;
  schema: Record<string, unknown>;
  suffix: string;
  triggers?: string[];
}

/** The JSON Schema of one call object of `format` to one of `functions`. */
export function callSchema(format: ToolFormat, functions: FunctionDefinition[]): Record<string, unknown> {
  const one = (f: FunctionDefinition) => ({
    type: 'object',
    properties: { name: { const: f.name }, [format.argumentsKey]: f.parameters ?? { type: 'object' } },
    required: ['name', format.argumentsKey],
    additionalProperties: false,
  });
  return functions.length === 1 ? one(functions[0]!) : { anyOf: functions.map(one) };
}

/**
 * The constraint for `tool_choice: 'required'` or a named function (undefined for 'auto' and
 * 'none'): the format's opener, the call's schema (a list of calls for Mistral), its closer.
 */
export function toolCallConstraint(format: ToolFormat, functions: FunctionDefinition[], choice: ToolChoice, parallel = true): OutputConstraint | undefined {
  const chosen = typeof choice === 'object' ? functions.filter((f) => f.name === choice.function.name) : choice === 'required' ? functions : [];
  if (chosen.length === 0) return undefined;
  const call = callSchema(format, chosen);
  if (format.list) {
    return { kind: 'tool-call', prefix: format.openers[0]!, schema: { type: 'array', items: call, minItems: 1, ...(parallel ? {} : { maxItems: 1 }) }, suffix: '' };
  }
  // Llama 3 replies with the bare object; the tag formats put the JSON on its own line, as
  // their templates write calls, except Phi-4-mini's, which writes it against the tags.
  if (format.closer === undefined) return { kind: 'tool-call', prefix: '', schema: call, suffix: '' };
  const newline = format.name === 'phi4' ? '' : '\n';
  return { kind: 'tool-call', prefix: format.openers[0]! + newline, schema: call, suffix: newline + format.closer };
}

/**
 * For tool_choice 'auto': once the reply writes an opener of the format, the call that follows
 * is one of `functions` (Llama 3's bare JSON has no opener: only its `<|python_tag|>` form).
 */
export function toolCallTrigger(format: ToolFormat, functions: FunctionDefinition[]): OutputConstraint | undefined {
  const forced = toolCallConstraint(format, functions, 'required');
  if (!forced) return undefined;
  // After the trigger, what the forced form would have put after its opener (a newline) is free.
  return { ...forced, prefix: '', triggers: [...format.openers] };
}

/** A call in the format's own text, for templates that cannot render `tool_calls` themselves. */
export function callText(format: ToolFormat, call: ParsedCall): string {
  const json = JSON.stringify({ name: call.name, [format.argumentsKey]: call.arguments });
  switch (format.name) {
    case 'mistral': return `[TOOL_CALLS][${json}]`;
    case 'llama3': return json;
    case 'phi4': return `<|tool_call|>${json}<|/tool_call|>`;
    default: return `<tool_call>\n${json}\n</tool_call>`;
  }
}

/** The instructions a template without tool support gets in its system message. */
export function genericToolPrompt(functions: FunctionDefinition[]): string {
  const list = functions.map((f) => JSON.stringify({ type: 'function', function: f })).join('\n');
  return `# Tools\n\nYou may call one or more functions to assist with the user query. The functions are listed within <tools></tools>:\n<tools>\n${list}\n</tools>\n\n`
    + 'To call a function, reply with a JSON object with its name and arguments within <tool_call></tool_call> tags:\n'
    + '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>';
}
