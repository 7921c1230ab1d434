/** A range of a source being fetched (or fetched), `bytes` covering [start, end). */
interface Block {
  start: number;
  end: number;
  bytes: Promise<Uint8Array>;
  cancel(): void;
}

export interface ReadAheadOptions {
  /** Blocks held at once, the ones a read waits for included (default 4). */
  depth?: number;
  /** Bytes held in blocks at most, beyond what a read itself asks for (default 64 MiB). */
  maxBytes?: number;
  /** Aborts every block. */
  signal?: AbortSignal;
}

/**
 * Turns range fetches into a `read(offset, length)` that reads ahead for a reader going front to
 * back (the weight loader, a hash): when a read starts at or after the end of the previous one,
 * the next ranges of the same length are fetched too, up to `depth` blocks and `maxBytes`, so
 * several requests are in flight while the reader works. Blocks are consumed in order; a read
 * that goes back before them drops them (cancelling those still downloading) and fetches what
 * it asked for. A failed block fails the read that needs it and drops the rest, so errors
 * surface exactly where they did without read-ahead. Reads are served one at a time.
 */
export function readAhead(
  size: number,
  fetchRange: (start: number, end: number, signal: AbortSignal) => Promise<Uint8Array>,
  options: ReadAheadOptions = {},
): (offset: number, length: number) => Promise<Uint8Array> {
  const depth = options.depth ?? 4;
  const maxBytes = options.maxBytes ?? 64 << 20;
  let blocks: Block[] = [];
  let previousEnd: number | undefined;

  const fetchBlock = (start: number, end: number): Block => {
    const controller = new AbortController();
    const cancel = () => controller.abort();
    options.signal?.addEventListener('abort', cancel);
    if (options.signal?.aborted) cancel();
    const bytes = fetchRange(start, end, controller.signal).finally(() => options.signal?.removeEventListener('abort', cancel));
    bytes.catch(() => undefined); // a block nobody reads may fail unobserved
    return { start, end, bytes, cancel };
  };
  const dropAll = () => {
    for (const b of blocks) b.cancel();
    blocks = [];
  };

  const readNow = async (offset: number, length: number): Promise<Uint8Array> => {
    const end = Math.min(size, offset + length);
    if (end <= offset) return new Uint8Array(0);
    const forward = previousEnd !== undefined && offset >= previousEnd;
    previousEnd = end;
    // Blocks wholly before this read will not be asked for again.
    while (blocks[0] && blocks[0].end <= offset) blocks.shift()!.cancel();
    if (blocks[0] && blocks[0].start > offset) dropAll();
    const last = () => blocks[blocks.length - 1]!;
    if (!blocks.length) blocks.push(fetchBlock(offset, end));
    else if (last().end < end) blocks.push(fetchBlock(last().end, end));
    if (forward) {
      const step = end - offset;
      let held = blocks.reduce((s, b) => s + (b.end - Math.max(b.start, offset)), 0) - step;
      while (blocks.length < depth && last().end < size && held + step <= maxBytes) {
        blocks.push(fetchBlock(last().end, Math.min(size, last().end + step)));
        held += step;
      }
    }
    const used = blocks.filter((b) => b.start < end);
    let parts: Uint8Array[];
    try {
      parts = await Promise.all(used.map((b) => b.bytes));
    } catch (e) {
      dropAll();
      throw e;
    }
    blocks = blocks.filter((b) => b.end > end); // the one straddling `end` and the read-ahead stay
    if (used.length === 1) return parts[0]!.subarray(offset - used[0]!.start, end - used[0]!.start);
    const out = new Uint8Array(end - offset);
    used.forEach((b, i) => {
      const from = Math.max(b.start, offset);
      out.set(parts[i]!.subarray(from - b.start, Math.min(b.end, end) - b.start), from - offset);
    });
    return out;
  };

  let tail: Promise<unknown> = Promise.resolve();
  return (offset, length) => {
    const result = tail.then(() => readNow(offset, length));
    tail = result.catch(() => undefined);
    return result;
  };
}
