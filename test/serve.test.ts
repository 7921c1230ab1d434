/**
 * `webgguf serve` (src/node/serve.ts) driven by the official `openai` npm client and by plain
 * fetch: chat (whole and streamed), legacy completions, models, embeddings (a generated BERT
 * beside stories260K), the API key, OpenAI-shaped errors, the request queue (order, and clients
 * that go away while running or waiting), and the CLI's own process with its stdout line.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { makeBertModel } from '../scripts/make-bert.js';
import { makeModel, TINY_SHAPES } from '../scripts/make-model.js';
import { serve, type ModelServer } from '../src/node/serve.js';
import { testGpu } from './helpers/gpu.js';
import { HAVE_MODELS, MODELS, storiesPath } from './helpers/models.js';

const BIN = fileURLToPath(new URL('../bin/webgguf.js', import.meta.url));
const KEY = 'sk-test-key';
const TEXT_ID = 'stories260K-q4_0';
const BERT_ID = 'tiny-bert-f16';
const HAVE_BERT_VOCAB = existsSync(`${MODELS}tokenizers/llamacpp-vocab/ggml-vocab-bert-bge.gguf`);
/** Forcing one token (400) keeps a generation going for its whole max_tokens: it never samples EOS. */
const ENDLESS = { logit_bias: { 400: 100 } };

describe.skipIf(!HAVE_MODELS || !HAVE_BERT_VOCAB)('webgguf serve', () => {
  let server: ModelServer;
  let client: OpenAI;
  /** POST a JSON body (or raw text) with the key. */
  const post = (path: string, body: unknown, init: RequestInit = {}) =>
    fetch(server.url + path, {
      method: 'POST', ...init,
      headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json', ...(init.headers as Record<string, string>) },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  const pending = async () => ((await (await fetch(`${server.url}/health`)).json()) as { models: { id: string; pending: number }[] }).models.find((m) => m.id === TEXT_ID)!.pending;
  const waitFor = async (what: () => Promise<boolean>, ms = 10_000) => {
    for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 20))) if (await what()) return;
    throw new Error('timed out waiting');
  };
  const chat = (extra: Record<string, unknown> = {}) => ({ model: TEXT_ID, messages: [{ role: 'user' as const, content: 'Once upon a time' }], ...extra });

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'webgguf-serve-'));
    const bert = join(dir, `${BERT_ID}.gguf`);
    writeFileSync(bert, await makeBertModel({ shape: 'tiny-bert', quant: 'f16' }));
    server = await serve({ model: storiesPath('q4_0'), embeddingModel: bert, port: 0, apiKey: KEY, maxPending: 3, gpu: testGpu });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY, maxRetries: 0 });
  });
  afterAll(() => server?.close());

  test('models and health', async () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const models = await client.models.list();
    expect(models.data.map((m) => [m.id, m.object, m.owned_by])).toEqual([[TEXT_ID, 'model', 'webgguf'], [BERT_ID, 'model', 'webgguf']]);
    expect((await client.models.retrieve(BERT_ID)).id).toBe(BERT_ID);
    expect((await fetch(`${server.url}/v1/models/`, { headers: { Authorization: `Bearer ${KEY}` } })).status).toBe(200);
    const health = await fetch(`${server.url}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', models: [{ id: TEXT_ID, kind: 'text', pending: 0 }, { id: BERT_ID, kind: 'embedding', pending: 0 }] });
  });

  test('chat: streamed chunks join to the whole reply of the same seed; the usage chunk comes last', async () => {
    const request = chat({ seed: 11, temperature: 0.9, max_tokens: 24 });
    const whole = await client.chat.completions.create(request);
    expect(whole.model).toBe(TEXT_ID);
    expect(whole.object).toBe('chat.completion');
    const text = whole.choices[0]!.message.content!;
    expect(text.length).toBeGreaterThan(0);
    expect(whole.usage!.completion_tokens).toBeGreaterThan(0);

    const chunks = [];
    for await (const chunk of await client.chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } })) chunks.push(chunk);
    expect(chunks.every((c) => c.model === TEXT_ID && c.object === 'chat.completion.chunk')).toBe(true);
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe(text);
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe(whole.choices[0]!.finish_reason);
    expect(chunks.at(-1)!.choices).toEqual([]);
    expect(chunks.at(-1)!.usage!.completion_tokens).toBe(whole.usage!.completion_tokens);

    // The raw stream ends with OpenAI's terminator.
    const raw = await (await post('/v1/chat/completions', { ...request, max_tokens: 2, stream: true })).text();
    expect(raw.trimEnd().endsWith('data: [DONE]')).toBe(true);
    expect(raw.split('\n\n').filter(Boolean).every((event) => event.startsWith('data: '))).toBe(true);
  });

  test('legacy completions (whole and streamed alike), n choices and logit_bias pass through to the engine', async () => {
    const r = await client.completions.create({ model: TEXT_ID, prompt: 'Once upon a time', max_tokens: 6, n: 2, seed: 5, temperature: 1 });
    expect(r.object).toBe('text_completion');
    expect(r.model).toBe(TEXT_ID);
    expect(r.choices.map((c) => c.index)).toEqual([0, 1]);
    expect(r.choices[0]!.text.length).toBeGreaterThan(0);
    let streamed = '';
    for await (const chunk of await client.completions.create({ model: TEXT_ID, prompt: 'Once upon a time', max_tokens: 6, seed: 5, temperature: 1, stream: true })) streamed += chunk.choices[0]?.text ?? '';
    expect(streamed).toBe(r.choices[0]!.text);
    // Every token forced to one id: the text is one piece repeated.
    const forced = await client.completions.create({ model: TEXT_ID, prompt: 'Once', max_tokens: 4, temperature: 1, seed: 1, ...ENDLESS } as OpenAI.CompletionCreateParamsNonStreaming);
    const piece = forced.choices[0]!.text.slice(0, forced.choices[0]!.text.length / 4);
    expect(forced.choices[0]!.text).toBe(piece.repeat(4));
  });

  test('embeddings from the embedding model (the client asks for base64); the text model makes none', async () => {
    const r = await client.embeddings.create({ model: BERT_ID, input: ['the cat sat', 'a dog ran'] });
    expect(r.model).toBe(BERT_ID);
    expect(r.data).toHaveLength(2);
    for (const d of r.data) {
      expect(d.embedding).toHaveLength(256);
      expect(Math.hypot(...d.embedding)).toBeCloseTo(1, 4);
    }
    const plain = (await (await post('/v1/embeddings', { input: 'the cat sat', dimensions: 8 })).json()) as { data: { embedding: number[] }[] };
    expect(plain.data[0]!.embedding).toHaveLength(8);
    const wrong = await post('/v1/embeddings', { model: TEXT_ID, input: 'x' });
    expect(wrong.status).toBe(400);
    expect(await wrong.json()).toMatchObject({ error: { type: 'invalid_request_error', param: 'model' } });
  });

  test('the API key: 401 with an OpenAI error body (and CORS headers, so a page can read it)', async () => {
    for (const headers of [{}, { Authorization: 'Bearer wrong' }, { Authorization: 'Basic abc' }] as Record<string, string>[]) {
      const r = await fetch(`${server.url}/v1/models`, { headers: { Origin: 'http://page.test', ...headers } });
      expect(r.status).toBe(401);
      expect(r.headers.get('access-control-allow-origin')).toBe('*');
      expect(await r.json()).toEqual({ error: { message: expect.any(String), type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });
    }
    const wrong = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'wrong', maxRetries: 0 });
    await expect(wrong.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    // A preflight needs no key.
    const preflight = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'OPTIONS', headers: { Origin: 'http://page.test', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization,content-type' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-headers')).toContain('authorization');
  });

  test('bad requests: OpenAI error bodies with the status, type, param and code', async () => {
    const cases: [unknown, number, Record<string, unknown>][] = [
      ['{"messages": [', 400, { type: 'invalid_request_error', code: 'invalid-argument' }],
      ['[1, 2]', 400, { type: 'invalid_request_error' }],
      [chat({ temperature: 5 }), 400, { type: 'invalid_request_error', param: 'temperature', code: 'invalid-argument' }],
      [chat({ temprature: 0.5 }), 400, { type: 'invalid_request_error', code: 'invalid-argument' }],
      [chat({ n: 2, stream: true }), 400, { code: 'invalid-argument' }],
      [chat({ model: 'gpt-4o' }), 404, { code: 'model_not_found', param: 'model' }],
      [chat({ model: BERT_ID }), 400, { param: 'model' }],
      // Past the context (512 tokens), streamed or not: the status is kept, no stream starts.
      [chat({ messages: [{ role: 'user', content: 'tale '.repeat(2000) }] }), 400, { code: 'context_length_exceeded' }],
      [chat({ messages: [{ role: 'user', content: 'tale '.repeat(2000) }], stream: true }), 400, { code: 'context_length_exceeded' }],
    ];
    for (const [body, status, error] of cases) {
      const r = await post('/v1/chat/completions', body);
      expect(r.status, JSON.stringify(body).slice(0, 80)).toBe(status);
      expect(r.headers.get('content-type')).toContain('application/json');
      const json = (await r.json()) as { error: Record<string, unknown> };
      expect(Object.keys(json.error).sort()).toEqual(['code', 'message', 'param', 'type']);
      expect(json.error, JSON.stringify(body).slice(0, 80)).toMatchObject(error);
    }
    const tooBig = await post('/v1/chat/completions', chat({ messages: [{ role: 'user', content: 'x'.repeat(5 * 2 ** 20) }] }));
    expect(tooBig.status).toBe(413);
    expect(await tooBig.json()).toMatchObject({ error: { code: 'request_too_large' } });
    const nowhere = await post('/v1/nowhere', {});
    expect(nowhere.status).toBe(404);
    expect(await nowhere.json()).toMatchObject({ error: { type: 'invalid_request_error' } });
    // The client's own typed error for a 400.
    await expect(client.chat.completions.create(chat({ temperature: 5 }))).rejects.toBeInstanceOf(OpenAI.BadRequestError);
  });

  test('queued requests run in arrival order; past maxPending, 429', async () => {
    const order: string[] = [];
    // A long request holds the queue until B and C wait behind it, then its client leaves.
    const holder = new AbortController();
    const first = await client.chat.completions.create(chat({ max_tokens: 400, stream: true, ...ENDLESS }) as OpenAI.ChatCompletionCreateParamsStreaming, { signal: holder.signal });
    // (The client's stream ends quietly on abort.)
    const running = (async () => {
      for await (const _ of first);
    })().catch(() => undefined).then(() => order.push('A'));
    await waitFor(async () => (await pending()) === 1);
    const second = client.chat.completions.create(chat({ max_tokens: 3 })).then(() => order.push('B'));
    await waitFor(async () => (await pending()) === 2);
    const third = client.completions.create({ model: TEXT_ID, prompt: 'x', max_tokens: 3 }).then(() => order.push('C'));
    await waitFor(async () => (await pending()) === 3);
    // Past maxPending (3): 429 with Retry-After, which OpenAI's client reads as a rate limit.
    const full = await post('/v1/completions', { prompt: 'x', max_tokens: 1 });
    expect(full.status).toBe(429);
    expect(full.headers.get('retry-after')).toBe('1');
    expect(await full.json()).toMatchObject({ error: { type: 'rate_limit_error', code: 'rate_limit_exceeded' } });
    holder.abort();
    await Promise.all([running, second, third]);
    expect(order).toEqual(['A', 'B', 'C']);
    expect(await pending()).toBe(0);
  });

  test('a client that goes away, while waiting or mid-stream, aborts its request and frees the queue', async () => {
    // The decode speed here, to know how long the long request would have held the queue.
    const probe = await client.chat.completions.create(chat({ max_tokens: 16, ...ENDLESS }));
    const secondsPerToken = 1 / (probe.usage as unknown as { extra: { decode_tokens_per_s: number } }).extra.decode_tokens_per_s;
    const maxTokens = 400;

    const running = new AbortController();
    const stream = await client.chat.completions.create(chat({ max_tokens: maxTokens, stream: true, ...ENDLESS }) as OpenAI.ChatCompletionCreateParamsStreaming, { signal: running.signal });
    const it = stream[Symbol.asyncIterator]();
    await it.next();
    await it.next();
    // A request waiting behind it whose client leaves: it stops counting at once.
    const waiting = new AbortController();
    const queued = post('/v1/chat/completions', chat({ max_tokens: 4 }), { signal: waiting.signal }).catch((e: unknown) => e);
    await waitFor(async () => (await pending()) === 2);
    waiting.abort();
    expect(await queued).toMatchObject({ name: 'AbortError' });
    await waitFor(async () => (await pending()) === 1, 2_000);

    running.abort();
    const after = await client.chat.completions.create(chat({ max_tokens: 2 }));
    const waited = (after.usage as unknown as { extra: { time_to_first_token_s: number } }).extra.time_to_first_token_s;
    // Had it kept running, the next request would have waited for most of its tokens.
    expect(waited).toBeLessThan((maxTokens * secondsPerToken) / 2);
    expect(after.choices[0]!.message.content!.length).toBeGreaterThan(0);
    await waitFor(async () => (await pending()) === 0, 2_000);
  });

  // Last: it closes the server.
  test('close() ends the requests in flight and stops listening', async () => {
    const stream = await client.chat.completions.create(chat({ max_tokens: 400, stream: true, ...ENDLESS }) as OpenAI.ChatCompletionCreateParamsStreaming);
    const it = stream[Symbol.asyncIterator]();
    await it.next();
    const started = Date.now();
    await server.close();
    expect(Date.now() - started).toBeLessThan(10_000);
    // The stream ends, with the engine's `disposed` error as its last event.
    const ended = await (async () => {
      for (;;) if ((await it.next()).done) return 'done';
    })().catch((e: unknown) => e);
    expect(ended).toMatchObject({ error: { code: 'disposed' } });
    await expect(fetch(`${server.url}/health`)).rejects.toThrow();
  });
});

describe.skipIf(!HAVE_MODELS)('webgguf serve, a decoder embedding model', () => {
  test('a decoder whose file names its pooling (Qwen3-Embedding\'s form) is served for embeddings, not chat', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'webgguf-serve-'));
    const path = join(dir, 'qwen3-embedding.gguf');
    writeFileSync(path, await makeModel({ arch: 'qwen3', shape: TINY_SHAPES.qwen3, quant: 'q8_0', pooling: 'last' }));
    // Alone, and beside a text model as --embedding-model.
    for (const options of [{ model: path }, { model: storiesPath('q4_0'), embeddingModel: path }]) {
      const server = await serve({ ...options, port: 0, gpu: testGpu });
      try {
        expect(server.models.find((m) => m.id === 'qwen3-embedding')).toMatchObject({ kind: 'embedding', architecture: 'qwen3' });
        const r = await fetch(`${server.url}/v1/embeddings`, { method: 'POST', body: JSON.stringify({ input: ['the cat sat', 'a dog ran'] }) });
        expect(r.status).toBe(200);
        const body = (await r.json()) as { model: string; data: { embedding: number[] }[] };
        expect(body.model).toBe('qwen3-embedding');
        expect(body.data).toHaveLength(2);
        expect(Math.hypot(...body.data[0]!.embedding)).toBeCloseTo(1, 4);
        const chat = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'qwen3-embedding', messages: [{ role: 'user', content: 'hi' }] }) });
        expect(chat.status).toBe(400);
      } finally {
        await server.close();
      }
    }
  }, 240_000);
});

describe.skipIf(!HAVE_MODELS)('webgguf serve, the command', () => {
  test('prints "webgguf serve: listening on http://HOST:PORT" first, serves, and ends cleanly on SIGTERM', async () => {
    const child = spawn(process.execPath, [BIN, 'serve', '--model', storiesPath('q4_0'), '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const line = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout }).once('line', resolve);
        void exited.then((code) => reject(new Error(`exited with ${code}: ${stderr}`)));
      });
      const m = /^webgguf serve: listening on (http:\/\/127\.0\.0\.1:(\d+))$/.exec(line);
      expect(m, line).not.toBeNull();
      expect(Number(m![2])).toBeGreaterThan(0);
      const models = (await (await fetch(`${m![1]}/v1/models`)).json()) as { data: { id: string }[] };
      expect(models.data.map((d) => d.id)).toEqual([TEXT_ID]);
      const reply = (await (await fetch(`${m![1]}/v1/completions`, { method: 'POST', body: JSON.stringify({ prompt: 'Once', max_tokens: 3 }) })).json()) as { choices: { text: string }[] };
      expect(reply.choices[0]!.text.length).toBeGreaterThan(0);
      // No embedding model here: an OpenAI error saying so.
      const embeddings = await fetch(`${m![1]}/v1/embeddings`, { method: 'POST', body: JSON.stringify({ input: 'x' }) });
      expect(embeddings.status).toBe(404);
      expect(await embeddings.json()).toMatchObject({ error: { code: 'model_not_found', message: expect.stringMatching(/no embedding model/) } });
      // A line per request on stderr, none on stdout.
      expect(stderr).toMatch(/--> POST \/v1\/completions \S*200\S* \d+m?s/);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});
