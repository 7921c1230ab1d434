import type { GpuContext } from '../../src/gpu/context.js';
import { nodeGpuContext } from '../../src/node/gpu.js';

let shared: Promise<GpuContext> | undefined;

/** One device per test process; GPU errors fail loudly instead of passing silently. */
export function testGpu(): Promise<GpuContext> {
  shared ??= nodeGpuContext().then((gpu) => {
    gpu.device.addEventListener('uncapturederror', (e) => {
      throw new Error(`uncaptured WebGPU error: ${(e as GPUUncapturedErrorEvent).error.message}`);
    });
    return gpu;
  });
  return shared;
}

export function buffer(gpu: GpuContext, data: ArrayBufferView<ArrayBuffer> | number, usage = GPUBufferUsage.STORAGE): GPUBuffer {
  const size = typeof data === 'number' ? data : data.byteLength;
  const b = gpu.device.createBuffer({ size: Math.max(16, Math.ceil(size / 4) * 4), usage: usage | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC });
  if (typeof data !== 'number') gpu.device.queue.writeBuffer(b, 0, data);
  return b;
}

export async function readBack(gpu: GpuContext, src: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
  const dst = gpu.device.createBuffer({ size: Math.ceil(bytes / 4) * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = gpu.device.createCommandEncoder();
  enc.copyBufferToBuffer(src, 0, dst, 0, Math.ceil(bytes / 4) * 4);
  gpu.device.queue.submit([enc.finish()]);
  await dst.mapAsync(GPUMapMode.READ);
  const out = dst.getMappedRange().slice(0, bytes);
  dst.destroy();
  return out;
}

/** A deterministic PRNG (mulberry32) so failures reproduce. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomF32(n: number, random: () => number, scale = 1): Float32Array<ArrayBuffer> {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (random() * 2 - 1) * scale;
  return out;
}
