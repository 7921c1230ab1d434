import { uniformData } from '../../gpu/allocator.js';
import { weightDesc } from '../kernel-shapes.js';
import type { ForwardRecorder } from '../recorder.js';

/** x ← the embedding rows of the step's tokens (times sqrt(dim) for Gemma), a dispatch per part of the matrix. */
export function recordEmbedding(r: ForwardRecorder, tokens: GPUBuffer, x: GPUBuffer): void {
  const c = r.config;
  const k = r.kernels;
  const embedding = r.matrix('token_embd.weight');
  const vocabRows = embedding.reduce((n, part) => n + part.layout.rows, 0);
  for (const part of embedding) {
    const embed = k.get('embed', part.layout.kind);
    const params = r.alloc.uniform('embed', uniformData([
      ...weightDesc(part.layout), { u: part.rowStart }, { u: vocabRows },
      { f: c.scaleEmbedding ? Math.sqrt(c.dim) : 1 },
    ]));
    r.add({
      kernel: embed,
      bindGroup: k.bindGroup(embed, [part.buffer, tokens, x, params, r.step]),
      grid: (n) => [Math.ceil(c.dim / 8 / 64), n, 1],
    });
  }
}
