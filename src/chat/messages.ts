/** OpenAI's chat messages and their checks: plain data, no template engine (the page's thin client checks requests too). */
import { WebGGUFError } from '../errors.js';

/** A call the assistant made, as OpenAI returns it: `arguments` is a JSON text. */
export interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export interface ChatMessage {
  role: 'system' | 'developer' | 'user' | 'assistant' | 'tool';
  content: string;
  /** OpenAI's participant name; passed to the template as `message.name`. */
  name?: string;
  /** Assistant turns: the calls it made (never an empty list). */
  tool_calls?: ToolCall[];
  /** Tool turns: the call this is the result of. */
  tool_call_id?: string;
  /** Assistant turns: earlier thinking, for templates that render it (Qwen 3). */
  reasoning_content?: string;
}

const ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool']);
/** Fields an assistant message may carry empty (OpenAI echoes them back as null or []). */
const EMPTY_ASSISTANT_FIELDS = new Set(['refusal', 'function_call', 'audio']);

const invalid = (message: string) => new WebGGUFError('invalid-argument', message);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Checks messages from untrusted callers before they reach a template: OpenAI's message shapes,
 * text only. Content is a string or an array of text parts (joined); assistant turns may carry
 * `tool_calls` (then content may be null) and tool turns answer one by `tool_call_id`. Anything
 * this engine cannot honour (other part types, the old `function` role) is rejected by name.
 */
export function validateMessages(messages: unknown): ChatMessage[] {
  if (!Array.isArray(messages) || messages.length === 0) throw invalid('messages must be a non-empty array');
  return messages.map((m: unknown, i) => {
    const at = `messages[${i}]`;
    if (!isObject(m)) throw invalid(`${at} must be an object`);
    const msg = m;
    if (msg.role === 'function') throw invalid(`${at}.role "function" is not supported: use role "tool" with tool_call_id`);
    if (typeof msg.role !== 'string' || !ROLES.has(msg.role)) throw invalid(`${at}.role must be one of ${[...ROLES].join(', ')}`);
    const role = msg.role as ChatMessage['role'];
    const known = new Set(['role', 'content', 'name']);
    if (role === 'assistant') ['tool_calls', 'reasoning_content'].forEach((k) => known.add(k));
    if (role === 'tool') known.add('tool_call_id');
    for (const [key, value] of Object.entries(msg)) {
      if (known.has(key) || value === undefined) continue;
      const empty = value === null || (Array.isArray(value) && value.length === 0);
      if (role === 'assistant' && EMPTY_ASSISTANT_FIELDS.has(key)) {
        if (!empty) throw invalid(`${at}.${key} is not supported (text-only assistant messages)`);
        continue;
      }
      throw invalid(`${at}.${key} is not a known ${role} message field`);
    }
    if (msg.name !== undefined && typeof msg.name !== 'string') throw invalid(`${at}.name must be a string`);
    const toolCalls = role === 'assistant' ? validateToolCalls(msg.tool_calls, `${at}.tool_calls`) : undefined;
    // An assistant turn that only calls tools has no content (OpenAI sends null).
    const content = toolCalls && (msg.content === null || msg.content === undefined) ? '' : textContent(msg.content, at);
    const out: ChatMessage = { role, content };
    if (typeof msg.name === 'string') out.name = msg.name;
    if (toolCalls) out.tool_calls = toolCalls;
    if (role === 'assistant' && msg.reasoning_content !== undefined && msg.reasoning_content !== null) {
      if (typeof msg.reasoning_content !== 'string') throw invalid(`${at}.reasoning_content must be a string`);
      out.reasoning_content = msg.reasoning_content;
    }
    if (role === 'tool') {
      if (typeof msg.tool_call_id !== 'string' || msg.tool_call_id === '') throw invalid(`${at}.tool_call_id must be the id of the call this answers (a non-empty string)`);
      out.tool_call_id = msg.tool_call_id;
    }
    return out;
  });
}

/** A string, or OpenAI's content parts: only text parts are meaningful to a text model. */
function textContent(content: unknown, at: string): string {
  if (Array.isArray(content)) {
    return content.map((p: unknown, j) => {
      const where = `${at}.content[${j}]`;
      if (!isObject(p)) throw invalid(`${where} must be a content part object`);
      if (p.type !== 'text') throw invalid(`${where}.type ${JSON.stringify(p.type)} is not supported: content parts must be {type: 'text', text}`);
      const extra = Object.keys(p).find((k) => k !== 'type' && k !== 'text');
      if (extra) throw invalid(`${where}.${extra} is not a known text part field`);
      if (typeof p.text !== 'string') throw invalid(`${where}.text must be a string`);
      return p.text;
    }).join('');
  }
  if (typeof content !== 'string') throw invalid(`${at}.content must be a string or an array of text parts`);
  return content;
}

/** An assistant's tool_calls: undefined when absent or empty; each call's arguments must be a JSON object's text. */
function validateToolCalls(calls: unknown, at: string): ToolCall[] | undefined {
  if (calls === undefined || calls === null) return undefined;
  if (!Array.isArray(calls)) throw invalid(`${at} must be an array of tool calls`);
  if (calls.length === 0) return undefined;
  return calls.map((c: unknown, j) => {
    const where = `${at}[${j}]`;
    if (!isObject(c)) throw invalid(`${where} must be an object`);
    for (const key of Object.keys(c)) if (!['id', 'type', 'function'].includes(key)) throw invalid(`${where}.${key} is not a known tool call field`);
    if (typeof c.id !== 'string' || c.id === '') throw invalid(`${where}.id must be a non-empty string`);
    if (c.type !== undefined && c.type !== 'function') throw invalid(`${where}.type must be 'function'`);
    const fn = c.function;
    if (!isObject(fn)) throw invalid(`${where}.function must be an object with name and arguments`);
    for (const key of Object.keys(fn)) if (key !== 'name' && key !== 'arguments') throw invalid(`${where}.function.${key} is not a known field`);
    if (typeof fn.name !== 'string' || fn.name === '') throw invalid(`${where}.function.name must be a non-empty string`);
    if (typeof fn.arguments !== 'string') throw invalid(`${where}.function.arguments must be a string (JSON text)`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(fn.arguments);
    } catch {
      throw invalid(`${where}.function.arguments is not valid JSON`);
    }
    if (!isObject(parsed)) throw invalid(`${where}.function.arguments must be the JSON text of an object`);
    return { id: c.id, type: 'function' as const, function: { name: fn.name, arguments: fn.arguments } };
  });
}
