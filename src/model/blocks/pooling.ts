import { uniformData } from '../../gpu/allocator.js';
import type { ModelConfig, Pooling } from '../config.js';
import type { ForwardRecorder, Op, ResidualStream } from '../recorder.js';

/** shaders/encoder_ops.wgsl's pool modes. */
export const POOL_MODES: Record<Pooling, number> = { mean: 1, cls: 2, last: 3 };

/** What an embedding model's pooling leaves for the host to read: one vector of the model's width. */
export interface PoolingHead {
  /** The ops after the last layer: final norm of every row, pooling, dense projections. */
  ops: Op[];
  pooled: GPUBuffer;
  /** The rows pooled, [start, end) of the step (the host writes (0, n): one input per step). */
  spans: GPUBuffer;
}

/**
 * A decoder's embedding head (llama.cpp's t_embd, then build_pooling and build_dense_out): the
 * final RMSNorm of the step's rows, pooled (mean, first or last row), then EmbeddingGemma's dense
 * projections where the model has them. The ops are returned, not added to the recorder's lists:
 * the host runs them instead of the output head, on an input's last step.
 */
export function recordPoolingHead(r: ForwardRecorder, residual: ResidualStream, pooling: Pooling): PoolingHead {
  const c = r.config;
  const a = r.alloc;
  const pooled = a.storage('pooled', c.dim * 4);
  const spans = a.storage('pool_spans', 8);
  const kernel = r.kernels.get('pool');
  const params = a.uniform('pool', uniformData([{ u: c.dim }, { u: POOL_MODES[pooling] }]));
  const ops: Op[] = [
    r.rmsnorm(residual.x, r.vector('output_norm.weight'), residual.normed),
    { kernel, bindGroup: r.kernels.bindGroup(kernel, [pooled, residual.normed, params, r.step, spans]), grid: () => [Math.ceil(c.dim / 64), 1, 1] },
  ];
  if (c.denseOut) {
    const hidden = a.storage('dense_hidden', c.denseOut.hidden * 4);
    ops.push(...r.matmul(r.matrix('dense_2.weight'), pooled, hidden, { oneToken: true }), ...r.matmul(r.matrix('dense_3.weight'), hidden, pooled, { oneToken: true }));
  }
  return { ops, pooled, spans };
}

/** The buffers the pooling head makes (for the fit check before loading). */
export function poolingBuffers(c: ModelConfig): { name: string; bytes: number }[] {
  if (!c.pooling) return [];
  return [{ name: 'pooled', bytes: c.dim * 4 }, ...(c.denseOut ? [{ name: 'dense_hidden', bytes: c.denseOut.hidden * 4 }] : [])];
}
