/** OpenAI's chat messages and their checks: plain data, no template engine (the page's thin client checks requests too). */
import { WebGGUFError } from '../errors.js';

export interface ChatMessage {
  role: 'system' | 'developer' | 'user' | 'assistant';
  content: string;
  /** OpenAI's participant name; passed to the template as `message.name`. */
  name?: string;
}

const ROLES = new Set(['system', 'developer', 'user', 'assistant']);
/** The fields a message may have beyond role, content and name: assistant turns echo these back empty. */
const EMPTY_ASSISTANT_FIELDS = new Set(['refusal', 'tool_calls', 'function_call', 'audio']);

/**
 * Checks messages from untrusted callers before they reach a template: OpenAI's message shapes,
 * text only. Content is a string or an array of text parts (joined); anything this engine cannot
 * honour (other part types, tool and function messages, tool calls) is rejected by name.
 */
export function validateMessages(messages: unknown): ChatMessage[] {
  if (!Array.isArray(messages) || messages.length === 0) {
    throw new WebGGUFError('invalid-argument', 'messages must be a non-empty array');
  }
  return messages.map((m: unknown, i) => {
    const at = `messages[${i}]`;
    if (typeof m !== 'object' || m === null || Array.isArray(m)) throw new WebGGUFError('invalid-argument', `${at} must be an object`);
    const msg = m as Record<string, unknown>;
    if (msg.role === 'tool' || msg.role === 'function') {
      throw new WebGGUFError('invalid-argument', `${at}.role "${msg.role}" is not supported: tools are not supported yet`);
    }
    if (typeof msg.role !== 'string' || !ROLES.has(msg.role)) {
      throw new WebGGUFError('invalid-argument', `${at}.role must be one of ${[...ROLES].join(', ')}`);
    }
    for (const [key, value] of Object.entries(msg)) {
      if (key === 'role' || key === 'content' || key === 'name' || value === undefined) continue;
      const empty = value === null || (Array.isArray(value) && value.length === 0);
      if (msg.role === 'assistant' && EMPTY_ASSISTANT_FIELDS.has(key)) {
        if (!empty) throw new WebGGUFError('invalid-argument', `${at}.${key} is not supported (text-only assistant messages)`);
        continue;
      }
      throw new WebGGUFError('invalid-argument', `${at}.${key} is not a known message field`);
    }
    if (msg.name !== undefined && typeof msg.name !== 'string') throw new WebGGUFError('invalid-argument', `${at}.name must be a string`);
    let content = msg.content;
    // OpenAI's content parts: only text parts are meaningful to a text model.
    if (Array.isArray(content)) {
      content = content.map((p: unknown, j) => {
        const part = p as Record<string, unknown> | null;
        const where = `${at}.content[${j}]`;
        if (typeof part !== 'object' || part === null) throw new WebGGUFError('invalid-argument', `${where} must be a content part object`);
        if (part.type !== 'text') {
          throw new WebGGUFError('invalid-argument', `${where}.type ${JSON.stringify(part.type)} is not supported: content parts must be {type: 'text', text}`);
        }
        const extra = Object.keys(part).find((k) => k !== 'type' && k !== 'text');
        if (extra) throw new WebGGUFError('invalid-argument', `${where}.${extra} is not a known text part field`);
        if (typeof part.text !== 'string') throw new WebGGUFError('invalid-argument', `${where}.text must be a string`);
        return part.text;
      }).join('');
    }
    if (typeof content !== 'string') throw new WebGGUFError('invalid-argument', `${at}.content must be a string or an array of text parts`);
    const out: ChatMessage = { role: msg.role as ChatMessage['role'], content };
    if (typeof msg.name === 'string') out.name = msg.name;
    return out;
  });
}
