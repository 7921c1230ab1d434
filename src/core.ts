/// <reference types="@webgpu/types" preserve="true" />
/**
 * webgguf/core: the building blocks that run the same in browsers and Node (GGUF reader, model,
 * tokenizer, generation loop, byte sources, stores) for apps that drive the model themselves.
 * `createEngine` (webgguf, webgguf/node) builds on them.
 */
export { WebGGUFError, ModelFormatError, isWebGGUFError, type ErrorCode } from './errors.js';
export { bytesSource, blobSource, urlSource, type ByteSource } from './io/byte-source.js';
export { readGGUF, type GGUFFile, type TensorInfo, type MetadataValue } from './gguf/gguf.js';
export { readConfig, SUPPORTED_ARCHITECTURES, type ModelConfig } from './model/config.js';
export { createGpuContext, type GpuContext } from './gpu/context.js';
export { LlamaModel, GREEDY, type LoadOptions, type SamplingParams } from './model/llama.js';
export { GGUFTokenizer, vocabFromGGUF, type VocabSpec, type EncodeOptions } from './tokenizer/tokenizer.js';
export { StreamDecoder } from './tokenizer/stream.js';
export { generate, DEFAULT_SAMPLING, type GenerateOptions, type GeneratedToken, type FinishReason } from './generate.js';
export { GrammarEngine, type Constraint } from './grammar/constraint.js';
export { checkConstraintSpec, type ConstraintSpec } from './grammar/spec.js';
export { EngineCore, type CoreOptions } from './engine/core.js';
export { indexedDBStore, memoryStore, type KeyValueStore } from './cache/store.js';
export type * from './engine/types.js';
export type { ChatMessage } from './chat/messages.js';
