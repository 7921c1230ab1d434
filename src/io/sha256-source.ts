import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { WebGGUFError } from '../errors.js';
import type { ByteSource } from './byte-source.js';

/**
 * A SHA-256 state after the first `at` bytes of a file, as plain data, so an interrupted load can
 * store it with its chunks and the next session can hash on from there.
 */
export interface HashCheckpoint {
  at: number;
  /** The eight 32-bit chaining words. */
  state: number[];
  /** The bytes of the last partial 64-byte block (`at % 64` of them). */
  tail: Uint8Array;
}

/** What @noble/hashes keeps inside a SHA-256 (protected there; tests check the round trip). */
interface Sha256Internals {
  get(): number[];
  set(...words: number[]): void;
  buffer: Uint8Array;
  pos: number;
  length: number;
  update(bytes: Uint8Array): unknown;
  digest(): Uint8Array;
}

function createHash(): Sha256Internals {
  return sha256.create() as unknown as Sha256Internals;
}

function snapshot(hash: Sha256Internals, at: number): HashCheckpoint {
  return { at, state: hash.get().map((w) => w >>> 0), tail: hash.buffer.slice(0, hash.pos) };
}

/** True when `value` is a checkpoint that can be restored (e.g. one read back from storage). */
export function isHashCheckpoint(value: unknown): value is HashCheckpoint {
  const c = value as HashCheckpoint;
  return (
    typeof c === 'object' && c !== null && Number.isSafeInteger(c.at) && c.at >= 0 &&
    Array.isArray(c.state) && c.state.length === 8 && c.state.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff) &&
    Object.prototype.toString.call(c.tail) === '[object Uint8Array]' && c.tail.byteLength === c.at % 64
  );
}

function restore(c: HashCheckpoint): Sha256Internals {
  const hash = createHash();
  hash.set(...c.state);
  hash.buffer.set(c.tail);
  hash.pos = c.tail.byteLength;
  hash.length = c.at;
  return hash;
}

export interface HashingSource extends ByteSource {
  /**
   * The hash state at the start of the latest read that nothing read before it reaches past:
   * whatever was derived from earlier reads depends only on bytes before `at`, and whatever comes
   * from this read on only on bytes from `at`. The same object until a new read qualifies.
   */
  checkpoint(): HashCheckpoint;
  /**
   * Hashes on from an earlier session's checkpoint instead of this session's bytes before it. A
   * read that starts before the checkpoint afterwards fails: its bytes were hashed as the earlier
   * session saw them, so this session's copy could differ unseen.
   */
  resume(from: HashCheckpoint): void;
  /** Hashes the rest of the file and returns the hex digest. */
  finish(): Promise<string>;
}

/**
 * Hashes a source's bytes as a loader reads them front to back. Bytes the loader skips (padding,
 * unused tensors) are read here too, so `finish` covers every byte of the file.
 */
export function sha256Source(source: ByteSource): HashingSource {
  let hash = createHash();
  let hashed = 0;
  let floor = 0;
  let latest: HashCheckpoint = snapshot(hash, 0);
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
      if (offset < floor) {
        throw new WebGGUFError('integrity', `${source.name}: a resumed download read bytes before its hash checkpoint; load it again`);
      }
      await advance(offset);
      if (offset === hashed) latest = snapshot(hash, hashed);
      const bytes = await source.read(offset, length);
      const end = offset + bytes.byteLength;
      if (end > hashed) {
        hash.update(bytes.subarray(hashed - offset));
        hashed = end;
      }
      return bytes;
    },
    checkpoint: () => latest,
    resume: (from) => {
      hash = restore(from);
      hashed = floor = from.at;
      latest = from;
    },
    finish: async () => {
      await advance(source.size);
      if (hashed !== source.size) throw new WebGGUFError('network', `${source.name}: the file ended after ${hashed} of ${source.size} bytes`);
      return bytesToHex(hash.digest());
    },
  };
}
