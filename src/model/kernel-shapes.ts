import { uniformData } from '../gpu/allocator.js';
import type { GpuContext } from '../gpu/context.js';
import { timedPass, type Kernels } from '../gpu/kernels.js';
import type { GpuLayout } from '../quant/formats.js';

/**
 * Which kernel shape runs on which adapter, and the uniform data the matrix kernels read. GPUs get
 * a workgroup per row and barriers; CPU adapters (GpuContext.cpuEmulated), where barriers are
 * emulated, get the barrier-free `*_rows` kernels and small workgroups (docs/PERFORMANCE.md).
 */

/** Workgroup size of the kernels for CPU adapters (the *_rows kernels): shaders/common.wgsl's ROWS_WG. */
export const ROWS_WORKGROUP = 8;

/**
 * Smaller workgroups for the kernels that wait at barriers, on CPU adapters: there a workgroup
 * that reaches a barrier costs time growing faster than its size (SwiftShader, one barrier: about
 * 2 µs at 8 invocations, 20 µs at 64, 280 µs at 256), and the work of these kernels is small
 * enough for few invocations. The names are the shaders' own constants.
 */
export function barrierWorkgroup(cpuEmulated: boolean, kernel: 'rmsnorm' | 'qk_norm_rope' | 'sample' | 'logprobs' | 'attention'): Record<string, number> {
  if (!cpuEmulated) return {};
  return kernel === 'attention' ? { CHUNKS: 4 } : { WG: 16 };
}

/** shaders/matmul.wgsl's output modes. */
export const MATMUL_MODES = { set: 0, accumulate: 1, swiglu: 2, geglu: 3, softcap: 4 } as const;

/** A layout as shaders/weights.wgsl's WeightDesc, for uniform data. */
export function weightDesc(l: GpuLayout): { u: number }[] {
  return [{ u: l.rows }, { u: l.cols }, { u: l.rowWords }, { u: l.scaleOffset }];
}

/** shaders/matmul.wgsl's MatmulParams for a matrix (or a part of one) and how its result lands. */
export function matmulParams(
  l: GpuLayout,
  how: { yStride?: number; mode?: keyof typeof MATMUL_MODES; yOffset?: number; cap?: number } = {},
): ArrayBuffer {
  return uniformData([
    ...weightDesc(l), { u: l.cols }, { u: how.yStride ?? l.rows }, { u: MATMUL_MODES[how.mode ?? 'set'] },
    { u: how.yOffset ?? 0 }, { f: how.cap ?? 0 },
  ]);
}

/**
 * The decode GEMV this adapter runs and its grid for a matrix of `rows` x `cols`: a workgroup per
 * row on GPUs; on CPU adapters, where barriers are emulated, threads taking 4 rows at a time
 * (shaders/matmul.wgsl, cpuGrid).
 */
export function decodeGemv(cpuEmulated: boolean, rows: number, cols: number): { name: 'gemv' | 'gemv_rows'; grid: [number, number, number] } {
  return cpuEmulated ? { name: 'gemv_rows', grid: cpuGrid(Math.ceil(rows / 4), 4 * cols) } : { name: 'gemv', grid: rowsGrid(Math.ceil(rows / 4)) };
}

/** The workgroup sizes the GPU decode GEMVs (gemv, gemv_qkv, gemv_swiglu: their `WG`) can take. */
export const DECODE_WORKGROUPS = [64, 128, 256] as const;

/** tuneDecodeWorkgroup's results, by adapter, reduction and matrix. */
const tunedWorkgroups = new Map<string, number>();

/**
 * The fastest of DECODE_WORKGROUPS for `gemv` on this adapter, timed on one matrix (the best of
 * two runs of a few dispatches each, after a warm-up that compiles the pipeline). Which size
 * suits a GPU depends on its cores and memory system, so it is measured rather than guessed; the
 * result is remembered for later loads in the same page or process. `x` and `y` are scratch: at
 * least `cols` and `rows` floats.
 */
export async function tuneDecodeWorkgroup(gpu: GpuContext, kernels: Kernels, m: { buffer: GPUBuffer; layout: GpuLayout }, x: GPUBuffer, y: GPUBuffer, step: GPUBuffer): Promise<number> {
  const l = m.layout;
  const key = [gpu.adapterName, gpu.subgroups, l.kind, l.rows, l.cols].join('|');
  const known = tunedWorkgroups.get(key);
  if (known) return known;
  const device = gpu.device;
  const data = matmulParams(l);
  const params = device.createBuffer({ size: data.byteLength, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(params, 0, data);
  const grid = decodeGemv(false, l.rows, l.cols).grid;
  let best: number = DECODE_WORKGROUPS[0];
  let bestMs = Infinity;
  try {
    for (const size of DECODE_WORKGROUPS) {
      const kernel = kernels.get('gemv', l.kind, { WG: size });
      const bindGroup = kernels.bindGroup(kernel, [m.buffer, x, y, params, step]);
      const time = (dispatches: number) => timedPass(device, kernel, Array.from({ length: dispatches }, (): [GPUBindGroup, [number, number, number]] => [bindGroup, grid]));
      await time(1);
      const ms = Math.min(await time(TUNE_DISPATCHES), await time(TUNE_DISPATCHES));
      if (ms < bestMs) [best, bestMs] = [size, ms];
    }
  } finally {
    params.destroy();
  }
  tunedWorkgroups.set(key, best);
  return best;
}

/** Dispatches per timed run in tuneDecodeWorkgroup: long enough to dwarf the submit on a GPU. */
const TUNE_DISPATCHES = 20;

/** About this many weights per thread of a decode kernel on a CPU adapter (cpuGrid). */
const CPU_THREAD_WEIGHTS = 8192;

/**
 * At least this many workgroups per decode kernel on a CPU adapter (when the matrix has rows for
 * them): a CPU implementation runs a workgroup on one core, and Chromium's GPU process spreads a
 * dispatch's workgroups over two cores (stories260K q4_0 in Chromium on SwiftShader: 272-294 ->
 * 313-362 tok/s). Larger matrices already get more from CPU_THREAD_WEIGHTS.
 */
const CPU_MIN_WORKGROUPS = 2;

/**
 * The grid of a decode kernel for CPU adapters (the *_rows kernels) that loops over `units` (groups
 * of rows, pairs of rows) of `weightsPerUnit` weights each: about CPU_THREAD_WEIGHTS weights per
 * thread, but at least CPU_MIN_WORKGROUPS workgroups, and at most a thread per unit; each thread
 * strides over the units. Every group of invocations a dispatch starts pays a prologue that grows
 * with the shader (shaders/common.wgsl's ROWS_WG), so a small matrix gets few threads; a large one
 * still gets enough to keep every core busy.
 */
export function cpuGrid(units: number, weightsPerUnit: number): [number, number, number] {
  const threads = Math.min(units, Math.max(CPU_MIN_WORKGROUPS * ROWS_WORKGROUP, Math.ceil((units * weightsPerUnit) / CPU_THREAD_WEIGHTS)));
  return rowsGrid(Math.ceil(threads / ROWS_WORKGROUP));
}

/** Workgroups for one-row-per-workgroup kernels, folded into 2D beyond the 65535 limit. */
export function rowsGrid(rows: number): [number, number, number] {
  return rows <= 65535 ? [rows, 1, 1] : [65535, Math.ceil(rows / 65535), 1];
}
