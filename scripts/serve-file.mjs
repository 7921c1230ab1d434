// Serves one file with HTTP Range support (206 and Content-Range), as model hosts do. Shared by
// the demo server (scripts/demo.mjs) and the tests' local hosts.
import { createReadStream, statSync } from 'node:fs';

const TYPES = { html: 'text/html', js: 'text/javascript', mjs: 'text/javascript', css: 'text/css', json: 'application/json', wasm: 'application/wasm' };

/**
 * @param {import('node:http').IncomingMessage} req
 * @param {import('node:http').ServerResponse} res
 * @param {string} path
 * @param {{ headers?: Record<string, string>, ignoreRange?: boolean }} [extra]
 */
export function serveFile(req, res, path, extra = {}) {
  let size;
  try {
    size = statSync(path).size;
  } catch {
    res.writeHead(404).end('not found');
    return;
  }
  const range = extra.ignoreRange ? null : /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
  const headers = {
    ...(extra.ignoreRange ? {} : { 'Accept-Ranges': 'bytes' }),
    'Content-Type': TYPES[path.split('.').pop() ?? ''] ?? 'application/octet-stream',
    'Access-Control-Allow-Origin': '*',
    'Cache-Control': 'no-store',
    ...extra.headers,
  };
  if (!range) {
    res.writeHead(200, { ...headers, 'Content-Length': size });
    if (req.method === 'HEAD') return void res.end();
    createReadStream(path).pipe(res);
    return;
  }
  const start = range[1] ? Number(range[1]) : Math.max(0, size - Number(range[2]));
  const end = range[1] && range[2] ? Math.min(Number(range[2]), size - 1) : size - 1;
  if (start >= size || start > end) {
    res.writeHead(416, { 'Content-Range': `bytes */${size}` }).end();
    return;
  }
  res.writeHead(206, { ...headers, 'Content-Length': end - start + 1, 'Content-Range': `bytes ${start}-${end}/${size}` });
  if (req.method === 'HEAD') return void res.end();
  createReadStream(path, { start, end }).pipe(res);
}
