import { WebGPULLMError } from '../errors.js';

/**
 * Random access to the bytes of a model file. Readers ask for bounded ranges, so a file never has
 * to sit in memory whole.
 */
export interface ByteSource {
  /** Total size in bytes. */
  readonly size: number;
  /** A short name for messages (file name or URL). */
  readonly name: string;
  /** Reads [offset, offset + length), clipped to the end of the source. */
  read(offset: number, length: number): Promise<Uint8Array>;
}

/** A source over bytes already in memory (tests, small files). */
export function bytesSource(bytes: Uint8Array, name = 'bytes'): ByteSource {
  return {
    size: bytes.byteLength,
    name,
    read: async (offset, length) => bytes.subarray(offset, Math.min(bytes.byteLength, offset + length)),
  };
}

/** A File or Blob: slices are read lazily by the browser. */
export function blobSource(blob: Blob, name = (blob as File).name ?? 'blob'): ByteSource {
  return {
    size: blob.size,
    name,
    read: async (offset, length) =>
      new Uint8Array(await blob.slice(offset, Math.min(blob.size, offset + length)).arrayBuffer()),
  };
}

/**
 * A URL read with HTTP range requests. The size comes from a one-byte range probe, which also
 * proves that the server honours Range.
 */
export async function urlSource(url: string, init: { signal?: AbortSignal } = {}): Promise<ByteSource> {
  const probe = await fetchOk(url, 0, 1, init.signal);
  const range = probe.headers.get('content-range');
  const total = range ? Number(range.split('/')[1]) : NaN;
  await probe.body?.cancel();
  if (/text\/html/i.test(probe.headers.get('content-type') ?? '')) {
    throw new WebGPULLMError('network', `${url}: the server answered with a web page, not a model file; check the URL`);
  }
  if (probe.status !== 206 || !Number.isSafeInteger(total)) {
    throw new WebGPULLMError('network', `${url}: the server does not support HTTP range requests`);
  }
  return {
    size: total,
    name: url,
    read: async (offset, length) => {
      const end = Math.min(total, offset + length);
      if (end <= offset) return new Uint8Array(0);
      const res = await fetchOk(url, offset, end - offset, init.signal);
      let bytes: Uint8Array;
      try {
        bytes = new Uint8Array(await res.arrayBuffer());
      } catch (e) {
        throw new WebGPULLMError('network', `${url}: the download broke off (${(e as Error).message})`, { cause: e });
      }
      if (bytes.byteLength !== end - offset) {
        throw new WebGPULLMError('network', `${url}: asked for ${end - offset} bytes at ${offset}, got ${bytes.byteLength}`);
      }
      return bytes;
    },
  };
}

async function fetchOk(url: string, offset: number, length: number, signal?: AbortSignal): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url, { headers: { Range: `bytes=${offset}-${offset + length - 1}` }, signal });
  } catch (e) {
    throw new WebGPULLMError('network', `${url}: ${(e as Error).message}`, { cause: e });
  }
  if (!res.ok) throw new WebGPULLMError('network', `${url}: HTTP ${res.status} ${res.statusText}`);
  return res;
}
