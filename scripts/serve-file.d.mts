import type { IncomingMessage, ServerResponse } from 'node:http';
export function serveFile(req: IncomingMessage, res: ServerResponse, path: string, extra?: { headers?: Record<string, string>; ignoreRange?: boolean }): void;
