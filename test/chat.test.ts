import { describe, expect, test } from 'vitest';
import { StopMatcher } from '../src/chat/stop.js';
import { validateMessages } from '../src/chat/messages.js';
import { renderChat } from '../src/chat/template.js';
import { WebGGUFError } from '../src/errors.js';

const CHATML = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

describe('chat templates', () => {
  test('renders the model template with a generation prompt', () => {
    const text = renderChat(CHATML, [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }], { bos: '<s>', eos: '</s>' });
    expect(text).toBe('<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
  });
  test('bos_token and raise_exception are available to templates', () => {
    expect(renderChat('{{ bos_token }}{{ messages[0].content }}', [{ role: 'user', content: 'x' }], { bos: '<s>', eos: '' })).toBe('<s>x');
    expect(() => renderChat("{{ raise_exception('roles must alternate') }}", [{ role: 'user', content: 'x' }], { bos: '', eos: '' })).toThrow(/roles must alternate/);
  });
  test('a base model without a template gets a plain transcript', () => {
    expect(renderChat(undefined, [{ role: 'system', content: 'S' }, { role: 'user', content: 'Hi' }], { bos: '', eos: '' })).toBe('S\n\nUser: Hi\nAssistant:');
  });
  test('messages are validated; text content parts are joined', () => {
    expect(validateMessages([{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] }])).toEqual([{ role: 'user', content: 'ab' }]);
    for (const bad of [[], null, [{ role: 'robot', content: 'x' }], [{ role: 'user', content: 3 }], [{ role: 'user', content: [{ type: 'image_url' }] }]]) {
      expect(() => validateMessages(bad)).toThrow(WebGGUFError);
    }
  });
});

describe('stop strings', () => {
  test('hold back a possible stop prefix and cut before the stop', () => {
    const m = new StopMatcher(['END', '\n\n']);
    expect(m.push('Hello E')).toEqual({ text: 'Hello ', stopped: false });
    expect(m.push('N')).toEqual({ text: '', stopped: false });
    expect(m.push('Dless')).toEqual({ text: '', stopped: true });
  });
  test('release held text when it cannot become a stop', () => {
    const m = new StopMatcher(['END']);
    expect(m.push('EN')).toEqual({ text: '', stopped: false });
    expect(m.push('Ox')).toEqual({ text: 'ENOx', stopped: false });
    expect(m.push('E')).toEqual({ text: '', stopped: false });
    expect(m.flush()).toBe('E');
  });
});
