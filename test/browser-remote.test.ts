/**
 * The remote engine and routing in Chromium, on the built library (dist/): a page whose fit check
 * refuses the model (a low maxGpuBytes) answers from an OpenAI-compatible server through the same
 * calls, and says so; the same page with room answers on its own GPU. The server is a stand-in
 * (node:http replaying a recorded transcript, CORS open) on another origin than the page.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { HAVE_CHROMIUM, launchChromium } from './helpers/browser.js';
import { ModelServer } from './helpers/model-server.js';
import { HAVE_MODELS } from './helpers/models.js';
import { jsonReply, sseReply, StandInServer } from './helpers/stand-in-server.js';

const DIST = fileURLToPath(new URL('../dist/index.js', import.meta.url));
const TRANSCRIPT = readFileSync(fileURLToPath(new URL('./fixtures/sse/llamacpp-reasoning.sse', import.meta.url)), 'utf8');

interface Answer {
  info?: { id: string; route?: string };
  content: string;
  reasoning: string;
  routes: (string | undefined)[];
  models: string[];
  error?: { code?: string; message: string };
}

describe.skipIf(!HAVE_MODELS || !HAVE_CHROMIUM)('remote engine and routing in Chromium', () => {
  let models: ModelServer;
  let remote: StandInServer;
  let browser: Browser;
  let page: Page;

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
    browser = await launchChromium();
    page = await browser.newPage();
    page.on('pageerror', (e) => console.error('page error:', e));
    await page.goto(`${models.origin}/repo/test/browser/engine.html`);
    // The app's code, the same for every engine: load, then a streamed chat read as an app reads it.
    // A string, not a function: vitest would rewrite a function's import().
    await page.evaluate(`
      window.ask = async (options, source) => {
        const { createEngine } = await import('/repo/dist/index.js');
        const out = { content: '', reasoning: '', routes: [], models: [] };
        let engine;
        try {
          engine = await createEngine(options);
          out.info = JSON.parse(JSON.stringify(await engine.load(source)));
          const stream = await engine.chat.completions.create({ messages: [{ role: 'user', content: 'Lily went to the park and' }], temperature: 0, max_tokens: 8, stream: true });
          for await (const chunk of stream) {
            if (!out.routes.includes(chunk.webgguf?.route)) out.routes.push(chunk.webgguf?.route);
            if (!out.models.includes(chunk.model)) out.models.push(chunk.model);
            out.content += chunk.choices[0]?.delta.content ?? '';
            out.reasoning += chunk.choices[0]?.delta.reasoning_content ?? '';
          }
        } catch (e) {
          out.error = { code: e?.code, message: e?.message ?? String(e) };
        } finally {
          await engine?.dispose();
        }
        return out;
      };`);
  });
  afterAll(async () => {
    await browser?.close();
    await models?.stop();
    await remote?.stop();
  });

  const ask = (options: Record<string, unknown>, source = models.url('stories260K/stories260K-q4_0.gguf')) =>
    page.evaluate(([o, s]) => (window as unknown as { ask: (o: unknown, s: string) => Promise<Answer> }).ask(o, s), [options, source] as const);

  test('a model the fit check refuses is answered by the server through the same calls; one that fits, by this GPU', async () => {
    const fallback = { remote: { baseURL: remote.url, model: 'big-model' } };
    const before = remote.received.length;
    const refused = await ask({ fallback, maxGpuBytes: 10_000 });
    expect(refused.error).toBeUndefined();
    expect(refused.info).toMatchObject({ id: 'big-model', route: 'remote' });
    expect(refused).toMatchObject({ content: 'Hello from llama.cpp 🦙', reasoning: 'Let me think.', routes: ['remote'], models: ['gpt-3.5-turbo'] });
    expect(remote.received.slice(before).map((r) => `${r.method} ${r.url}`)).toEqual(['GET /v1/models', 'POST /v1/chat/completions']);
    expect(remote.received.at(-1)!.body).toMatchObject({ model: 'big-model', stream: true, max_tokens: 8 });

    const served = remote.received.length;
    const fits = await ask({ fallback });
    expect(fits.error).toBeUndefined();
    expect(fits.info).toMatchObject({ route: 'local', architecture: 'llama' });
    expect(fits.routes).toEqual(['local']);
    expect(fits.content.length).toBeGreaterThan(0);
    expect(remote.received.length).toBe(served);
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
