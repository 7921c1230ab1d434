import { readGGUF, type GGUFFile } from '../gguf/gguf.js';
import type { GpuContext } from '../gpu/context.js';
import { LlamaModel, type LoadOptions } from '../model/llama.js';
import { GGUFTokenizer } from '../tokenizer/tokenizer.js';
import { fileSource } from './file-source.js';
import { nodeGpuContext } from './gpu.js';

/** Reads a GGUF file's header; the file stays open for tensor reads until `close`. */
export async function openGGUF(path: string): Promise<{ file: GGUFFile; close: () => Promise<void> }> {
  const source = await fileSource(path);
  try {
    return { file: await readGGUF(source), close: () => source.close() };
  } catch (e) {
    await source.close();
    throw e;
  }
}

export interface LoadedModel {
  gpu: GpuContext;
  file: GGUFFile;
  model: LlamaModel;
  tokenizer: GGUFTokenizer;
  dispose(): Promise<void>;
}

/** Loads a local GGUF onto the GPU in Node (CLI, benchmarks, GPU tests). */
export async function loadModelFile(path: string, options: LoadOptions & { gpu?: GpuContext } = {}): Promise<LoadedModel> {
  const { file, close } = await openGGUF(path);
  try {
    const tokenizer = GGUFTokenizer.fromGGUF(file);
    const gpu = options.gpu ?? (await nodeGpuContext());
    const model = await LlamaModel.load(gpu, file, options);
    await close();
    return {
      gpu, file, model, tokenizer,
      dispose: async () => {
        model.dispose();
        if (!options.gpu) gpu.device.destroy();
      },
    };
  } catch (e) {
    await close();
    throw e;
  }
}
