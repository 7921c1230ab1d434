/**
 * The demo page (the built dist-demo/, as a static host serves it) in Chromium, driven as a user
 * would at desktop and phone sizes, on a local model server: no internet. One browser and one
 * server for the file; stories260K and short replies keep it quick. Screenshots go to
 * test-results/demo/ (docs/ has two of them, for the README).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { HAVE_CHROMIUM, launchChromium } from './helpers/browser.js';
import { ModelServer } from './helpers/model-server.js';
import { HAVE_MODELS, storiesPath } from './helpers/models.js';

const SHOTS = 'test-results/demo';
const STORIES = 'stories260K/stories260K-q4_0.gguf';

describe.skipIf(!HAVE_MODELS || !HAVE_CHROMIUM)('demo page', () => {
  let server: ModelServer;
  let browser: Browser;
  /** The desktop test's page, which the phone test goes on with. */
  let page: Page;

  beforeAll(async () => {
    if (!existsSync(fileURLToPath(new URL('../dist-demo/index.html', import.meta.url)))) throw new Error('dist-demo/ is missing: run `npm run build:demo`');
    mkdirSync(SHOTS, { recursive: true });
    server = await new ModelServer().start();
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  const pageUrl = (s: ModelServer) => `${s.origin}/repo/dist-demo/?model=${encodeURIComponent(s.url(STORIES))}`;
  async function open(ctx: BrowserContext, url: string): Promise<Page> {
    const p = await ctx.newPage();
    p.on('pageerror', (e) => console.error('page error:', e.message));
    await p.goto(url);
    await p.waitForFunction(() => document.body.dataset.ready === 'true');
    return p;
  }
  /** Waits for a load (or the restore after a failed one) to end; the model must be loaded. */
  async function waitModel(page: Page): Promise<void> {
    await page.waitForFunction(() => document.body.dataset.model !== undefined && (document.getElementById('cancel') as HTMLButtonElement).disabled, null, { timeout: 60_000 });
    expect(await page.getAttribute('body', 'data-model')).toBe('loaded');
  }
  /** Does `action` and waits for the reply it starts to end (done, stopped or failed). */
  async function replyTo(page: Page, action: () => Promise<unknown>): Promise<void> {
    const ended = Number(await page.getAttribute('body', 'data-replies') ?? 0);
    await action();
    await page.waitForFunction((n) => Number(document.body.dataset.replies ?? 0) > n, ended, { timeout: 60_000 });
  }
  const send = (page: Page, text: string) => replyTo(page, async () => {
    await page.fill('#input', text);
    await page.press('#input', 'Enter');
  });
  const titles = () => page.$$eval('#chat-list .chat-open', (bs) => bs.map((b) => b.textContent));
  const lastReply = (page: Page) => page.locator('.message.assistant').last();
  const promptTokens = async (page: Page) => Number(await lastReply(page).getAttribute('data-prompt-tokens'));
  /** Waits for the streaming reply to have some text. */
  const streaming = (page: Page, chars = 8) => page.waitForFunction((n) => (document.querySelector('.message.assistant[data-finish=""] .body')?.textContent ?? '').length >= n, chars, { timeout: 60_000 });

  test('desktop: a chat, its bugs fixed, saved, restored and offline', async () => {
    // Its own host, so it can go away for the offline reload at the end.
    const site = await new ModelServer().start();
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: site.origin });
    page = await open(ctx, pageUrl(site));
    expect(await page.textContent('#empty-title')).toMatch(/Load a model/);
    await page.click('#empty-load');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('load-url');
    // The catalogue as presets; ?model= preselects a URL that is no preset.
    const presets = await page.$$eval('#preset option', (os) => os.map((o) => o.textContent ?? ''));
    expect(presets[0]).toMatch(/^stories260K \(tiny story model\) · [\d.]+ MB · \d+k? context$/);
    expect(presets.at(-1)).toBe('Custom URL');
    expect(await page.inputValue('#preset')).toBe('');
    await page.selectOption('#preset', { index: 0 });
    expect(await page.textContent('#preset-info')).toMatch(/^stories260K \(tiny story model\): 260K parameters, .*download, checked against its SHA-256; context \d+ tokens; needs about/);
    await page.fill('#model-url', site.url(STORIES));
    await page.dispatchEvent('#model-url', 'input');
    // Before Load does anything: will it run here, and how fast (its header, and a measurement).
    await page.waitForSelector('#estimate[data-fits]', { timeout: 60_000 });
    expect(await page.textContent('#estimate')).toMatch(/^Fits this device: [\d.]+ MB of GPU memory at a 512-token context; about [\d.]+ tokens\/s here/);

    // "not a url" is refused as such, before any request.
    const requests = site.requests;
    await page.fill('#model-url', 'not a url');
    await page.click('#load-url');
    expect(await page.textContent('#banner-text')).toMatch(/^“not a url” is not a web address\. Give the http\(s\) URL of a \.gguf file/);
    expect(site.requests).toBe(requests);
    await page.click('#banner-close');

    await page.fill('#model-url', site.url(STORIES));
    await page.click('#load-url');
    await waitModel(page);
    expect(await page.textContent('#model-status')).toMatch(/^stories260K-q4_0\.gguf: llama, /);
    // The empty state follows the model.
    expect(await page.textContent('#empty-title')).toBe('stories260K-q4_0.gguf is ready. Say hello.');

    // Settings: every invalid field is reported while typing, and Send waits for them.
    await page.fill('#max-tokens', '');
    await page.fill('#temperature', '-1');
    await page.fill('#seed', 'abc');
    const problems = await page.$$eval('#settings-errors li', (ls) => ls.map((l) => l.textContent));
    expect(problems).toEqual([
      'Temperature must be a number from 0 to 2, not -1.',
      'Max tokens must be a whole number from 1 to 512 (it is empty).',
      'Seed must be a whole number, or empty for a random one, not abc.',
    ]);
    expect(await page.getAttribute('#max-tokens', 'aria-invalid')).toBe('true');
    expect(await page.isDisabled('#send')).toBe(true);
    await page.fill('#max-tokens', '-5');
    expect(await page.textContent('#settings-errors')).toMatch(/Max tokens must be a whole number from 1 to 512, not -5\./);
    await page.click('#reset-settings');
    expect(await page.$$('#settings-errors li')).toHaveLength(0);
    expect(await page.inputValue('#max-tokens')).toBe('256');
    expect(await page.isDisabled('#send')).toBe(false);

    // A reply cut by max tokens says so; the context count never passes the context.
    await page.fill('#max-tokens', '4');
    await page.fill('#system', 'You tell stories.');
    await send(page, 'Once');
    expect(await lastReply(page).getAttribute('data-finish')).toBe('length');
    expect(await lastReply(page).locator('.finish').textContent()).toMatch(/^Cut off: it reached the max tokens limit/);
    const stats = (await lastReply(page).locator('.stats').textContent())!;
    // The measured speed beside the one predicted before the load.
    expect(stats).toMatch(/^4 tokens · [\d.]+ tokens\/s \(predicted [\d.]+\) · prefill \d+ tokens\/s · first token \d+ ms · context \d+ \/ 512$/);
    expect(await page.textContent('#context-text')).toMatch(/^\d+ \/ 512 tokens$/);
    const fresh = await promptTokens(page);
    expect(fresh).toBeGreaterThan(0);
    expect(await page.textContent('#chat-title')).toBe('Once');

    // New chat while a reply streams: the cut-off reply stays in its own chat, not in the new one's context.
    await page.fill('#max-tokens', '200');
    await replyTo(page, async () => {
      await page.fill('#input', 'Tell me a long story about a dog');
      await page.press('#input', 'Enter');
      await streaming(page);
      // Live speed while it streams.
      expect(await page.textContent('#live-stats')).toMatch(/^\d+ tokens · ([\d.]+|…) tokens\/s$/);
      await page.click('#new-chat');
    });
    expect(await page.$$('.message')).toHaveLength(0);
    expect(await page.isVisible('#empty')).toBe(true);
    expect(await page.isDisabled('#regenerate')).toBe(true);
    expect(await page.inputValue('#system')).toBe('You tell stories.');
    await page.fill('#max-tokens', '4');
    await send(page, 'Once');
    expect(await promptTokens(page)).toBe(fresh);
    expect(await page.$$eval('#chat-list .chat-open', (bs) => bs.map((b) => b.textContent))).toEqual(['Once', 'Once']);

    // Per message: copy, edit and resend, regenerate, delete.
    await page.locator('.message.user .actions button', { hasText: 'Copy' }).click();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe('Once');
    await page.locator('.message.user .actions button', { hasText: 'Edit' }).click();
    await page.fill('.message.user .edit textarea', 'Once upon a time');
    await replyTo(page, () => page.click('.message.user .edit button:has-text("Save and send")'));
    expect(await page.$$eval('.message', (ms) => ms.map((m) => m.className))).toEqual(['message user', 'message assistant']);
    expect(await page.textContent('.message.user .body')).toBe('Once upon a time');
    expect(await promptTokens(page)).toBeGreaterThan(fresh);
    await replyTo(page, () => lastReply(page).locator('button', { hasText: 'Regenerate' }).click());
    expect(await page.$$('.message')).toHaveLength(2);

    // The settings reach the request: with a seed a reply repeats; JSON mode makes it JSON.
    await page.fill('#seed', '42');
    await page.fill('#max-tokens', '12');
    const seeded: string[] = [];
    for (let i = 0; i < 2; i++) {
      await replyTo(page, () => page.click('#regenerate'));
      seeded.push((await lastReply(page).locator('.body').textContent())!);
    }
    expect(seeded[1]).toBe(seeded[0]);
    // A stop string from the middle of that reply: the same seed now ends just before it.
    const stopAt = seeded[0]!.trim().slice(6, 9);
    expect(stopAt.trim().length, `a seeded reply long enough to cut: ${seeded[0]}`).toBeGreaterThan(1);
    await page.fill('#stop-strings', stopAt);
    await replyTo(page, () => page.click('#regenerate'));
    const cut = (await lastReply(page).locator('.body').textContent())!;
    expect(cut).not.toContain(stopAt);
    expect(seeded[0]!.trim().startsWith(cut.trim())).toBe(true);
    expect(cut.trim().length).toBeLessThan(seeded[0]!.trim().length);
    await page.fill('#stop-strings', '');
    await page.check('#json-mode');
    expect(await page.isVisible('#json-schema')).toBe(true);
    await page.fill('#json-schema', '{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}');
    await replyTo(page, () => page.click('#regenerate'));
    expect(await lastReply(page).locator('.body').textContent()).toMatch(/^\{\s*"name"/);
    await page.uncheck('#json-mode');
    await page.fill('#seed', '');
    await lastReply(page).locator('button', { hasText: 'Delete' }).click();
    expect(await page.$$('.message')).toHaveLength(1);

    // A message that cannot fit the context: an error, no empty bubble, the text back in the box; New chat clears the banner.
    const long = 'The little dog ran to the big tree and saw a bird. '.repeat(60);
    await send(page, long);
    expect(await page.textContent('#banner-text')).toMatch(/context/);
    expect(await page.$$('.message')).toHaveLength(1);
    expect(await page.inputValue('#input')).toBe(long.trim());
    expect(await page.isDisabled('#send')).toBe(false);
    // Regenerate retries the last message without a reply.
    await replyTo(page, () => page.click('#regenerate'));
    expect(await page.$$eval('.message', (ms) => ms.map((m) => m.className))).toEqual(['message user', 'message assistant']);
    expect(await page.isHidden('#banner')).toBe(true);
    await send(page, long);
    expect(await page.isVisible('#banner')).toBe(true);
    await page.click('#new-chat');
    expect(await page.isHidden('#banner')).toBe(true);

    // A long chat goes on: the oldest turns drop out of the context ('shift'), and the reply says so.
    await page.fill('#max-tokens', '8');
    const turn = 'The little dog ran to the big tree and saw a bird. '.repeat(6);
    let shifted = false;
    for (let i = 0; i < 8 && !shifted; i++) {
      await send(page, `${i}. ${turn}`);
      expect(await page.isHidden('#banner')).toBe(true);
      shifted = (await lastReply(page).locator('.note.shift').count()) > 0;
    }
    expect(shifted).toBe(true);
    expect(Number((await page.textContent('#context-text'))!.split(' ')[0])).toBeLessThanOrEqual(512);
    await page.screenshot({ path: `${SHOTS}/desktop-long-chat.png` });

    // A failed load (a wrong address) keeps the model that worked.
    await page.fill('#model-url', site.url('stories260K/missing.gguf'));
    await page.click('#load-url');
    await waitModel(page);
    expect(await page.textContent('#banner-text')).toMatch(/404/);
    expect(await page.textContent('#model-status')).toMatch(/^stories260K-q4_0\.gguf: llama/);
    expect(await page.isDisabled('#send')).toBe(false);
    // A host that answers with a web page: said so, and the model stays too.
    site.html = true;
    await page.fill('#model-url', site.url('stories260K/other.gguf'));
    await page.click('#load-url');
    await waitModel(page);
    site.html = false;
    expect(await page.textContent('#banner-text')).toMatch(/answered with a web page, not a model file/);
    await page.click('#banner-close');

    // A file: the fields say so, and from the cache it shows its file name, not its cache id.
    await page.setInputFiles('#model-file', storiesPath('q4_0'));
    await waitModel(page);
    expect(await page.inputValue('#model-url')).toBe('');
    expect(await page.getAttribute('#model-url', 'placeholder')).toBe('stories260K-q4_0.gguf (loaded from a file)');
    expect(await page.inputValue('#preset')).toBe('');
    const cached = page.locator('#cache-list li', { hasText: '(file)' });
    expect(await cached.locator('.size').textContent()).toMatch(/^Q4_0 · llama · [\d.]+ MB$/);
    expect(await cached.locator('.badge').textContent()).toBe('loaded');
    await page.locator('#cache-list li:not(:has-text("(file)"))').getByRole('button', { name: /^Load / }).click();
    await waitModel(page);
    await cached.getByRole('button', { name: /^Load / }).click();
    await waitModel(page);
    expect(await page.textContent('#model-status')).toMatch(/^stories260K-q4_0\.gguf: llama, .*\(from cache\)\.$/);

    // Delete from the cache asks first.
    const entries = await page.$$('#cache-list li');
    await page.locator('#cache-list li:not(:has-text("(file)"))').getByRole('button', { name: /^Delete / }).click();
    await page.getByRole('button', { name: /^Keep / }).click();
    expect(await page.$$('#cache-list li')).toHaveLength(entries.length);
    // Confirmed, it goes; the loaded model stays.
    await page.locator('#cache-list li:not(:has-text("(file)"))').getByRole('button', { name: /^Delete / }).click();
    await page.getByRole('button', { name: /^Yes, delete / }).click();
    await page.waitForFunction((n) => document.querySelectorAll('#cache-list li').length === n, entries.length - 1);
    expect(await page.locator('#cache-list li').allTextContents()).toEqual([expect.stringContaining('(file)')]);

    // Every control has a name (the accessibility tree, as a screen reader gets it).
    const tree = await page.locator('body').ariaSnapshot();
    const unnamed = tree.split('\n').filter((l) => /^\s*- (button|textbox|combobox|checkbox|spinbutton|searchbox|link|meter)\s*(\[[^\]]*\])?\s*(:.*)?$/.test(l));
    expect(unnamed).toEqual([]);

    // Conversations: rename, search, delete.
    expect(await titles()).toEqual([`0. ${turn}`.slice(0, 48), 'Once upon a time', 'Once']);
    await page.getByRole('button', { name: /^Rename “0\. The little dog/ }).click();
    await page.fill('#chat-list input.rename', 'Dog stories');
    await page.press('#chat-list input.rename', 'Enter');
    expect(await page.textContent('#chat-title')).toBe('Dog stories');
    await page.fill('#chat-search', 'dog stories');
    expect(await titles()).toEqual(['Dog stories']);
    await page.fill('#chat-search', 'nothing like this');
    expect(await page.textContent('#chat-list')).toBe('No chat matches.');
    await page.fill('#chat-search', '');
    await page.getByRole('button', { name: 'Delete “Once upon a time”' }).click();
    await page.getByRole('button', { name: 'Yes, delete “Once upon a time”' }).click();
    expect(await titles()).toEqual(['Dog stories', 'Once']);

    // A saved reply with Markdown, thinking and a tool call, as a model with them would leave it.
    await page.evaluate(() => new Promise<void>((resolve, reject) => {
      const req = indexedDB.open('webgguf-demo-chats');
      req.onerror = () => reject(req.error);
      req.onsuccess = () => {
        const tx = req.result.transaction('conversations', 'readwrite');
        tx.objectStore('conversations').put({
          id: 'md', title: 'Markdown', named: true, updatedAt: Date.now() + 1000,
          settings: { system: '', temperature: 0.7, top_p: 0.95, top_k: 40, min_p: 0.05, repetition_penalty: 1.1, frequency_penalty: 0, presence_penalty: 0, seed: null, stop: [], max_tokens: 4, json_schema: null },
          messages: [
            { role: 'user', content: 'Show me' },
            {
              // A reply that filled the context: its last token is counted in total_tokens but takes no place in it.
              usage: { prompt: 500, completion: 13, total: 513, ttftMs: 120, prefillTokS: 900, decodeTokS: 80, context: 512 },
              role: 'assistant', finish: 'tool_calls', reasoning: 'The user wants an example.', toolCalls: [{ name: 'get_weather', arguments: '{"city":"Paris"}' }],
              content: '# Title\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```js\nlet x = 1 < 2;\n```\n\n[site](https://example.com) [bad](javascript:alert(1)) <img src=x onerror="window.pwned=1"> <script>window.pwned=1</script>',
            },
          ],
        }, 'md');
        tx.oncomplete = () => resolve();
      };
    }));
    await page.evaluate(() => new Promise<void>((resolve) => {
      const req = indexedDB.open('webgguf-demo-meta');
      req.onsuccess = () => {
        const tx = req.result.transaction('meta', 'readwrite');
        tx.objectStore('meta').put('md', 'lastConversation');
        tx.oncomplete = () => resolve();
      };
    }));

    // The page was stored by its service worker: with its host gone and the network off, a reload
    // brings back the page, the chats and the last model (from IndexedDB), and it chats.
    await page.waitForFunction(() => navigator.serviceWorker.controller !== null);
    await site.stop();
    await ctx.setOffline(true);
    await page.reload();
    await page.waitForFunction(() => document.body.dataset.ready === 'true');
    await waitModel(page);
    expect(await page.textContent('#model-status')).toMatch(/^stories260K-q4_0\.gguf: .*\(from cache\)\.$/);
    expect(await titles()).toEqual(['Markdown', 'Dog stories', 'Once']);
    const reply = page.locator('.message.assistant');
    expect(await reply.locator('.body h1').textContent()).toBe('Title');
    expect(await reply.locator('.body li').allTextContents()).toEqual(['one', 'two']);
    expect(await reply.locator('.body td').allTextContents()).toEqual(['1', '2']);
    expect(await reply.locator('.body pre code').textContent()).toBe('let x = 1 < 2;');
    expect(await reply.locator('.copy-code').count()).toBe(1);
    await reply.locator('.copy-code').click();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe('let x = 1 < 2;');
    expect(await reply.locator('.body a').evaluateAll((as) => as.map((a) => [a.getAttribute('href'), a.getAttribute('rel')]))).toEqual([['https://example.com/', 'noopener noreferrer']]);
    expect(await reply.locator('.body img, .body script').count()).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned)).toBeUndefined();
    expect(await reply.locator('details.reasoning').textContent()).toBe('ReasoningThe user wants an example.');
    expect(await reply.locator('details.tool-call').textContent()).toBe('Tool call: get_weather{"city":"Paris"}');
    expect(await reply.locator('.finish').textContent()).toBe('Ended with a tool call.');
    expect(await reply.locator('.stats').textContent()).toMatch(/ · context 512 \/ 512$/);
    expect(await page.textContent('#context-text')).toBe('512 / 512 tokens');
    await page.screenshot({ path: `${SHOTS}/desktop-markdown.png` });

    // Each chat has its own settings.
    expect(await page.inputValue('#max-tokens')).toBe('4');
    expect(await page.inputValue('#system')).toBe('');
    await page.getByRole('button', { name: 'Once', exact: true }).click();
    expect(await page.textContent('#chat-title')).toBe('Once');
    expect(await page.inputValue('#system')).toBe('You tell stories.');
    expect(await page.inputValue('#max-tokens')).toBe('200');
    const replies = (await page.$$('.message.assistant')).length;
    await send(page, 'The end');
    expect(await page.$$('.message.assistant')).toHaveLength(replies + 1);
    await page.screenshot({ path: `${SHOTS}/desktop-chat.png` });
  });

  // The same page (its engine warm, still offline) at a phone's size.
  test('phone (390×844): chat first, drawers, keyboard, banner on screen', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    // Chat first: conversations and the model are drawers, closed.
    expect(await page.isVisible('#settings-panel')).toBe(false);
    expect(await page.isVisible('#chats-panel')).toBe(false);
    expect(await page.isVisible('#input')).toBe(true);

    // A long URL that cannot be reached: the banner and its close button stay on screen, and it
    // says nothing was downloaded.
    await page.click('#open-settings');
    expect(await page.getAttribute('#open-settings', 'aria-expanded')).toBe('true');
    await page.fill('#model-url', `http://127.0.0.1:9/models/${'a-very-long-model-name-'.repeat(8)}.gguf`);
    await page.click('#load-url');
    await waitModel(page);
    expect(await page.textContent('#banner-text')).toMatch(/Nothing was downloaded\. Check the address and your connection/);
    const close = (await page.locator('#banner-close').boundingBox())!;
    expect(close.x + close.width).toBeLessThanOrEqual(390);
    expect(await page.$eval('#banner', (b) => b.scrollWidth <= b.clientWidth && b.getBoundingClientRect().right <= 390)).toBe(true);
    await page.screenshot({ path: `${SHOTS}/phone-error.png` });
    await page.click('#banner-close');

    // While a model loads, Cancel applies and Stop does not.
    await page.evaluate(() => {
      const progress = document.getElementById('progress')!;
      new MutationObserver(() => {
        const w = window as unknown as { duringLoad?: unknown };
        if (!progress.hidden) w.duringLoad ??= { stop: (document.getElementById('stop') as HTMLButtonElement).disabled, cancel: (document.getElementById('cancel') as HTMLButtonElement).disabled };
      }).observe(progress, { attributes: true });
    });
    await page.locator('#cache-list li', { hasText: '(file)' }).getByRole('button', { name: /^Load / }).click();
    await waitModel(page);
    expect(await page.evaluate(() => (window as unknown as { duringLoad?: unknown }).duringLoad)).toEqual({ stop: true, cancel: false });
    // Every control of the drawer fits the screen's width.
    const outside = await page.$$eval('#settings-panel :is(button, input:not([type=file]), select, textarea, .button)', (els) => els
      .map((e) => [e.id || e.textContent, e.getBoundingClientRect()] as const)
      .filter(([, r]) => r.width > 0 && (r.left < 0 || r.right > 390)).map(([n]) => n));
    expect(outside).toEqual([]);
    await page.fill('#max-tokens', '200');
    await page.screenshot({ path: `${SHOTS}/phone-model.png` });
    await page.keyboard.press('Escape');
    expect(await page.isVisible('#settings-panel')).toBe(false);
    // The keyboard's focus is visible.
    await page.keyboard.press('Shift+Tab');
    expect(await page.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle)).toBe('solid');

    // A new chat from the chats drawer; the input at the bottom; Shift+Enter adds a line, Enter sends, Escape stops.
    await page.click('#open-chats');
    await page.click('#new-chat');
    expect(await page.isVisible('#chats-panel')).toBe(false);
    const input = (await page.locator('#input').boundingBox())!;
    expect(input.y + input.height).toBeGreaterThan(700);
    expect(input.y + input.height).toBeLessThanOrEqual(844);
    await page.click('#input');
    await page.keyboard.type('Once upon a time');
    await page.keyboard.press('Shift+Enter');
    await page.keyboard.type('there was a dog');
    expect(await page.inputValue('#input')).toBe('Once upon a time\nthere was a dog');
    await replyTo(page, async () => {
      await page.keyboard.press('Enter');
      await streaming(page);
      await page.keyboard.press('Escape');
    });
    expect(await lastReply(page).getAttribute('data-finish')).toBe('abort');
    expect(await lastReply(page).locator('.stats').textContent()).toMatch(/ · stopped$/);
    const sendButton = (await page.locator('#send').boundingBox())!;
    expect(sendButton.x + sendButton.width).toBeLessThanOrEqual(390);
    await page.screenshot({ path: `${SHOTS}/phone-stopped.png` });

    await page.click('#open-chats');
    expect((await titles())[0]).toBe('Once upon a time there was a dog');
    await page.click('#scrim', { position: { x: 380, y: 400 } });
    expect(await page.isVisible('#chats-panel')).toBe(false);
    await page.click('#open-chats');
    await page.getByRole('button', { name: 'Once', exact: true }).click();
    expect(await page.isVisible('#chats-panel')).toBe(false);
    await page.screenshot({ path: `${SHOTS}/phone-chat.png` });
    await page.context().close();
  });

  test('without WebGPU the page explains what is missing', async () => {
    const noGpu = await browser.newContext();
    await noGpu.addInitScript(() => Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined }));
    const page = await noGpu.newPage();
    await page.goto(pageUrl(server));
    await page.waitForSelector('#banner:not([hidden])');
    expect(await page.textContent('#banner-text')).toMatch(/WebGPU/);
    expect(await page.isDisabled('#load-url')).toBe(true);
    await noGpu.close();
  });

  test('`npm run demo -- --model PATH` prints its address and serves the file', async () => {
    const child = spawn(process.execPath, ['scripts/demo.mjs', '--port', '0', '--model', storiesPath('q4_0')], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /open (http:\/\/localhost:\d+\/) in/.exec(out);
          if (m) resolve(m[1]!);
        });
        child.on('exit', (code) => reject(new Error(`demo exited with ${code}: ${out}`)));
      });
      const config = await (await fetch(`${url}demo-config.json`)).json() as { defaultModel: string };
      expect(config.defaultModel).toBe('/local-models/stories260K-q4_0.gguf');
      const head = await fetch(new URL(config.defaultModel, url), { headers: { Range: 'bytes=0-3' } });
      expect(head.status).toBe(206);
      expect(Buffer.from(await head.arrayBuffer()).toString()).toBe('GGUF');
      // The page and its TypeScript entry, as Vite serves them in development.
      expect(await (await fetch(url)).text()).toContain('<script type="module" src="./main.ts">');
      expect((await fetch(`${url}main.ts`)).status).toBe(200);
    } finally {
      child.kill();
    }
  });
});
