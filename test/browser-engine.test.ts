/**
 * The built library (dist/) in Chromium: worker engine, IndexedDB cache, resume, chat API and a
 * responsive main thread. `npm test` builds dist/ first.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { makeBertModel } from '../scripts/make-bert.js';
import type { EmbeddingResponse } from '../src/embeddings.js';
import type { ChatCompletion, ChatCompletionChunk, Completion, CompletionChunk, ModelInfo } from '../src/engine/types.js';
import { HAVE_CHROMIUM, launchChromium } from './helpers/browser.js';
import { validateJson } from './helpers/json-schema.js';
import { ModelServer } from './helpers/model-server.js';
import { HAVE_MODELS, storiesPath } from './helpers/models.js';
import { splitGGUF, writeParts } from './helpers/split-gguf.js';

const DIST = fileURLToPath(new URL('../dist/index.js', import.meta.url));
const MODEL = 'stories260K/stories260K-q4_0.gguf';
const PROMPT = 'Once upon a time';
const MESSAGES = [{ role: 'user', content: 'Lily went to the park and' }];

type Failure = { error: { code?: string; message: string } };

function cliGreedy(prompt: string, n: number): Promise<number[]> {
  const bin = fileURLToPath(new URL('../bin/webgguf.js', import.meta.url));
  return new Promise((resolve, reject) =>
    execFile(process.execPath, [bin, 'generate', '--model', storiesPath('q4_0'), '--prompt', prompt, '--temperature', '0', '--max-tokens', String(n), '--json'],
      (e, stdout, stderr) => (e ? reject(new Error(stderr)) : resolve(JSON.parse(stdout).tokens))));
}

describe.skipIf(!HAVE_MODELS || !HAVE_CHROMIUM)('engine from dist/ in Chromium', () => {
  let server: ModelServer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  /** Model requests the page made, seen by Playwright. */
  let modelRequests: string[];

  const open = async () => {
    page = await context.newPage();
    page.on('pageerror', (e) => console.error('page error:', e));
    page.on('request', (r) => r.url().includes('/models/') && modelRequests.push(r.url()));
    await page.goto(`${server.origin}/repo/test/browser/engine.html`);
    await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
  };
  const call = <T>(fn: string, ...args: unknown[]) =>
    page.evaluate(([f, a]) => (window as unknown as Record<string, (...x: unknown[]) => Promise<unknown>>)[f as string]!(...(a as unknown[])), [fn, args] as const) as Promise<T>;

  beforeAll(async () => {
    if (!existsSync(DIST)) throw new Error('dist/ is missing: run `npm run build` (npm test does)');
    server = await new ModelServer().start();
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });
  beforeEach(async () => {
    // A fresh profile per test: its own IndexedDB.
    await context?.close();
    context = await browser.newContext();
    modelRequests = [];
    server.reset();
  });

  test('loads q4_0 in a worker; 64 greedy tokens equal the CLI; a reload loads from IndexedDB with no model request', async () => {
    await open();
    const info = await call<ModelInfo>('engineLoad', server.url(MODEL));
    expect(info).toMatchObject({ architecture: 'llama', fromCache: false });
    const { tokens } = await call<{ tokens: number[] }>('greedy', PROMPT, 64);
    expect(tokens).toEqual(await cliGreedy(PROMPT, 64));
    expect(await call<unknown[]>('cacheList')).toHaveLength(1);

    await page.reload();
    await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
    modelRequests = [];
    server.reset();
    const again = await call<ModelInfo>('engineLoad', server.url(MODEL));
    expect(again.fromCache).toBe(true);
    expect(modelRequests).toEqual([]);
    expect(server.requests).toBe(0);
    expect((await call<{ tokens: number[] }>('greedy', PROMPT, 64)).tokens).toEqual(tokens);

    const usage = await call<{ usage: number; quota: number; persisted: boolean; models: number; modelBytes: number }>('cacheUsage');
    expect(usage).toMatchObject({ models: 1, persisted: expect.any(Boolean) });
    expect(usage.modelBytes).toBeGreaterThan(200_000);
    expect(usage.usage).toBeGreaterThan(0);
    await call('cacheDelete', server.url(MODEL));
    expect(await call<unknown[]>('cacheList')).toEqual([]);
    const afterDelete = await call<ModelInfo>('engineLoad', server.url(MODEL));
    expect(afterDelete.fromCache).toBe(false);
    expect(modelRequests.length).toBeGreaterThan(0);
  });

  test('through the worker: headers, or the page\'s own fetch, reach every request of a gated model; progress arrives; a split model loads from its first part', async () => {
    server.authorization = 'Bearer hf_gated';
    await open();
    expect((await call<Failure>('engineLoad', server.url(MODEL))).error).toMatchObject({ code: 'network' });
    type Loaded = { info: ModelInfo; fetchCalls: number; phases: string[] };
    const viaHeaders = await call<Loaded>('engineLoadWith', server.url(MODEL), { headers: { Authorization: 'Bearer hf_gated' } });
    expect(viaHeaders.info.fromCache).toBe(false);
    expect(viaHeaders.phases).toEqual(expect.arrayContaining(['download', 'upload']));
    server.requestHeaders = [];
    const viaFetch = await call<Loaded>('engineLoadWith', server.url('stories260K/stories260K-q8_0.gguf'), { token: 'Bearer hf_gated' });
    expect(viaFetch.info.fromCache).toBe(false);
    expect(viaFetch.fetchCalls).toBe(server.requestHeaders.length);
    expect(viaFetch.fetchCalls).toBeGreaterThan(1);
    expect(server.requestHeaders.every((h) => h.authorization === 'Bearer hf_gated')).toBe(true);
    server.authorization = undefined;
    const q4 = new Uint8Array(readFileSync(storiesPath('q4_0')));
    const parts = await splitGGUF(q4, 8);
    const { names, paths } = writeParts(parts, 'stories');
    names.forEach((n, i) => server.files.set(`split/${n}`, paths[i]!));
    await call<ModelInfo>('engineLoad', server.url(`split/${names[0]}`));
    expect((await call<{ tokens: number[] }>('greedy', PROMPT, 32)).tokens).toEqual(await cliGreedy(PROMPT, 32));
  });

  test('a dropped connection fails with a typed error; the next load resumes and gives the same output', async () => {
    await open();
    const whole = await call<ModelInfo>('engineLoad', server.url(MODEL));
    expect(whole.fromCache).toBe(false);
    const wholeBytes = server.bytes;
    const expected = (await call<{ tokens: number[] }>('greedy', PROMPT, 32)).tokens;

    await context.close();
    context = await browser.newContext();
    await open();
    server.reset();
    server.dropAfterBytes = 120_000;
    const failed = await call<Failure>('engineLoad', server.url(MODEL));
    expect(failed.error.code).toBe('network');
    expect(await call<unknown[]>('cacheList')).toEqual([]);

    server.reset();
    const resumed = await call<ModelInfo>('engineLoad', server.url(MODEL));
    expect(resumed.architecture).toBe('llama');
    expect(server.bytes).toBeLessThan(wholeBytes - 25_000);
    expect((await call<{ tokens: number[] }>('greedy', PROMPT, 32)).tokens).toEqual(expected);
  });

  test('streamed chat deltas equal the whole reply; abort stops within a token; the main thread never blocks', async () => {
    await open();
    await call('engineLoad', server.url(MODEL));
    const request = { messages: MESSAGES, temperature: 0, max_tokens: 48 };
    const full = await call<ChatCompletion>('chat', request);
    expect(full.choices[0]!.finish_reason).toBe('length');
    const streamed = await call<{ chunks: ChatCompletionChunk[] }>('chatStream', { ...request, stream_options: { include_usage: true } }, 0);
    expect(streamed.chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe(full.choices[0]!.message.content);
    expect(streamed.chunks.at(-1)!).toMatchObject({ choices: [], usage: { completion_tokens: 48, extra: { decode_tokens_per_s: expect.any(Number) } } });

    const aborted = await call<{ chunks: ChatCompletionChunk[]; contentChunks: number }>('chatStream', { ...request, max_tokens: 200 }, 5);
    expect(aborted.chunks.at(-1)!.choices[0]!.finish_reason).toBe('abort');
    expect(aborted.contentChunks).toBeLessThanOrEqual(6);
    const after = await call<ChatCompletion>('chat', request);
    expect(after.choices[0]!.message.content).toBe(full.choices[0]!.message.content);

    const longTasks = await page.evaluate(() => (window as unknown as { longTasks: number[] }).longTasks);
    expect(longTasks, 'long tasks on the main thread (ms)').toEqual([]);
    // The observer does see long tasks: block the main thread on purpose and look again.
    await page.evaluate(() => {
      setTimeout(() => {
        const start = performance.now();
        while (performance.now() - start < 120);
      });
    });
    await page.waitForFunction(() => (window as unknown as { longTasks: number[] }).longTasks.length > 0);
  });

  test('legacy completions through the worker: whole and streamed; bad fields are typed errors across the boundary', async () => {
    await open();
    await call('engineLoad', server.url(MODEL));
    const request = { prompt: PROMPT, max_tokens: 12, temperature: 0 };
    const full = await call<Completion>('completion', request);
    expect(full).toMatchObject({ object: 'text_completion', choices: [{ finish_reason: 'length' }], usage: { completion_tokens: 12 } });
    const chunks = await call<CompletionChunk[]>('completion', { ...request, stream: true });
    expect(chunks.map((c) => c.choices[0]!.text).join('')).toBe(full.choices[0]!.text);
    expect(chunks.every((c) => !('usage' in c))).toBe(true);
    const bad = await call<Failure>('completion', { ...request, best_of: 3 });
    expect(bad.error).toMatchObject({ code: 'invalid-argument', message: expect.stringMatching(/^best_of/) });
    // Checked in the worker, where the vocabulary is known.
    const outside = await call<Failure>('completion', { ...request, prompt: [1, 10 ** 6] });
    expect(outside.error).toMatchObject({ code: 'invalid-argument', message: expect.stringMatching(/token id 1000000/) });
  });

  test('constrained completions in the worker: XGrammar loads only with the first constrained request; outputs validate', async () => {
    const xgrammarRequests: string[] = [];
    context.on('request', (r) => /\/xgrammar-[\w-]+\.js$/.test(r.url()) && xgrammarRequests.push(r.url()));
    await open();
    await call('engineLoad', server.url(MODEL));
    await call<Completion>('completion', { prompt: PROMPT, max_tokens: 8, temperature: 0 });
    expect(xgrammarRequests).toEqual([]);
    const schema = { type: 'object', properties: { name: { type: 'string', maxLength: 8 }, mood: { enum: ['happy', 'sad'] } }, required: ['name', 'mood'], additionalProperties: false };
    for (const sampling of [{ temperature: 0 }, { temperature: 1, seed: 2 }]) {
      const r = await call<Completion>('completion', { prompt: PROMPT, max_tokens: 60, ...sampling, response_format: { type: 'json_schema', json_schema: { name: 'x', schema } } });
      expect(r.choices[0]!.finish_reason, r.choices[0]!.text).toBe('stop');
      expect(validateJson(schema, JSON.parse(r.choices[0]!.text))).toBeUndefined();
    }
    const g = await call<Completion>('completion', { prompt: PROMPT, max_tokens: 20, temperature: 1, seed: 1, grammar: 'root ::= ("yes" | "no") "!"' });
    expect(g.choices[0]!.text).toMatch(/^(yes|no)!$/);
    expect(xgrammarRequests).toHaveLength(1);
    const bad = await call<Failure>('completion', { prompt: PROMPT, grammar: 'root ::= undefined_rule' });
    expect(bad.error).toMatchObject({ code: 'invalid-argument', message: expect.stringMatching(/^grammar does not compile/) });
  });

  test('embeddings through the worker: a BERT, OpenAI\'s shape, unit vectors; typed errors across the boundary', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'webgguf-bert-'));
    try {
      writeFileSync(join(dir, 'bert.gguf'), await makeBertModel({ shape: 'tiny-bert', quant: 'q8_0' }));
      server.files.set('tiny-bert.gguf', join(dir, 'bert.gguf'));
      await open();
      await call('engineLoad', `${server.origin}/files/tiny-bert.gguf`);
      const r = await call<EmbeddingResponse>('embed', { input: ['one text', 'another'], dimensions: 64 });
      expect(r).toMatchObject({ object: 'list', usage: { prompt_tokens: 7, total_tokens: 7 } });
      expect(r.data.map((d) => [d.object, d.index, (d.embedding as number[]).length])).toEqual([['embedding', 0, 64], ['embedding', 1, 64]]);
      expect(Math.hypot(...(r.data[1]!.embedding as number[]))).toBeCloseTo(1, 5);
      expect((await call<Failure>('embed', { input: [] })).error.code).toBe('invalid-argument');
      expect((await call<Failure>('chat', { messages: MESSAGES })).error.code).toBe('invalid-argument');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
