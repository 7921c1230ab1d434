import { open } from 'node:fs/promises';
import { basename } from 'node:path';
import type { ByteSource } from '../io/byte-source.js';

/** A local file, read with positioned reads. Close it when done. */
export async function fileSource(path: string): Promise<ByteSource & { close(): Promise<void> }> {
  const handle = await open(path, 'r');
  const { size } = await handle.stat();
  return {
    size,
    name: basename(path),
    read: async (offset, length) => {
      const n = Math.max(0, Math.min(size, offset + length) - offset);
      const buf = new Uint8Array(n);
      let done = 0;
      while (done < n) {
        const { bytesRead } = await handle.read(buf, done, n - done, offset + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return buf.subarray(0, done);
    },
    close: () => handle.close(),
  };
}
