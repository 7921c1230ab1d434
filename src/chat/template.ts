import { Template } from '@huggingface/jinja';
import { WebGGUFError } from '../errors.js';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool' | 'developer';
  content: string;
}

const ROLES = new Set(['system', 'user', 'assistant', 'tool', 'developer']);

/** Checks messages from untrusted callers before they reach a template. */
export function validateMessages(messages: unknown): ChatMessage[] {
  if (!Array.isArray(messages) || messages.length === 0) {
    throw new WebGGUFError('invalid-argument', 'messages must be a non-empty array');
  }
  return messages.map((m, i) => {
    const msg = m as { role?: unknown; content?: unknown };
    if (typeof msg !== 'object' || msg === null || typeof msg.role !== 'string' || !ROLES.has(msg.role)) {
      throw new WebGGUFError('invalid-argument', `messages[${i}].role must be one of ${[...ROLES].join(', ')}`);
    }
    let content = msg.content;
    // OpenAI's content parts: only text parts are meaningful to a text model.
    if (Array.isArray(content)) {
      content = content.map((p: { type?: unknown; text?: unknown }) => {
        if (p?.type !== 'text' || typeof p.text !== 'string') throw new WebGGUFError('invalid-argument', `messages[${i}].content has a part that is not text`);
        return p.text;
      }).join('');
    }
    if (typeof content !== 'string') throw new WebGGUFError('invalid-argument', `messages[${i}].content must be a string`);
    return { role: msg.role as ChatMessage['role'], content };
  });
}

/**
 * Renders the model's own chat template (tokenizer.chat_template) in @huggingface/jinja's
 * sandboxed interpreter. A base model without one gets a plain transcript.
 */
export function renderChat(template: string | undefined, messages: ChatMessage[], tokens: { bos: string; eos: string }): string {
  if (!template) {
    const lines = messages.map((m) => (m.role === 'system' ? `${m.content}\n` : `${m.role === 'user' ? 'User' : 'Assistant'}: ${m.content}`));
    return `${lines.join('\n')}\nAssistant:`;
  }
  try {
    return new Template(template).render({
      messages,
      add_generation_prompt: true,
      bos_token: tokens.bos,
      eos_token: tokens.eos,
    });
  } catch (e) {
    throw new WebGGUFError('invalid-argument', `the model's chat template failed: ${(e as Error).message}`, { cause: e });
  }
}
