import { uniformData } from '../../gpu/allocator.js';
import type { LayerPlan, ModelConfig } from '../config.js';
import { cpuGrid, rowsGrid, weightDesc } from '../kernel-shapes.js';
import { fusable, type ForwardRecorder, type GpuMatrix, type Op, type ResidualStream } from '../recorder.js';

/**
 * The feed-forward block: x += Wdown · (act(Wgate·norm(x)) * Wup·norm(x)), act = silu (SwiGLU) or
 * gelu (GeGLU). Decode runs both projections and the GLU as one fused dispatch
 * (shaders/gemv_swiglu.wgsl); prefill fuses the GLU into the up projection's output.
 */
export class FeedForwardBlocks {
  /** The gated hidden activations of a step (a row per token), shared by every layer. */
  readonly hidden: GPUBuffer;

  constructor(
    private readonly r: ForwardRecorder,
    maxBatch: number,
  ) {
    this.hidden = r.alloc.storage('gate', feedForwardBuffers(r.config, maxBatch)[0]!.bytes);
  }

  /** Records layer `layer`'s feed-forward block. */
  record(layer: LayerPlan, residual: ResidualStream): void {
    const { r, hidden } = this;
    const c = r.config;
    const p = layer.prefix;
    r.add(r.rmsnorm(residual.x, r.vector(layer.feedForwardNorm), residual.normed));
    const [wGate, wUp] = [r.matrix(p + 'ffn_gate.weight'), r.matrix(p + 'ffn_up.weight')];
    const plain = [...r.matmul(wGate, residual.normed, hidden), ...r.matmul(wUp, residual.normed, hidden, { mode: c.activation === 'gelu' ? 'geglu' : 'swiglu' })];
    r.stage(plain, fusable(wGate, wUp) ? this.fusedGateUp(layer, wGate, wUp, residual.normed) : undefined);
    const postNorm = c.postNorms ? r.vector(p + 'post_ffw_norm.weight') : undefined;
    r.add(...r.residualAdd(residual, r.matrix(p + 'ffn_down.weight'), hidden, postNorm));
  }

  /** Decode's gate and up projections and the GLU in one dispatch. */
  private fusedGateUp(layer: LayerPlan, gate: GpuMatrix, up: GpuMatrix, input: GPUBuffer): Op {
    const { r } = this;
    const c = r.config;
    const [wGate, wUp] = [gate[0]!, up[0]!];
    const kernel = r.kernels.get(r.gpu.cpuEmulated ? 'gemv_swiglu_rows' : 'gemv_swiglu', [wGate.layout.kind, wUp.layout.kind], r.decodeSize);
    const params = r.alloc.uniform('swiglu', uniformData([...weightDesc(wGate.layout), ...weightDesc(wUp.layout), { u: c.activation === 'gelu' ? 1 : 0 }]));
    return {
      kernel,
      bindGroup: r.kernels.bindGroup(kernel, [wGate.buffer, wUp.buffer, input, this.hidden, params, r.step]),
      grid: () => (r.gpu.cpuEmulated ? cpuGrid(Math.ceil(layer.ffnDim / 4), 8 * c.dim) : rowsGrid(Math.ceil(layer.ffnDim / 2))),
    };
  }
}

/** The buffers the feed-forward blocks make (for the fit check before loading); ffnDim is the widest layer's. */
export function feedForwardBuffers(c: ModelConfig, maxBatch: number): { name: string; bytes: number }[] {
  return [{ name: 'gate', bytes: maxBatch * c.ffnDim * 4 }];
}
