import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serveFile } from './serve-file.js';
import { MODELS } from './models.js';

/**
 * A local model host for tests: serves ../shared/models with Range support, counts requests and
 * bytes, and can misbehave (drop the connection after a byte budget).
 */
export class ModelServer {
  requests = 0;
  bytes = 0;
  /** When set, the connection is dropped once this many more body bytes have been sent. */
  dropAfterBytes: number | undefined;
  private server: Server | undefined;
  origin = '';

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      this.requests++;
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
      serveFile(req, res, MODELS + decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname).replace(/^\/+/, '').replace(/\.\.+/g, ''));
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.origin = `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
    return this;
  }

  url(path: string): string {
    return `${this.origin}/${path}`;
  }

  reset(): void {
    this.requests = 0;
    this.bytes = 0;
    this.dropAfterBytes = undefined;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => this.server?.close(() => r()) ?? r());
  }
}
