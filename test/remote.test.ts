/**
 * The remote engine (src/remote/) in Node, no GPU: recorded SSE transcripts of vLLM, SGLang,
 * llama.cpp's server, Ollama's /v1 and OpenAI (test/fixtures/sse/, in their documented formats)
 * replayed by a stand-in server in odd-sized pieces; HTTP failures mapped to typed errors,
 * retries with backoff and Retry-After; aborts, kills and stalls that settle; routing.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, test } from 'vitest';
import { createEngine, WebGGUFError, type Engine } from '../src/index.js';
import type { ChatCompletion, ChatCompletionChunk, CompletionChunk, ModelInfo } from '../src/engine/types.js';
import { retryAfterMs } from '../src/remote/errors.js';
import { createRoutedEngine } from '../src/remote/route.js';
import { SseParser, type ServerSentEvent } from '../src/remote/sse.js';
import { jsonReply, sseReply, StandInServer, type Reply } from './helpers/stand-in-server.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/sse/', import.meta.url));
const transcript = (name: string) => readFileSync(`${FIXTURES}${name}`, 'utf8');

let servers: StandInServer[] = [];
let engines: Engine[] = [];
afterEach(async () => {
  await Promise.all(engines.map((e) => e.dispose()));
  await Promise.all(servers.map((s) => s.stop()));
  servers = [];
  engines = [];
});

async function serve(handler: (request: StandInServer['received'][0], index: number) => Reply): Promise<StandInServer> {
  const server = await new StandInServer(handler).start();
  servers.push(server);
  return server;
}

async function remoteEngine(server: StandInServer, extra: Record<string, unknown> = {}): Promise<Engine> {
  const engine = await createEngine({ remote: { baseURL: server.url, model: 'test-model', retry: { baseDelayMs: 10 }, ...extra } });
  engines.push(engine);
  return engine;
}

/** A streamed reply put together as an app would: text, thinking, tool calls by index, finish reasons, usage. */
async function collect(stream: AsyncIterable<ChatCompletionChunk>) {
  let content = '';
  let reasoning = '';
  const calls: { id: string; name: string; arguments: string }[] = [];
  const finish: string[] = [];
  const routes = new Set<string | undefined>();
  let usage: ChatCompletionChunk['usage'];
  let model = '';
  for await (const chunk of stream) {
    routes.add(chunk.webgguf?.route);
    model = chunk.model;
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) {
      content += choice.delta.content ?? '';
      reasoning += choice.delta.reasoning_content ?? '';
      for (const call of choice.delta.tool_calls ?? []) {
        const c = (calls[call.index] ??= { id: '', name: '', arguments: '' });
        if (call.id) c.id = call.id;
        if (call.function.name) c.name = call.function.name;
        c.arguments += call.function.arguments;
      }
      if (choice.finish_reason) finish.push(choice.finish_reason);
    }
  }
  return { content, reasoning, calls, finish, routes: [...routes], usage, model };
}

const CHAT = { messages: [{ role: 'user' as const, content: 'Hi' }] };

/** What each transcript says, as an app reads it. */
const EXPECTED: Record<string, Partial<Awaited<ReturnType<typeof collect>>> & { tokens?: [number, number, number] }> = {
  'openai-chat.sse': { content: 'Bonjour — ça va ? 🌍', reasoning: '', finish: ['stop'], model: 'gpt-4o-mini-2024-07-18', tokens: [11, 6, 17] },
  'openai-tools.sse': {
    content: '', finish: ['tool_calls'], calls: [
      { id: 'call_DdmO9pD3xa9XTPNJ32zg2hcA', name: 'get_weather', arguments: '{"location": "Paris, France"}' },
      { id: 'call_ABwL2fHoc9Z3H6uK6x7QwN4t', name: 'get_time', arguments: '{"tz":"Europe/Paris"}' },
    ],
  },
  'vllm-reasoning.sse': { reasoning: 'Okay, 9.11 vs 9.8…', content: '9.8 is greater.', finish: ['stop'], tokens: [17, 14, 31] },
  'vllm-tools.sse': {
    content: '', finish: ['tool_calls'],
    calls: [{ id: 'chatcmpl-tool-4b8e0d4c2a5f4b66', name: 'get_current_weather', arguments: '{"city": "Dallas", "unit": "fahrenheit"}' }],
  },
  'sglang-reasoning.sse': { reasoning: 'The user asks for a haiku.', content: 'Autumn moonlight\na worm digs silently', finish: ['stop'], tokens: [14, 21, 35] },
  'llamacpp-reasoning.sse': { reasoning: 'Let me think.', content: 'Hello from llama.cpp 🦙', finish: ['stop'], tokens: [8, 9, 17] },
  'llamacpp-tools.sse': { finish: ['tool_calls'], calls: [{ id: 'rXTmHqJcRYMC5fYk1ABpPUhyFWhHbDJo', name: 'get_weather', arguments: '{"location":"Tokyo"}' }] },
  'ollama-tools.sse': {
    reasoning: 'Okay, the user wants weather.', content: '', finish: ['tool_calls'], tokens: [152, 41, 193],
    calls: [{ id: 'call_k3x9dhf1', name: 'get_weather', arguments: '{"city":"Toronto"}' }],
  },
  'sse-starlette-crlf.sse': { content: 'Multi-line ✓', finish: ['stop'] },
  'tgi-tools.sse': { finish: ['stop'], calls: [{ id: '', name: 'get_current_weather', arguments: '{"location": "Brooklyn, NY", "format": "fahrenheit"}' }] },
};
const FAILING: Record<string, { code: string; message: RegExp; content: string }> = {
  'vllm-error.sse': { code: 'server', message: /illegal memory access/, content: 'Once upon' },
  'sglang-error.sse': { code: 'context-overflow', message: /maximum context length of 32768/, content: '' },
  'llamacpp-error.sse': { code: 'context-overflow', message: /exceeds the available context size/, content: '' },
  'tgi-error.sse': { code: 'invalid-argument', message: /must be <= 4096/, content: '' },
};

describe('SSE parser', () => {
  const events = (text: string, piece: number) => {
    const parser = new SseParser();
    const out: ServerSentEvent[] = [];
    for (let i = 0; i < text.length; i += piece) out.push(...parser.push(text.slice(i, i + piece)));
    return [...out, ...parser.end()];
  };

  test('every transcript gives the same events cut into pieces of 1 to 9 characters as whole', () => {
    const names = readdirSync(FIXTURES).filter((f) => f.endsWith('.sse'));
    expect(names.length).toBeGreaterThanOrEqual(15);
    for (const name of names) {
      const whole = events(transcript(name), Infinity);
      expect(whole.length, name).toBeGreaterThan(0);
      for (let piece = 1; piece <= 9; piece++) expect(events(transcript(name), piece), `${name} in pieces of ${piece}`).toEqual(whole);
    }
  });

  test('line ends, comments, multi-line data, unknown fields, a BOM and a last event without its blank line', () => {
    const text = '\uFEFF: ping\r\ndata: a\r\ndata:b\r\rdata: c\n\nevent: ping\ndata: {}\n\nretry: 10\nfoo: bar\ndata: [DONE]';
    const expected = [{ event: 'message', data: 'a\nb' }, { event: 'message', data: 'c' }, { event: 'ping', data: '{}' }, { event: 'message', data: '[DONE]' }];
    for (let piece = 1; piece <= 4; piece++) expect(events(text, piece)).toEqual(expected);
    // A comment alone is no event.
    expect(events(': keep-alive\n\n', 1)).toEqual([]);
  });
});

describe('transcripts of real servers, replayed in odd-sized pieces', () => {
  test.each(Object.keys(EXPECTED))('%s', async (name) => {
    const server = await serve(() => sseReply(transcript(name)));
    const engine = await remoteEngine(server);
    const got = await collect(await engine.chat.completions.create({ ...CHAT, stream: true, stream_options: { include_usage: true } }));
    const { tokens, ...want } = EXPECTED[name]!;
    expect(got).toMatchObject(want);
    expect(got.routes).toEqual(['remote']);
    if (tokens) {
      expect([got.usage!.prompt_tokens, got.usage!.completion_tokens, got.usage!.total_tokens]).toEqual(tokens);
      expect(got.usage!.prompt_tokens_details.cached_tokens).toBe(0);
      expect(got.usage!.extra.e2e_latency_s).toBeGreaterThan(0);
    }
  });

  test.each(Object.keys(FAILING))('%s: the server\'s error mid-stream is a typed error with its message', async (name) => {
    const server = await serve(() => sseReply(transcript(name)));
    const engine = await remoteEngine(server);
    let content = '';
    const error = await (async () => {
      for await (const chunk of await engine.chat.completions.create({ ...CHAT, stream: true })) content += chunk.choices[0]?.delta.content ?? '';
    })().catch((e: unknown) => e);
    const { code, message, content: before } = FAILING[name]!;
    expect(error).toBeInstanceOf(WebGGUFError);
    expect(error).toMatchObject({ code });
    expect((error as Error).message).toMatch(message);
    expect(content).toBe(before);
    expect(server.received).toHaveLength(1);
  });

  test('vLLM legacy completions, streamed', async () => {
    const server = await serve(() => sseReply(transcript('vllm-completions.sse')));
    const engine = await remoteEngine(server);
    let text = '';
    const finish: (string | null)[] = [];
    for await (const c of (await engine.completions.create({ prompt: 'The capital of France is', stream: true })) as AsyncIterable<CompletionChunk>) {
      text += c.choices[0]?.text ?? '';
      if (c.choices[0]?.finish_reason) finish.push(c.choices[0].finish_reason);
    }
    expect(text).toBe(' Paris, the capital');
    expect(finish).toEqual(['length']);
    expect(server.received[0]).toMatchObject({ url: '/v1/completions', body: { prompt: 'The capital of France is', stream: true, model: 'test-model' } });
  });
});

describe('requests and whole answers', () => {
  test('the request as sent: path, key, headers, the default model, no signal; the answer in the engine\'s shape', async () => {
    const server = await serve(() => jsonReply({
      id: 'chatcmpl-1', object: 'chat.completion', created: 1, model: 'served-model',
      choices: [{ index: 0, message: { role: 'assistant', content: null, reasoning: 'thinking…', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: { a: 1 } } }] }, finish_reason: 'tool_calls' }],
      usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
    }));
    const engine = await remoteEngine(server, { apiKey: 'sk-test', headers: { 'X-Team': 'a' } });
    const reply = await engine.chat.completions.create({ ...CHAT, temperature: 0, signal: new AbortController().signal }) as ChatCompletion;
    const sent = server.received[0]!;
    expect(sent).toMatchObject({ method: 'POST', url: '/v1/chat/completions', body: { ...CHAT, temperature: 0, model: 'test-model' } });
    expect(sent.body).not.toHaveProperty('signal');
    expect(sent.headers).toMatchObject({ authorization: 'Bearer sk-test', 'x-team': 'a', 'content-type': 'application/json' });
    expect(reply).toMatchObject({ model: 'served-model', webgguf: { route: 'remote' }, usage: { total_tokens: 7, prompt_tokens_details: { cached_tokens: 0 } } });
    expect(reply.choices[0]!.message).toEqual({
      role: 'assistant', content: '', refusal: null, reasoning_content: 'thinking…',
      tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }],
    });
  });

  test('embeddings, and load() asks the server for its model list', async () => {
    const server = await serve((r) => r.url.endsWith('/models')
      ? jsonReply({ object: 'list', data: [{ id: 'test-model', object: 'model', max_model_len: 8192 }] })
      : jsonReply({ object: 'list', data: [{ object: 'embedding', index: 0, embedding: [0.6, 0.8] }], model: 'test-model', usage: { prompt_tokens: 2, total_tokens: 2 } }));
    const engine = await remoteEngine(server);
    const info: ModelInfo = await engine.load('test-model');
    expect(info).toMatchObject({ id: 'test-model', route: 'remote', contextLength: 8192, bytesOnGpu: 0 });
    // What a local load takes (a model file's URL) means the configured model: an app's load call works unchanged.
    expect(await engine.load('https://example.com/models/small-q4_0.gguf')).toMatchObject({ id: 'test-model' });
    const e = await engine.embeddings.create({ input: 'hello' });
    expect(e).toMatchObject({ data: [{ embedding: [0.6, 0.8] }], webgguf: { route: 'remote' } });
    expect(server.received.map((r) => `${r.method} ${r.url}`)).toEqual(['GET /v1/models', 'GET /v1/models', 'POST /v1/embeddings']);
    expect(server.received.at(-1)!.body).toMatchObject({ model: 'test-model', input: 'hello' });
  });

  test.each([
    [400, { error: { message: 'temperature must be <= 2', type: 'invalid_request_error', code: null } }, 'invalid-argument', /temperature must be <= 2/],
    [400, { object: 'error', message: 'max_tokens is too large', type: 'BadRequestError', code: 400 }, 'invalid-argument', /max_tokens is too large/],
    [422, { detail: [{ loc: ['body', 'messages'], msg: 'Field required' }] }, 'invalid-argument', /Field required/],
    [400, { error: { message: "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.", code: 'context_length_exceeded' } }, 'context-overflow', /4096/],
    [404, { error: { message: 'The model `x` does not exist.', type: 'NotFoundError', code: 404 } }, 'not-found', /does not exist/],
    [403, { error: { message: 'forbidden' } }, 'auth', /forbidden/],
    [500, 'Internal Server Error', 'server', /Internal Server Error/],
  ] as const)('%i %j → %s with the server\'s message', async (status, body, code, message) => {
    const server = await serve(() => (typeof body === 'string' ? { status, body } : jsonReply(body, status)));
    const engine = await remoteEngine(server);
    const error = await engine.chat.completions.create({ ...CHAT, stream: true }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code });
    expect((error as Error).message).toMatch(message);
    expect(server.received).toHaveLength(1);
  });
});

describe('streams other servers send', () => {
  const chunk = (o: Record<string, unknown>) => `data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', created: 1, model: 'm', ...o })}\n\n`;
  const text = (content: string, finish: string | null = null) => chunk({ choices: [{ index: 0, delta: { content }, finish_reason: finish }] });

  test("Azure's empty first chunk, empty data and ping events are skipped, Groq's x_groq usage read, and a close after every choice finished needs no [DONE]", async () => {
    const body = chunk({ choices: [], prompt_filter_results: [{ prompt_index: 0 }] }) + 'data:\n\nevent: ping\ndata: {}\n\n' + text('Hi') +
      chunk({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], x_groq: { usage: { prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 } } });
    const server = await serve(() => sseReply(body));
    const engine = await remoteEngine(server);
    const chunks: ChatCompletionChunk[] = [];
    for await (const c of await engine.chat.completions.create({ ...CHAT, stream: true })) chunks.push(c);
    expect(chunks.map((c) => c.choices.length)).toEqual([1, 1]);
    expect(chunks.at(-1)!.usage).toMatchObject({ total_tokens: 6 });
  });

  test('a web page where the stream should be (a wrong baseURL) is a server error that says so', async () => {
    const server = await serve(() => ({ headers: { 'Content-Type': 'text/html' }, body: '<!doctype html><title>Welcome</title>' }));
    const engine = await remoteEngine(server);
    await expect(engine.chat.completions.create({ ...CHAT, stream: true })).rejects.toMatchObject({ code: 'server', message: expect.stringMatching(/web page.*baseURL/) });
  });
});

describe('failures: retries, kills, aborts and stalls all settle with typed errors', () => {
  /** A long streamed reply: `n` content chunks. */
  const longStream = (n: number) =>
    Array.from({ length: n }, (_, i) => `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: { content: `w${i} ` }, finish_reason: null }] })}\n\n`).join('') +
    `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\ndata: [DONE]\n\n`;

  test('401 is auth at once, without retries', async () => {
    const server = await serve(() => jsonReply({ error: { message: 'Invalid API key', type: 'authentication_error' } }, 401));
    const engine = await remoteEngine(server, { apiKey: 'wrong' });
    await expect(engine.chat.completions.create(CHAT)).rejects.toMatchObject({ code: 'auth', message: expect.stringMatching(/401.*Invalid API key/) });
    expect(server.received).toHaveLength(1);
  });

  test('429 with Retry-After: 1 is retried after a second, then rate-limited', async () => {
    const server = await serve(() => jsonReply({ error: { message: 'slow down', type: 'rate_limit_error' } }, 429, { 'Retry-After': '1' }));
    const engine = await remoteEngine(server, { retry: { maxRetries: 1, baseDelayMs: 10 } });
    const start = performance.now();
    await expect(engine.chat.completions.create(CHAT)).rejects.toMatchObject({ code: 'rate-limited', message: expect.stringMatching(/slow down.*2 attempts/) });
    expect(performance.now() - start).toBeGreaterThanOrEqual(950);
    expect(server.received).toHaveLength(2);
  });

  test('a Retry-After longer than maxDelayMs fails at once, saying so', async () => {
    const server = await serve(() => jsonReply({ error: { message: 'quota' } }, 429, { 'Retry-After': '3600' }));
    const engine = await remoteEngine(server);
    await expect(engine.chat.completions.create(CHAT)).rejects.toMatchObject({ code: 'rate-limited', message: expect.stringMatching(/retry after 3600 s/) });
    expect(server.received).toHaveLength(1);
  });

  test('503 and 502 are retried with backoff, and the third answer is taken', async () => {
    const server = await serve((_, i) => (i < 2 ? { status: i === 0 ? 503 : 502, body: 'busy' } : sseReply(transcript('openai-chat.sse'))));
    const engine = await remoteEngine(server);
    expect((await collect(await engine.chat.completions.create({ ...CHAT, stream: true }))).content).toBe('Bonjour — ça va ? 🌍');
    expect(server.received).toHaveLength(3);
  });

  test('connection refused is retried, then network', async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port: p } = probe.address() as { port: number };
        probe.close(() => resolve(p));
      });
    });
    let calls = 0;
    const engine = await createEngine({
      remote: { baseURL: `http://127.0.0.1:${port}/v1`, model: 'm', retry: { maxRetries: 2, baseDelayMs: 10 }, fetch: (input, init) => (calls++, fetch(input, init)) },
    });
    engines.push(engine);
    await expect(engine.chat.completions.create(CHAT)).rejects.toMatchObject({ code: 'network' });
    expect(calls).toBe(3);
  });

  test('a server killed mid-stream is network, after the output so far, and is not retried', async () => {
    const body = longStream(50);
    const server = await serve(() => sseReply(body, { killAfterBytes: Math.floor(body.length / 2) }));
    const engine = await remoteEngine(server);
    let content = '';
    const error = await (async () => {
      for await (const c of await engine.chat.completions.create({ ...CHAT, stream: true })) content += c.choices[0]?.delta.content ?? '';
    })().catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'network' });
    expect(content).toMatch(/^w0 w1 /);
    expect(server.received).toHaveLength(1);
  });

  test('a stream that closes cleanly before its reply finished is network too', async () => {
    const server = await serve(() => sseReply(longStream(3).split('data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{}')[0]!));
    const engine = await remoteEngine(server);
    await expect(collect(await engine.chat.completions.create({ ...CHAT, stream: true }))).rejects.toMatchObject({ code: 'network', message: expect.stringMatching(/before the reply did/) });
  });

  test('abort mid-stream: the reply ends with finish_reason abort, as a local one does, and the server sees the client go', async () => {
    const server = await serve(() => sseReply(longStream(400), { pieces: [40] }));
    const engine = await remoteEngine(server);
    const controller = new AbortController();
    const chunks: ChatCompletionChunk[] = [];
    for await (const c of await engine.chat.completions.create({ ...CHAT, stream: true }, { signal: controller.signal })) {
      chunks.push(c);
      if (chunks.length === 3) controller.abort();
    }
    // Nothing after the abort but the chunk that ends the reply.
    expect(chunks).toHaveLength(4);
    expect(chunks.at(-1)!.choices[0]).toMatchObject({ finish_reason: 'abort', delta: {} });
    await expect.poll(() => server.clientsGone, { timeout: 5_000 }).toBe(1);
  });

  test('leaving the loop early closes the connection too', async () => {
    const server = await serve(() => sseReply(longStream(400), { pieces: [40] }));
    const engine = await remoteEngine(server);
    for await (const c of await engine.chat.completions.create({ ...CHAT, stream: true })) if (c.choices[0]?.delta.content) break;
    await expect.poll(() => server.clientsGone, { timeout: 5_000 }).toBe(1);
  });

  test('an aborted whole request rejects with aborted; a stalled server with network; dispose with disposed', async () => {
    const server = await serve(() => ({ headers: { 'Content-Type': 'application/json' }, stall: true }));
    const engine = await remoteEngine(server, { stallTimeoutMs: 300 });
    const controller = new AbortController();
    const aborted = engine.chat.completions.create(CHAT, { signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    await expect(aborted).rejects.toMatchObject({ code: 'aborted' });
    const start = performance.now();
    await expect(engine.chat.completions.create(CHAT)).rejects.toMatchObject({ code: 'network', message: expect.stringMatching(/sent nothing for 0.3 s/) });
    expect(performance.now() - start).toBeLessThan(3_000);
    const pending = engine.chat.completions.create(CHAT);
    await engine.dispose();
    await expect(pending).rejects.toMatchObject({ code: 'disposed' });
    await expect(engine.chat.completions.create(CHAT)).rejects.toMatchObject({ code: 'disposed' });
  });

  test('a caller\'s fetch that ignores the signal cannot keep a call from settling', async () => {
    const never = () => new Promise<Response>(() => {});
    const engine = await createEngine({ remote: { baseURL: 'http://127.0.0.1:9/v1', model: 'm', fetch: never, stallTimeoutMs: 200 } });
    engines.push(engine);
    await expect(engine.chat.completions.create(CHAT)).rejects.toMatchObject({ code: 'network' });
    const controller = new AbortController();
    const aborted = engine.chat.completions.create({ ...CHAT, stream: true }, { signal: controller.signal });
    controller.abort();
    // A stream aborted before the server answered ends at once, as a local one does.
    expect((await collect(await aborted)).finish).toEqual(['abort']);
  });

  test('Retry-After as seconds or an HTTP date', () => {
    const now = Date.parse('Wed, 21 Oct 2026 07:28:00 GMT');
    expect(retryAfterMs('120', now)).toBe(120_000);
    expect(retryAfterMs('Wed, 21 Oct 2026 07:28:30 GMT', now)).toBe(30_000);
    expect(retryAfterMs('Wed, 21 Oct 2026 07:00:00 GMT', now)).toBe(0);
    expect(retryAfterMs('soon', now)).toBeUndefined();
    expect(retryAfterMs(null, now)).toBeUndefined();
  });

  test('bad options are invalid-argument', async () => {
    await expect(createEngine({ remote: { baseURL: 'not a url', model: 'm' } })).rejects.toMatchObject({ code: 'invalid-argument' });
    await expect(createEngine({ remote: { baseURL: 'http://x/v1', model: '' } })).rejects.toMatchObject({ code: 'invalid-argument' });
  });
});

describe('routing (a stand-in local engine)', () => {
  /** A local engine whose load fails with `failure`, or answers as the local model. */
  const localEngine = (failure?: WebGGUFError): Engine => {
    const chunk: ChatCompletionChunk = { id: 'l', object: 'chat.completion.chunk', created: 1, model: 'local.gguf', choices: [{ index: 0, delta: { content: 'local' }, finish_reason: 'stop', logprobs: null }] };
    const unused = () => Promise.reject(new Error('not used'));
    return {
      load: async () => {
        if (failure) throw failure;
        return { id: 'local.gguf' } as ModelInfo;
      },
      estimate: unused, generate: () => ({ [Symbol.asyncIterator]: () => ({ next: unused }) }),
      chat: { completions: { create: (async (r: { stream?: boolean }) => (r.stream ? { async *[Symbol.asyncIterator]() { yield chunk; } } : { model: 'local.gguf' })) as unknown as Engine['chat']['completions']['create'] } },
      completions: { create: unused as Engine['completions']['create'] },
      embeddings: { create: unused },
      cache: { list: unused, delete: unused, usage: unused, persist: unused },
      bytesOnGpu: unused, unload: async () => {}, dispose: async () => {},
    };
  };

  test('a load the fit check refuses answers from the server, with the same calls; a device that fits answers itself', async () => {
    const server = await serve((r) => (r.url.endsWith('/models') ? jsonReply({ data: [] }) : sseReply(transcript('openai-chat.sse'))));
    const remote = { baseURL: server.url, model: 'big-model' };
    const tooBig = createRoutedEngine(localEngine(new WebGGUFError('insufficient-memory', 'does not fit')), { remote });
    expect(await tooBig.load('local.gguf')).toMatchObject({ id: 'big-model', route: 'remote' });
    const got = await collect(await tooBig.chat.completions.create({ ...CHAT, model: 'local.gguf', stream: true }));
    expect(got).toMatchObject({ content: 'Bonjour — ça va ? 🌍', routes: ['remote'], model: 'gpt-4o-mini-2024-07-18' });
    expect(server.received.at(-1)!.body).toMatchObject({ model: 'big-model' });

    const fits = createRoutedEngine(localEngine(), { remote });
    expect(await fits.load('local.gguf')).toMatchObject({ id: 'local.gguf', route: 'local' });
    expect(await collect(await fits.chat.completions.create({ ...CHAT, stream: true }))).toMatchObject({ content: 'local', routes: ['local'], model: 'local.gguf' });
    expect(await fits.chat.completions.create(CHAT)).toMatchObject({ model: 'local.gguf', webgguf: { route: 'local' } });
    // A request that names the server's model goes there, whatever the load chose.
    expect((await collect(await fits.chat.completions.create({ ...CHAT, model: 'big-model', stream: true }))).routes).toEqual(['remote']);
  });

  test("when: 'no-webgpu' falls back only without WebGPU; other load failures stay the app's", async () => {
    const server = await serve(() => jsonReply({ data: [] }));
    const remote = { baseURL: server.url, model: 'big-model' };
    await expect(createRoutedEngine(localEngine(new WebGGUFError('insufficient-memory', 'no')), { remote, when: 'no-webgpu' }).load('x')).rejects.toMatchObject({ code: 'insufficient-memory' });
    await expect(createRoutedEngine(localEngine(new WebGGUFError('no-webgpu', 'no')), { remote, when: 'no-webgpu' }).load('x')).resolves.toMatchObject({ route: 'remote' });
    await expect(createRoutedEngine(localEngine(new WebGGUFError('network', 'no')), { remote }).load('x')).rejects.toMatchObject({ code: 'network' });
    await expect(createRoutedEngine(localEngine(), { remote, when: 'always' }).load('x')).resolves.toMatchObject({ route: 'remote' });
  });
});
