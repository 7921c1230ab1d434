/**
 * Tool calls and reasoning without a GPU: the real chat templates of the families we load
 * (test/fixtures/chat-templates) render tools, calls and results their own way; each family's
 * output format parses into OpenAI's tool_calls, streamed in pieces or whole alike; the
 * constraint for 'required' / named calls yields text that parses back to the call.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { validateChatRequest } from '../src/chat/request.js';
import { ReplyParser, promptOpensThinking, type ReplyPart } from '../src/chat/reply.js';
import { renderChat } from '../src/chat/template.js';
import {
  templateFeatures, toolCallConstraint, toolCallTrigger, toolFormat, type FunctionDefinition, type ParsedCall, type ToolFormat,
} from '../src/chat/tool-format.js';
import { WebGGUFError } from '../src/errors.js';
import { findTrigger } from '../src/generate.js';
import type { ChatMessage } from '../src/chat/messages.js';

const template = (name: string) => readFileSync(new URL(`./fixtures/chat-templates/${name}.jinja`, import.meta.url), 'utf8');
const TEMPLATES = ['qwen2.5', 'qwen3', 'hermes3', 'llama3.3', 'mistral-nemo', 'phi4-mini', 'deepseek-r1-distill-qwen'] as const;
const CHATML = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
const TOKENS = { bos: '<s>', eos: '</s>' };

const WEATHER: FunctionDefinition = {
  name: 'get_weather', description: 'Current weather in a city',
  parameters: { type: 'object', properties: { city: { type: 'string', description: 'City name' }, unit: { type: 'string', enum: ['c', 'f'], description: 'Unit' } }, required: ['city'] },
};
const TIME: FunctionDefinition = { name: 'get_time', description: 'Local time', parameters: { type: 'object', properties: { zone: { type: 'string', description: 'IANA zone' } } } };

/** A conversation that called a tool and got its result back. */
const ROUND_TRIP: ChatMessage[] = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Weather in Paris?' },
  { role: 'assistant', content: '', tool_calls: [{ id: 'call_abc123XYZ789def456ghi012', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
  { role: 'tool', content: '{"temp":21}', tool_call_id: 'call_abc123XYZ789def456ghi012' },
];

describe('formats are read from the template text', () => {
  test('each family gets its own format; templates without one get the generic', () => {
    const got = Object.fromEntries(TEMPLATES.map((t) => [t, toolFormat(template(t)).name]));
    expect(got).toEqual({
      'qwen2.5': 'hermes', qwen3: 'hermes', hermes3: 'hermes', 'llama3.3': 'llama3', 'mistral-nemo': 'mistral', 'phi4-mini': 'phi4', 'deepseek-r1-distill-qwen': 'generic',
    });
    expect(toolFormat(CHATML).name).toBe('generic');
    expect(toolFormat(undefined).name).toBe('generic');
  });
  test('template features', () => {
    expect(templateFeatures(template('qwen3'))).toMatchObject({ tools: true, toolCalls: true, toolRole: true, objectArguments: true, thinking: true, nineCharIds: false });
    expect(templateFeatures(template('phi4-mini'))).toMatchObject({ tools: false, messageTools: true, toolCalls: false, toolRole: false });
    expect(templateFeatures(template('mistral-nemo'))).toMatchObject({ tools: true, nineCharIds: true, objectArguments: true });
    expect(templateFeatures(template('deepseek-r1-distill-qwen'))).toMatchObject({ tools: false, objectArguments: false, thinking: true });
    // "<tools>" inside a string is not the tools variable.
    expect(templateFeatures("{{ '<tools>' }}{% for m in messages %}{{ m.content }}{% endfor %}").tools).toBe(false);
  });
});

describe('rendering tools, calls and results through the real templates', () => {
  const render = (name: string, messages = ROUND_TRIP, tools: FunctionDefinition[] | undefined = [WEATHER], kwargs?: Record<string, unknown>) =>
    renderChat(template(name), messages, TOKENS, { tools, kwargs });

  test('Qwen 2.5 and Qwen 3: tools listed, the call in <tool_call>, the result in <tool_response>', () => {
    for (const name of ['qwen2.5', 'qwen3']) {
      const text = render(name);
      expect(text).toContain('<tools>\n{"type": "function", "function": {"name": "get_weather"');
      expect(text).toContain('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>');
      expect(text).toContain('<|im_start|>user\n<tool_response>\n{"temp":21}\n</tool_response><|im_end|>');
      expect(text.endsWith('<|im_start|>assistant\n')).toBe(true);
    }
  });
  test('Hermes 3', () => {
    const text = render('hermes3');
    expect(text).toContain('"name": "get_weather", "description": "get_weather(city: str, unit: str) - Current weather in a city');
    expect(text).toContain('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>');
    expect(text).toContain('<tool_response>\n{"temp":21}\n</tool_response>');
    // A parameter without a description (its template trims it) renders as Python's Jinja does.
    const bare = render('hermes3', ROUND_TRIP, [{ name: 'f', description: 'F', parameters: { type: 'object', properties: { x: { type: 'integer' } } } }]);
    expect(bare).toContain('        x(int): "');
  });
  test('Llama 3.x: tools in the first user turn, the call as JSON with "parameters", the result as ipython', () => {
    const text = render('llama3.3');
    expect(text).toContain('Environment: ipython');
    expect(text).toContain('"name": "get_weather"');
    expect(text).toContain('<|start_header_id|>assistant<|end_header_id|>\n\n{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>');
    expect(text).toContain('<|start_header_id|>ipython<|end_header_id|>\n\n');
    // Without tools nothing of them shows, and an assistant turn without calls renders as text.
    const plain = render('llama3.3', [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello' }, { role: 'user', content: 'Bye' }], []);
    expect(plain).not.toContain('ipython');
    expect(plain).toContain('<|start_header_id|>assistant<|end_header_id|>\n\nHello<|eot_id|>');
  });
  test('Mistral: [AVAILABLE_TOOLS], [TOOL_CALLS] and [TOOL_RESULTS] with the same 9-character id', () => {
    const text = render('mistral-nemo');
    expect(text).toContain('[AVAILABLE_TOOLS][{"type": "function", "function": {"name": "get_weather"');
    const call = /\[TOOL_CALLS\]\[\{"name": "get_weather", "arguments": \{"city": "Paris"\}, "id": "([A-Za-z0-9]{9})"\}\]<\/s>/.exec(text);
    expect(call).not.toBeNull();
    expect(text).toContain(`[TOOL_RESULTS]{"content": {"temp":21}, "call_id": "${call![1]}"}[/TOOL_RESULTS]`);
  });
  test('Phi-4-mini: tools in the system message\'s tools field, calls written into the content', () => {
    const text = render('phi4-mini');
    expect(text).toContain('<|system|>Be brief.<|tool|>[{"name":"get_weather"');
    expect(text).toContain('<|assistant|><|tool_call|>{"name":"get_weather","arguments":{"city":"Paris"}}<|/tool_call|><|end|>');
    expect(text).toContain('<|user|><tool_response>\n{"temp":21}\n</tool_response><|end|>');
    // No system message: one is made for the tools.
    expect(render('phi4-mini', [{ role: 'user', content: 'Hi' }])).toMatch(/^<\|system\|>[^<]*<\|tool\|>\[\{"name":"get_weather"/);
  });
  test('a template with no tool support gets the generic instructions, calls and results as text', () => {
    const text = renderChat(CHATML, ROUND_TRIP, TOKENS, { tools: [WEATHER] });
    expect(text).toContain('<|im_start|>system\nBe brief.\n\n# Tools');
    expect(text).toContain('{"type":"function","function":{"name":"get_weather"');
    expect(text).toContain('<|im_start|>assistant\n<tool_call>\n{"name":"get_weather","arguments":{"city":"Paris"}}\n</tool_call><|im_end|>');
    expect(text).toContain('<|im_start|>user\n<tool_response>\n{"temp":21}\n</tool_response><|im_end|>');
    // A base model without a template: the same, in the plain transcript.
    const plain = renderChat(undefined, ROUND_TRIP, TOKENS, { tools: [WEATHER] });
    expect(plain).toContain('# Tools');
    expect(plain).toContain('User: <tool_response>');
  });
  test('DeepSeek-R1 distills take arguments as text', () => {
    const text = render('deepseek-r1-distill-qwen', [
      { role: 'user', content: 'Weather?' },
      { role: 'assistant', content: null as unknown as string, tool_calls: ROUND_TRIP[2]!.tool_calls },
    ].map((m) => ({ ...m, content: m.content ?? '' })) as ChatMessage[], []);
    expect(text).toContain('<｜User｜>Weather?');
  });
  test('chat_template_kwargs reach the template: Qwen 3 without thinking', () => {
    const on = render('qwen3', [{ role: 'user', content: 'Hi' }], []);
    const off = render('qwen3', [{ role: 'user', content: 'Hi' }], [], { enable_thinking: false });
    expect(on.endsWith('<|im_start|>assistant\n')).toBe(true);
    expect(off.endsWith('<|im_start|>assistant\n<think>\n\n</think>\n\n')).toBe(true);
    expect(promptOpensThinking(off)).toBe(false);
    expect(promptOpensThinking(render('deepseek-r1-distill-qwen', [{ role: 'user', content: 'Hi' }], []))).toBe(true);
  });
});

/** Feeds `text` to a fresh parser in pieces of 1..3 characters; returns what came out, joined. */
function parseInPieces(make: () => ReplyParser, text: string, seed: number): { parts: ReplyPart[]; whole: ReplyPart } {
  const p = make();
  const parts: ReplyPart[] = [];
  let rng = seed;
  for (let i = 0; i < text.length;) {
    rng = (rng * 1103515245 + 12345) >>> 0;
    const n = 1 + (rng % 3);
    parts.push(p.push(text.slice(i, i + n)));
    i += n;
  }
  parts.push(p.finish());
  const whole = parts.reduce((a, b) => ({ reasoning: a.reasoning + b.reasoning, content: a.content + b.content, calls: [...a.calls, ...b.calls] }), { reasoning: '', content: '', calls: [] as ParsedCall[] });
  return { parts, whole };
}

function wholeParse(make: () => ReplyParser, text: string): ReplyPart {
  const p = make();
  const a = p.push(text);
  const b = p.finish();
  return { reasoning: a.reasoning + b.reasoning, content: a.content + b.content, calls: [...a.calls, ...b.calls] };
}

const NAMES = new Set(['get_weather', 'get_time']);
const withTools = (format: ToolFormat, thinking = false, thinkingOpen = false) => () => new ReplyParser({ thinking, thinkingOpen, tools: { format, names: NAMES } });
const PARIS = { name: 'get_weather', arguments: { city: 'Paris' } };
const TOKYO = { name: 'get_time', arguments: { zone: 'Asia/Tokyo' } };

describe('parsing each family\'s calls, streamed in pieces and whole alike', () => {
  const cases: [string, ToolFormat, string, ReplyPart][] = [
    ['Qwen / Hermes', toolFormat(template('qwen2.5')), 'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n<tool_call>\n{"name": "get_time", "arguments": {"zone": "Asia/Tokyo"}}\n</tool_call>', { reasoning: '', content: 'Let me check.', calls: [PARIS, TOKYO] }],
    ['Qwen, a bare call without its tags', toolFormat(template('qwen2.5')), '{"name": "get_weather", "arguments": {"city": "Paris"}}', { reasoning: '', content: '', calls: [PARIS] }],
    ['Qwen, JSON that is not a call', toolFormat(template('qwen2.5')), '{"name": "Ann", "age": 3}', { reasoning: '', content: '{"name": "Ann", "age": 3}', calls: [] }],
    ['Qwen, arguments as a JSON string', toolFormat(template('qwen3')), '<tool_call>\n{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}\n</tool_call>', { reasoning: '', content: '', calls: [PARIS] }],
    ['Llama 3 bare JSON', toolFormat(template('llama3.3')), '{"name": "get_weather", "parameters": {"city": "Paris"}}', { reasoning: '', content: '', calls: [PARIS] }],
    ['Llama 3 two calls', toolFormat(template('llama3.3')), ' {"name": "get_weather", "parameters": {"city": "Paris"}}; {"name": "get_time", "parameters": {"zone": "Asia/Tokyo"}}', { reasoning: '', content: '', calls: [PARIS, TOKYO] }],
    ['Llama 3 python tag', toolFormat(template('llama3.3')), 'Sure. <|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}', { reasoning: '', content: 'Sure.', calls: [PARIS] }],
    ['Llama 3 JSON that is not a call stays text', toolFormat(template('llama3.3')), '{"answer": 42}', { reasoning: '', content: '{"answer": 42}', calls: [] }],
    ['Llama 3 JSON naming an unknown function stays text', toolFormat(template('llama3.3')), '{"name": "rm_rf", "parameters": {}}', { reasoning: '', content: '{"name": "rm_rf", "parameters": {}}', calls: [] }],
    ['Mistral list', toolFormat(template('mistral-nemo')), '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "abcdefghi"}, {"name": "get_time", "arguments": {"zone": "Asia/Tokyo"}}]', { reasoning: '', content: '', calls: [PARIS, TOKYO] }],
    ['Mistral name[ARGS]', toolFormat(template('mistral-nemo')), '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]get_time[CALL_ID]x1[ARGS]{"zone": "Asia/Tokyo"}', { reasoning: '', content: '', calls: [PARIS, TOKYO] }],
    ['Phi-4-mini', toolFormat(template('phi4-mini')), '<|tool_call|>[{"name": "get_weather", "arguments": {"city": "Paris"}}]<|/tool_call|>', { reasoning: '', content: '', calls: [PARIS] }],
    ['generic, no template format', toolFormat(CHATML), 'Calling.\n<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>', { reasoning: '', content: 'Calling.', calls: [PARIS] }],
    ['malformed call stays text', toolFormat(template('qwen2.5')), 'A <tool_call>{"name": oops}</tool_call> B', { reasoning: '', content: 'A <tool_call>{"name": oops}</tool_call> B', calls: [] }],
    ['a call cut off by max_tokens stays text', toolFormat(template('qwen2.5')), 'Hi <tool_call>{"name": "get_weather", "argu', { reasoning: '', content: 'Hi <tool_call>{"name": "get_weather", "argu', calls: [] }],
    ['text that only looks like an opener', toolFormat(template('qwen2.5')), 'a < b and <tool_> c <tool_cal', { reasoning: '', content: 'a < b and <tool_> c <tool_cal', calls: [] }],
  ];
  for (const [name, format, text, want] of cases) {
    test(name, () => {
      const make = withTools(format);
      expect(wholeParse(make, text)).toEqual(want);
      for (const seed of [1, 2, 3, 4, 5]) expect(parseInPieces(make, text, seed).whole).toEqual(want);
    });
  }

  test('a long call streamed in token-sized pieces parses quickly', () => {
    // 64k characters: more than a 4096-token context holds.
    const big = JSON.stringify({ city: 'x'.repeat(64_000) });
    for (const [format, text] of [
      [toolFormat(template('qwen2.5')), `<tool_call>{"name": "get_weather", "arguments": ${big}}</tool_call>`],
      [toolFormat(template('llama3.3')), `{"name": "get_weather", "parameters": ${big}}`],
      [toolFormat(template('mistral-nemo')), `[TOOL_CALLS][{"name": "get_weather", "arguments": ${big}}]`],
    ] as const) {
      const started = performance.now();
      const p = withTools(format)();
      const calls: ParsedCall[] = [];
      for (let i = 0; i < text.length; i += 4) calls.push(...p.push(text.slice(i, i + 4)).calls);
      calls.push(...p.finish().calls);
      expect(calls).toHaveLength(1);
      expect(performance.now() - started).toBeLessThan(3000);
    }
  });

  test('while streaming, no piece of a call is given out as content', () => {
    const text = 'Checking now. <tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>';
    for (const seed of [1, 7, 9]) {
      const { parts } = parseInPieces(withTools(toolFormat(template('qwen2.5'))), text, seed);
      const content = parts.map((p) => p.content).join('');
      expect(content).toBe('Checking now.');
      for (const p of parts) expect(p.content).not.toMatch(/[<{"]/);
    }
  });
});

describe('reasoning: <think>...</think> to reasoning_content, the answer to content', () => {
  const think = (open = false, tools?: ToolFormat) => () => new ReplyParser({ thinking: true, thinkingOpen: open, tools: tools && { format: tools, names: NAMES } });
  const cases: [string, () => ReplyParser, string, ReplyPart][] = [
    ['Qwen 3', think(), '<think>\nThe user greets.\n</think>\n\nHello!', { reasoning: 'The user greets.', content: 'Hello!', calls: [] }],
    ['opened by the prompt (DeepSeek-R1)', think(true), 'Greeting, so greet.\n</think>\n\nHi there', { reasoning: 'Greeting, so greet.', content: 'Hi there', calls: [] }],
    ['no thinking (enable_thinking false)', think(), 'Just the answer.', { reasoning: '', content: 'Just the answer.', calls: [] }],
    ['cut off while thinking', think(), '<think>\nStill going', { reasoning: 'Still going', content: '', calls: [] }],
    ['thinking, then a call', think(false, toolFormat(template('qwen3'))), '<think>\nNeed weather.\n</think>\n\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>', { reasoning: 'Need weather.', content: '', calls: [PARIS] }],
    ['a template without thinking keeps the tags as text', () => new ReplyParser({ thinking: false, thinkingOpen: false }), '<think>x</think>y', { reasoning: '', content: '<think>x</think>y', calls: [] }],
  ];
  for (const [name, make, text, want] of cases) {
    test(name, () => {
      expect(wholeParse(make, text)).toEqual(want);
      for (const seed of [1, 2, 3]) expect(parseInPieces(make, text, seed).whole).toEqual(want);
    });
  }
});

describe("tool_choice 'required' and named: what the constraint engine needs", () => {
  const tools = [WEATHER, TIME];
  for (const name of ['qwen2.5', 'llama3.3', 'mistral-nemo', 'phi4-mini'] as const) {
    test(`${name}: prefix + a schema-valid value + suffix parses back to the call`, () => {
      const format = toolFormat(template(name));
      const named = toolCallConstraint(format, tools, { type: 'function', function: { name: 'get_weather' } })!;
      const call = { name: 'get_weather', [format.argumentsKey]: { city: 'Paris' } };
      const value = format.list ? [call] : call;
      const text = named.prefix + JSON.stringify(value) + named.suffix;
      expect(wholeParse(withTools(format), text)).toEqual({ reasoning: '', content: '', calls: [PARIS] });
      // The schema names the function and carries its parameters.
      const schema = (format.list ? (named.schema.items as Record<string, unknown>) : named.schema) as { properties: Record<string, unknown>; required: string[] };
      expect(schema.properties.name).toEqual({ const: 'get_weather' });
      expect(schema.properties[format.argumentsKey]).toEqual(WEATHER.parameters);
      expect(schema.required).toEqual(['name', format.argumentsKey]);
      // 'required' allows any of the tools; 'auto' and 'none' constrain nothing.
      const any = toolCallConstraint(format, tools, 'required')!;
      expect(JSON.stringify(any.schema)).toContain('"anyOf"');
      expect(toolCallConstraint(format, tools, 'auto')).toBeUndefined();
      expect(toolCallConstraint(format, tools, 'none')).toBeUndefined();
      // 'auto': the same call, once the model writes an opener.
      const auto = toolCallTrigger(format, tools)!;
      expect(auto.triggers).toEqual(format.openers);
      expect(auto.schema).toEqual(any.schema);
      expect(wholeParse(withTools(format), `Sure. ${auto.triggers![0]}${JSON.stringify(value)}${auto.suffix}`).calls).toEqual([PARIS]);
    });
  }
});

test("tool_choice 'auto': where an opener ends in the streamed text (generate's trigger)", () => {
  const openers = ['<tool_call>'];
  // Whole in one token, across tokens, inside a token with text after it, and not yet.
  expect(findTrigger('Sure. ', '<tool_call>', openers)).toEqual({ text: '<tool_call>', at: 11 });
  expect(findTrigger('Sure. <tool', '_call>', openers)).toEqual({ text: '<tool_call>', at: 6 });
  expect(findTrigger('<to', 'ol_call>\n{', openers)).toEqual({ text: '<tool_call>', at: 8 });
  expect(findTrigger('Sure. <tool', '_ca', openers)).toBeUndefined();
  // An opener that ended before this piece is not found again.
  expect(findTrigger('<tool_call>', '{', openers)).toBeUndefined();
  expect(findTrigger('', 'x[TOOL_CALLS]', ['[TOOL_CALLS]', '<tool_call>'])).toEqual({ text: '[TOOL_CALLS]', at: 13 });
});

describe('request fields', () => {
  const M = [{ role: 'user', content: 'Hi' }];
  const TOOL = { type: 'function', function: WEATHER };
  const rejects = (fields: object, named: RegExp) => {
    let caught: unknown;
    try {
      validateChatRequest({ messages: M, ...fields });
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(WebGGUFError);
    expect((caught as WebGGUFError).code).toBe('invalid-argument');
    expect((caught as Error).message).toMatch(named);
  };

  test('tools and tool_choice are checked, naming the bad field', () => {
    rejects({ tools: {} }, /^tools must be an array/);
    rejects({ tools: [{ type: 'retrieval' }] }, /^tools\[0\]\.type/);
    rejects({ tools: [{ type: 'function', function: { name: 'has space' } }] }, /^tools\[0\]\.function\.name/);
    rejects({ tools: [{ type: 'function', function: { name: 'f', parameters: 'x' } }] }, /^tools\[0\]\.function\.parameters/);
    rejects({ tools: [{ type: 'function', function: { name: 'f', paramters: {} } }] }, /tools\[0\]\.function\.paramters is not a known/);
    rejects({ tools: [TOOL, TOOL] }, /given twice/);
    rejects({ tools: Array.from({ length: 129 }, (_, i) => ({ type: 'function', function: { name: `f${i}` } })) }, /at most 128/);
    rejects({ tool_choice: 'required' }, /^tool_choice 'required' needs tools/);
    rejects({ tools: [TOOL], tool_choice: { type: 'function', function: { name: 'nope' } } }, /not in tools/);
    rejects({ tools: [TOOL], tool_choice: 'sometimes' }, /^tool_choice must be/);
    rejects({ tools: [TOOL], parallel_tool_calls: 'yes' }, /^parallel_tool_calls/);
    const plan = validateChatRequest({ messages: M, tools: [TOOL], tool_choice: { type: 'function', function: { name: 'get_weather' } }, parallel_tool_calls: false });
    expect(plan).toMatchObject({ tools: [WEATHER], toolChoice: { type: 'function', function: { name: 'get_weather' } }, parallelToolCalls: false });
    expect(validateChatRequest({ messages: M, tools: [TOOL] }).toolChoice).toBe('auto');
    // 'none' offers nothing to the template.
    expect(validateChatRequest({ messages: M, tools: [TOOL], tool_choice: 'none' }).tools).toBeUndefined();
  });

  test('tool messages and assistant tool calls', () => {
    const call = { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } };
    const plan = validateChatRequest({ messages: [...M, { role: 'assistant', content: null, tool_calls: [call] }, { role: 'tool', content: '21C', tool_call_id: 'call_1' }] });
    expect(plan.messages.slice(1)).toEqual([{ role: 'assistant', content: '', tool_calls: [call] }, { role: 'tool', content: '21C', tool_call_id: 'call_1' }]);
    rejects({ messages: [{ role: 'tool', content: 'x' }] }, /messages\[0\]\.tool_call_id/);
    rejects({ messages: [{ role: 'assistant', content: null, tool_calls: [{ ...call, function: { name: 'f', arguments: '{bad' } }] }] }, /messages\[0\]\.tool_calls\[0\]\.function\.arguments is not valid JSON/);
    rejects({ messages: [{ role: 'assistant', content: null, tool_calls: [{ ...call, function: { name: 'f', arguments: { a: 1 } } }] }] }, /arguments must be a string/);
    rejects({ messages: [{ role: 'assistant', content: null, tool_calls: [{ type: 'function', function: call.function }] }] }, /tool_calls\[0\]\.id/);
    rejects({ messages: [{ role: 'user', content: 'x', tool_call_id: 'a' }] }, /messages\[0\]\.tool_call_id is not a known user message field/);
    rejects({ messages: [{ role: 'function', content: 'x' }] }, /role "function" is not supported/);
  });

  test('chat_template_kwargs', () => {
    expect(validateChatRequest({ messages: M, chat_template_kwargs: { enable_thinking: false } }).templateKwargs).toEqual({ enable_thinking: false });
    rejects({ chat_template_kwargs: { enable_thinking: 'no' } }, /enable_thinking must be a boolean/);
    rejects({ chat_template_kwargs: { messages: [] } }, /chat_template_kwargs\.messages is set by the engine/);
    rejects({ chat_template_kwargs: { 'a-b': 1 } }, /not a template variable name/);
    rejects({ chat_template_kwargs: 3 }, /^chat_template_kwargs must be an object/);
  });

  test('n: more than one choice without stream; a typed error with stream', () => {
    expect(validateChatRequest({ messages: M, n: 3 }).n).toBe(3);
    expect(validateChatRequest({ messages: M }).n).toBe(1);
    rejects({ n: 2, stream: true }, /^n 2 is not supported with stream: true/);
    rejects({ n: 0 }, /^n must be a positive integer/);
    rejects({ n: 1.5 }, /^n must be a positive integer/);
    rejects({ n: 17 }, /^n must be at most 16/);
  });
});
