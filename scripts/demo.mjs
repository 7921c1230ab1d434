#!/usr/bin/env node
// `npm run demo [-- --model PATH] [--port N] [--host]`: serves the demo page with Vite. With
// --model, a local GGUF is served too (with HTTP Range, as model hosts do) and preselected.
import { existsSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { createServer } from 'vite';
import { serveFile } from './serve-file.mjs';

/** Starts the demo server; returns it (tests use this too). */
export async function startDemo({ model, port = 5173, host = false } = {}) {
  const path = model ? resolve(model) : undefined;
  if (path && !existsSync(path)) throw new Error(`demo: no such file: ${path}`);
  const localUrl = path ? `/local-models/${encodeURIComponent(basename(path))}` : undefined;
  const server = await createServer({
    configFile: false,
    root: fileURLToPath(new URL('../demo/', import.meta.url)),
    logLevel: 'warn',
    server: { port, host: host ? true : 'localhost', fs: { allow: [fileURLToPath(new URL('..', import.meta.url))] } },
    plugins: [{
      name: 'webgguf-demo-model',
      configureServer(s) {
        s.middlewares.use('/demo-config.json', (_req, res) => {
          res.setHeader('Content-Type', 'application/json');
          res.end(JSON.stringify({ defaultModel: localUrl ?? null }));
        });
        if (!path) return;
        s.middlewares.use(localUrl, (req, res) => serveFile(req, res, path));
      },
    }],
  });
  await server.listen();
  return { server, localUrl };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const { values } = parseArgs({ options: { model: { type: 'string' }, port: { type: 'string' }, host: { type: 'boolean' } } });
  try {
    const { server, localUrl } = await startDemo({ model: values.model, port: values.port ? Number(values.port) : 5173, host: values.host });
    // Vite's own printUrls is silent at logLevel 'warn': the address is printed here, always.
    const urls = server.resolvedUrls ?? { local: [`http://localhost:${server.httpServer.address().port}/`], network: [] };
    console.log(`webgguf demo: open ${urls.local[0]} in Chrome or Edge (WebGPU)`);
    for (const url of urls.network) console.log(`  on your network: ${url}`);
    if (localUrl) console.log(`  serving ${resolve(values.model)} at ${localUrl}, preselected`);
    console.log('  press Ctrl+C to stop');
  } catch (e) {
    console.error(e.message);
    process.exit(1);
  }
}
