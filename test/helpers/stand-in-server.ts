/**
 * A stand-in for an OpenAI-compatible server: node:http answering each request with what the
 * test says (a recorded SSE transcript, a JSON body, an error status), bodies written in odd-sized
 * pieces so the client's parser meets events, lines and UTF-8 characters cut anywhere. CORS is
 * open, so pages on another origin can call it.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface Reply {
  status?: number;
  headers?: Record<string, string>;
  body?: string;
  /** Piece sizes in bytes, used in turn (default: odd sizes from 1 to 251). */
  pieces?: number[];
  /** Destroy the connection after this many body bytes (a server killed mid-stream). */
  killAfterBytes?: number;
  /** Send the headers and then nothing (a stalled server). */
  stall?: boolean;
}

export interface Received {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: unknown;
}

const ODD_PIECES = [1, 7, 64, 3, 251, 13, 2, 97];
const SSE = { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' };

export const sseReply = (body: string, extra: Partial<Reply> = {}): Reply => ({ headers: SSE, body, ...extra });
export const jsonReply = (body: unknown, status = 200, headers: Record<string, string> = {}): Reply => ({
  status, headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify(body),
});

export class StandInServer {
  readonly received: Received[] = [];
  /** Responses whose client went away before the body was all written. */
  clientsGone = 0;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(public handler: (request: Received, index: number) => Reply) {}

  get url(): string {
    return `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}/v1`;
  }

  start(): Promise<this> {
    this.server = createServer((req, res) => void this.serve(req, res));
    this.server.on('connection', (socket) => {
      socket.setNoDelay(true);
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    return new Promise((resolve) => this.server!.listen(0, '127.0.0.1', () => resolve(this)));
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.setHeader('Access-Control-Allow-Headers', 'authorization, content-type');
    res.setHeader('Access-Control-Expose-Headers', 'retry-after');
    if (req.method === 'OPTIONS') return void res.writeHead(204).end();
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let body: unknown = text;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      // kept as text
    }
    const request = { method: req.method!, url: req.url!, headers: req.headers, body };
    this.received.push(request);
    const reply = this.handler(request, this.received.length - 1);
    res.writeHead(reply.status ?? 200, reply.headers ?? {});
    if (reply.stall) return void res.flushHeaders();
    const bytes = Buffer.from(reply.body ?? '', 'utf8');
    const pieces = reply.pieces ?? ODD_PIECES;
    let gone = false;
    res.on('close', () => {
      if (!res.writableFinished) gone = true;
    });
    for (let at = 0, i = 0; at < bytes.length; i++) {
      if (gone) return void this.clientsGone++;
      const end = Math.min(bytes.length, at + pieces[i % pieces.length]!, reply.killAfterBytes ?? Infinity);
      res.write(bytes.subarray(at, end));
      at = end;
      if (reply.killAfterBytes !== undefined && at >= reply.killAfterBytes) {
        await new Promise((r) => setTimeout(r, 20));
        return void res.socket?.destroy();
      }
      // A pause, so pieces reach the client as separate reads.
      await new Promise((r) => setTimeout(r, 1));
    }
    if (gone) return void this.clientsGone++;
    res.end();
  }
}
