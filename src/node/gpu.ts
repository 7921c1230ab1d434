import { existsSync } from 'node:fs';
import { WebGGUFError } from '../errors.js';
import { createGpuContext, type GpuContext } from '../gpu/context.js';
import { useXGrammarLoader } from '../grammar/xgrammar.js';
import { loadXGrammarInNode } from './xgrammar.js';

const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
/** Instances that found no adapter; Dawn for Node must not free an instance it has used. */
const probed: GPU[] = [];

/**
 * Dawn for Node, an optional peer dependency: browser apps never install its native binaries,
 * so Node use must bring it (`npm install webgpu`).
 */
async function dawn(): Promise<typeof import('webgpu')> {
  try {
    return await import('webgpu');
  } catch (e) {
    throw new WebGGUFError('no-webgpu', 'WebGPU in Node needs the optional peer dependency "webgpu" (Dawn): npm install webgpu', { cause: e });
  }
}

/**
 * WebGPU in Node through Dawn (the `webgpu` package). When the system's Vulkan drivers offer no
 * usable adapter and Debian's Chromium is installed, its SwiftShader (a CPU implementation of
 * Vulkan) is used instead, unless the caller chose drivers with VK_ICD_FILENAMES/VK_DRIVER_FILES.
 */
export async function nodeGpuContext(options: Parameters<typeof createGpuContext>[1] = {}): Promise<GpuContext> {
  // Everything that runs a model in Node starts here; constrained decoding's XGrammar needs Node's loader.
  useXGrammarLoader(loadXGrammarInNode);
  const { create, globals } = await dawn();
  Object.assign(globalThis, globals);
  // Mesa's device-select layer (an implicit Vulkan layer) asks Wayland for the session's default
  // GPU on every instance; with no session (XDG_RUNTIME_DIR unset: servers, CI, containers) that
  // prints two lines of "XDG_RUNTIME_DIR is invalid" to stderr and selects nothing.
  if (!process.env.XDG_RUNTIME_DIR) process.env.NODEVICE_SELECT ??= '1';
  let instance = create([]);
  const chosen = process.env.VK_ICD_FILENAMES || process.env.VK_DRIVER_FILES;
  if (!chosen && existsSync(SWIFTSHADER_ICD) && !(await instance.requestAdapter())) {
    probed.push(instance);
    process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
    instance = create([]);
  }
  return createGpuContext(instance, options);
}
