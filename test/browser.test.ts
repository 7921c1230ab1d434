import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { createServer, type ViteDevServer } from 'vite';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { generate } from '../src/generate.js';
import { loadModelFile } from '../src/node/load.js';
import { HAVE_CHROMIUM, launchChromium } from './helpers/browser.js';
import { testGpu } from './helpers/gpu.js';
import { HAVE_MODELS, MODELS, storiesPath } from './helpers/models.js';
import { serveFile } from '../scripts/serve-file.mjs';

if (!HAVE_CHROMIUM && process.env.CI) throw new Error('Chromium is missing; npm test installs it (see README)');

describe.skipIf(!HAVE_MODELS || !HAVE_CHROMIUM)('in Chromium (SwiftShader WebGPU)', () => {
  let server: ViteDevServer;
  let browser: Browser;
  let origin: string;
  beforeAll(async () => {
    server = await createServer({
      root: fileURLToPath(new URL('./browser/', import.meta.url)),
      configFile: false,
      logLevel: 'error',
      server: { port: 0, host: '127.0.0.1', fs: { allow: [fileURLToPath(new URL('..', import.meta.url))] } },
      plugins: [{
        name: 'models',
        configureServer(s) {
          s.middlewares.use('/models/', (req, res) => serveFile(req, res, MODELS + decodeURIComponent(req.url ?? '').replace(/^\/+/, '').replace(/\.\.+/g, '')));
        },
      }],
    });
    await server.listen();
    const address = server.httpServer!.address() as { port: number };
    origin = `http://127.0.0.1:${address.port}`;
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  test('stories260K q4_0 over HTTP range requests: the same greedy tokens as Node', async () => {
    const page = await browser.newPage();
    page.on('pageerror', (e) => console.error('page error:', e));
    await page.goto(`${origin}/index.html`);
    await page.waitForFunction(() => typeof window.runGreedy === 'function');
    const prompt = 'Once upon a time';
    const inBrowser = await page.evaluate(([u, p]) => window.runGreedy(u!, p!, 64), [`${origin}/models/stories260K/stories260K-q4_0.gguf`, prompt]);
    expect(inBrowser.adapter).toMatch(/swiftshader/i);

    const node = await loadModelFile(storiesPath('q4_0'), { gpu: await testGpu() });
    const tokens: number[] = [];
    for await (const t of generate(node.model, node.tokenizer, node.tokenizer.encode(prompt), { temperature: 0, maxTokens: 64 })) tokens.push(t.token);
    await node.dispose();
    expect(inBrowser.tokens).toEqual(tokens);
    expect(inBrowser.text.length).toBeGreaterThan(100);
    await page.close();
  });
});
