import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import type { ByteSource } from './byte-source.js';

/**
 * Hashes a source's bytes as a loader reads them front to back. Bytes the loader skips (padding,
 * unused tensors, chunks already cached) are read here too, so `finish` can hash the whole file.
 */
export function sha256Source(source: ByteSource): ByteSource & { finish(): Promise<string> } {
  const hash = sha256.create();
  let hashed = 0;
  const advance = async (to: number) => {
    while (hashed < to) {
      const bytes = await source.read(hashed, Math.min(to - hashed, 4 << 20));
      if (bytes.byteLength === 0) break;
      hash.update(bytes);
      hashed += bytes.byteLength;
    }
  };
  return {
    size: source.size,
    name: source.name,
    validator: source.validator,
    read: async (offset, length) => {
      await advance(offset);
      const bytes = await source.read(offset, length);
      const end = offset + bytes.byteLength;
      if (end > hashed) {
        hash.update(bytes.subarray(hashed - offset));
        hashed = end;
      }
      return bytes;
    },
    finish: async () => {
      await advance(source.size);
      return bytesToHex(hash.digest());
    },
  };
}
