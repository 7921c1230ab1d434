import { uniformData, type GpuAllocator } from '../gpu/allocator.js';
import type { GpuContext } from '../gpu/context.js';
import type { Kernel, Kernels } from '../gpu/kernels.js';
import type { GpuLayout } from '../quant/formats.js';
import type { ModelConfig } from './config.js';
import { barrierWorkgroup, decodeGemv, matmulParams, MATMUL_MODES, ROWS_WORKGROUP } from './kernel-shapes.js';
import type { TensorPlan } from './weights.js';

/** A weight matrix on the GPU: one buffer, or several holding consecutive runs of rows. */
export type GpuMatrix = { buffer: GPUBuffer; layout: GpuLayout; rowStart: number }[];

/** One recorded dispatch of the forward pass. `grid` maps the step's token count to workgroups. */
export interface Op {
  kernel: Kernel | ((n: number) => Kernel);
  bindGroup: GPUBindGroup;
  grid: (n: number) => [number, number, number];
}

/**
 * The residual stream `x` that every block adds its output to, and `normed`, the normalized copy
 * a block reads (also scratch for a block's output before its post-norm): a row per token.
 */
export interface ResidualStream {
  x: GPUBuffer;
  normed: GPUBuffer;
}

/**
 * Records the forward pass once, at load, as two lists of dispatches: decode (a step of one token)
 * and prefill (a step of several). Most ops are in both; where a fused decode kernel exists, decode
 * runs it and prefill runs the plain kernels it replaces (see `stage`). The blocks (blocks/*.ts)
 * record through this, with the shared ops below (matmul, rmsnorm, residual adds).
 */
export class ForwardRecorder {
  readonly decode: Op[] = [];
  readonly prefill: Op[] = [];
  /**
   * The decode GEMVs' `WG` (tuneDecodeWorkgroup), set once timed, before the first op is recorded;
   * empty on CPU adapters, whose decode kernels have none to choose.
   */
  decodeSize: Record<string, number> = {};

  constructor(
    readonly gpu: GpuContext,
    readonly config: ModelConfig,
    readonly kernels: Kernels,
    readonly alloc: GpuAllocator,
    /** The step uniform (shaders/common.wgsl's Step): every op binds it last. */
    readonly step: GPUBuffer,
    private readonly plans: TensorPlan[],
    private readonly buffers: Map<string, GPUBuffer>,
  ) {}

  /** Ops that every step runs. */
  add(...ops: Op[]): void {
    this.decode.push(...ops);
    this.prefill.push(...ops);
  }

  /**
   * A stage of the pass that decode runs as the one `fused` dispatch where there is one (its
   * matrices can be fused), and prefill as the `plain` dispatches it stands for.
   */
  stage(plain: Op[], fused: Op | undefined): void {
    if (!fused) return this.add(...plain);
    this.decode.push(fused);
    this.prefill.push(...plain);
  }

  /** The weight matrix `name`, in its parts. */
  matrix(name: string): GpuMatrix {
    return this.plans.filter((p) => p.matrix === name).map((p) => ({ buffer: this.buffers.get(p.name)!, layout: p.layout!, rowStart: p.rowStart }));
  }

  /** The f32 vector (a norm weight, a bias) `name`. */
  vector(name: string): GPUBuffer {
    return this.buffers.get(name)!;
  }

  /**
   * output ← w · input, a dispatch per part of `w`: a GEMV for one token (or `oneToken`, the head's
   * last token), a GEMM for more. `mode` says how the result lands (matmul.wgsl's output modes).
   */
  matmul(w: GpuMatrix, input: GPUBuffer, output: GPUBuffer, how: { mode?: keyof typeof MATMUL_MODES; cap?: number; oneToken?: boolean } = {}): Op[] {
    const { gpu, kernels: k } = this;
    const totalRows = w.reduce((n, part) => n + part.layout.rows, 0);
    return w.map((part) => {
      const l = part.layout;
      const params = this.alloc.uniform('matmul', matmulParams(l, { yStride: totalRows, mode: how.mode, yOffset: part.rowStart, cap: how.cap }));
      const { name, grid: gemvGrid } = decodeGemv(gpu.cpuEmulated, l.rows, l.cols);
      const gemv = k.get(name, l.kind, this.decodeSize);
      // Prefill: 16x16 tiles through workgroup memory on GPUs; a thread per 4 rows and 4 tokens,
      // with no barriers, on CPU adapters (shaders/matmul.wgsl).
      const gemm = k.get(gpu.cpuEmulated ? 'gemm_rows' : 'gemm', l.kind);
      const gemmGrid = (n: number): [number, number, number] =>
        gpu.cpuEmulated ? [Math.ceil(l.rows / 4 / ROWS_WORKGROUP), Math.ceil(n / 4), 1] : [Math.ceil(l.rows / 16), Math.ceil(n / 16), 1];
      const decode = (n: number) => n === 1 || how.oneToken === true;
      return {
        kernel: (n: number) => (decode(n) ? gemv : gemm),
        bindGroup: k.bindGroup(gemv, [part.buffer, input, output, params, this.step]),
        grid: (n: number) => (decode(n) ? gemvGrid : gemmGrid(n)),
      };
    });
  }

  /** output ← rmsnorm(input) · weight, per token (or the last one only); `accumulate` adds to output. */
  rmsnorm(input: GPUBuffer, weight: GPUBuffer, output: GPUBuffer, how: { lastOnly?: boolean; accumulate?: boolean } = {}): Op {
    const c = this.config;
    const kernel = this.kernels.get('rmsnorm', undefined, barrierWorkgroup(this.gpu.cpuEmulated, 'rmsnorm'));
    const lastOnly = how.lastOnly === true;
    const params = this.alloc.uniform('rmsnorm', uniformData([{ u: c.dim }, { f: c.normEps }, { u: lastOnly ? 1 : 0 }, { u: how.accumulate ? 1 : 0 }]));
    return { kernel, bindGroup: this.kernels.bindGroup(kernel, [input, weight, output, params, this.step]), grid: (n) => [lastOnly ? 1 : n, 1, 1] };
  }

  /** x += w · input, or with a post-norm (Gemma 2) x += rmsnorm(w · input) · postNorm. */
  residualAdd(residual: ResidualStream, w: GpuMatrix, input: GPUBuffer, postNorm: GPUBuffer | undefined): Op[] {
    if (!postNorm) return this.matmul(w, input, residual.x, { mode: 'accumulate' });
    return [...this.matmul(w, input, residual.normed), this.rmsnorm(residual.normed, postNorm, residual.x, { accumulate: true })];
  }
}

/** Matrices a fused decode kernel can take: each in one buffer, all with the same columns. */
export function fusable(...matrices: GpuMatrix[]): boolean {
  return matrices.every((m) => m.length === 1 && m[0]!.layout.cols === matrices[0]![0]!.layout.cols);
}
