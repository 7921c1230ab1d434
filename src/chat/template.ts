import { Template } from '@huggingface/jinja';
import { WebGGUFError } from '../errors.js';
import type { ChatMessage } from './messages.js';

/**
 * Renders the model's own chat template (tokenizer.chat_template) in @huggingface/jinja's
 * sandboxed interpreter. A base model without one gets a plain transcript.
 */
export function renderChat(template: string | undefined, messages: ChatMessage[], tokens: { bos: string; eos: string }): string {
  if (!template) {
    const lines = messages.map((m) => (m.role === 'system' || m.role === 'developer' ? `${m.content}\n` : `${m.role === 'user' ? 'User' : 'Assistant'}: ${m.content}`));
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
