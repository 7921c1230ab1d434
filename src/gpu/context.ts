import { WebGGUFError } from '../errors.js';

/** The device plus what we learned about the adapter when we asked for it. */
export interface GpuContext {
  /** Held so that the instance lives as long as the device (Dawn for Node frees it on GC). */
  instance: GPU;
  device: GPUDevice;
  adapterName: string;
  /**
   * A CPU implementation (SwiftShader, or any fallback adapter). Workgroup barriers are costly
   * there, so kernels with a barrier-free variant use it.
   */
  cpuEmulated: boolean;
  /** Optional features that were available and enabled. */
  features: string[];
  /**
   * Kernels may use subgroup operations: the device has the `subgroups` feature and WGSL its
   * `subgroup_id` builtin (which subgroup an invocation is in is up to the implementation).
   */
  subgroups: boolean;
  limits: {
    maxStorageBufferBindingSize: number;
    maxBufferSize: number;
    maxStorageBuffersPerShaderStage: number;
    maxComputeWorkgroupStorageSize: number;
  };
}

/** Optional features the kernels have variants for. */
const WANTED_FEATURES = ['subgroups', 'shader-f16'] as const;

/**
 * Requests a device with the adapter's real limits (the defaults cap storage bindings at 128 MiB
 * even on desktop GPUs). `limitOverrides` lowers them, to test phone-sized limits anywhere.
 */
export async function createGpuContext(
  gpu: GPU | undefined,
  options: { limitOverrides?: Partial<GpuContext['limits']> } = {},
): Promise<GpuContext> {
  if (!gpu) {
    throw new WebGGUFError('no-webgpu', 'WebGPU is not available here (navigator.gpu is missing). Use a browser with WebGPU enabled, e.g. Chrome 113+.');
  }
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new WebGGUFError('no-webgpu', 'WebGPU is available but no GPU adapter was found.');
  const features = WANTED_FEATURES.filter((f) => adapter.features.has(f));
  const limits = {
    maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
    maxBufferSize: adapter.limits.maxBufferSize,
    maxStorageBuffersPerShaderStage: adapter.limits.maxStorageBuffersPerShaderStage,
    maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize,
    ...options.limitOverrides,
  };
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredFeatures: features as GPUFeatureName[], requiredLimits: limits });
  } catch (e) {
    throw new WebGGUFError('gpu', `Could not create a WebGPU device: ${(e as Error).message}`, { cause: e });
  }
  const info = adapter.info;
  const adapterName = [info?.vendor, info?.architecture, info?.device, info?.description].filter(Boolean).join(' ') || 'unknown adapter';
  const cpuEmulated = Boolean((info as { isFallbackAdapter?: boolean }).isFallbackAdapter) || info?.architecture === 'swiftshader';
  const subgroups = features.includes('subgroups') && Boolean(gpu.wgslLanguageFeatures?.has('subgroup_id'));
  return { instance: gpu, device, adapterName, cpuEmulated, features, subgroups, limits };
}

/**
 * Runs a model's setup (`build`) with WebGPU's out-of-memory and validation errors caught: the
 * first failure, thrown or reported by the device, is thrown as a typed error once `cleanUp` has
 * freed what the setup made.
 */
export async function buildChecked(device: GPUDevice, build: () => Promise<void>, cleanUp: () => void): Promise<void> {
  device.pushErrorScope('out-of-memory');
  device.pushErrorScope('validation');
  let failure: unknown;
  try {
    await build();
  } catch (e) {
    failure = e;
  }
  const validation = await device.popErrorScope();
  const oom = await device.popErrorScope();
  if (!failure && oom) failure = new WebGGUFError('gpu', `Out of GPU memory while loading: ${oom.message}`);
  if (!failure && validation) failure = new WebGGUFError('gpu', `WebGPU rejected the model's setup: ${validation.message}`);
  if (failure) {
    cleanUp();
    throw failure;
  }
}
