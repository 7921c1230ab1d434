/**
 * `webgguf serve`: the Node engine behind an OpenAI-compatible HTTP server (Hono on Node's http
 * server). One engine per model file; each engine runs its requests one at a time in arrival
 * order (EngineCore's queue), so the server only admits, forwards and translates: request bodies
 * go to the engine's own checks unchanged, its typed errors become OpenAI error bodies, and a
 * client whose connection closes aborts its request, running or queued.
 */
import { basename } from 'node:path';
import type { AddressInfo } from 'node:net';
import { serve as listen, type ServerType } from '@hono/node-server';
import { Hono, type Context } from 'hono';
import { bearerAuth } from 'hono/bearer-auth';
import { bodyLimit } from 'hono/body-limit';
import { cors } from 'hono/cors';
import { logger } from 'hono/logger';
import { HTTPException } from 'hono/http-exception';
import { streamSSE } from 'hono/streaming';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { Engine } from '../engine/engine.js';
import type { ChatCompletionRequest, CompletionRequest } from '../engine/types.js';
import type { EmbeddingRequest } from '../embeddings.js';
import { isWebGGUFError, WebGGUFError, type ErrorCode } from '../errors.js';
import type { GpuContext } from '../gpu/context.js';
import { nodeGpuContext } from './gpu.js';
import { createEngine } from './index.js';

export interface ServeOptions {
  /** The model file: a text model, or an embedding model (BERT, nomic-bert, Qwen3-Embedding, EmbeddingGemma). */
  model: string;
  /** An embedding model served beside a text `model`, for /v1/embeddings. */
  embeddingModel?: string;
  /** Default 127.0.0.1 (this machine only). */
  host?: string;
  /** Default 8080; 0 picks a free port (ModelServer.port says which). */
  port?: number;
  /** When given, every /v1 request needs `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Requests a model may hold, running and waiting, before new ones get 429 (default 64). */
  maxPending?: number;
  /** The largest request body, in bytes (default 4 MiB); larger ones get 413. */
  maxBodyBytes?: number;
  /** KV cache length (default: the model's, capped at 4096). */
  contextLength?: number;
  /** The GPU to run on (tests share theirs); by default Dawn's, destroyed by close(). */
  gpu?: () => Promise<GpuContext>;
  /** Gets a line per request as it comes and as it is answered (the CLI prints them on stderr). */
  log?: (line: string) => void;
}

/** A model the server answers with. */
export interface ServedModel {
  /** What requests name in `model` and responses carry: the file's name without `.gguf`. */
  id: string;
  kind: 'text' | 'embedding';
  architecture: string;
}

export interface ModelServer {
  /** http://HOST:PORT, the address it listens on. */
  url: string;
  host: string;
  port: number;
  models: ServedModel[];
  /** Stops listening, aborts the requests in flight, and frees the models and the GPU. */
  close(): Promise<void>;
}

export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_PORT = 8080;
export const DEFAULT_MAX_PENDING = 64;
const DEFAULT_MAX_BODY_BYTES = 4 * 2 ** 20;

/** The server's model: its engine and the requests it holds now. */
interface Slot extends ServedModel {
  engine: Engine;
  created: number;
  pending: number;
}

/** OpenAI's error body. `code` is ours (an ErrorCode) where the engine raised it, else OpenAI's. */
export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** An error the server answers itself (routing, auth, admission), already in OpenAI's terms. */
class ApiError extends Error {
  constructor(readonly status: ContentfulStatusCode, message: string, readonly type: string, readonly code: string | null, readonly param: string | null = null) {
    super(message);
  }
}

/**
 * HTTP status and OpenAI error type of each engine error. Unlisted codes (GPU, device lost,
 * disposed, anything unexpected) are the server's fault: 500 server_error.
 */
const ERROR_STATUS: Partial<Record<ErrorCode, [ContentfulStatusCode, string]>> = {
  'invalid-argument': [400, 'invalid_request_error'],
  'context-overflow': [400, 'invalid_request_error'],
  'not-found': [404, 'invalid_request_error'],
  // max_prefill_ms: the prompt would take longer than the client allowed; shorter, it may not.
  // Not 408, which clients retry as it is.
  timeout: [400, 'invalid_request_error'],
};

/** The request field an engine message starts with ("messages[0].content must be ..."), if the body has it. */
function paramOf(message: string, body: unknown): string | null {
  const m = /^([A-Za-z_]+)((?:\[\d+\]|\.[A-Za-z_]+)*)\b/.exec(message);
  return m && typeof body === 'object' && body !== null && Object.hasOwn(body, m[1]!) ? m[0] : null;
}

/** Any thrown value as an HTTP status and an OpenAI error body. */
function openAIError(e: unknown, body?: unknown): { status: ContentfulStatusCode; body: OpenAIErrorBody } {
  if (e instanceof ApiError) return { status: e.status, body: { error: { message: e.message, type: e.type, param: e.param, code: e.code } } };
  if (isWebGGUFError(e)) {
    const [status, type] = ERROR_STATUS[e.code] ?? [500, 'server_error'];
    // OpenAI's own code for a prompt over the context, which clients look for.
    const code = e.code === 'context-overflow' ? 'context_length_exceeded' : e.code;
    return { status, body: { error: { message: e.message, type, param: paramOf(e.message, body), code } } };
  }
  return { status: 500, body: { error: { message: `internal error: ${e instanceof Error ? e.message : String(e)}`, type: 'server_error', param: null, code: null } } };
}

type Env = { Variables: { gone: AbortSignal } };

/** The id a model file is served under: its name without the .gguf extension. */
const modelId = (path: string) => basename(path).replace(/\.gguf$/i, '');

/** What a bearer token may hold (RFC 6750's b64token); the key is checked against it at start. */
const BEARER_TOKEN = /^[A-Za-z0-9._~+/-]+=*$/;

/** Loads the model(s), then listens; resolves once requests are accepted. */
export async function serve(options: ServeOptions): Promise<ModelServer> {
  if (options.apiKey !== undefined && !BEARER_TOKEN.test(options.apiKey)) {
    throw new WebGGUFError('invalid-argument', 'the API key must be a bearer token: letters, digits and - . _ ~ + / (then = padding), at least one character');
  }
  const host = options.host ?? DEFAULT_HOST;
  const maxPending = options.maxPending ?? DEFAULT_MAX_PENDING;
  let madeGpu: Promise<GpuContext> | undefined;
  const gpu = options.gpu ?? (() => (madeGpu ??= nodeGpuContext()));
  const slots: Slot[] = [];
  const disposeAll = async () => {
    await Promise.all(slots.map((s) => s.engine.dispose()));
    if (madeGpu) (await madeGpu.catch(() => undefined))?.device.destroy();
  };
  try {
    for (const [path, role] of [[options.model, 'model'], [options.embeddingModel, 'embedding-model']] as const) {
      if (path === undefined) continue;
      const engine = await createEngine({ gpu, contextLength: options.contextLength });
      const info = await engine.load(path).catch(async (e: unknown) => {
        await engine.dispose();
        throw e;
      });
      const kind = info.kind ?? 'text';
      slots.push({ id: modelId(path), kind, architecture: info.architecture, engine, created: Math.floor(Date.now() / 1000), pending: 0 });
      if (role === 'embedding-model' && kind !== 'embedding') {
        throw new WebGGUFError('invalid-argument', `--embedding-model ${path} is a text model (${info.architecture}), not an embedding model`);
      }
    }
    if (slots.length === 2 && slots[0]!.kind === 'embedding') {
      throw new WebGGUFError('invalid-argument', `--model ${options.model} is already an embedding model; --embedding-model goes beside a text model`);
    }
    if (slots.length === 2 && slots[0]!.id === slots[1]!.id) {
      throw new WebGGUFError('invalid-argument', `the model and the embedding model would both be served as "${slots[0]!.id}"; rename one file`);
    }
  } catch (e) {
    await disposeAll();
    throw e;
  }

  const app = buildApp(slots, { ...options, maxPending });
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = listen({ fetch: app.fetch, hostname: host, port: options.port ?? DEFAULT_PORT }, () => resolve(s));
    s.once('error', reject);
  }).catch(async (e: unknown) => {
    await disposeAll();
    throw e;
  });
  const port = (server.address() as AddressInfo).port;
  let closed: Promise<void> | undefined;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    host,
    port,
    models: slots.map(({ id, kind, architecture }) => ({ id, kind, architecture })),
    close: () =>
      (closed ??= (async () => {
        const stopped = new Promise<void>((r) => server.close(() => r()));
        // Disposing the engines ends the requests in flight (with `disposed`); connections still
        // open after that are cut.
        await disposeAll();
        const timer = setTimeout(() => (server as { closeAllConnections?: () => void }).closeAllConnections?.(), 2_000);
        await stopped;
        clearTimeout(timer);
      })()),
  };
}

function buildApp(slots: Slot[], options: ServeOptions & { maxPending: number }): Hono<Env> {
  // strict: false also routes "/v1/models/" and the like.
  const app = new Hono<Env>({ strict: false });
  const fail = (c: Context, e: unknown, body?: unknown) => {
    const { status, body: error } = openAIError(e, body);
    // A full queue: the remote engine (and OpenAI's clients) wait this long before retrying.
    if (status === 429) c.header('Retry-After', '1');
    return c.json(error, status);
  };
  app.onError((e, c) => {
    if (e instanceof HTTPException && e.status === 401) {
      c.header('WWW-Authenticate', 'Bearer');
      return fail(c, new ApiError(401, 'a valid API key is needed: send the header "Authorization: Bearer <key>"', 'invalid_request_error', 'invalid_api_key'));
    }
    if (e instanceof HTTPException) return fail(c, new ApiError(e.status as ContentfulStatusCode, e.message || 'bad request', 'invalid_request_error', null));
    return fail(c, e);
  });
  app.notFound((c) => fail(c, new ApiError(404, `no such endpoint: ${c.req.method} ${c.req.path}`, 'invalid_request_error', 'unknown_url')));

  if (options.log) app.use('*', logger(options.log));
  // Pages on other origins (the remote engine in a browser) may call it; preflights need no key.
  app.use('*', cors({ origin: '*', allowMethods: ['GET', 'POST'], exposeHeaders: ['Retry-After'], maxAge: 600 }));
  // The client's connection, before any middleware replaces the request: it aborts when the client goes away.
  app.use('*', async (c, next) => {
    c.set('gone', c.req.raw.signal);
    await next();
  });
  app.get('/health', (c) => c.json({ status: 'ok', models: slots.map(({ id, kind, pending }) => ({ id, kind, pending })) }));
  if (options.apiKey !== undefined) {
    // Every failure (no header, a malformed one, a wrong key) is the same 401, as OpenAI answers.
    const unauthorized = () => {
      throw new HTTPException(401);
    };
    app.use('/v1/*', bearerAuth({ token: options.apiKey, noAuthenticationHeader: { message: unauthorized }, invalidAuthenticationHeader: { message: unauthorized }, invalidToken: { message: unauthorized } }));
  }
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  app.use('/v1/*', bodyLimit({
    maxSize: maxBody,
    onError: (c) => fail(c, new ApiError(413, `the request body is over ${maxBody} bytes`, 'invalid_request_error', 'request_too_large')),
  }));

  const modelEntry = (s: Slot) => ({ id: s.id, object: 'model' as const, created: s.created, owned_by: 'webgguf' });
  app.get('/v1/models', (c) => c.json({ object: 'list', data: slots.map(modelEntry) }));
  app.get('/v1/models/:id', (c) => {
    const slot = slots.find((s) => s.id === c.req.param('id'));
    return slot ? c.json(modelEntry(slot)) : fail(c, notFound(c.req.param('id')));
  });

  /** The slot that answers a request for `kind`: the one its `model` names, or the only one of that kind. */
  const pick = (model: unknown, kind: Slot['kind'], endpoint: string): Slot => {
    if (model !== undefined && model !== null && typeof model !== 'string') throw new ApiError(400, 'model must be a string', 'invalid_request_error', 'invalid-argument', 'model');
    if (typeof model === 'string') {
      const named = slots.find((s) => s.id === model);
      if (!named) throw notFound(model);
      if (named.kind !== kind) {
        throw new ApiError(400, `model ${model} is ${named.kind === 'text' ? 'a text model: it makes no embeddings' : 'an embedding model: it makes no text'}; ${endpoint} needs ${kind === 'text' ? 'a text' : 'an embedding'} model`, 'invalid_request_error', 'invalid-argument', 'model');
      }
      return named;
    }
    const slot = slots.find((s) => s.kind === kind);
    if (slot) return slot;
    throw new ApiError(
      404,
      kind === 'embedding'
        ? 'this server has no embedding model; start it with --embedding-model FILE (or an embedding model as --model)'
        : `this server has no text model (${slots[0]!.id} is an embedding model)`,
      'invalid_request_error', 'model_not_found', 'model',
    );
  };

  /**
   * Counts the request against the model's limit until it ends or its client goes away (a
   * request aborted while queued is skipped when its turn comes); past the limit, 429.
   */
  const admit = (slot: Slot, gone: AbortSignal) => {
    if (slot.pending >= options.maxPending) {
      throw new ApiError(429, `${slot.pending} requests are already running or waiting for ${slot.id}; try again later`, 'rate_limit_error', 'rate_limit_exceeded');
    }
    slot.pending++;
    let released = false;
    const release = () => {
      if (!released) slot.pending--;
      released = true;
      gone.removeEventListener('abort', release);
    };
    gone.addEventListener('abort', release);
    return release;
  };

  /** The JSON object body, or 400. */
  const readBody = async (c: Context): Promise<Record<string, unknown>> => {
    const text = await c.req.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (e) {
      throw new ApiError(400, `the request body is not JSON (${e instanceof Error ? e.message : String(e)})`, 'invalid_request_error', 'invalid-argument');
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ApiError(400, 'the request body must be a JSON object', 'invalid_request_error', 'invalid-argument');
    return body as Record<string, unknown>;
  };

  /** Chat and legacy completions: whole, or streamed as server-sent events ending in `data: [DONE]`. */
  const generation = (endpoint: string, create: (engine: Engine, body: never, signal: AbortSignal) => Promise<object | AsyncIterable<object>>) =>
    async (c: Context<Env>) => {
      const body = await readBody(c).catch((e: unknown) => e as Error);
      if (body instanceof Error) return fail(c, body);
      let release: (() => void) | undefined;
      try {
        const slot = pick(body.model, 'text', endpoint);
        const signal = c.get('gone');
        release = admit(slot, signal);
        const result = await create(slot.engine, body as never, signal);
        if (!(Symbol.asyncIterator in result)) return c.json({ ...result, model: slot.id });
        // The first chunk comes once the request is out of the queue and its prompt is built, so
        // the errors a request can still have (context overflow, a bad template) keep their status.
        const chunks = result[Symbol.asyncIterator]();
        const first = await chunks.next();
        const done = release;
        release = undefined;
        return streamSSE(c, async (sse) => {
          sse.onAbort(() => void chunks.return?.());
          try {
            for (let r = first; !r.done; r = await chunks.next()) {
              if (sse.aborted) return;
              await sse.writeSSE({ data: JSON.stringify({ ...r.value, model: slot.id }) });
            }
            await sse.writeSSE({ data: '[DONE]' });
          } catch (e) {
            // Headers are sent: the error goes in the stream, as OpenAI's clients read it.
            await sse.writeSSE({ data: JSON.stringify(openAIError(e, body).body) });
          } finally {
            done();
          }
        });
      } catch (e) {
        return fail(c, e, body);
      } finally {
        release?.();
      }
    };

  app.post('/v1/chat/completions', generation('/v1/chat/completions', (engine, body: ChatCompletionRequest, signal) => engine.chat.completions.create(body, { signal })));
  app.post('/v1/completions', generation('/v1/completions', (engine, body: CompletionRequest, signal) => engine.completions.create(body, { signal })));
  app.post('/v1/embeddings', async (c) => {
    const body = await readBody(c).catch((e: unknown) => e as Error);
    if (body instanceof Error) return fail(c, body);
    let release: (() => void) | undefined;
    try {
      const slot = pick(body.model, 'embedding', '/v1/embeddings');
      release = admit(slot, c.get('gone'));
      const result = await slot.engine.embeddings.create(body as unknown as EmbeddingRequest, { signal: c.get('gone') });
      return c.json({ ...result, model: slot.id });
    } catch (e) {
      return fail(c, e, body);
    } finally {
      release?.();
    }
  });
  return app;
}

const notFound = (model: string) =>
  new ApiError(404, `The model \`${model}\` does not exist on this server (GET /v1/models lists its models)`, 'invalid_request_error', 'model_not_found', 'model');
