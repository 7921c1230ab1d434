/** A storage quota below the model's size, set through CDP, on the built library in Chromium. */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { ModelInfo } from '../src/engine/types.js';
import { HAVE_CHROMIUM, launchPersistentChromium } from './helpers/browser.js';
import { ModelServer } from './helpers/model-server.js';
import { HAVE_MODELS } from './helpers/models.js';

describe.skipIf(!HAVE_MODELS || !HAVE_CHROMIUM)('storage quota', () => {
  let server: ModelServer;
  let context: BrowserContext;
  let page: Page;
  const call = <T>(fn: string, ...args: unknown[]) =>
    page.evaluate(([f, a]) => (window as unknown as Record<string, (...x: unknown[]) => Promise<unknown>>)[f as string]!(...(a as unknown[])), [fn, args] as const) as Promise<T>;

  beforeAll(async () => {
    if (!existsSync(fileURLToPath(new URL('../dist/index.js', import.meta.url)))) throw new Error('dist/ is missing: run `npm run build`');
    server = await new ModelServer().start();
    context = await launchPersistentChromium();
    page = await context.newPage();
    await page.goto(`${server.origin}/repo/test/browser/engine.html`);
    await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
    // The override must come before the origin stores anything. 800 kB holds the Q4_0 model
    // (about 0.4 MB with IndexedDB's overhead) but not the F32 one (1.4 MB more).
    const cdp = await context.newCDPSession(page);
    await cdp.send('Storage.overrideQuotaForOrigin', { origin: server.origin, quotaSize: 800_000 });
  });
  afterAll(async () => {
    await context?.close();
    await server?.stop();
  });

  test('a typed error, no partial chunks left, and models already cached stay intact', async () => {
    const small = server.url('stories260K/stories260K-q4_0.gguf');
    expect((await call<ModelInfo>('engineLoad', small)).fromCache).toBe(false);
    const keysBefore = await call<string[]>('storeKeys');
    expect(keysBefore.length).toBeGreaterThan(3);
    const failed = await call<{ error: { code: string; message: string } }>('engineLoad', server.url('stories260K/stories260K-f32.gguf'));
    expect(failed.error.code).toBe('quota-exceeded');
    expect((await call<string[]>('storeKeys')).sort()).toEqual(keysBefore.sort());
    expect((await call<{ id: string }[]>('cacheList')).map((m) => m.id)).toEqual([small]);

    server.reset();
    const again = await call<ModelInfo>('engineLoad', small);
    expect(again.fromCache).toBe(true);
    expect(server.requests).toBe(0);
    expect((await call<{ tokens: number[] }>('greedy', 'Once upon a time', 8)).tokens).toHaveLength(8);
  });
});
