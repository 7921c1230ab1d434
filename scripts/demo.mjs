#!/usr/bin/env node
// `npm run demo [-- --model PATH] [--port N] [--host]`: serves the demo page with Vite. With
// --model, a local GGUF is served too (with HTTP Range, as model hosts do) and preselected.
import { createReadStream, existsSync, statSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createServer } from 'vite';

const { values } = parseArgs({ options: { model: { type: 'string' }, port: { type: 'string' }, host: { type: 'boolean' } } });
const model = values.model ? resolve(values.model) : undefined;
if (model && !existsSync(model)) {
  console.error(`demo: no such file: ${model}`);
  process.exit(1);
}
const localUrl = model ? `/local-models/${encodeURIComponent(basename(model))}` : undefined;

const server = await createServer({
  root: new URL('../demo/', import.meta.url).pathname,
  server: { port: values.port ? Number(values.port) : 5173, host: values.host ? true : 'localhost' },
  plugins: [{
    name: 'webgpu-llm-demo-model',
    configureServer(s) {
      s.middlewares.use('/demo-config.json', (_req, res) => {
        res.setHeader('Content-Type', 'application/json');
        res.end(JSON.stringify({ defaultModel: localUrl ?? null }));
      });
      if (!model) return;
      s.middlewares.use(localUrl, (req, res) => {
        const size = statSync(model).size;
        const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
        const start = m ? Number(m[1]) : 0;
        const end = m && m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
        if (start >= size) return void res.writeHead(416, { 'Content-Range': `bytes */${size}` }).end();
        res.writeHead(m ? 206 : 200, {
          'Accept-Ranges': 'bytes', 'Content-Type': 'application/octet-stream', 'Content-Length': end - start + 1,
          ...(m ? { 'Content-Range': `bytes ${start}-${end}/${size}` } : {}),
        });
        createReadStream(model, { start, end }).pipe(res);
      });
    },
  }],
});
await server.listen();
server.printUrls();
if (model) console.log(`  serving ${model} at ${localUrl}`);
