import { WebGGUFError } from '../errors.js';
import { isHashCheckpoint, type HashCheckpoint } from '../io/sha256-source.js';
import type { CacheEntry } from '../engine/types.js';
import type { WeightChunk } from '../model/weights.js';
import { checksumBytes, checksumText, checksumWords } from './checksum.js';
import type { KeyValueStore } from './store.js';

/**
 * Written last, so a listed model is complete; it names every chunk by checksum, and its own
 * `check` covers all of it (a shortened chunk list or an edited field shows).
 */
export interface CacheManifest extends CacheEntry {
  chunks: number;
  /** Checksum of the stored GGUF header (metadata: vocabulary, context length, tensor table). */
  headerCheck: number;
  /** Each chunk's checksum (over its place, tensor, offset, length and words), in order. */
  chunkChecks: number[];
  check: number;
}

/** A chunk as stored and read back: its checksum travels with it. */
export interface StoredChunk extends WeightChunk {
  check: number;
}

/** Where an interrupted load of a hashed (`sha256`) source can pick up: see HashingSource. */
export interface HashResume {
  /** The first chunk to fetch again. */
  chunk: number;
  hash: HashCheckpoint;
}

/** What an interrupted load left, checked. */
export interface PartialLoad {
  header: Uint8Array;
  /** What proves the source is still the same file (a strong ETag, Last-Modified, a File's id); '' for none. */
  proof: string;
  fileBytes: number;
  /** Chunks stored, and how far into the file they came from. */
  chunks: number;
  fileAt: number;
  resume?: HashResume;
}

/**
 * Bumped whenever the stored layout changes, so stale caches are never uploaded. 4: checksums on
 * chunks, header and manifest; ids encoded in keys. 5: K-quants repacked (nibbles in column order,
 * scales decoded; src/quant/formats.ts K_KINDS).
 */
const LAYOUT_VERSION = 5;
const PREFIX = `v${LAYOUT_VERSION}/`;
// Ids are URI-encoded, so they contain no '/': no key of one model is a prefix of another's.
const enc = encodeURIComponent;
const key = {
  manifest: (id: string) => `${PREFIX}manifest/${enc(id)}`,
  header: (id: string) => `${PREFIX}header/${enc(id)}`,
  progress: (id: string) => `${PREFIX}progress/${enc(id)}`,
  chunks: (id: string) => `${PREFIX}chunk/${enc(id)}/`,
  chunk: (id: string, n: number) => `${PREFIX}chunk/${enc(id)}/${n}`,
};

function isQuotaError(e: unknown): boolean {
  const name = (e as { name?: string })?.name;
  return name === 'QuotaExceededError' || (name === 'AbortError' && /quota/i.test(String((e as Error).message)));
}

const isTyped = (v: unknown, tag: string) => Object.prototype.toString.call(v) === `[object ${tag}]`;
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isCheck = (v: unknown): v is number => isCount(v);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

const chunkLabel = (id: string, n: number, tensor: string, wordOffset: number) => `chunk\n${id}\n${n}\n${tensor}\n${wordOffset}`;
const headerCheck = (id: string, bytes: Uint8Array) => checksumBytes(`header\n${id}`, bytes);
function manifestCheck(m: Omit<CacheManifest, 'check'>): number {
  const fields = [m.id, m.source, m.fileBytes, m.storedBytes, m.architecture, m.createdAt, m.chunks, m.headerCheck, m.chunkChecks];
  return checksumText('manifest', JSON.stringify(fields));
}

/**
 * The GPU-ready weights of each model, stored chunk by chunk as they are repacked. A model is
 * listed only once its manifest is written, after every chunk; an interrupted load keeps its
 * chunks and a progress record, and the next load of the same file resumes after them.
 *
 * Everything read back is checked: types, each chunk's checksum, the header's and the manifest's.
 * A complete model that fails a check is deleted and reported as `cache-corrupt`.
 */
export class WeightCache {
  constructor(private readonly store: KeyValueStore) {}

  /** Complete models, oldest first. A manifest that fails its check is deleted, not listed. */
  async list(): Promise<CacheEntry[]> {
    const prefix = key.manifest('');
    const keys = (await this.store.keys()).filter((k) => k.startsWith(prefix));
    const entries: CacheEntry[] = [];
    for (const k of keys) {
      try {
        const m = await this.manifest(decodeURIComponent(k.slice(prefix.length)));
        if (m) entries.push({ id: m.id, source: m.source, fileBytes: m.fileBytes, storedBytes: m.storedBytes, architecture: m.architecture, createdAt: m.createdAt });
      } catch (e) {
        // A key that does not decode is as damaged as a manifest that fails its check.
        if (e instanceof URIError) await this.store.delMany([k]);
        else if ((e as WebGGUFError).code !== 'cache-corrupt') throw e;
      }
    }
    return entries.sort((a, b) => a.createdAt - b.createdAt);
  }

  /** The manifest of a complete model, checked; undefined when there is none. */
  async manifest(id: string): Promise<CacheManifest | undefined> {
    const m = await this.store.get<unknown>(key.manifest(id));
    if (m === undefined) return undefined;
    const ok =
      isObject(m) && m.id === id && typeof m.source === 'string' && isCount(m.fileBytes) && isCount(m.storedBytes) &&
      typeof m.architecture === 'string' && typeof m.createdAt === 'number' && isCount(m.chunks) && isCheck(m.headerCheck) &&
      Array.isArray(m.chunkChecks) && m.chunkChecks.length === m.chunks && m.chunkChecks.every(isCheck) && isCheck(m.check) &&
      manifestCheck(m as unknown as CacheManifest) === m.check;
    if (!ok) return this.corrupt(id, 'its manifest fails its checksum', isObject(m) && typeof m.source === 'string' ? m.source : undefined);
    return m as unknown as CacheManifest;
  }

  /** The stored GGUF header of a complete model, checked against its manifest. */
  async header(m: CacheManifest): Promise<Uint8Array> {
    const h = await this.store.get<unknown>(key.header(m.id));
    if (!isObject(h) || !isTyped(h.bytes, 'Uint8Array')) return this.corrupt(m.id, 'its header is missing', m.source);
    const bytes = h.bytes as Uint8Array;
    if (headerCheck(m.id, bytes) !== m.headerCheck) return this.corrupt(m.id, 'its header fails its checksum', m.source);
    return bytes;
  }

  /**
   * Chunks [from, to), each checked (and against the manifest's list when given). A chunk that
   * fails deletes the whole model: `cache-corrupt`.
   */
  async *chunks(id: string, from: number, to: number, m?: CacheManifest): AsyncGenerator<StoredChunk> {
    for (let n = from; n < to; n++) {
      const c = await this.store.get<unknown>(key.chunk(id, n));
      if (!isObject(c)) return this.corrupt(id, `chunk ${n} is missing`, m?.source);
      const { tensor, wordOffset, words, check } = c;
      if (typeof tensor !== 'string' || !isCount(wordOffset) || !isTyped(words, 'Uint32Array') || !isCheck(check)) {
        return this.corrupt(id, `chunk ${n} is not a chunk of weights`, m?.source);
      }
      const chunk = { tensor, wordOffset, words: words as Uint32Array<ArrayBuffer>, check };
      if (checksumWords(chunkLabel(id, n, tensor, wordOffset), chunk.words) !== check || (m && m.chunkChecks[n] !== check)) {
        return this.corrupt(id, `chunk ${n} fails its checksum`, m?.source);
      }
      yield chunk;
    }
  }

  /**
   * What an interrupted load of `id` left, if its records are whole; anything unreadable is
   * deleted and the load starts over.
   */
  async partial(id: string): Promise<PartialLoad | undefined> {
    const h = await this.store.get<unknown>(key.header(id));
    if (h === undefined) return undefined;
    const p = await this.store.get<unknown>(key.progress(id));
    const whole =
      isObject(h) && isTyped(h.bytes, 'Uint8Array') && typeof h.proof === 'string' && isCount(h.fileBytes) && isCheck(h.check) &&
      headerCheck(id, h.bytes as Uint8Array) === h.check &&
      isObject(p) && isCount(p.chunks) && isCount(p.fileAt) &&
      (p.resume === undefined || (isObject(p.resume) && isCount(p.resume.chunk) && p.resume.chunk <= p.chunks && isHashCheckpoint(p.resume.hash)));
    if (!whole) {
      await this.delete(id);
      return undefined;
    }
    return {
      header: h.bytes as Uint8Array, proof: h.proof as string, fileBytes: h.fileBytes as number,
      chunks: p.chunks as number, fileAt: p.fileAt as number, resume: p.resume as HashResume | undefined,
    };
  }

  /** Starts a load from scratch: whatever was stored for `id` goes. */
  async start(id: string, header: Uint8Array, proof: string | undefined, fileBytes: number): Promise<void> {
    await this.delete(id);
    // Without a proof ('') a later session cannot tell the file is the same, and does not resume.
    await this.write(id, [
      [key.header(id), { bytes: header, proof: proof ?? '', fileBytes, check: headerCheck(id, header) }],
      [key.progress(id), { chunks: 0, fileAt: 0 }],
    ]);
  }

  /** Stores chunk `n` with the progress record that counts it, atomically; returns its checksum. */
  async putChunk(id: string, n: number, chunk: WeightChunk, fileAt: number, resume?: HashResume): Promise<number> {
    const check = checksumWords(chunkLabel(id, n, chunk.tensor, chunk.wordOffset), chunk.words);
    const stored: StoredChunk = { tensor: chunk.tensor, wordOffset: chunk.wordOffset, words: chunk.words, check };
    await this.write(id, [[key.chunk(id, n), stored], [key.progress(id), { chunks: n + 1, fileAt, resume }]]);
    return check;
  }

  /** Lists the model: its manifest, covering the header (as `start` stored it) and every chunk's checksum. */
  async finish(entry: CacheEntry, header: Uint8Array, chunkChecks: number[]): Promise<void> {
    const body = { ...entry, chunks: chunkChecks.length, headerCheck: headerCheck(entry.id, header), chunkChecks };
    await this.write(entry.id, [[key.manifest(entry.id), { ...body, check: manifestCheck(body) }]]);
    await this.store.delMany([key.progress(entry.id)]);
  }

  /** Removes every record of a model, complete or partial. */
  async delete(id: string): Promise<void> {
    const mine = new Set([key.manifest(id), key.header(id), key.progress(id)]);
    const chunkPrefix = key.chunks(id);
    const all = await this.store.keys();
    await this.store.delMany(all.filter((k) => mine.has(k) || k.startsWith(chunkPrefix)));
  }

  /** Deletes a damaged model and reports it: `cache-corrupt`, naming where to load it from again. */
  async corrupt(id: string, what: string, source: string | undefined): Promise<never> {
    await this.delete(id).catch(() => undefined);
    const again = source ? `load it from ${source} again to download it anew` : 'load it from its source again';
    throw new WebGGUFError('cache-corrupt', `the cached model ${id} is damaged (${what}); it was deleted: ${again}`);
  }

  /** Writes, turning a full disk into a typed error that leaves no part of the model behind. */
  private async write(id: string, entries: [string, unknown][]): Promise<void> {
    try {
      await this.store.setMany(entries);
    } catch (e) {
      if (!isQuotaError(e)) throw new WebGGUFError('cache', `writing the model cache failed: ${(e as Error).message}`, { cause: e });
      await this.delete(id).catch(() => undefined);
      throw new WebGGUFError('quota-exceeded', 'Not enough storage for this model: the browser refused to store more. Free space or delete cached models.', { cause: e });
    }
  }
}
