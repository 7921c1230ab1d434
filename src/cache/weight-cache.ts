import { WebGGUFError } from '../errors.js';
import type { WeightChunk } from '../model/weights.js';
import type { KeyValueStore } from './store.js';

/** What the cache lists: written last, so a listed model is always complete. */
export interface CacheManifest {
  id: string;
  /** Where it came from: a URL or a file name. */
  source: string;
  /** Size of the original GGUF in bytes. */
  fileBytes: number;
  /** Bytes of repacked weights stored. */
  storedBytes: number;
  chunks: number;
  architecture: string;
  createdAt: number;
}

/** Bumped whenever the repacked layout changes, so stale caches are never uploaded. */
const LAYOUT_VERSION = 3;
const key = {
  manifest: (id: string) => `v${LAYOUT_VERSION}/manifest/${id}`,
  header: (id: string) => `v${LAYOUT_VERSION}/header/${id}`,
  progress: (id: string) => `v${LAYOUT_VERSION}/progress/${id}`,
  chunk: (id: string, n: number) => `v${LAYOUT_VERSION}/chunk/${id}/${n}`,
};

function isQuotaError(e: unknown): boolean {
  const name = (e as { name?: string })?.name;
  return name === 'QuotaExceededError' || (name === 'AbortError' && /quota/i.test(String((e as Error).message)));
}

/**
 * The GPU-ready weights of each model, stored chunk by chunk as they are repacked. A model is
 * listed only once its manifest is written, after every chunk; an interrupted load keeps its
 * chunks and a progress count, and the next load resumes after them.
 */
export class WeightCache {
  constructor(private readonly store: KeyValueStore) {}

  async list(): Promise<CacheManifest[]> {
    const prefix = key.manifest('');
    const ids = (await this.store.keys()).filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));
    const manifests = await Promise.all(ids.map((id) => this.manifest(id)));
    return manifests.filter((m): m is CacheManifest => m !== undefined).sort((a, b) => a.createdAt - b.createdAt);
  }

  manifest(id: string): Promise<CacheManifest | undefined> {
    return this.store.get<CacheManifest>(key.manifest(id));
  }

  header(id: string): Promise<Uint8Array | undefined> {
    return this.store.get<{ bytes: Uint8Array }>(key.header(id)).then((h) => h?.bytes);
  }

  /** The source's validator (ETag) recorded with the header, to detect a changed file. */
  validator(id: string): Promise<string | undefined> {
    return this.store.get<{ validator?: string }>(key.header(id)).then((h) => h?.validator);
  }

  /** Chunks already stored for a load in progress. */
  async progress(id: string): Promise<number> {
    return (await this.store.get<number>(key.progress(id))) ?? 0;
  }

  async putHeader(id: string, header: Uint8Array, validator?: string): Promise<void> {
    await this.write(id, [[key.header(id), { bytes: header, validator }]]);
  }

  async putChunk(id: string, n: number, chunk: WeightChunk): Promise<void> {
    await this.write(id, [[key.chunk(id, n), chunk], [key.progress(id), n + 1]]);
  }

  async *chunks(id: string, from: number, to: number): AsyncGenerator<WeightChunk> {
    for (let n = from; n < to; n++) {
      const chunk = await this.store.get<WeightChunk>(key.chunk(id, n));
      if (!chunk) throw new WebGGUFError('cache', `cached model ${id} is missing chunk ${n}; delete it and load again`);
      yield chunk;
    }
  }

  async finish(manifest: CacheManifest): Promise<void> {
    await this.write(manifest.id, [[key.manifest(manifest.id), manifest]]);
    await this.store.delMany([key.progress(manifest.id)]);
  }

  /** Removes every record of a model, complete or partial. */
  async delete(id: string): Promise<void> {
    const mine = [key.manifest(id), key.header(id), key.progress(id)];
    const chunkPrefix = key.chunk(id, 0).slice(0, -1);
    const all = await this.store.keys();
    await this.store.delMany([...mine.filter((k) => all.includes(k)), ...all.filter((k) => k.startsWith(chunkPrefix))]);
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
