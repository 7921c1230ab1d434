/**
 * The built demo (and the library inside it, worker included) under a strict
 * Content-Security-Policy: no eval, no inline scripts or styles. `npm test` builds dist-demo/.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { HAVE_CHROMIUM, launchChromium } from './helpers/browser.js';
import { ModelServer } from './helpers/model-server.js';
import { HAVE_MODELS } from './helpers/models.js';

const CSP = "default-src 'self'; script-src 'self'; worker-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'";

describe.skipIf(!HAVE_MODELS || !HAVE_CHROMIUM)('strict Content-Security-Policy', () => {
  let server: ModelServer;
  let browser: Browser;
  beforeAll(async () => {
    if (!existsSync(fileURLToPath(new URL('../dist-demo/index.html', import.meta.url)))) throw new Error('dist-demo/ is missing: run `npm run build:demo`');
    server = await new ModelServer().start();
    server.csp = CSP;
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('the demo loads a model and chats with no policy violation', async () => {
    const page = await browser.newPage();
    const violations: string[] = [];
    page.on('console', (m) => /Content Security Policy|Refused to/i.test(m.text()) && violations.push(m.text()));
    await page.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => console.error(`Refused to (CSP): ${e.violatedDirective} ${e.blockedURI}`));
    });
    // XGrammar (WebAssembly, which this policy forbids) loads only for constrained requests.
    const xgrammar: string[] = [];
    page.on('request', (r) => /\/xgrammar-[\w-]+\.js$/.test(r.url()) && xgrammar.push(r.url()));
    const response = await page.goto(`${server.origin}/repo/dist-demo/`);
    expect(response!.headers()['content-security-policy']).toBe(CSP);
    await page.waitForFunction(() => document.body.dataset.ready === 'true');
    await page.fill('#model-url', server.url('stories260K/stories260K-q4_0.gguf'));
    await page.click('#load-url');
    await page.waitForFunction(() => !(document.getElementById('send') as HTMLButtonElement).disabled, null, { timeout: 60_000 });
    await page.fill('#input', 'Once upon a time');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => (document.querySelector('.message.assistant .stats')?.textContent ?? '').includes('tokens'), null, { timeout: 60_000 });
    expect((await page.textContent('.message.assistant .body'))!.length).toBeGreaterThan(0);
    expect(violations).toEqual([]);
    expect(xgrammar).toEqual([]);
    // The policy is enforced and violations are seen: an inline script is refused and reported.
    const ran = await page.evaluate(() => {
      const script = document.createElement('script');
      script.textContent = 'window.inlineRan = true';
      document.body.append(script);
      return (window as unknown as { inlineRan?: boolean }).inlineRan === true;
    });
    expect(ran).toBe(false);
    await expect.poll(() => violations.length).toBeGreaterThan(0);
    await page.close();
  });
});
