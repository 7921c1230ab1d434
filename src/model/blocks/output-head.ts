import { MAX_TOP_LOGPROBS } from '../../generate-options.js';
import type { ModelConfig } from '../config.js';
import { barrierWorkgroup } from '../kernel-shapes.js';
import type { ForwardRecorder, Op } from '../recorder.js';

/** The sampler's state (shaders/sample_params.wgsl's SampleState): tokens in history, then the chosen token. */
export const SAMPLER_STATE_BYTES = 16;
/** Where the sampler state holds the chosen token (SampleState.token). */
export const TOKEN_OFFSET = 8;
/** The sampler's uniform (shaders/sample_params.wgsl's SampleParams). */
const SAMPLER_PARAMS_BYTES = 48;
/** Where the sampler's uniform holds its filter bits (SampleParams.filters). */
export const FILTERS_OFFSET = 40;
/** SampleParams.filters: sample only tokens the allowed-token mask sets; add the logit bias. */
export const FILTER_MASK = 1;
export const FILTER_BIAS = 2;
/** Where the sampler's uniform holds how many top entries the log-prob record lists (SampleParams.top_logprobs). */
export const TOP_LOGPROBS_OFFSET = 44;
/** A step's log-prob record (shaders/logprobs.wgsl, whose MAX_TOP is MAX_TOP_LOGPROBS): the chosen token's logprob and id, then (id, logprob) pairs. */
export const LOGPROB_RECORD_BYTES = (2 + 2 * MAX_TOP_LOGPROBS) * 4;

/** The buffers the host writes and reads around the head. */
export interface OutputHead {
  logits: GPUBuffer;
  samplerParams: GPUBuffer;
  samplerState: GPUBuffer;
  /** The tokens in context, for the penalties. */
  history: GPUBuffer;
  /** Constrained decoding's allowed tokens, packed 32 per word (used with FILTER_MASK). */
  allowed: GPUBuffer;
  /** logit_bias, one f32 per token (used with FILTER_BIAS). */
  bias: GPUBuffer;
  /**
   * The log-prob dispatch, run after the sampler only when a request asks for log-probs (it is
   * in neither op list), and the record it writes.
   */
  logprobs: Op;
  logprobRecord: GPUBuffer;
}

/**
 * The head: the last token's logits (final norm, then the output matrix or the tied embedding,
 * soft-capped for Gemma 2), then the sampler, which writes the chosen token into `tokens` for the
 * next decode step and into the sampler state for the host.
 */
export function recordOutputHead(r: ForwardRecorder, x: GPUBuffer, tokens: GPUBuffer, contextLength: number): OutputHead {
  const c = r.config;
  const a = r.alloc;
  const xLast = a.storage('x_last', c.dim * 4);
  const logits = a.storage('logits', c.vocabSize * 4);
  r.add(r.rmsnorm(x, r.vector('output_norm.weight'), xLast, { lastOnly: true }));
  const softcap = c.finalSoftcap ? ({ mode: 'softcap', cap: c.finalSoftcap } as const) : {};
  r.add(...r.matmul(r.matrix(c.tiedOutput ? 'token_embd.weight' : 'output.weight'), xLast, logits, { oneToken: true, ...softcap }));

  const samplerParams = a.create('sampler_params', SAMPLER_PARAMS_BYTES, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
  const counts = a.storage('sampler_counts', c.vocabSize * 4);
  const samplerState = a.storage('sampler_state', SAMPLER_STATE_BYTES);
  const history = a.storage('history', (contextLength + 1) * 4);
  const work = a.storage('sampler_work', c.vocabSize * 4);
  const allowed = a.storage('sampler_allowed', maskBytes(c.vocabSize));
  const bias = a.storage('sampler_bias', c.vocabSize * 4);
  const sample = r.kernels.get('sample', undefined, barrierWorkgroup(r.gpu.cpuEmulated, 'sample'));
  r.add({
    kernel: sample,
    bindGroup: r.kernels.bindGroup(sample, [logits, work, history, samplerState, tokens, samplerParams, counts, allowed, bias]),
    grid: () => [1, 1, 1],
  });
  const logprobRecord = a.storage('sampler_logprobs', LOGPROB_RECORD_BYTES);
  const logprobKernel = r.kernels.get('logprobs', undefined, barrierWorkgroup(r.gpu.cpuEmulated, 'logprobs'));
  const logprobs: Op = {
    kernel: logprobKernel,
    bindGroup: r.kernels.bindGroup(logprobKernel, [logits, bias, samplerState, logprobRecord, samplerParams]),
    grid: () => [1, 1, 1],
  };
  return { logits, samplerParams, samplerState, history, allowed, bias, logprobs, logprobRecord };
}

/** The bytes of a packed allowed-token mask: one bit per token, whole words. */
export function maskBytes(vocabSize: number): number {
  return Math.ceil(vocabSize / 32) * 4;
}

/** The buffers the head makes (for the fit check before loading). */
export function outputHeadBuffers(c: ModelConfig, contextLength: number): { name: string; bytes: number }[] {
  return [
    { name: 'logits', bytes: c.vocabSize * 4 },
    { name: 'sampler_work', bytes: c.vocabSize * 4 },
    { name: 'sampler_counts', bytes: c.vocabSize * 4 },
    { name: 'sampler_allowed', bytes: maskBytes(c.vocabSize) },
    { name: 'sampler_bias', bytes: c.vocabSize * 4 },
    { name: 'sampler_logprobs', bytes: LOGPROB_RECORD_BYTES },
    { name: 'history', bytes: (contextLength + 1) * 4 },
  ];
}
