/// <reference types="@webgpu/types" preserve="true" />
/**
 * webgguf: GGUF language models in the browser on WebGPU. This entry is what a page needs: the
 * engine runs in a module Worker (worker.js), so the page itself carries only this thin client.
 * The building blocks (GGUF reader, model, tokenizer) are in `webgguf/core`; Node uses `webgguf/node`.
 */
export { WebGGUFError, isWebGGUFError, type ErrorCode } from './errors.js';
export { createEngine, defaultGpuBudget, type Engine, type EngineOptions } from './engine/engine.js';
export type * from './engine/types.js';
export type { ChatMessage } from './chat/messages.js';
export type { GeneratedToken, SampledLogprobs } from './generate.js';
export { cosineSimilarity, type Embedding, type EmbeddingRequest, type EmbeddingResponse } from './embeddings.js';
export type { KeyValueStore } from './cache/store.js';
export type { GpuContext } from './gpu/context.js';
export { MODELS, estimateGpuBytes, type CatalogModel, type ModelId, type ModelNeeds, type ModelShape } from './models.js';
