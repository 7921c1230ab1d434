/** Downloads: read-ahead with bounded parallel range requests, headers, a caller's fetch (also across a thread boundary), split models. */
import { readFileSync } from 'node:fs';
import * as Comlink from 'comlink';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { WebGGUFError, type ErrorCode } from '../src/errors.js';
import { readGGUF, type GGUFFile } from '../src/gguf/gguf.js';
import { openModel, splitPartUrl } from '../src/gguf/split.js';
import { urlSource, type ByteSource } from '../src/io/byte-source.js';
import { exportFetch, importFetch, type RemoteFetch } from '../src/io/remote-fetch.js';
import { ModelServer } from './helpers/model-server.js';
import { HAVE_MODELS, storiesPath } from './helpers/models.js';
import { splitGGUF, writeParts } from './helpers/split-gguf.js';

const F32 = 'stories260K/stories260K-f32.gguf';

async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<WebGGUFError> {
  const e = await promise.then(() => null, (x: unknown) => x);
  expect(e, `expected a ${code} error`).toBeInstanceOf(WebGGUFError);
  expect((e as WebGGUFError).code, (e as Error).message).toBe(code);
  return e as WebGGUFError;
}

/** Reads a source front to back in `step`-byte reads, as the loader does. */
async function readAll(source: ByteSource, step: number): Promise<Uint8Array> {
  const out = new Uint8Array(source.size);
  for (let at = 0; at < source.size; at += step) out.set(await source.read(at, step), at);
  return out;
}

/** Byte equality (vitest's deep equality is slow on megabytes). */
const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);

/** Every tensor's bytes, by name. */
async function tensorBytes(file: GGUFFile): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for (const t of file.tensors) out.set(t.name, await file.source.read(file.dataOffset + t.offset, t.byteSize));
  return out;
}

const drained = async (server: ModelServer) => {
  for (let i = 0; i < 100 && server.inFlight > 0; i++) await new Promise((r) => setTimeout(r, 20));
  return server.inFlight;
};

describe.skipIf(!HAVE_MODELS)('downloads', () => {
  let server: ModelServer;
  const f32 = HAVE_MODELS ? readFileSync(storiesPath('f32')) : new Uint8Array(0);
  beforeAll(async () => {
    server = await new ModelServer().start();
  });
  afterAll(() => server?.stop());

  test('a front-to-back reader gets up to 4 range requests in flight, never more, and the exact bytes', async () => {
    server.reset();
    server.delayMs = 20;
    const source = await urlSource(server.url(F32));
    expect(same(await readAll(source, 32 << 10), f32)).toBe(true);
    expect(server.maxInFlight).toBe(4);
    // Read-ahead stops at the end of the file: nothing fetched twice, nothing beyond.
    expect(server.bytes).toBe(f32.byteLength + 1);
    expect(await drained(server)).toBe(0);
  });

  test('a reader that jumps back is served exactly; read-ahead it skips is cancelled', async () => {
    server.reset();
    const source = await urlSource(server.url(F32));
    const offsets = [0, 65_536, 131_072, 4_096, 600_000, 700_000, 650_000, 1_100_000, 1_185_000];
    for (const at of offsets) expect(same(await source.read(at, 50_000), f32.subarray(at, at + 50_000))).toBe(true);
    expect(await drained(server)).toBe(0);
  });

  test('a connection dropped mid-way fails the read that needs it with a network error, and nothing is left running', async () => {
    server.reset();
    server.delayMs = 5;
    const source = await urlSource(server.url(F32));
    server.dropAfterBytes = 300_000;
    const e = await expectCode(readAll(source, 32 << 10), 'network');
    expect(e.message).toMatch(/broke off|ended|fetch failed|terminated|socket/);
    expect(await drained(server)).toBe(0);
    server.dropAfterBytes = undefined;
    expect(same(await readAll(await urlSource(server.url(F32)), 64 << 10), f32)).toBe(true);
  });

  test('aborting cuts the downloads in flight', async () => {
    server.reset();
    server.delayMs = 50;
    const controller = new AbortController();
    const source = await urlSource(server.url(F32), { signal: controller.signal });
    const reading = readAll(source, 32 << 10);
    setTimeout(() => controller.abort(), 120);
    const started = Date.now();
    await expectCode(reading, 'aborted');
    expect(Date.now() - started).toBeLessThan(2000);
    expect(server.bytes).toBeLessThan(f32.byteLength);
    expect(await drained(server)).toBe(0);
  });

  test('headers go on every request (a gated model)', async () => {
    server.reset();
    server.authorization = 'Bearer hf_secret';
    const refused = await expectCode(urlSource(server.url(F32)), 'network');
    expect(refused.message).toContain('HTTP 401');
    server.requestHeaders = [];
    const source = await urlSource(server.url(F32), { headers: { Authorization: 'Bearer hf_secret', Range: 'bytes=0-0' } });
    expect(same(await readAll(source, 256 << 10), f32)).toBe(true);
    expect(server.requestHeaders.length).toBeGreaterThan(3);
    expect(server.requestHeaders.every((h) => h.authorization === 'Bearer hf_secret')).toBe(true);
    // The caller's own Range header does not replace the source's.
    expect(new Set(server.requestHeaders.map((h) => h.range)).size).toBe(server.requestHeaders.length);
  });

  describe('a caller\'s fetch', () => {
    const authorizing = (calls: string[]): typeof fetch => (input, init) => {
      calls.push(String(input));
      const headers = new Headers(init?.headers);
      headers.set('Authorization', 'Bearer token');
      return fetch(input, { ...init, headers });
    };
    /** The worker's view of `f`, through a MessageChannel as through the engine's worker. */
    const acrossPorts = (f: typeof fetch) => {
      const { port1, port2 } = new MessageChannel();
      Comlink.expose(exportFetch(f), port2 as unknown as Comlink.Endpoint);
      return { fetch: importFetch(Comlink.wrap<RemoteFetch>(port1 as unknown as Comlink.Endpoint) as unknown as RemoteFetch), close: () => (port1.close(), port2.close()) };
    };

    test('makes every request: directly, in-thread through exportFetch/importFetch, and across a MessageChannel', async () => {
      server.reset();
      server.authorization = 'Bearer token';
      const calls: string[] = [];
      const ports = acrossPorts(authorizing(calls));
      for (const f of [authorizing(calls), importFetch(exportFetch(authorizing(calls))), ports.fetch]) {
        const before = server.requests;
        calls.length = 0;
        server.delayMs = 10;
        const source = await urlSource(server.url(F32), { fetch: f });
        expect(same(await readAll(source, 64 << 10), f32)).toBe(true);
        expect(calls.length).toBe(server.requests - before);
        expect(server.maxInFlight).toBeLessThanOrEqual(4);
      }
      ports.close();
    });

    test('an abort still cuts the download across the MessageChannel', async () => {
      server.reset();
      server.delayMs = 50;
      const ports = acrossPorts(authorizing([]));
      const controller = new AbortController();
      const source = await urlSource(server.url(F32), { fetch: ports.fetch, signal: controller.signal });
      const reading = readAll(source, 32 << 10);
      setTimeout(() => controller.abort(), 120);
      await expectCode(reading, 'aborted');
      expect(server.bytes).toBeLessThan(f32.byteLength);
      expect(await drained(server)).toBe(0);
      ports.close();
    });
  });

  describe('split models', () => {
    const q4 = new Uint8Array(HAVE_MODELS ? readFileSync(storiesPath('q4_0')) : []);
    let whole: Map<string, Uint8Array>;
    let wholeFile: GGUFFile;
    let parts: Uint8Array<ArrayBuffer>[];
    let urls: string[];
    const blobs = () => parts.map((p, i) => new File([p], `part-${i}.gguf`));
    beforeAll(async () => {
      wholeFile = await readGGUF(await urlSource(server.url('stories260K/stories260K-q4_0.gguf')));
      whole = await tensorBytes(wholeFile);
      parts = await splitGGUF(q4, Math.ceil(wholeFile.tensors.length / 3));
      const { names, paths } = writeParts(parts, 'stories-q4');
      names.forEach((n, i) => server.files.set(`split/${n}`, paths[i]!));
      urls = names.map((n) => server.url(`split/${n}`));
      expect(parts.length).toBe(3);
    });

    const expectWhole = async (file: GGUFFile) => {
      expect(file.tensors.map((t) => [t.name, t.dims, t.type])).toEqual(wholeFile.tensors.map((t) => [t.name, t.dims, t.type]));
      expect(file.metadata.get('general.architecture')).toBe('llama');
      const bytes = await tensorBytes(file);
      for (const [name, b] of whole) expect(same(bytes.get(name)!, b), name).toBe(true);
    };

    test('part URLs follow llama.cpp\'s naming rule, query strings kept', () => {
      expect(splitPartUrl('https://h/x/m-Q4-00001-of-00003.gguf?download=true', 2, 3)).toBe('https://h/x/m-Q4-00003-of-00003.gguf?download=true');
      expect(splitPartUrl('https://h/m.gguf', 1, 3)).toBeUndefined();
    });

    test('the first part\'s URL loads every part as one file, the same tensors byte for byte, at most 4 requests in flight', async () => {
      server.reset();
      server.delayMs = 5;
      const source = await openModel(urls[0]!);
      expect(source.parts.length).toBe(3);
      await expectWhole(await readGGUF(source));
      expect(server.maxInFlight).toBeLessThanOrEqual(4);
      // Each part's header is fetched once: a probe and one header window per part.
      server.reset();
      const again = await readGGUF(await openModel(urls[0]!));
      expect(server.requests).toBe(6);
      expect(again.tensors.length).toBe(wholeFile.tensors.length);
    });

    test('a list of URLs or Files in any order, and a first part without tensors (--no-tensor-first-split)', async () => {
      await expectWhole(await readGGUF(await openModel([urls[2]!, urls[0]!, urls[1]!])));
      const b = blobs();
      await expectWhole(await readGGUF(await openModel([b[1]!, b[2]!, b[0]!])));
      const empty = await splitGGUF(q4, 20, { emptyFirst: true });
      await expectWhole(await readGGUF(await openModel(empty.map((p, i) => new File([p], `e${i}.gguf`)))));
    });

    test('missing, foreign, repeated or misnumbered parts are typed errors', async () => {
      const b = blobs();
      expect((await expectCode(openModel([b[0]!, b[2]!]), 'invalid-argument')).message).toMatch(/part 2 is missing/);
      expect((await expectCode(openModel(b[0]!), 'invalid-argument')).message).toMatch(/parts? 2, 3 are missing/);
      await expectCode(openModel([b[0]!, b[1]!, b[1]!]), 'invalid-argument');
      expect((await expectCode(openModel(urls[1]!), 'invalid-argument')).message).toContain(urls[0]!);
      const other = await splitGGUF(q4, 20);
      await expectCode(openModel([b[0]!, b[1]!, new File([other[2]!], 'other.gguf')]), 'malformed');
      await expectCode(openModel([b[0]!, b[1]!, b[2]!, new File([q4], 'whole.gguf')]), 'malformed');
      await expectCode(openModel([new File([q4], 'whole.gguf'), b[0]!]), 'malformed');
      await expectCode(openModel([new File([q4], 'whole.gguf'), new File([q4], 'again.gguf')]), 'invalid-argument');
      // A part missing on the server, and a first part whose name gives no rule for the others.
      server.reset();
      const { names, paths } = writeParts(parts, 'gone');
      server.files.set(`split/${names[0]}`, paths[0]!);
      server.files.set('split/renamed.gguf', paths[0]!);
      expect((await expectCode(openModel(server.url(`split/${names[0]}`)), 'network')).message).toContain(names[1]!);
      await expectCode(openModel(server.url('split/renamed.gguf')), 'invalid-argument');
      // A lying split.tensors.count.
      const lying = await splitGGUF(q4, 20, { tensorsCount: 7 });
      expect((await expectCode(openModel(lying.map((p, i) => new File([p], `l${i}.gguf`))), 'malformed')).message).toMatch(/split.tensors.count is 7/);
    });
  });
});
