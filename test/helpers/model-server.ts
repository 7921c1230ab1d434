import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { serveFile } from '../../scripts/serve-file.mjs';
import { MODELS } from './models.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

/**
 * A local host for tests: /models/* serves ../shared/models with Range support, counting requests
 * and bytes, and can misbehave (drop the connection after a byte budget); /repo/* serves this
 * repository's files (the built dist/ and test pages).
 */
export class ModelServer {
  requests = 0;
  bytes = 0;
  /** When set, the connection is dropped once this many more body bytes have been sent. */
  dropAfterBytes: number | undefined;
  /** Misbehaviours: answer every model request with this status, or with an HTML page. */
  status: number | undefined;
  html = false;
  /** Send the whole file with 200 whatever the Range header says. */
  ignoreRange = false;
  /** The ETag sent with model files; change it to act as a new version of the file. */
  etag = '"v1"';
  /** After this many model requests, the ETag becomes `"v2"`. */
  changeAfterRequests: number | undefined;
  /** Delay before each body write, in ms (a slow server). */
  delayMs = 0;
  /** Content-Security-Policy sent with /repo/ pages. */
  csp: string | undefined;
  /** Send COOP/COEP with /repo/ pages, so they are cross-origin isolated (wasm threads need it). */
  isolated = false;
  /** Files served at /files/NAME, e.g. models a test generated; also at /models/NAME, counted and misbehaving like the shared ones. */
  files = new Map<string, string>();
  /** Model requests being answered now, and the most at once. */
  inFlight = 0;
  maxInFlight = 0;
  /** The headers of every model request. */
  requestHeaders: IncomingHttpHeaders[] = [];
  /** When set, model requests without this Authorization header get 401. */
  authorization: string | undefined;
  private server: Server | undefined;
  origin = '';

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname).replace(/\.\.+/g, '');
      if (path.startsWith('/repo/')) {
        const file = REPO + path.slice('/repo/'.length) + (path.endsWith('/') ? 'index.html' : '');
        const headers: Record<string, string> = this.csp ? { 'Content-Security-Policy': this.csp } : {};
        if (this.isolated) Object.assign(headers, { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' });
        return serveFile(req, res, file, { headers });
      }
      if (path.startsWith('/files/')) {
        const file = this.files.get(path.slice('/files/'.length));
        return file ? serveFile(req, res, file) : void res.writeHead(404).end('not found');
      }
      this.requests++;
      this.requestHeaders.push(req.headers);
      this.maxInFlight = Math.max(this.maxInFlight, ++this.inFlight);
      res.on('close', () => this.inFlight--);
      if (this.authorization !== undefined && req.headers.authorization !== this.authorization) return void res.writeHead(401, { 'Content-Type': 'text/plain' }).end('unauthorized');
      if (this.status) return void res.writeHead(this.status, { 'Content-Type': 'text/plain' }).end(`error ${this.status}`);
      if (this.html) return void res.writeHead(200, { 'Content-Type': 'text/html' }).end('<!doctype html><title>Not found</title><p>Sorry.');
      if (this.changeAfterRequests !== undefined && this.requests > this.changeAfterRequests) this.etag = '"v2"';
      const write = res.write.bind(res);
      res.write = ((chunk: Uint8Array, ...rest: never[]) => {
        if (this.dropAfterBytes !== undefined) {
          if (this.dropAfterBytes <= 0) {
            req.socket.destroy();
            return false;
          }
          const n = Math.min(chunk.byteLength, this.dropAfterBytes);
          this.dropAfterBytes -= n;
          this.bytes += n;
          const ok = write(chunk.subarray(0, n), ...rest);
          if (n < chunk.byteLength) req.socket.destroy();
          return ok;
        }
        this.bytes += chunk.byteLength;
        return write(chunk, ...rest);
      }) as typeof res.write;
      const name = path.replace(/^\/(models\/)?/, '');
      const file = this.files.get(name) ?? MODELS + name;
      const options = { headers: { ETag: this.etag }, ignoreRange: this.ignoreRange };
      if (this.delayMs) setTimeout(() => serveFile(req, res, file, options), this.delayMs);
      else serveFile(req, res, file, options);
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.origin = `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
    return this;
  }

  /** URL of a file under ../shared/models. */
  url(path: string): string {
    return `${this.origin}/models/${path}`;
  }

  reset(): void {
    this.requests = 0;
    this.bytes = 0;
    this.dropAfterBytes = undefined;
    this.status = undefined;
    this.html = false;
    this.ignoreRange = false;
    this.etag = '"v1"';
    this.changeAfterRequests = undefined;
    this.delayMs = 0;
    this.maxInFlight = 0;
    this.requestHeaders = [];
    this.authorization = undefined;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => this.server?.close(() => r()) ?? r());
  }
}
