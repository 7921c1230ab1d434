/**
 * The worker's lifecycle as a page sees it (built dist/ in Chromium): a worker that cannot start
 * fails createEngine with `worker-failed` within seconds; an abort that a stuck worker cannot
 * honour restarts it; dispose() ends the worker whatever it is doing and every call after it
 * rejects at once; relative model URLs resolve against the page.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { HAVE_CHROMIUM, launchChromium } from './helpers/browser.js';
import { ModelServer } from './helpers/model-server.js';
import { HAVE_MODELS } from './helpers/models.js';

const DIST = fileURLToPath(new URL('../dist/index.js', import.meta.url));
type Outcome = { ok?: unknown; code?: string; message?: string; ms: number };

describe.skipIf(!HAVE_MODELS || !HAVE_CHROMIUM)('worker lifecycle in Chromium', () => {
  let server: ModelServer;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    if (!existsSync(DIST)) throw new Error('dist/ is missing: run `npm run build` (npm test does)');
    server = await new ModelServer().start();
    browser = await launchChromium();
    page = await browser.newPage();
    page.on('pageerror', (e) => console.error('page error:', e));
    await page.goto(`${server.origin}/repo/test/browser/engine.html`);
    await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
    // Page helpers: time a promise and report its outcome as plain data.
    // A string, not a function: vitest would rewrite a function's import().
    await page.evaluate(`
      window.outcome = async (p) => {
        const start = performance.now();
        try {
          const ok = await p;
          return { ok: ok === undefined ? null : JSON.parse(JSON.stringify(ok)), ms: performance.now() - start };
        } catch (e) {
          return { code: e?.code, message: e?.message, ms: performance.now() - start };
        }
      };
      window.lib = import('/repo/dist/index.js');`);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  const run = (body: string) => page.evaluate(`(async () => { const { createEngine } = await window.lib; const outcome = window.outcome; ${body} })()`) as Promise<Outcome & Record<string, Outcome>>;

  test('a worker script that is missing, throws while starting, or never answers fails createEngine with worker-failed', async () => {
    const missing = await run(`return outcome(createEngine({ workerUrl: '/repo/test/browser/no-such-worker.js' }));`);
    expect(missing).toMatchObject({ code: 'worker-failed' });
    expect(missing.message).toMatch(/worker\.js|workerUrl/);
    expect(missing.ms).toBeLessThan(10_000);
    const html = await run(`return outcome(createEngine({ workerUrl: '/repo/test/browser/engine.html' }));`);
    expect(html).toMatchObject({ code: 'worker-failed' });
    const broken = await run(`return outcome(createEngine({ workerUrl: '/repo/test/browser/fake-worker.js?broken' }));`);
    expect(broken).toMatchObject({ code: 'worker-failed' });
    const silent = await run(`return outcome(createEngine({ workerUrl: '/repo/test/browser/fake-worker.js?silent', startTimeoutMs: 1500 }));`);
    expect(silent).toMatchObject({ code: 'worker-failed' });
    expect(silent.ms).toBeGreaterThan(1000);
    expect(silent.ms).toBeLessThan(10_000);
  });

  test('an abort that a worker stuck in synchronous work cannot see restarts the worker; the engine goes on', async () => {
    const r = await run(`
      const engine = await createEngine({ workerUrl: '/repo/test/browser/fake-worker.js' });
      await engine.load('first');
      const controller = new AbortController();
      const stuck = outcome(engine.load('spin', { signal: controller.signal }));
      const queued = outcome(engine.bytesOnGpu());
      setTimeout(() => controller.abort(), 300);
      const result = { stuck: await stuck, queued: await queued };
      result.after = await outcome(engine.load('second'));
      result.bytes = await outcome(engine.bytesOnGpu());
      await engine.dispose();
      return result;`);
    expect(r.stuck).toMatchObject({ code: 'aborted' });
    expect(r.stuck!.message).toMatch(/restarted/);
    expect(r.stuck!.ms).toBeLessThan(15_000);
    expect(r.queued).toMatchObject({ code: 'aborted' });
    // The new worker was given the last good model again, then the next load: its second load.
    expect(r.after!.ok).toMatchObject({ id: expect.stringMatching(/second$/), loads: 2 });
    expect(r.bytes!.ok).toBe(1234);
  });

  test('dispose() ends a stuck worker after a short grace; pending and later calls reject with disposed', async () => {
    const r = await run(`
      const engine = await createEngine({ workerUrl: '/repo/test/browser/fake-worker.js' });
      const stuck = outcome(engine.load('spin'));
      await new Promise((r) => setTimeout(r, 200));
      const disposing = outcome(engine.dispose());
      const result = { stuck: await stuck, dispose: await disposing };
      result.later = await outcome(engine.bytesOnGpu());
      result.laterLoad = await outcome(engine.load('x'));
      const it = engine.generate('hi')[Symbol.asyncIterator]();
      result.laterGenerate = await outcome(it.next());
      result.laterChat = await outcome(engine.chat.completions.create({ messages: [{ role: 'user', content: 'hi' }] }));
      result.again = await outcome(engine.dispose());
      return result;`);
    expect(r.dispose!.ms).toBeLessThan(6_000);
    expect(r.stuck).toMatchObject({ code: 'disposed' });
    for (const k of ['later', 'laterLoad', 'laterGenerate', 'laterChat']) {
      expect(r[k], k).toMatchObject({ code: 'disposed' });
      expect(r[k]!.ms, k).toBeLessThan(100);
    }
    expect(r.again!.code).toBeUndefined();
  });

  test('the real worker: a relative model URL resolves against the page; dispose() mid-stream settles everything', async () => {
    // The page is /repo/test/browser/engine.html; the models are served at /models/.
    const r = await run(`
      const engine = await createEngine({ cache: false });
      const result = { load: await outcome(engine.load('../../../models/stories260K/stories260K-q4_0.gguf')) };
      const chunks = [];
      const streaming = outcome((async () => {
        for await (const c of engine.generate('Once upon a time', { maxTokens: 400, temperature: 0 })) {
          chunks.push(c.text);
          if (chunks.length === 3) void engine.dispose();
        }
      })());
      result.stream = await streaming;
      result.chunks = { ok: chunks.length, ms: 0 };
      result.later = await outcome(engine.chat.completions.create({ messages: [{ role: 'user', content: 'hi' }] }));
      return result;`);
    expect(r.load!.ok).toMatchObject({ architecture: 'llama' });
    expect(r.stream).toMatchObject({ code: 'disposed' });
    expect(r.chunks!.ok as number).toBeLessThan(400);
    expect(r.later).toMatchObject({ code: 'disposed' });
  });
});
