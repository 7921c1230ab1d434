import type { ViteDevServer } from 'vite';
export function startDemo(options?: { model?: string; port?: number; host?: boolean }): Promise<{ server: ViteDevServer; localUrl?: string }>;
