/**
 * The engine's API over an OpenAI-compatible server: the same calls, results, chunks and typed
 * errors as the local engine, so an app (or the router, route.ts) treats both alike. Loaded
 * lazily by createEngine, so a page that never asks for a server does not carry it.
 */
import type { Engine } from '../engine/engine.js';
import type {
  ChatCompletion, ChatCompletionChunk, ChatCompletionChunkToolCall, ChatCompletionMessageToolCall, Completion, CompletionChunk,
  ModelInfo, RemoteOptions, RouteInfo, Usage,
} from '../engine/types.js';
import type { EmbeddingResponse } from '../embeddings.js';
import { WebGGUFError } from '../errors.js';
import { RemoteClient, type Opened } from './client.js';
import { errorFromPayload } from './errors.js';

type Json = Record<string, unknown>;
const REMOTE: RouteInfo = { route: 'remote' };

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

/** Times of a request, for the usage's `extra` (the local engine's speed figures). */
class Timing {
  private readonly start = performance.now();
  private first: number | undefined;

  mark(): void {
    this.first ??= performance.now();
  }

  /** A server's usage in this engine's shape: cached tokens and the speed figures filled in where it gave none. */
  usage(raw: unknown): Usage | null | undefined {
    if (raw === null) return null;
    if (!isObject(raw)) return undefined;
    const now = performance.now();
    const first = this.first ?? now;
    const prompt = num(raw.prompt_tokens);
    const completion = num(raw.completion_tokens);
    const decodeS = (now - first) / 1000;
    const decodeRate = completion > 1 && decodeS > 0 ? (completion - 1) / decodeS : 0;
    const ttft = (first - this.start) / 1000;
    const details = isObject(raw.prompt_tokens_details) ? raw.prompt_tokens_details : {};
    return {
      ...raw,
      prompt_tokens: prompt,
      completion_tokens: completion,
      total_tokens: num(raw.total_tokens) || prompt + completion,
      prompt_tokens_details: { ...details, cached_tokens: num(details.cached_tokens) },
      extra: isObject(raw.extra) ? (raw.extra as unknown as Usage['extra']) : {
        e2e_latency_s: (now - this.start) / 1000,
        time_to_first_token_s: ttft,
        prefill_tokens_per_s: ttft > 0 ? prompt / ttft : 0,
        decode_tokens_per_s: decodeRate,
        time_per_output_token_s: decodeRate > 0 ? 1 / decodeRate : 0,
      },
    } as Usage;
  }
}

/** Finish reasons in OpenAI's words (text-generation-inference and others have their own). */
const FINISH: Record<string, string> = { eos_token: 'stop', stop_sequence: 'stop', end_turn: 'stop', max_tokens: 'length', function_call: 'tool_calls' };
const finishOf = (v: unknown): string | null => (typeof v === 'string' ? FINISH[v] ?? v : null);

/** Tool-call arguments as JSON text (some servers send the object itself). */
const argumentsText = (v: unknown): string => (typeof v === 'string' ? v : v === undefined || v === null ? '' : JSON.stringify(v));

/** Thinking text: `reasoning_content` (vLLM, SGLang, llama.cpp, DeepSeek) or `reasoning` (Ollama, newer vLLM). */
const reasoningOf = (o: Json): string | undefined => str(o.reasoning_content) ?? str(o.reasoning);

function chunkToolCall(raw: unknown, position: number): ChatCompletionChunkToolCall {
  const t = isObject(raw) ? raw : {};
  const f = isObject(t.function) ? t.function : {};
  return {
    index: typeof t.index === 'number' ? t.index : position,
    ...(str(t.id) ? { id: t.id as string } : {}),
    ...(t.type === 'function' ? { type: 'function' as const } : str(f.name) ? { type: 'function' as const } : {}),
    function: { ...(str(f.name) !== undefined ? { name: f.name as string } : {}), arguments: argumentsText(f.arguments) },
  };
}

/** A stream chunk's delta with what this engine's type holds; nulls (OpenAI's "nothing") dropped. */
function chatDelta(raw: unknown): ChatCompletionChunk['choices'][0]['delta'] {
  const d = isObject(raw) ? raw : {};
  const reasoning = reasoningOf(d);
  return {
    ...(d.role === 'assistant' ? { role: 'assistant' as const } : {}),
    ...(str(d.content) !== undefined ? { content: d.content as string } : {}),
    ...(reasoning !== undefined ? { reasoning_content: reasoning } : {}),
    ...(toolCalls(d.tool_calls).length > 0 ? { tool_calls: toolCalls(d.tool_calls).map(chunkToolCall) } : {}),
  };
}

/** Tool calls as a list (text-generation-inference sends one call as an object). */
const toolCalls = (v: unknown): unknown[] => (Array.isArray(v) ? v : isObject(v) ? [v] : []);

function messageToolCall(raw: unknown, i: number): ChatCompletionMessageToolCall {
  const t = isObject(raw) ? raw : {};
  const f = isObject(t.function) ? t.function : {};
  return { id: str(t.id) ?? `call_${i}`, type: 'function', function: { name: str(f.name) ?? '', arguments: argumentsText(f.arguments) } };
}

/** Fields every response has, where a server left them out. */
function envelope(raw: Json, object: string, model: string) {
  return {
    ...raw,
    id: str(raw.id) ?? `${object === 'text_completion' ? 'cmpl' : 'chatcmpl'}-remote`,
    object,
    created: typeof raw.created === 'number' ? raw.created : Math.floor(Date.now() / 1000),
    model: str(raw.model) ?? model,
    webgguf: REMOTE,
  };
}

function chatCompletion(raw: Json, model: string, timing: Timing): ChatCompletion {
  const choices = (Array.isArray(raw.choices) ? raw.choices : []).map((c: unknown, i): ChatCompletion['choices'][0] => {
    const choice = isObject(c) ? c : {};
    const m = isObject(choice.message) ? choice.message : {};
    const reasoning = reasoningOf(m);
    const calls = toolCalls(m.tool_calls).length > 0 ? toolCalls(m.tool_calls).map(messageToolCall) : undefined;
    return {
      index: typeof choice.index === 'number' ? choice.index : i,
      message: {
        role: 'assistant', content: str(m.content) ?? '', refusal: null,
        ...(calls ? { tool_calls: calls } : {}), ...(reasoning !== undefined ? { reasoning_content: reasoning } : {}),
      },
      finish_reason: (finishOf(choice.finish_reason) ?? 'stop') as ChatCompletion['choices'][0]['finish_reason'],
      logprobs: (choice.logprobs ?? null) as null,
    };
  });
  return { ...envelope(raw, 'chat.completion', model), choices, usage: timing.usage(raw.usage) ?? timing.usage({})! } as ChatCompletion;
}

function completion(raw: Json, model: string, timing: Timing): Completion {
  const choices = (Array.isArray(raw.choices) ? raw.choices : []).map((c: unknown, i) => {
    const choice = isObject(c) ? c : {};
    return {
      index: typeof choice.index === 'number' ? choice.index : i,
      text: str(choice.text) ?? '',
      finish_reason: (finishOf(choice.finish_reason) ?? 'stop') as Completion['choices'][0]['finish_reason'],
      logprobs: (choice.logprobs ?? null) as null,
    };
  });
  return { ...envelope(raw, 'text_completion', model), choices, usage: timing.usage(raw.usage) ?? timing.usage({})! } as Completion;
}

/** A chunk's usage: `usage`, or Groq's `x_groq.usage` on its last chunk. */
const usageOf = (raw: Json): unknown => raw.usage ?? (isObject(raw.x_groq) ? raw.x_groq.usage : undefined);

/** A streamed kind: how a server's chunk becomes ours, and the chunk that ends an aborted choice. */
interface StreamKind<Chunk> {
  chunk(raw: Json, model: string, timing: Timing): Chunk;
  aborted(last: Chunk | undefined, index: number, model: string): Chunk;
}

type StreamedChunk = ChatCompletionChunk | CompletionChunk;

/**
 * Chat and text completion chunks differ only in their object and in what a choice carries
 * besides its index, finish reason and log-probs: `output` reads it from a server's choice,
 * `nothing` is it in an aborted choice's chunk.
 */
function streamKind<Chunk extends StreamedChunk>(object: Chunk['object'], output: (choice: Json) => Json, nothing: Json): StreamKind<Chunk> {
  return {
    chunk: (raw, model, timing) => {
      const choices = (Array.isArray(raw.choices) ? raw.choices : []).map((c: unknown, i) => {
        const choice = isObject(c) ? c : {};
        return {
          index: typeof choice.index === 'number' ? choice.index : i,
          ...output(choice),
          finish_reason: finishOf(choice.finish_reason),
          logprobs: choice.logprobs ?? null,
        };
      });
      const usage = timing.usage(usageOf(raw));
      return { ...envelope(raw, object, model), choices, ...(usage !== undefined ? { usage } : {}) } as Chunk;
    },
    aborted: (last, index, model) => {
      const before = last ? { id: last.id, created: last.created, model: last.model } : {};
      return { ...envelope(before, object, model), choices: [{ index, ...nothing, finish_reason: 'abort', logprobs: null }] } as Chunk;
    },
  };
}

const chatKind = streamKind<ChatCompletionChunk>('chat.completion.chunk', (choice) => ({ delta: chatDelta(choice.delta) }), { delta: {} });
const completionKind = streamKind<CompletionChunk>('text_completion', (choice) => ({ text: str(choice.text) ?? '' }), { text: '' });

/** Whether a chunk carries output the caller sees (anything but an empty role-only delta). */
function hasOutput(raw: Json): boolean {
  return Array.isArray(raw.choices) && raw.choices.some((c) => {
    if (!isObject(c)) return false;
    const d = isObject(c.delta) ? c.delta : {};
    return !!(str(c.text) || str(d.content) || reasoningOf(d) || toolCalls(d.tool_calls).length);
  });
}

/** A signal that fires when either does. */
function eitherSignal(a: AbortSignal | undefined, b: AbortSignal): AbortSignal {
  if (!a) return b;
  // AbortSignal.any holds its sources weakly, so the engine's long-lived signal gathers no listeners.
  if (typeof AbortSignal.any === 'function') return AbortSignal.any([a, b]);
  const both = new AbortController();
  const fire = () => both.abort();
  if (a.aborted || b.aborted) fire();
  a.addEventListener('abort', fire, { once: true });
  b.addEventListener('abort', fire, { once: true });
  return both.signal;
}

/** A request object the app gave, without its signal; a bad one is refused before it is sent. */
function requestBody(request: unknown, required: string, model: string): { body: Json; signal: AbortSignal | undefined } {
  if (!isObject(request)) throw new WebGGUFError('invalid-argument', `create takes a request object with ${required}`);
  if (request[required] === undefined) throw new WebGGUFError('invalid-argument', `the request needs ${required}`);
  if (request.stream !== undefined && request.stream !== null && typeof request.stream !== 'boolean') throw new WebGGUFError('invalid-argument', 'stream must be a boolean');
  const { signal, ...body } = request;
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw new WebGGUFError('invalid-argument', 'signal must be an AbortSignal');
  return { body: { ...body, model: str(body.model) ?? model }, signal: signal as AbortSignal | undefined };
}

/** createEngine({ remote }): see RemoteOptions. */
export function createRemoteEngine(options: RemoteOptions): Engine {
  if (!isObject(options) || typeof options.model !== 'string' || options.model === '') {
    throw new WebGGUFError('invalid-argument', 'remote.model must name the server\'s model (a non-empty string)');
  }
  const client = new RemoteClient(options);
  /** The model requests name when they name none: options.model, or what load() chose. */
  let model = options.model;
  /** Fires on dispose: every request in flight ends. */
  const lifetime = new AbortController();
  const disposedError = () => new WebGGUFError('disposed', 'the engine was disposed; create a new one with createEngine()');
  const live = () => {
    if (lifetime.signal.aborted) throw disposedError();
  };
  /** A failure as the caller should see it: `disposed` once the engine is. */
  const settle = (e: unknown): never => {
    throw lifetime.signal.aborted ? disposedError() : e;
  };

  /** A whole JSON answer, a server's error body inside a 200 included. */
  const post = async (path: string, body: Json, signal: AbortSignal | undefined): Promise<Json> => {
    const answer = await client.json('POST', path, body, eitherSignal(signal, lifetime.signal)).catch(settle);
    const failure = errorFromPayload(answer);
    if (failure) throw failure;
    if (!isObject(answer)) throw new WebGGUFError('server', `${client.baseURL}${path} answered with JSON that is not an object`);
    return answer;
  };

  /**
   * A streamed answer as our chunks. An abort by the caller ends each unfinished choice with
   * finish_reason 'abort', as the local engine does; the connection closes, so the server stops.
   * A stream that ends before `data: [DONE]` with a choice unfinished is a `network` error.
   */
  async function* chunks<Chunk extends { choices: { index: number; finish_reason: unknown }[] }>(
    kind: StreamKind<Chunk>, opened: Opened, signal: AbortSignal | undefined, timing: Timing, requested: string,
  ): AsyncGenerator<Chunk> {
    /** Choices begun and not finished; whether any was seen; whether `data: [DONE]` came. */
    const open = new Set<number>();
    let seen = false;
    let done = false;
    let last: Chunk | undefined;
    try {
      for await (const event of client.events(opened)) {
        // Events already read when the caller aborted are not delivered (it stops within a chunk).
        if (signal?.aborted) throw new WebGGUFError('aborted', 'the request was aborted');
        // Other event types (`event: ping`) and empty data (`data:` keep-alives) carry nothing.
        if ((event.event !== 'message' && event.event !== 'error') || event.data.trim() === '') continue;
        if (event.event === 'message' && event.data.trim() === '[DONE]') {
          done = true;
          break;
        }
        let raw: unknown;
        try {
          raw = JSON.parse(event.data);
        } catch {
          if (event.event === 'error') throw errorFromPayload(event.data, true)!;
          throw new WebGGUFError('server', `the server sent an event that is not JSON: ${event.data.slice(0, 200)}`);
        }
        const failure = errorFromPayload(raw, event.event === 'error');
        if (failure) throw failure;
        if (!isObject(raw)) continue;
        if (hasOutput(raw)) timing.mark();
        const chunk = kind.chunk(raw, requested, timing);
        // A chunk with no choice and no usage (Azure's prompt_filter_results) holds nothing the app reads.
        if (chunk.choices.length === 0 && !(chunk as { usage?: unknown }).usage) continue;
        for (const c of chunk.choices) {
          seen = true;
          if (c.finish_reason === null) open.add(c.index);
          else open.delete(c.index);
        }
        last = chunk;
        yield chunk;
      }
      // Servers that close without [DONE] once every choice has finished are taken as done.
      if (!done && !(seen && open.size === 0)) {
        throw new WebGGUFError('network', 'the stream ended before the reply did (no finish_reason, no data: [DONE]): the connection was closed');
      }
    } catch (e) {
      if (lifetime.signal.aborted) throw disposedError();
      if (!signal?.aborted) throw e;
      // Aborted by the caller: the choices still open end as the local engine ends them.
      if (!seen) open.add(0);
      for (const index of [...open].sort((a, b) => a - b)) yield kind.aborted(last, index, requested);
    }
  }

  const openAICreate = <Whole, Chunk extends { choices: { index: number; finish_reason: unknown }[] }>(
    path: string, required: string, kind: StreamKind<Chunk>, whole: (raw: Json, model: string, timing: Timing) => Whole,
  ) => async (request: unknown, o: { signal?: AbortSignal } = {}): Promise<Whole | AsyncIterable<Chunk>> => {
    live();
    const { body, signal: requestSignal } = requestBody(request, required, model);
    const signal = o.signal ?? requestSignal;
    const timing = new Timing();
    const requested = body.model as string;
    if (body.stream !== true) return whole(await post(path, body, signal), requested, timing);
    let opened: Opened;
    try {
      opened = await client.open('POST', path, body, eitherSignal(signal, lifetime.signal));
    } catch (e) {
      // Aborted before the server answered: a stream that ends at once with 'abort', as a local one does.
      if (signal?.aborted && !lifetime.signal.aborted) return { [Symbol.asyncIterator]: async function* () { yield kind.aborted(undefined, 0, requested); } };
      return settle(e);
    }
    const type = opened.response.headers.get('content-type') ?? '';
    if (/html/i.test(type)) {
      const page = await client.readText(opened, 200).catch(settle);
      throw new WebGGUFError('server', `${client.baseURL}${path} answered with a web page, not an event stream (is baseURL the API's root, e.g. …/v1?): ${page}`);
    }
    if (/json/i.test(type) && !/event-stream/i.test(type)) {
      // A server that answers a stream request with one JSON body: an error, or it cannot stream.
      const text = await client.readText(opened).catch(settle);
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      throw errorFromPayload(parsed) ?? new WebGGUFError('server', `the server answered a streamed request with JSON, not an event stream: ${text.slice(0, 200)}`);
    }
    return { [Symbol.asyncIterator]: () => chunks(kind, opened, signal, timing, requested) };
  };

  const refuse = (what: string) => new WebGGUFError('invalid-argument', `${what} runs on this device; a remote engine's model runs on the server (use chat.completions or completions)`);

  return {
    /**
     * Chooses the server's model and checks that the server answers and takes the key: GET
     * /models, with its retries. A string source is the server's name for the model; a model file
     * or URL (what a local load takes: a Blob, `….gguf`, `http…`) means the `model` option, so an
     * app's load call works unchanged. Nothing is downloaded or put on a GPU; the info says what
     * the server lists (context length, parameters where it tells them). A model the list lacks is
     * taken at its word (servers answer to aliases); a wrong name fails the first request.
     */
    load: async (source, o = {}): Promise<ModelInfo> => {
      live();
      const isName = typeof source === 'string' && source !== '' && !/^[a-z][a-z\d+.-]*:\/\/|\.gguf$/i.test(source);
      const name = isName ? source : options.model;
      let listed: Json | undefined;
      try {
        const list = await client.json('GET', '/models', undefined, eitherSignal(o.signal, lifetime.signal));
        const data = isObject(list) && Array.isArray(list.data) ? list.data : [];
        listed = data.find((m): m is Json => isObject(m) && (m.id === name || m.id === `${name}:latest`));
      } catch (e) {
        // Servers without a model list (404/405) still serve; every other failure is the load's.
        if (!(e instanceof WebGGUFError && (e.code === 'not-found' || /answered 405/.test(e.message)))) settle(e);
      }
      model = name;
      const meta = isObject(listed?.meta) ? listed.meta : {};
      return {
        id: name, architecture: 'remote', parameters: num(meta.n_params),
        quantTypes: [], contextLength: num(listed?.max_model_len) || num(meta.n_ctx_train) || num(listed?.context_length),
        bytesOnGpu: 0, bytesOnCpu: 0, adapter: `remote ${client.baseURL}`, features: ['remote'], fromCache: false, route: 'remote',
      };
    },
    estimate: async () => {
      live();
      throw refuse('estimate');
    },
    generate: () => ({ [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(lifetime.signal.aborted ? disposedError() : refuse('generate (token ids)')) }) }),
    chat: { completions: { create: openAICreate('/chat/completions', 'messages', chatKind, chatCompletion) as Engine['chat']['completions']['create'] } },
    completions: { create: openAICreate('/completions', 'prompt', completionKind, completion) as Engine['completions']['create'] },
    embeddings: {
      create: async (request, o = {}) => {
        live();
        const { body, signal } = requestBody(request, 'input', model);
        const raw = await post('/embeddings', body, o.signal ?? signal);
        const usage = isObject(raw.usage) ? raw.usage : {};
        return {
          ...raw, object: 'list', data: Array.isArray(raw.data) ? raw.data : [], model: str(raw.model) ?? (body.model as string),
          usage: { ...usage, prompt_tokens: num(usage.prompt_tokens), total_tokens: num(usage.total_tokens) }, webgguf: REMOTE,
        } as EmbeddingResponse;
      },
    },
    // Nothing is stored on this device for a remote model.
    cache: {
      list: async () => (live(), []),
      delete: async () => live(),
      usage: async () => (live(), { persisted: false, models: 0, modelBytes: 0 }),
      persist: async () => (live(), false),
    },
    bytesOnGpu: async () => (live(), 0),
    /** Back to the `model` option; nothing on the server changes. */
    unload: async () => {
      live();
      model = options.model;
    },
    dispose: async () => {
      lifetime.abort();
    },
  };
}
