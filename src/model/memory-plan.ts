import { WebGGUFError } from '../errors.js';
import type { GGUFFile } from '../gguf/gguf.js';
import type { GpuContext } from '../gpu/context.js';
import { attentionBuffers, kvCacheBits, type KvCacheType } from './blocks/attention.js';
import { deltaNetBuffers } from './blocks/delta-net.js';
import { feedForwardBuffers } from './blocks/feed-forward.js';
import { perLayerEmbeddingBuffers } from './blocks/per-layer-embedding.js';
import { outputHeadBuffers } from './blocks/output-head.js';
import { poolingBuffers } from './blocks/pooling.js';
import { layerPlans, readConfig, type ModelConfig } from './config.js';
import { isEncoder, planEncoderMemory } from './encoder.js';
import { planWeights, type TensorPlan } from './weights.js';

/** LoadOptions.contextLength's default cap. */
export const DEFAULT_CONTEXT = 4096;
/** LoadOptions.maxBatch's default: prompt tokens per prefill step. */
export const DEFAULT_MAX_BATCH = 64;

/** One GPU buffer a load creates, and what it holds. */
export interface PlannedBuffer {
  name: string;
  bytes: number;
  /** Weights; per-sequence state that grows with the context (KV cache, recurrent state); work buffers. */
  role: 'weights' | 'context' | 'work';
}

/**
 * Every GPU buffer a model makes, from its GGUF header alone: the load checks it before a weight
 * byte is read, and `engine.estimate` reports it before anything is downloaded. One plan for both,
 * so the estimate is the load's own arithmetic.
 */
export interface MemoryPlan {
  config: ModelConfig;
  contextLength: number;
  maxBatch: number;
  /** Bits per value in the KV cache: 16 (f16 pairs, the default) or 32 (kvCache 'f32'; shapes f16 cannot serve). */
  kvBits: 16 | 32;
  weights: TensorPlan[];
  buffers: PlannedBuffer[];
}

export function planMemory(file: GGUFFile, options: { contextLength?: number; maxBatch?: number; maxPartBytes?: number; kvCache?: KvCacheType } = {}): MemoryPlan {
  if (options.kvCache !== undefined && options.kvCache !== 'f16' && options.kvCache !== 'f32') {
    throw new WebGGUFError('invalid-argument', `kvCache must be 'f16' or 'f32', got ${JSON.stringify(options.kvCache)}`);
  }
  if (isEncoder(file)) return planEncoderMemory(file, options);
  const config = readConfig(file);
  const kvBits = kvCacheBits(config, options.kvCache);
  const contextLength = Math.min(config.contextLength, options.contextLength ?? DEFAULT_CONTEXT);
  const maxBatch = options.maxBatch ?? (runsWhole(config) ? contextLength : DEFAULT_MAX_BATCH);
  const weights = planWeights(file, config, options.maxPartBytes);
  const residual = residualBytes(config, maxBatch);
  // Per-sequence state is named for what it is (k_cache.3, v_cache.3, and the like).
  const role = (name: string): PlannedBuffer['role'] => (/(^|_)(cache|state|checkpoint)\b/.test(name) ? 'context' : 'work');
  const buffers: PlannedBuffer[] = [
    // Tables kept in CPU memory (Gemma 4's per-layer embeddings: TensorPlan.host) take no GPU buffer.
    ...weights.filter((p) => !p.host).map((p) => ({ name: p.name, bytes: p.words * 4, role: 'weights' as const })),
    ...[
      { name: 'x', bytes: residual },
      { name: 'xb', bytes: residual },
      ...attentionBuffers(config, contextLength, maxBatch, kvBits),
      ...deltaNetBuffers(config, layerPlans(config).filter((l) => l.mixer.kind === 'delta-net').map((l) => l.index), maxBatch),
      ...feedForwardBuffers(config, maxBatch),
      ...perLayerEmbeddingBuffers(config, maxBatch),
      ...outputHeadBuffers(config, contextLength),
      ...poolingBuffers(config),
    ].map((b) => ({ ...b, role: role(b.name) })),
  ];
  return { config, contextLength, maxBatch, kvBits, weights, buffers };
}

/**
 * Whether an input must run as one step: its pooling reads every row (mean, first), or its
 * attention looks ahead (bidirectional). Last-token pooling runs in steps like a prompt.
 */
export function runsWhole(c: ModelConfig): boolean {
  return c.bidirectional || (c.pooling !== undefined && c.pooling !== 'last');
}

/** The residual stream (and its normed copy): a row of the model's width per prompt token of a step. */
export function residualBytes(c: ModelConfig, maxBatch: number): number {
  return maxBatch * c.dim * 4;
}

/** Bytes of a plan's buffers by role, their sum (all live at once: the peak) and the largest one. */
export function planTotals(plan: Pick<MemoryPlan, 'buffers'>): { weightBytes: number; contextBytes: number; workBytes: number; totalBytes: number; largest: PlannedBuffer } {
  const sum = (role: PlannedBuffer['role']) => plan.buffers.reduce((s, b) => s + (b.role === role ? b.bytes : 0), 0);
  const weightBytes = sum('weights');
  const contextBytes = sum('context');
  const workBytes = sum('work');
  const largest = plan.buffers.reduce((a, b) => (b.bytes > a.bytes ? b : a));
  return { weightBytes, contextBytes, workBytes, totalBytes: weightBytes + contextBytes + workBytes, largest };
}

const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

/**
 * Why a plan cannot load here, one sentence each (none when it fits): a buffer over the device's
 * binding or buffer size limit, or the total over the engine's memory budget.
 */
export function fitProblems(plan: Pick<MemoryPlan, 'buffers' | 'contextLength'>, limits: GpuContext['limits'], budgetBytes = Infinity): string[] {
  const { totalBytes, largest } = planTotals(plan);
  const limit = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
  const problems: string[] = [];
  if (largest.bytes > limit) {
    problems.push(`${largest.name} needs ${mib(largest.bytes)} in one buffer, and the GPU allows ${mib(limit)} (total ${mib(totalBytes)})`);
  }
  if (totalBytes > budgetBytes) {
    problems.push(
      `it needs ${mib(totalBytes)} of GPU memory at a context of ${plan.contextLength} tokens, ${mib(totalBytes - budgetBytes)} over this engine's budget of ${mib(budgetBytes)} (maxGpuBytes)`,
    );
  }
  return problems;
}

/** Refuses a plan that cannot load here (fitProblems), before anything is downloaded or allocated. */
export function checkFit(plan: Pick<MemoryPlan, 'buffers' | 'contextLength'>, limits: GpuContext['limits'], budgetBytes?: number): void {
  const problems = fitProblems(plan, limits, budgetBytes);
  if (problems.length) throw new WebGGUFError('insufficient-memory', `this model does not fit this device: ${problems.join('; ')}`);
}
