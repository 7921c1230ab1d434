/**
 * Checksums of what the weight cache stores: fast enough to run over every word read back (a
 * multiply and two xors per 32-bit word, even and odd words in two lanes: well under a
 * millisecond per MiB), strong enough that flipped bits, truncation or a record moved to another
 * place show. They guard against corruption, not against someone who can rewrite the store (who
 * could rewrite the checksums too).
 *
 * The value is 53 bits, so it round-trips as a plain number through IndexedDB and JSON.
 */

const LANE1_PRIME = 0x01000193; // FNV-1a's 32-bit prime
const LANE2_PRIME = 0x5bd1e995; // MurmurHash2's multiplier
const LANE1_BASIS = 0x811c9dc5;
const LANE2_BASIS = 0x2545f491;

function combine(h1: number, h2: number): number {
  // Final avalanche of each lane, so nearby inputs differ in every output bit.
  h1 = Math.imul(h1 ^ (h1 >>> 16), 0x85ebca6b);
  h1 = Math.imul(h1 ^ (h1 >>> 13), 0xc2b2ae35) ^ (h1 >>> 16);
  h2 = Math.imul(h2 ^ (h2 >>> 15), 0x27d4eb2f);
  h2 = Math.imul(h2 ^ (h2 >>> 13), 0x165667b1) ^ (h2 >>> 16);
  return (h1 >>> 0) + (h2 & 0x1fffff) * 2 ** 32;
}

/** Lanes seeded from a label (where the words belong), so equal words in another place differ. */
function seeded(label: string): [number, number] {
  let h1 = LANE1_BASIS;
  let h2 = LANE2_BASIS ^ label.length;
  for (let i = 0; i < label.length; i++) {
    const c = label.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, LANE1_PRIME);
    h2 = Math.imul(h2 ^ c, LANE2_PRIME);
    h2 ^= h2 >>> 15;
  }
  return [h1, h2];
}

/** Checksum of 32-bit words under a label. */
export function checksumWords(label: string, words: Uint32Array): number {
  let [h1, h2] = seeded(label);
  const n = words.length;
  const even = n & ~1;
  // Even and odd words go to separate lanes: two independent multiply chains run in parallel. The
  // shift brings high bits down (a multiply only carries upwards), so two flips of one bit
  // position cannot cancel.
  for (let i = 0; i < even; i += 2) {
    h1 = Math.imul(h1 ^ words[i]!, LANE1_PRIME);
    h2 = Math.imul(h2 ^ words[i + 1]!, LANE2_PRIME);
    h1 ^= h1 >>> 15;
    h2 ^= h2 >>> 15;
  }
  if (even < n) h1 = Math.imul(h1 ^ words[even]!, LANE1_PRIME);
  return combine(h1 ^ n, h2 ^ n);
}

/** Checksum of bytes under a label (headers, manifests). */
export function checksumBytes(label: string, bytes: Uint8Array): number {
  const whole = bytes.byteLength >>> 2;
  const aligned = bytes.byteOffset % 4 === 0;
  const words = aligned ? new Uint32Array(bytes.buffer, bytes.byteOffset, whole) : new Uint32Array(bytes.slice(0, whole * 4).buffer);
  // The tail bytes and the exact length join the label, so lengths that differ by less than a word differ.
  let tail = '';
  for (let i = whole * 4; i < bytes.byteLength; i++) tail += String.fromCharCode(bytes[i]!);
  return checksumWords(`${label}\n${bytes.byteLength}\n${tail}`, words);
}

/** Checksum of a string's UTF-8 bytes. */
export function checksumText(label: string, text: string): number {
  return checksumBytes(label, new TextEncoder().encode(text));
}
