/**
 * Every kernel against the CPU reference (test/helpers/reference.ts) on random shapes, odd
 * sizes included. Tolerances: sums in f32 over K terms differ from the f64 reference by about
 * K * 2^-24 relative to sum|a*b|, so matmul-like checks allow 1e-5 * sum|a*b| + 1e-6.
 */
import { beforeAll, describe, expect, test } from 'vitest';
import { GGMLType } from '../src/gguf/ggml-types.js';
import { uniformData } from '../src/gpu/allocator.js';
import type { GpuContext } from '../src/gpu/context.js';
import { Kernels, type KernelName } from '../src/gpu/kernels.js';
import { barrierWorkgroup, cpuGrid, DECODE_WORKGROUPS, decodeGemv, matmulParams, ROWS_WORKGROUP, ropeAngles, tuneDecodeWorkgroup } from '../src/model/llama.js';
import { FILTER_BIAS, FILTER_MASK } from '../src/model/blocks/output-head.js';
import { tiledAttentionSize } from '../src/model/blocks/attention.js';
import { f16ToF32, f32ToF16 } from '../src/quant/f16.js';
import { gpuLayout, planTensor } from '../src/quant/formats.js';
import { headBench } from '../src/node/bench.js';
import { encodeRandom } from './helpers/encode.js';
import { buffer, randomF32, readBack, rng, testGpu } from './helpers/gpu.js';
import { gelu, rmsnorm, rope, softmax } from './helpers/reference.js';

let gpu: GpuContext;
let kernels: Kernels;
/** The same kernels summing over workgroups with subgroup operations, where the adapter has them. */
let subgroupKernels: Kernels | undefined;
beforeAll(async () => {
  gpu = await testGpu();
  kernels = new Kernels(gpu.device, false);
  if (gpu.subgroups) subgroupKernels = new Kernels(gpu.device, true);
});

/** What a kernel that sums over its workgroup is tested with: workgroup memory, and subgroups where the adapter has them. */
function reductions(): [string, Kernels][] {
  return [['workgroup memory', kernels], ...(subgroupKernels ? [['subgroups', subgroupKernels] as [string, Kernels]] : [])];
}

function step(pos: number, n: number): GPUBuffer {
  return buffer(gpu, new Uint32Array([pos, n, 0, 0]), GPUBufferUsage.UNIFORM);
}

function uniform(fields: { u?: number; f?: number }[]): GPUBuffer {
  return buffer(gpu, new Uint8Array(uniformData(fields)), GPUBufferUsage.UNIFORM);
}

function run(name: KernelName, kind: Parameters<Kernels['get']>[1], bindings: GPUBuffer[], grid: [number, number, number], constants: Record<string, number> = {}, using = kernels): void {
  const k = using.get(name, kind, constants);
  const enc = gpu.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(k.pipeline);
  pass.setBindGroup(0, using.bindGroup(k, bindings));
  pass.dispatchWorkgroups(...grid);
  pass.end();
  gpu.device.queue.submit([enc.finish()]);
}

/** Values as f16 pairs packed in u32 (the f16 KV cache), low half first. */
function packF16(a: Float32Array): Uint32Array<ArrayBuffer> {
  return Uint32Array.from({ length: a.length / 2 }, (_, i) => (f32ToF16(a[2 * i]!) | (f32ToF16(a[2 * i + 1]!) << 16)) >>> 0);
}

function unpackF16(words: Uint32Array): Float32Array {
  return Float32Array.from({ length: words.length * 2 }, (_, i) => f16ToF32((words[i >> 1]! >>> ((i & 1) * 16)) & 0xffff));
}

async function readF32(b: GPUBuffer, n: number): Promise<Float32Array> {
  return new Float32Array(await readBack(gpu, b, n * 4));
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: (i: number) => number, label: string): void {
  expect(actual.length, label).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i]! - expected[i]!);
    if (!(err <= tolerance(i))) throw new Error(`${label}: element ${i} is ${actual[i]}, expected ${expected[i]} (tolerance ${tolerance(i)})`);
  }
}

const TYPES = [
  ['f32', GGMLType.F32], ['f16', GGMLType.F16], ['bf16', GGMLType.BF16], ['q8_0', GGMLType.Q8_0], ['q4_0', GGMLType.Q4_0],
  ['q4_1', GGMLType.Q4_1], ['q5_0', GGMLType.Q5_0], ['q5_1', GGMLType.Q5_1],
  ['q4_k', GGMLType.Q4_K], ['q5_k', GGMLType.Q5_K], ['q6_k', GGMLType.Q6_K],
] as const;
const BLOCK_OF: Record<string, number> = { q8_0: 32, q4_0: 32, q4_1: 32, q5_0: 32, q5_1: 32, q4_k: 256, q5_k: 256, q6_k: 256 };

/** A random weight matrix uploaded in its GPU layout, with its CPU dequantization. */
function randomMatrix(type: number, rows: number, cols: number, seed: number) {
  const bytes = encodeRandom(type, rows, cols, rng(seed));
  const { format, kind } = planTensor(type, cols, 'test');
  const values = format.dequantize(bytes, rows * cols);
  const layout = gpuLayout(kind, rows, cols);
  const packed = new Uint32Array(layout.totalWords);
  if (kind === format.kind) format.repack(bytes, layout, packed);
  else for (let r = 0; r < rows; r++) packed.set(new Uint32Array(values.buffer, r * cols * 4, cols), r * layout.rowWords);
  return { layout, values, buffer: buffer(gpu, packed) };
}

describe('matmul (gemv, gemv_rows, gemm, gemm_rows) with fused dequantization', () => {
  for (const [kindName, type] of TYPES) {
    const block = BLOCK_OF[kindName];
    // The larger shapes give gemv_rows more groups of rows than threads (cpuGrid), so threads stride.
    const shapes = block === 256 ? [[1, 256], [5, 512], [67, 256], [300, 256]] : block ? [[1, 32], [5, 64], [67, 96], [130, 256], [300, 64]] : [[1, 1], [7, 13], [33, 172], [65, 100], [130, 257], [300, 41]];
    test(`${kindName}: random shapes, 1..40 tokens, accumulate, SwiGLU, GeGLU and soft-capping`, async () => {
      let seed = 1;
      for (const [rows, cols] of shapes as [number, number][]) {
        const w = randomMatrix(type, rows, cols, seed++);
        const variants = [
          ...reductions().map(([how, using]) => [1, 'gemv', how, using] as const),
          ...([[1, 'gemv_rows'], [3, 'gemm'], [17, 'gemm'], [40, 'gemm'], [3, 'gemm_rows'], [17, 'gemm_rows'], [40, 'gemm_rows']] as const).map(([n, v]) => [n, v, '', kernels] as const),
        ];
        for (const [n, variant, how, using] of variants) {
          const x = randomF32(n * cols, rng(seed++));
          for (const mode of ['plain', 'accumulate', 'swiglu', 'geglu', 'softcap'] as const) {
            const outRows = n;
            const initial = randomF32(outRows * rows, rng(seed++), 4);
            const y = buffer(gpu, mode === 'accumulate' || mode === 'swiglu' || mode === 'geglu' ? initial : new Float32Array(outRows * rows));
            const cap = 3;
            const params = uniform([
              { u: rows }, { u: cols }, { u: w.layout.rowWords }, { u: w.layout.scaleOffset },
              { u: cols }, { u: rows }, { u: { accumulate: 1, swiglu: 2, geglu: 3, softcap: 4 }[mode as string] ?? 0 }, { u: 0 }, { f: cap },
            ]);
            const grid: [number, number, number] =
              variant === 'gemv' ? decodeGemv(false, rows, cols).grid : variant === 'gemv_rows' ? decodeGemv(true, rows, cols).grid
                : variant === 'gemm_rows' ? [Math.ceil(rows / 4 / ROWS_WORKGROUP), Math.ceil(n / 4), 1] : [Math.ceil(rows / 16), Math.ceil(n / 16), 1];
            run(variant, w.layout.kind, [w.buffer, buffer(gpu, x), y, params, step(0, n)], grid, {}, using);
            const got = await readF32(y, outRows * rows);
            const expected = new Float32Array(outRows * rows);
            const bound = new Float32Array(outRows * rows);
            for (let t = 0; t < n; t++) {
              for (let r = 0; r < rows; r++) {
                let s = 0, abs = 0;
                for (let c = 0; c < cols; c++) {
                  s += w.values[r * cols + c]! * x[t * cols + c]!;
                  abs += Math.abs(w.values[r * cols + c]! * x[t * cols + c]!);
                }
                const i = t * rows + r;
                const g = initial[i]!;
                const act = mode === 'swiglu' ? g / (1 + Math.exp(-g)) : gelu(g);
                const glu = mode === 'swiglu' || mode === 'geglu';
                expected[i] = glu ? act * s : mode === 'softcap' ? cap * Math.tanh(s / cap) : s + (mode === 'accumulate' ? g : 0);
                bound[i] = glu
                  // plus the activation's own error (WGSL's exp and tanh are not correctly rounded)
                  ? Math.abs(act) * (1e-5 * abs + 1e-6) + 1e-5 * Math.abs(s) * (1 + Math.abs(g)) + 1e-6
                  : 1e-5 * abs + 1e-6 + (mode === 'accumulate' ? 1e-6 * Math.abs(g) : 0);
              }
            }
            expectClose(got, expected, (i) => bound[i]!, `${kindName} ${variant} ${how} ${rows}x${cols} n=${n} ${mode}`);
          }
        }
      }
    });
  }
});

test('gemv at every workgroup size the load-time tuning picks from, with either reduction', async () => {
  let seed = 100;
  for (const [type, rows, cols] of [[GGMLType.Q4_0, 67, 96], [GGMLType.F16, 9, 300], [GGMLType.Q6_K, 5, 512]] as const) {
    const w = randomMatrix(type, rows, cols, seed++);
    const x = randomF32(cols, rng(seed++));
    const expected = matVec(w, rows, cols, x);
    for (const size of DECODE_WORKGROUPS) for (const [how, using] of reductions()) {
      const y = buffer(gpu, rows * 4);
      const params = buffer(gpu, new Uint8Array(matmulParams(w.layout)), GPUBufferUsage.UNIFORM);
      run('gemv', w.layout.kind, [w.buffer, buffer(gpu, x), y, params, step(0, 1)], decodeGemv(false, rows, cols).grid, { WG: size }, using);
      expectClose(await readF32(y, rows), Float32Array.from(expected.y), (r) => 1e-5 * expected.abs[r]! + 1e-6, `gemv WG=${size} ${how} ${w.layout.kind} ${rows}x${cols}`);
    }
  }
  // The tuning itself: one of the sizes, the same again (remembered) for the same adapter and matrix.
  const w = randomMatrix(GGMLType.Q4_0, 64, 128, seed++);
  const [x, y] = [buffer(gpu, 128 * 4), buffer(gpu, 64 * 4)];
  const chosen = await tuneDecodeWorkgroup(gpu, kernels, w, x, y, step(0, 1));
  expect(DECODE_WORKGROUPS).toContain(chosen);
  expect(await tuneDecodeWorkgroup(gpu, kernels, w, x, y, step(0, 1))).toBe(chosen);
});

/** W·x for a random matrix (from randomMatrix) and one token x, in f64, with sum |w*x|. */
function matVec(w: { values: Float32Array }, rows: number, cols: number, x: Float32Array): { y: Float64Array; abs: Float64Array } {
  const y = new Float64Array(rows), abs = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      y[r] = y[r]! + w.values[r * cols + c]! * x[c]!;
      abs[r] = abs[r]! + Math.abs(w.values[r * cols + c]! * x[c]!);
    }
  }
  return { y, abs };
}
const desc = (l: { rows: number; cols: number; rowWords: number; scaleOffset: number }) => [{ u: l.rows }, { u: l.cols }, { u: l.rowWords }, { u: l.scaleOffset }];

describe('fused decode GEMVs, workgroup (workgroup memory or subgroup sums) and thread-per-row variants', () => {
  /** The GPU kernel with each reduction, at the smallest and the largest tunable workgroup size. */
  const fusedGpuVariants = <N extends KernelName>(name: N) =>
    reductions().flatMap(([how, using]) => [DECODE_WORKGROUPS[0], DECODE_WORKGROUPS[DECODE_WORKGROUPS.length - 1]].map((size) => [name, how, using, size as number] as const));

  const KIND_PAIRS = [[GGMLType.Q4_0, GGMLType.Q4_0, 64], [GGMLType.Q4_K, GGMLType.Q6_K, 256], [GGMLType.F16, GGMLType.Q8_0, 96], [GGMLType.F32, GGMLType.F32, 13], [GGMLType.F16, GGMLType.F32, 45]] as const;

  test('gemv_swiglu: silu or gelu of gate·x, times up·x, different kinds per matrix', async () => {
    for (const [gateType, upType, cols] of KIND_PAIRS) for (const activation of ['silu', 'gelu'] as const) {
      const rows = 67;
      const gateW = randomMatrix(gateType, rows, cols, 3), upW = randomMatrix(upType, rows, cols, 4);
      const x = randomF32(cols, rng(5));
      const g = matVec(gateW, rows, cols, x), u = matVec(upW, rows, cols, x);
      const act = (v: number) => (activation === 'gelu' ? gelu(v) : v / (1 + Math.exp(-v)));
      const expected = Float32Array.from(g.y, (v, r) => act(v) * u.y[r]!);
      for (const [variant, how, using, size] of [...fusedGpuVariants('gemv_swiglu'), ['gemv_swiglu_rows', '', kernels, 0] as const]) {
        const y = buffer(gpu, rows * 4);
        const params = uniform([...desc(gateW.layout), ...desc(upW.layout), { u: activation === 'gelu' ? 1 : 0 }]);
        const grid: [number, number, number] = variant === 'gemv_swiglu' ? [Math.ceil(rows / 2), 1, 1] : cpuGrid(Math.ceil(rows / 4), 8 * cols);
        run(variant, [gateW.layout.kind, upW.layout.kind], [gateW.buffer, upW.buffer, buffer(gpu, x), y, params, step(0, 1)], grid, size ? { WG: size } : {}, using);
        // silu'(g) <= 1.1, so each dot's error passes through scaled by at most |u| and 1.1.
        expectClose(await readF32(y, rows), expected, (r) => 1.1 * Math.abs(u.y[r]!) * (1e-5 * g.abs[r]! + 1e-6) + Math.abs(g.y[r]!) * (1e-5 * u.abs[r]! + 1e-6) + 1e-6, `${variant} ${how} ${size || ''} ${gateW.layout.kind}/${upW.layout.kind} ${activation}`);
      }
    }
  });

  test('gemv_qkv: projections, biases and RoPE (adjacent, NEOX, partial) into Q and the KV cache at pos', async () => {
    const pos = 5;
    for (const [qType, vType, cols] of KIND_PAIRS) {
      // Three heads of 10 give matrices with an odd number of pairs (the CPU kernel takes two at a time).
      for (const [heads, kvHeads, headDim, ropeDim, neox, bias] of [[4, 2, 16, 16, false, false], [4, 2, 16, 16, true, true], [4, 2, 16, 8, true, false], [4, 2, 16, 8, false, true], [3, 1, 10, 10, false, true], [3, 1, 10, 6, true, false]] as const) {
        const qDim = heads * headDim, kvDim = kvHeads * headDim;
        const wq = randomMatrix(qType, qDim, cols, 6), wk = randomMatrix(qType, kvDim, cols, 7), wv = randomMatrix(vType, kvDim, cols, 8);
        const x = randomF32(cols, rng(9));
        const biases = randomF32(qDim + 2 * kvDim, rng(10));
        const table = ropeAngles(pos + 1, ropeDim, 10000);
        const constants = new Float32Array(table.length + 3 + biases.length); // biases at an odd offset
        constants.set(table);
        constants.set(biases, table.length + 3);
        const [q, k, v] = [matVec(wq, qDim, cols, x), matVec(wk, kvDim, cols, x), matVec(wv, kvDim, cols, x)];
        const withBias = (m: { y: Float64Array }, at: number) => Float32Array.from(m.y, (value, r) => value + (bias ? biases[at + r]! : 0));
        const expectedQ = withBias(q, 0), expectedK = withBias(k, qDim), expectedV = withBias(v, qDim + kvDim);
        rope(expectedQ, pos, headDim, ropeDim, 10000, undefined, neox);
        rope(expectedK, pos, headDim, ropeDim, 10000, undefined, neox);
        // The cache as f32, as f16 pairs (where head and rotary sizes are multiples of 4:
        // kvCacheBits), or not the cache: f32 rows of the new-keys buffers at row 0 (q/k norms).
        // The other outputs only with the first kinds and one GPU variant (test time).
        const variants = [...fusedGpuVariants('gemv_qkv'), ['gemv_qkv_rows', '', kernels, 0] as const];
        const outputs = (i: number) => [[32, 1], ...(qType === KIND_PAIRS[0][0] && (i === 0 || i === variants.length - 1) ? [...(headDim % 4 === 0 && ropeDim % 4 === 0 ? [[16, 1]] : []), [16, 0]] : [])] as const;
        for (const [i, [variant, how, using, size]] of variants.entries()) for (const [bits, toCache] of outputs(i)) {
          const row = toCache ? pos : 0;
          const qOut = buffer(gpu, qDim * 4), kOut = buffer(gpu, (row + 1) * kvDim * 4), vOut = buffer(gpu, (row + 1) * kvDim * 4);
          const params = uniform([...desc(wq.layout), ...desc(wk.layout), ...desc(wv.layout), { u: headDim }, { u: ropeDim }, { u: neox ? 1 : 0 }, { u: bias ? 1 : 0 }, { u: table.length + 3 }, { u: toCache }]);
          const pairs = (qDim + 2 * kvDim) / 2;
          const grid: [number, number, number] = variant === 'gemv_qkv' ? [Math.ceil(pairs / 2), 1, 1] : cpuGrid(Math.ceil(qDim / 4) + 2 * Math.ceil(kvDim / 4), 4 * cols);
          run(variant, [wq.layout.kind, wk.layout.kind, wv.layout.kind], [wq.buffer, wk.buffer, wv.buffer, buffer(gpu, x), qOut, kOut, vOut, buffer(gpu, constants), params, step(pos, 1)], grid, { ...(size ? { WG: size } : {}), KV_BITS: bits }, using);
          const label = `${variant} ${how} ${size || ''} ${wq.layout.kind}/${wv.layout.kind} heads=${heads}/${kvHeads} hd=${headDim} rope=${ropeDim} neox=${neox} bias=${bias} kv=${bits}/${toCache}`;
          // A rotation mixes two outputs, so the bound takes the larger of the pair's sums; f16 adds its rounding.
          const f16 = bits === 16 && toCache === 1;
          const bound = (m: { abs: Float64Array }, e: Float32Array) => (i: number) => 1e-5 * Math.max(...m.abs) + 2e-6 + (f16 ? 2 ** -11 * Math.abs(e[i]!) : 0);
          const cacheRow = async (b: GPUBuffer) => {
            if (!f16) return (await readF32(b, (row + 1) * kvDim)).subarray(row * kvDim);
            return unpackF16(new Uint32Array(await readBack(gpu, b, ((row + 1) * kvDim * 4) / 2))).subarray(row * kvDim);
          };
          expectClose(await readF32(qOut, qDim), expectedQ, bound(q, expectedQ), label + ' Q');
          expectClose(await cacheRow(kOut), expectedK, bound(k, expectedK), label + ' K');
          expectClose(await cacheRow(vOut), expectedV, bound(v, expectedV), label + ' V');
        }
      }
    }
  });
});

describe('embedding lookup', () => {
  for (const [kindName, type] of TYPES) {
    test(`${kindName}: rows of the dequantized matrix`, async () => {
      const block = BLOCK_OF[kindName];
      const [rows, cols] = block ? [50, block === 256 ? 512 : 96] : [50, 37];
      const w = randomMatrix(type, rows, cols, 7);
      const tokens = new Uint32Array([3, 0, 49, 3, 17]);
      const out = buffer(gpu, tokens.length * cols * 4);
      const scale = 1.5; // Gemma multiplies by sqrt(dim); any factor is exact enough here
      const params = uniform([{ u: rows }, { u: cols }, { u: w.layout.rowWords }, { u: w.layout.scaleOffset }, { u: 0 }, { u: rows }, { f: scale }]);
      run('embed', w.layout.kind, [w.buffer, buffer(gpu, tokens), out, params, step(0, tokens.length)], [Math.ceil(cols / 8 / 64), tokens.length, 1]);
      const got = await readF32(out, tokens.length * cols);
      const expected = new Float32Array(tokens.length * cols);
      tokens.forEach((t, i) => expected.set(w.values.subarray(t * cols, (t + 1) * cols).map((v) => v * scale), i * cols));
      expectClose(got, expected, () => 0, `${kindName} embed`);
    });
  }
});

test('rmsnorm: every token, the last token only, and added to the output', async () => {
  for (const dim of [1, 7, 64, 100, 300]) {
    const n = 5;
    const x = randomF32(n * dim, rng(dim), 3);
    const w = randomF32(dim, rng(dim + 1));
    const initial = randomF32(n * dim, rng(dim + 2));
    // The shader's workgroup and the smaller one of CPU adapters.
    for (const [lastOnly, accumulate] of [[false, false], [true, false], [false, true]] as const) for (const constants of [{}, barrierWorkgroup(true, 'rmsnorm')]) for (const [how, using] of reductions()) {
      const out = buffer(gpu, accumulate ? initial : n * dim * 4);
      const params = uniform([{ u: dim }, { f: 1e-5 }, { u: lastOnly ? 1 : 0 }, { u: accumulate ? 1 : 0 }]);
      run('rmsnorm', undefined, [buffer(gpu, x), buffer(gpu, w), out, params, step(0, n)], [lastOnly ? 1 : n, 1, 1], constants, using);
      const rowsOut = lastOnly ? 1 : n;
      const got = await readF32(out, rowsOut * dim);
      const expected = new Float32Array(rowsOut * dim);
      for (let r = 0; r < rowsOut; r++) {
        const src = lastOnly ? n - 1 : r;
        rmsnorm(expected.subarray(r * dim, (r + 1) * dim), x.subarray(src * dim, (src + 1) * dim), w, 1e-5);
      }
      if (accumulate) expected.forEach((v, i) => (expected[i] = v + initial[i]!));
      expectClose(got, expected, (i) => 1e-5 * (1 + Math.abs(expected[i]!)), `rmsnorm ${how} dim=${dim} lastOnly=${lastOnly}`);
    }
  }
});

test('qk_norm_rope: per-head norms of queries and new keys, then RoPE from a table at an offset, or none', async () => {
  for (const [heads, kvHeads, headDim, ropeDim] of [[1, 1, 2, 2], [4, 2, 64, 48], [2, 1, 256, 256], [3, 3, 100, 100]] as const) {
    const n = 5, pos = 9, offsetPositions = 3;
    for (const [neox, rotate] of [[false, true], [true, true], [true, false]] as const) {
      const q = randomF32(n * heads * headDim, rng(headDim), 3);
      const k = randomF32(n * kvHeads * headDim, rng(headDim + 1), 3);
      const qw = randomF32(headDim, rng(headDim + 2)), kw = randomF32(headDim, rng(headDim + 3));
      // The layer's table starts after another one of `offsetPositions` positions.
      const table = new Float32Array((offsetPositions + pos + n) * ropeDim);
      table.set(ropeAngles(pos + n, ropeDim, 10000), offsetPositions * ropeDim);
      const params = uniform([{ u: heads }, { u: kvHeads }, { u: headDim }, { u: ropeDim }, { u: neox ? 1 : 0 }, { u: (offsetPositions * ropeDim) / 2 }, { f: 1e-6 }, { u: rotate ? 1 : 0 }]);
      for (const constants of [{}, barrierWorkgroup(true, 'qk_norm_rope')]) for (const [how, using] of reductions()) {
        const qBuf = buffer(gpu, q), kBuf = buffer(gpu, k);
        run('qk_norm_rope', undefined, [qBuf, kBuf, buffer(gpu, table), buffer(gpu, qw), buffer(gpu, kw), params, step(pos, n)], [heads + kvHeads, n, 1], constants, using);
        const expectedQ = q.slice(), expectedK = k.slice();
        for (let t = 0; t < n; t++) {
          for (const [v, rows, at, w] of [[expectedQ, heads, t, qw], [expectedK, kvHeads, t, kw]] as const) {
            for (let h = 0; h < rows; h++) {
              const head = v.subarray((at * rows + h) * headDim, (at * rows + h + 1) * headDim);
              rmsnorm(head, head, w, 1e-6);
              if (rotate) rope(head, pos + t, headDim, ropeDim, 10000, undefined, neox);
            }
          }
        }
        const label = `qk_norm_rope ${how} heads=${heads}/${kvHeads} hd=${headDim} rope=${ropeDim} neox=${neox} rotate=${rotate}`;
        expectClose(await readF32(qBuf, q.length), expectedQ, (i) => 1e-5 * (1 + Math.abs(expectedQ[i]!)), label + ' Q');
        expectClose(await readF32(kBuf, k.length), expectedK, (i) => 1e-5 * (1 + Math.abs(expectedK[i]!)), label + ' K');
      }
    }
  }
});

test('rope: queries and new keys in one dispatch; adjacent and NEOX pairs, partial rotary dims', async () => {
  for (const [heads, kvHeads, headDim, ropeDim] of [[1, 1, 2, 2], [3, 3, 8, 8], [4, 2, 64, 32], [2, 1, 100, 100]] as const) {
    const n = 6, pos = 37;
    for (const neox of [false, true]) {
      const q = randomF32(n * heads * headDim, rng(headDim));
      const k = randomF32(n * kvHeads * headDim, rng(headDim + 1));
      const qBuf = buffer(gpu, q), kBuf = buffer(gpu, k);
      const params = uniform([{ u: heads }, { u: kvHeads }, { u: headDim }, { u: ropeDim }, { u: neox ? 1 : 0 }]);
      const table = buffer(gpu, ropeAngles(pos + n, ropeDim, 10000));
      run('rope', undefined, [qBuf, kBuf, table, params, step(pos, n)], [Math.ceil(((heads + kvHeads) * ropeDim) / 2 / 64), n, 1]);
      const expectedQ = q.slice(), expectedK = k.slice();
      for (let t = 0; t < n; t++) {
        for (const [v, rows, at] of [[expectedQ, heads, t], [expectedK, kvHeads, t]] as const) {
          const stride = rows * headDim;
          rope(v.subarray(at * stride, (at + 1) * stride), pos + t, headDim, ropeDim, 10000, undefined, neox);
        }
      }
      // The table is exact to f32 rounding, so only the rotation's own rounding remains.
      const label = `rope heads=${heads}/${kvHeads} hd=${headDim} rope=${ropeDim} neox=${neox}`;
      expectClose(await readF32(qBuf, q.length), expectedQ, (i) => 1e-6 * (1 + Math.abs(expectedQ[i]!)), label + ' Q');
      expectClose(await readF32(kBuf, k.length), expectedK, (i) => 1e-6 * (1 + Math.abs(expectedK[i]!)), label + ' K');
    }
  }
});

test('kv_store: a step\'s new keys and values into the cache rows at pos, as f32 or f16 pairs', async () => {
  const kvDim = 12, n = 5, pos = 3;
  const k = randomF32(n * kvDim, rng(1), 3), v = randomF32(n * kvDim, rng(2), 3);
  for (const bits of [32, 16] as const) {
    const words = ((pos + n + 1) * kvDim * bits) / 32;
    // The rows around the step's must keep what they hold.
    const kCache = buffer(gpu, new Uint32Array(words).fill(7)), vCache = buffer(gpu, new Uint32Array(words).fill(7));
    run('kv_store', undefined, [buffer(gpu, k), buffer(gpu, v), kCache, vCache, uniform([{ u: kvDim }]), step(pos, n)], [1, n, 1], { KV_BITS: bits });
    for (const [cache, values] of [[kCache, k], [vCache, v]] as const) {
      const got = new Uint32Array(await readBack(gpu, cache, words * 4));
      const rowWords = (kvDim * bits) / 32;
      const expected = new Uint32Array(words).fill(7);
      expected.set(bits === 32 ? new Uint32Array(values.buffer) : packF16(values), pos * rowWords);
      expect(Array.from(got), `kv_store ${bits}`).toEqual(Array.from(expected));
    }
  }
});

test('attention: causal, GQA, head sizes up to 256, fewer and more keys than chunks, soft-capping, sliding window', async () => {
  const cases = [
    [1, 1, 2, 0, 1, 0, 0], [8, 4, 8, 0, 5, 0, 0], [4, 2, 64, 100, 1, 0, 0], [6, 3, 96, 70, 9, 0, 0], [2, 1, 256, 130, 3, 0, 0], [2, 2, 16, 1000, 2, 0, 0],
    [4, 2, 32, 40, 6, 2, 0], [4, 2, 32, 40, 6, 0, 7], [2, 1, 16, 300, 3, 1.5, 50],
    // Two query blocks of attention_tiled (64 tokens each), one partial; a window inside the block.
    [2, 1, 8, 5, 70, 0, 0], [2, 2, 8, 3, 66, 0, 20],
  ] as const;
  // The shader's defaults, the sizes a model sets (its own head_dim, fewer key chunks on CPU
  // adapters), and an f16 cache (KV_BITS 16: the reference reads the same f16 values).
  // And the GPUs' prefill kernel, attention_tiled, at the tile sizes a model sets (f32 and f16).
  // (SwiftShader runs the tiled kernel slowly: over at most 300 keys and heads up to 128, f16 on the two-block cases.)
  const configs = (hd: number, pos: number, n: number): [KernelName, Record<string, number>][] => {
    const split: [KernelName, Record<string, number>][] = [['attention', {}], ['attention', { MAX_HEAD_DIM: hd, ...barrierWorkgroup(true, 'attention') }], ['attention', { MAX_HEAD_DIM: hd, KV_BITS: 16 }]];
    const tiled: [KernelName, Record<string, number>][] = [['attention_tiled', tiledAttentionSize(hd, 32)], ...(n > 64 ? [['attention_tiled', tiledAttentionSize(hd, 16)] as [KernelName, Record<string, number>]] : [])];
    return [...(n <= 64 ? split : []), ...(n > 1 && pos + n <= 300 && hd <= 128 ? tiled : [])];
  };
  for (const [heads, kvHeads, hd, pos, n, cap, window] of cases) for (const [name, constants] of configs(hd, pos, n)) {
    const keys = pos + n;
    const f16 = constants.KV_BITS === 16;
    const q = randomF32(n * heads * hd, rng(hd), 2);
    const k = randomF32(keys * kvHeads * hd, rng(hd + 1), 2);
    const v = randomF32(keys * kvHeads * hd, rng(hd + 2));
    if (f16) for (const a of [k, v]) a.forEach((x, i) => (a[i] = f16ToF32(f32ToF16(x))));
    const cached = (a: Float32Array<ArrayBuffer>) => (f16 ? buffer(gpu, packF16(a)) : buffer(gpu, a));
    const out = buffer(gpu, n * heads * hd * 4);
    const partial = buffer(gpu, n * heads * 16 * (hd + 2) * 4);
    const params = uniform([{ u: heads }, { u: kvHeads }, { u: hd }, { f: 1 / Math.sqrt(hd) }, { f: cap }, { u: window }]);
    run(name, undefined, [buffer(gpu, q), cached(k), cached(v), partial, out, params, step(pos, n)], name === 'attention' ? [heads, n, 1] : [heads, Math.ceil(n / 64), 1], constants);
    const got = await readF32(out, n * heads * hd);
    const expected = new Float32Array(n * heads * hd);
    const group = heads / kvHeads;
    for (let t = 0; t < n; t++) {
      for (let h = 0; h < heads; h++) {
        const kvh = Math.floor(h / group);
        const att = new Float32Array(pos + t + 1);
        for (let p = 0; p <= pos + t; p++) {
          let s = 0;
          for (let i = 0; i < hd; i++) s += q[(t * heads + h) * hd + i]! * k[(p * kvHeads + kvh) * hd + i]!;
          s /= Math.sqrt(hd);
          // Outside the window a key weighs nothing.
          att[p] = window && pos + t - p >= window ? -Infinity : cap ? cap * Math.tanh(s / cap) : s;
        }
        softmax(att);
        for (let i = 0; i < hd; i++) {
          let s = 0;
          for (let p = 0; p <= pos + t; p++) s += att[p]! * v[(p * kvHeads + kvh) * hd + i]!;
          expected[(t * heads + h) * hd + i] = s;
        }
      }
    }
    expectClose(got, expected, () => 1e-5, `${name} h=${heads}/${kvHeads} hd=${hd} pos=${pos} n=${n} cap=${cap} window=${window} ${JSON.stringify(constants)}`);
  }
});

test('attention without the causal mask: every key of the step, within half the window either side, or per-token spans (packed inputs)', async () => {
  const heads = 4, kvHeads = 2, hd = 32, n = 12;
  const q = randomF32(n * heads * hd, rng(11), 2);
  const k = randomF32(n * kvHeads * hd, rng(12), 2);
  const v = randomF32(n * kvHeads * hd, rng(13));
  // Three inputs packed back to back: rows 0-4, 5-6, 7-11.
  const inputs = [[0, 5], [5, 7], [7, 12]];
  const spanOf = (t: number) => inputs.find(([a, b]) => t >= a! && t < b!)!;
  const cases = [
    { name: 'bidirectional', window: 0, keys: (_t: number) => [0, n] },
    { name: 'bidirectional, window 6', window: 6, keys: (t: number) => [Math.max(0, t - 3), Math.min(n, t + 4)] },
    { name: 'spans', window: 0, keys: spanOf },
  ];
  for (const c of cases) {
    const out = buffer(gpu, n * heads * hd * 4);
    const partial = buffer(gpu, n * heads * 16 * (hd + 2) * 4);
    const params = uniform([{ u: heads }, { u: kvHeads }, { u: hd }, { f: 1 / Math.sqrt(hd) }, { f: 0 }, { u: c.window }, { u: 1 }]);
    const bindings = [buffer(gpu, q), buffer(gpu, k), buffer(gpu, v), partial, out, params, step(0, n)];
    if (c.name === 'spans') run('attention_spans', undefined, [...bindings, buffer(gpu, Uint32Array.from({ length: 2 * n }, (_, i) => spanOf(i >> 1)[i & 1]!))], [heads, n, 1]);
    else run('attention', undefined, bindings, [heads, n, 1]);
    const got = await readF32(out, n * heads * hd);
    const expected = new Float32Array(n * heads * hd);
    for (let t = 0; t < n; t++) {
      const [lo, hi] = c.keys(t) as [number, number];
      for (let h = 0; h < heads; h++) {
        const kvh = Math.floor(h / (heads / kvHeads));
        const att = Float32Array.from({ length: hi - lo }, (_, j) => {
          let s = 0;
          for (let i = 0; i < hd; i++) s += q[(t * heads + h) * hd + i]! * k[((lo + j) * kvHeads + kvh) * hd + i]!;
          return s / Math.sqrt(hd);
        });
        softmax(att);
        for (let i = 0; i < hd; i++) {
          let s = 0;
          for (let j = 0; j < hi - lo; j++) s += att[j]! * v[((lo + j) * kvHeads + kvh) * hd + i]!;
          expected[(t * heads + h) * hd + i] = s;
        }
      }
    }
    expectClose(got, expected, () => 1e-5, `attention ${c.name}`);
  }
});

test('add_bias: every token row (token t at row t, wherever the step is)', async () => {
  const n = 4, dim = 70, pos = 9;
  const v = randomF32((n + 1) * dim, rng(5));
  const bias = randomF32(dim, rng(6));
  const buf = buffer(gpu, v);
  run('add_bias', undefined, [buf, buffer(gpu, bias), uniform([{ u: dim }, { u: dim }]), step(pos, n)], [Math.ceil(dim / 64), n, 1]);
  const got = await readF32(buf, (n + 1) * dim);
  // The row past the step's keeps what it holds.
  const expected = v.map((x, i) => (i < n * dim ? x + bias[i % dim]! : x));
  expectClose(got, expected, (i) => 1e-6 * (1 + Math.abs(expected[i]!)), 'add_bias');
});

// With the shader's workgroup, and with the smaller one of CPU adapters.
test('headBench: the output head and the sampler timed per vocabulary size', async () => {
  const lines = await headBench(gpu, [300, 1000], 256);
  expect(lines.map((l) => l.vocab)).toEqual([300, 1000]);
  for (const l of lines) {
    for (const ms of [l.head_ms, l.sample_greedy_ms, l.sample_top_p_ms]) expect(ms).toBeGreaterThan(0);
    expect(l.ns_per_token).toBeCloseTo(((l.head_ms + l.sample_top_p_ms) * 1e6) / l.vocab, 6);
  }
});

for (const constants of [{}, barrierWorkgroup(true, 'sample')]) describe(`sampling ${JSON.stringify(constants)}`, () => {
  interface Sampling {
    temperature?: number; topK?: number; topP?: number; minP?: number; penalty?: number; seed?: number; frequency?: number; presence?: number;
    /** The tokens that may be chosen (FILTER_MASK); all when absent. */
    allowed?: number[];
    /** Added to the logits (FILTER_BIAS). */
    bias?: Float32Array<ArrayBuffer>;
  }
  /** Runs the sampler `draws` times on the same logits; returns the chosen tokens. */
  async function sample(logits: Float32Array<ArrayBuffer>, s: Sampling, history: number[] = [], draws = 1): Promise<number[]> {
    const vocab = logits.length;
    const params = uniform([
      { u: vocab }, { u: s.topK ?? 0 }, { f: s.topP ?? 1 }, { f: s.minP ?? 0 }, { f: s.temperature ?? 0 },
      { f: s.penalty ?? 1 }, { u: 64 }, { u: s.seed ?? 0 }, { f: s.frequency ?? 0 }, { f: s.presence ?? 0 },
      { u: (s.allowed ? FILTER_MASK : 0) | (s.bias ? FILTER_BIAS : 0) },
    ]);
    const allowed = new Uint32Array(Math.ceil(vocab / 32));
    for (const t of s.allowed ?? []) allowed[t >> 5]! |= 1 << (t & 31);
    const hist = buffer(gpu, Uint32Array.from([...history, ...new Array(draws + 1).fill(0)]));
    const state = buffer(gpu, new Uint32Array([history.length, 0, 0, 0]));
    const next = buffer(gpu, 16);
    const counts = buffer(gpu, vocab * 4);
    const bindings = [buffer(gpu, logits), buffer(gpu, vocab * 4), hist, state, next, params, counts, buffer(gpu, allowed), buffer(gpu, s.bias ?? new Float32Array(vocab))];
    for (let i = 0; i < draws; i++) run('sample', undefined, bindings, [1, 1, 1], constants);
    const out = new Uint32Array(await readBack(gpu, hist, (history.length + draws) * 4));
    return Array.from(out.slice(history.length));
  }

  test('the allowed-token mask and the logit bias: greedy and sampled, penalties never unmask a token', async () => {
    const vocab = 1000;
    const logits = randomF32(vocab, rng(3), 5);
    const allowed = [3, 64, 65, 999];
    for (const seed of [1, 2, 3]) {
      for (const t of await sample(logits, { temperature: 1.5, seed, allowed }, [], 8)) expect(allowed).toContain(t);
    }
    let best = allowed[0]!;
    for (const t of allowed) if (logits[t]! > logits[best]!) best = t;
    expect(await sample(logits, { allowed })).toEqual([best]);
    // Penalties on masked tokens in the history (negative logits grow more negative; positive
    // ones shrink) never bring them back.
    const negative = new Float32Array(vocab).fill(-50);
    negative[7] = -60;
    expect(await sample(negative, { allowed: [7], penalty: 1.5, frequency: 2, presence: 2 }, [0, 1, 2, 7, 7])).toEqual([7]);
    const bias = new Float32Array(vocab);
    bias[500] = 100;
    expect(await sample(logits, { temperature: 1, seed: 4, bias }, [], 4)).toEqual([500, 500, 500, 500]);
    bias[500] = -100;
    bias[best] = 100;
    expect(await sample(logits, { bias, allowed: [500, best] })).toEqual([best]);
  });

  test('greedy picks the largest logit, the lowest index on ties, any vocabulary size', async () => {
    for (const vocab of [1, 7, 1000, 32001]) {
      const logits = randomF32(vocab, rng(vocab), 5);
      let best = 0;
      for (let i = 1; i < vocab; i++) if (logits[i]! > logits[best]!) best = i;
      expect(await sample(logits, {})).toEqual([best]);
    }
    expect(await sample(new Float32Array([1, 3, 0, 3, 3]), {})).toEqual([1]);
  });

  test('repetition penalty pushes tokens in the history down', async () => {
    const logits = new Float32Array([2, 1.9, -1, -1.1]);
    expect(await sample(logits, { penalty: 1.5 }, [])).toEqual([0]);
    expect(await sample(logits, { penalty: 1.5 }, [0, 0])).toEqual([1]);
    // Negative logits are multiplied, so they fall further.
    expect(await sample(new Float32Array([-1, -1.2]), { penalty: 1.5 }, [0])).toEqual([1]);
  });

  test('frequency and presence penalties subtract per occurrence and once', async () => {
    const logits = new Float32Array([2, 1.5, 1.2]);
    // Token 0 seen twice: 2 - 2 * 0.2 = 1.6 still wins over 1.5; three times: 1.4 loses.
    expect(await sample(logits, { frequency: 0.2 }, [0, 0])).toEqual([0]);
    expect(await sample(logits, { frequency: 0.2 }, [0, 0, 0])).toEqual([1]);
    // Presence counts once however often: 2 - 0.4 = 1.6 beats 1.5 with any number of repeats.
    expect(await sample(logits, { presence: 0.4 }, [0, 0, 0, 0])).toEqual([0]);
    expect(await sample(logits, { presence: 0.9 }, [0, 1])).toEqual([2]);
    // Counts are cleared after each draw: a second run with no history is unpenalised.
    expect(await sample(logits, { frequency: 5 }, [])).toEqual([0]);
  });

  test('seeded draws are reproducible and follow the softmax', async () => {
    const probs = [0.4, 0.3, 0.2, 0.1];
    const logits = new Float32Array(probs.map(Math.log));
    const a = await sample(logits, { temperature: 1, seed: 42 }, [], 1500);
    const b = await sample(logits, { temperature: 1, seed: 42 }, [], 1500);
    const c = await sample(logits, { temperature: 1, seed: 43 }, [], 1500);
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    for (const [i, p] of probs.entries()) {
      const freq = a.filter((t) => t === i).length / a.length;
      // 1500 draws: one standard deviation is at most 0.013; allow four.
      expect(Math.abs(freq - p), `token ${i}`).toBeLessThan(0.052);
    }
  });

  test('top-k, top-p and min-p keep exactly the tokens they should', async () => {
    const probs = [0.05, 0.5, 0.3, 0.15];
    const logits = new Float32Array(probs.map(Math.log));
    const seen = async (s: Sampling) => new Set(await sample(logits, { temperature: 1, seed: 7, ...s }, [], 400));
    expect(await seen({ topK: 1 })).toEqual(new Set([1]));
    expect(await seen({ topK: 2 })).toEqual(new Set([1, 2]));
    expect(await seen({ topP: 0.7 })).toEqual(new Set([1, 2]));
    expect(await seen({ topP: 0.85 })).toEqual(new Set([1, 2, 3]));
    expect(await seen({ minP: 0.5 })).toEqual(new Set([1, 2]));
    expect(await seen({ minP: 0.2 })).toEqual(new Set([1, 2, 3]));
    expect(await seen({})).toEqual(new Set([0, 1, 2, 3]));
    // Low temperature sharpens: 0.05 makes token 1 all but certain.
    expect(await seen({ temperature: 0.05 })).toEqual(new Set([1]));
  });
});
