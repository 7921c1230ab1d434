/**
 * The remote engine and routing in Chromium, on the built library (dist/): a page whose fit check
 * refuses the model (a low maxGpuBytes) answers from an OpenAI-compatible server through the same
 * calls, and says so; with room, it answers on its own GPU, and `webgguf serve` (bin/webgguf.js in
 * Node) streams the same text for the same seed; an abort mid-stream frees the server's queue.
 * Failures come from a stand-in server (node:http replaying a recorded transcript, CORS open).
 * Both servers are on other origins than the page.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { HAVE_CHROMIUM, launchChromium } from './helpers/browser.js';
import { ModelServer } from './helpers/model-server.js';
import { HAVE_MODELS, storiesPath } from './helpers/models.js';
import { jsonReply, sseReply, StandInServer } from './helpers/stand-in-server.js';

const DIST = fileURLToPath(new URL('../dist/index.js', import.meta.url));
const BIN = fileURLToPath(new URL('../bin/webgguf.js', import.meta.url));
const SERVE_KEY = 'sk-browser-test';
const SERVED_MODEL = 'stories260K-q4_0';
const TRANSCRIPT = readFileSync(fileURLToPath(new URL('./fixtures/sse/llamacpp-reasoning.sse', import.meta.url)), 'utf8');

interface Answer {
  info?: { id: string; route?: string };
  content: string;
  reasoning: string;
  routes: (string | undefined)[];
  models: string[];
  finish: string[];
  error?: { code?: string; message: string };
}

/** `webgguf serve` in its own process; resolves with its URL once it prints its first line. */
function startServe(): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [BIN, 'serve', '--model', storiesPath('q4_0'), '--port', '0', '--api-key', SERVE_KEY], { stdio: ['ignore', 'pipe', 'pipe'] });
  // Its stderr (a line per request) is kept for a failure's message only.
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`webgguf serve did not start within 60 s: ${stderr}`)), 60_000);
    child.once('exit', (code) => reject(new Error(`webgguf serve exited with ${code}: ${stderr}`)));
    createInterface({ input: child.stdout! }).once('line', (line) => {
      clearTimeout(timer);
      const m = /^webgguf serve: listening on (http:\/\/\S+)$/.exec(line);
      if (m) resolve({ url: m[1]!, child });
      else reject(new Error(`webgguf serve printed ${JSON.stringify(line)} first`));
    });
  });
}

describe.skipIf(!HAVE_MODELS || !HAVE_CHROMIUM)('remote engine and routing in Chromium', () => {
  let models: ModelServer;
  let remote: StandInServer;
  let browser: Browser;
  let page: Page;
  let served: { url: string; child: ChildProcess };

  beforeAll(async () => {
    if (!existsSync(DIST)) throw new Error('dist/ is missing: run `npm run build` (npm test does)');
    models = await new ModelServer().start();
    remote = await new StandInServer((r) => {
      if (r.url.endsWith('/models')) return jsonReply({ object: 'list', data: [{ id: 'big-model', object: 'model' }] });
      const auth = r.headers.authorization;
      if (auth === 'Bearer wrong') return jsonReply({ error: { message: 'Invalid API key', type: 'authentication_error' } }, 401);
      if (auth === 'Bearer busy') return jsonReply({ error: { message: 'too many requests', type: 'rate_limit_error' } }, 429, { 'Retry-After': '0' });
      if (auth === 'Bearer kill') return sseReply(TRANSCRIPT, { killAfterBytes: 900 });
      return sseReply(TRANSCRIPT);
    }).start();
    const serving = startServe();
    browser = await launchChromium();
    page = await browser.newPage();
    page.on('pageerror', (e) => console.error('page error:', e));
    await page.goto(`${models.origin}/repo/test/browser/engine.html`);
    // The app's code, the same for every engine: load, then a streamed chat read as an app reads it.
    // A string, not a function: vitest would rewrite a function's import().
    await page.evaluate(`
      window.ask = async (options, source, request, abortAfter) => {
        const { createEngine } = await import('/repo/dist/index.js');
        const out = { content: '', reasoning: '', routes: [], models: [], finish: [] };
        let engine;
        try {
          engine = await createEngine(options);
          out.info = JSON.parse(JSON.stringify(await engine.load(source)));
          const controller = new AbortController();
          const stream = await engine.chat.completions.create({ messages: [{ role: 'user', content: 'Lily went to the park and' }], ...request, stream: true }, { signal: controller.signal });
          let pieces = 0;
          for await (const chunk of stream) {
            if (!out.routes.includes(chunk.webgguf?.route)) out.routes.push(chunk.webgguf?.route);
            if (!out.models.includes(chunk.model)) out.models.push(chunk.model);
            out.content += chunk.choices[0]?.delta.content ?? '';
            out.reasoning += chunk.choices[0]?.delta.reasoning_content ?? '';
            if (chunk.choices[0]?.finish_reason) out.finish.push(chunk.choices[0].finish_reason);
            if (chunk.choices[0]?.delta.content && ++pieces === abortAfter) controller.abort();
          }
        } catch (e) {
          out.error = { code: e?.code, message: e?.message ?? String(e) };
        } finally {
          await engine?.dispose();
        }
        return out;
      };`);
    served = await serving;
  });
  afterAll(async () => {
    await browser?.close();
    await models?.stop();
    await remote?.stop();
    served?.child.kill();
  });

  const LOCAL_MODEL = () => models.url('stories260K/stories260K-q4_0.gguf');
  const GREEDY = { temperature: 0, max_tokens: 8 };
  const ask = (options: Record<string, unknown>, source = LOCAL_MODEL(), request: Record<string, unknown> = GREEDY, abortAfter = 0) =>
    page.evaluate(([o, s, r, a]) => (window as unknown as { ask: (...x: unknown[]) => Promise<Answer> }).ask(o, s, r, a), [options, source, request, abortAfter] as const);
  const serveOptions = (apiKey = SERVE_KEY) => ({ remote: { baseURL: `${served.url}/v1`, model: SERVED_MODEL, apiKey } });
  /** Requests `webgguf serve` holds now, running or queued. */
  const servePending = async () => ((await (await fetch(`${served.url}/health`)).json()) as { models: { pending: number }[] }).models[0]!.pending;

  test('a model the fit check refuses is answered by the server through the same calls, and says so', async () => {
    const fallback = { remote: { baseURL: remote.url, model: 'big-model' } };
    const before = remote.received.length;
    const refused = await ask({ fallback, maxGpuBytes: 10_000 });
    expect(refused.error).toBeUndefined();
    expect(refused.info).toMatchObject({ id: 'big-model', route: 'remote' });
    expect(refused).toMatchObject({ content: 'Hello from llama.cpp 🦙', reasoning: 'Let me think.', routes: ['remote'], models: ['gpt-3.5-turbo'] });
    expect(remote.received.slice(before).map((r) => `${r.method} ${r.url}`)).toEqual(['GET /v1/models', 'POST /v1/chat/completions']);
    expect(remote.received.at(-1)!.body).toMatchObject({ model: 'big-model', stream: true, max_tokens: 8 });
  });

  test('with room, the page answers on its GPU; `webgguf serve` streams the same text for the same seed, through the same calls', async () => {
    const sampled = { temperature: 0.8, seed: 42, max_tokens: 24 };
    const before = remote.received.length;
    const local = await ask({ fallback: { remote: { baseURL: remote.url, model: 'big-model' } } }, LOCAL_MODEL(), sampled);
    expect(local.error).toBeUndefined();
    expect(local.info).toMatchObject({ route: 'local', architecture: 'llama' });
    expect(local.routes).toEqual(['local']);
    expect(local.content.length).toBeGreaterThan(10);
    expect(remote.received.length).toBe(before);

    const viaServe = await ask(serveOptions(), SERVED_MODEL, sampled);
    expect(viaServe.error).toBeUndefined();
    expect(viaServe.info).toMatchObject({ id: SERVED_MODEL, route: 'remote' });
    expect(viaServe).toMatchObject({ content: local.content, routes: ['remote'], models: [SERVED_MODEL], finish: local.finish });
  });

  test('an abort mid-stream ends the reply with finish_reason abort and frees the server\'s queue; a wrong key is auth', async () => {
    // Forcing one token keeps the generation going for all of max_tokens.
    const endless = { max_tokens: 400, logit_bias: { 400: 100 } };
    const aborted = await ask(serveOptions(), SERVED_MODEL, endless, 3);
    expect(aborted.error).toBeUndefined();
    expect(aborted.finish).toEqual(['abort']);
    // The whole generation takes about 9 s on a quiet machine: only the abort frees the queue this soon.
    await expect.poll(servePending, { timeout: 5_000 }).toBe(0);
    const next = await ask(serveOptions(), SERVED_MODEL, GREEDY);
    expect(next).toMatchObject({ finish: ['length'], routes: ['remote'] });
    expect((await ask(serveOptions('wrong'), SERVED_MODEL)).error).toMatchObject({ code: 'auth' });
  });

  test('the remote engine in the page: 401 is auth, 429 rate-limited, a server killed mid-stream network', async () => {
    const options = (apiKey: string) => ({ remote: { baseURL: remote.url, model: 'big-model', apiKey, retry: { maxRetries: 1, baseDelayMs: 10 } } });
    expect((await ask(options('wrong'), 'big-model')).error).toMatchObject({ code: 'auth', message: expect.stringMatching(/Invalid API key/) });
    expect((await ask(options('busy'), 'big-model')).error).toMatchObject({ code: 'rate-limited', message: expect.stringMatching(/too many requests/) });
    const killed = await ask(options('kill'), 'big-model');
    expect(killed.error).toMatchObject({ code: 'network' });
    expect(killed.reasoning.length).toBeGreaterThan(0);
  });
});
