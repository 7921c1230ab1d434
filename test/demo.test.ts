/** The demo page in Chromium, as a new user meets it. Screenshots go to test-results/demo/. */
import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { ViteDevServer } from 'vite';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startDemo } from '../scripts/demo.mjs';
import { HAVE_CHROMIUM, launchChromium } from './helpers/browser.js';
import { HAVE_MODELS, storiesPath } from './helpers/models.js';

const SHOTS = 'test-results/demo';

describe.skipIf(!HAVE_MODELS || !HAVE_CHROMIUM)('demo page', () => {
  let server: ViteDevServer;
  let origin: string;
  let browser: Browser;
  let context: BrowserContext;

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    ({ server } = await startDemo({ model: storiesPath('q4_0'), port: 0 }));
    origin = `http://localhost:${(server.httpServer!.address() as AddressInfo).port}`;
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  async function open(ctx = context): Promise<Page> {
    const page = await ctx.newPage();
    page.on('pageerror', (e) => console.error('page error:', e.message));
    await page.goto(origin);
    await page.waitForFunction(() => document.body.dataset.ready === 'true');
    return page;
  }
  const waitLoaded = async (page: Page) => {
    await page.waitForFunction(() => !(document.getElementById('send') as HTMLButtonElement).disabled || !document.getElementById('banner')!.hidden, null, { timeout: 60_000 });
    const banner = await page.$('#banner:not([hidden])');
    if (banner) throw new Error(`load failed: ${await page.textContent('#banner-text')}`);
  };

  async function chat(page: Page, text: string, stopAfterChars?: number): Promise<string> {
    await page.fill('#input', text);
    await page.keyboard.press('Enter');
    if (stopAfterChars) {
      await page.waitForFunction((n) => (document.querySelector('.message.assistant:last-child .body')?.textContent ?? '').length >= n, stopAfterChars);
      await page.click('#stop');
    }
    await page.waitForFunction(() => (document.querySelector('.message.assistant:last-child .stats')?.textContent ?? '').includes('tokens'), null, { timeout: 60_000 });
    return (await page.textContent('.message.assistant:last-child .body')) ?? '';
  }

  test('loads a local file, streams a reply, and Stop stops it', async () => {
    const page = await open();
    await page.screenshot({ path: `${SHOTS}/1-empty.png` });
    const presets = await page.$$eval('#preset option', (os) => os.map((o) => o.textContent ?? ''));
    expect(presets[0]).toMatch(/stories260K/);
    expect(presets.at(-1)).toBe('Custom URL');
    // --model preselects the local file, which is no preset.
    expect(await page.inputValue('#preset')).toBe('');
    await page.setInputFiles('#model-file', storiesPath('q4_0'));
    await waitLoaded(page);
    expect(await page.textContent('#model-status')).toMatch(/llama/);
    await page.fill('#input', 'Once upon a time, Tom found a');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => (document.querySelector('.message.assistant .body')?.textContent ?? '').length > 20);
    await page.screenshot({ path: `${SHOTS}/3-chat.png` });
    await page.waitForFunction(() => (document.querySelector('.message.assistant:last-child .stats')?.textContent ?? '').includes('tokens/s'), null, { timeout: 60_000 });
    const stopped = await chat(page, 'Tell me more.', 5);
    expect(stopped.length).toBeGreaterThan(0);
    expect(await page.textContent('.message.assistant:last-child .stats')).toMatch(/stopped/);
    await page.close();
  });

  test('loads from a URL, then after a reload from the cache with the network blocked', async () => {
    const page = await open();
    // Before Load does anything: will it run here, and how fast (its header, and a measurement).
    await page.waitForSelector('#estimate[data-fits]', { timeout: 60_000 });
    expect(await page.textContent('#estimate')).toMatch(/^Fits this device: [\d.]+ MB of GPU memory at a 512-token context; about [\d.]+ tokens\/s here, first token after [\d.]+ s/);
    const loading = page.waitForSelector('#progress:not([hidden])');
    await page.click('#load-url');
    await loading.then(() => page.screenshot({ path: `${SHOTS}/2-loading.png` })).catch(() => undefined);
    await waitLoaded(page);
    expect((await chat(page, 'The cat')).length).toBeGreaterThan(0);
    // The measured speed beside the predicted one.
    expect(await page.textContent('.message.assistant:last-child .stats')).toMatch(/tokens\/s \(predicted [\d.]+\)/);

    await page.reload();
    await page.waitForFunction(() => document.body.dataset.ready === 'true' && document.querySelectorAll('#cache-list li button').length > 0);
    const names = await page.$$eval('#cache-list .name', (els) => els.map((e) => e.textContent));
    expect(names).toEqual(expect.arrayContaining(['stories260K-q4_0.gguf', 'stories260K-q4_0.gguf (file)']));
    await page.route('**/local-models/**', (r) => r.abort());
    await page.route(/huggingface/, (r) => r.abort());
    await page.click('#cache-list li:not(:has-text("(file)")):has-text("stories260K-q4_0.gguf") button:has-text("Load")');
    await waitLoaded(page);
    expect(await page.textContent('#model-status')).toMatch(/from cache/);
    expect((await chat(page, 'A little bird')).length).toBeGreaterThan(0);
    await page.close();
  });

  test('a failed download shows a readable banner with what to do next', async () => {
    const page = await open();
    await page.fill('#model-url', `${origin}/local-models/missing.gguf`);
    await page.click('#load-url');
    await page.waitForSelector('#banner:not([hidden])');
    expect(await page.textContent('#banner-text')).toMatch(/not a model file|HTTP 404/);
    await page.screenshot({ path: `${SHOTS}/4-error.png` });
    await page.close();
  });

  test('without WebGPU the page explains what is missing', async () => {
    const noGpu = await browser.newContext();
    await noGpu.addInitScript(() => Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined }));
    const page = await noGpu.newPage();
    await page.goto(origin);
    await page.waitForSelector('#banner:not([hidden])');
    expect(await page.textContent('#banner-text')).toMatch(/WebGPU/);
    expect(await page.isDisabled('#load-url')).toBe(true);
    await page.screenshot({ path: `${SHOTS}/5-no-webgpu.png` });
    await noGpu.close();
  });
});
