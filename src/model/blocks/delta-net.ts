import { uniformData } from '../../gpu/allocator.js';
import type { DeltaNetConfig, LayerPlan, ModelConfig } from '../config.js';
import type { ForwardRecorder, Op, ResidualStream } from '../recorder.js';

/** A DeltaNet layer's recurrent state on the GPU, beside the KV cache. */
export interface RecurrentState {
  /** The last convKernel - 1 rows of q/k/v before the conv. */
  conv: GPUBuffer;
  /** One state x state matrix per value head. */
  matrix: GPUBuffer;
}

/**
 * Qwen3.5's Gated DeltaNet block: x += Wout · gatedNorm(deltaRule(silu(conv(Wqkv·norm(x)))), Wz·norm(x)),
 * the delta rule's decay and step from Walpha·norm(x) and Wbeta·norm(x). The projections are plain
 * matmuls (a GEMV for one token); then shaders/delta_net.wgsl's conv (and gates) and
 * shaders/delta_net_recurrence.wgsl's delta rule: token by token for decode, a chunk of tokens
 * at a time for prefill (the chunked form; a test holds the two equal). The state persists across steps:
 * a new sequence must start from zeros (LlamaModel resets it at position 0).
 */
export class DeltaNetBlocks {
  /** Each layer's state, in layer order (what the model resets, saves and restores). */
  readonly states: RecurrentState[] = [];
  private readonly qkv: GPUBuffer;
  private readonly z: GPUBuffer;
  private readonly beta: GPUBuffer;
  private readonly alpha: GPUBuffer;
  private readonly y: GPUBuffer;

  constructor(
    private readonly r: ForwardRecorder,
    maxBatch: number,
  ) {
    const a = r.alloc;
    const bytes = new Map(deltaNetScratch(r.config.deltaNet!, maxBatch).map((b) => [b.name, b.bytes]));
    this.qkv = a.storage('dn_qkv', bytes.get('dn_qkv')!);
    this.z = a.storage('dn_z', bytes.get('dn_z')!);
    this.beta = a.storage('dn_beta', bytes.get('dn_beta')!);
    this.alpha = a.storage('dn_alpha', bytes.get('dn_alpha')!);
    this.y = a.storage('dn_y', bytes.get('dn_y')!);
  }

  /** Records layer `layer`'s DeltaNet block and makes its recurrent state. */
  record(layer: LayerPlan, residual: ResidualStream): void {
    const { r } = this;
    const c = r.config;
    const d = c.deltaNet!;
    const p = layer.prefix;
    const sizes = recurrentStateBytes(d);
    const state: RecurrentState = {
      conv: r.alloc.storage(`conv_state.${layer.index}`, sizes.conv),
      matrix: r.alloc.storage(`delta_state.${layer.index}`, sizes.matrix),
    };
    this.states.push(state);
    r.add(r.rmsnorm(residual.x, r.vector(p + 'attn_norm.weight'), residual.normed));
    r.add(
      ...r.matmul(r.matrix(p + 'attn_qkv.weight'), residual.normed, this.qkv),
      ...r.matmul(r.matrix(p + 'attn_gate.weight'), residual.normed, this.z),
      ...r.matmul(r.matrix(p + 'ssm_beta.weight'), residual.normed, this.beta),
      ...r.matmul(r.matrix(p + 'ssm_alpha.weight'), residual.normed, this.alpha),
    );
    r.add(this.conv(p, state));
    // The delta rule: token by token for decode, in chunks for prefill (the same arithmetic reordered).
    const [recurrence, chunked] = this.deltaRule(p, state);
    r.decode.push(recurrence);
    r.prefill.push(chunked);
    r.add(...r.residualAdd(residual, r.matrix(p + 'ssm_out.weight'), this.y, undefined));
  }

  /** The causal conv over q/k/v (in place, through the conv state) and the heads' beta and decay. */
  private conv(p: string, state: RecurrentState): Op {
    const { r } = this;
    const d = r.config.deltaNet!;
    const convDim = convChannels(d);
    const kernel = r.kernels.get('delta_net_conv');
    const params = r.alloc.uniform('delta_net_conv', uniformData([{ u: convDim }, { u: d.convKernel }, { u: d.vHeads }]));
    return {
      kernel,
      bindGroup: r.kernels.bindGroup(kernel, [
        r.vector(p + 'ssm_conv1d.weight'), this.qkv, state.conv, this.beta, this.alpha, r.vector(p + 'ssm_dt.bias'), r.vector(p + 'ssm_a'), params, r.step,
      ]),
      grid: () => [Math.ceil(Math.max(convDim, d.vHeads) / 64), 1, 1],
    };
  }

  /**
   * The delta rule over the step's tokens, and the gated RMSNorm, into `y`: the token-by-token
   * kernel (decode) and the chunked one (prefill), over the same bindings.
   */
  private deltaRule(p: string, state: RecurrentState): [Op, Op] {
    const { r } = this;
    const c = r.config;
    const d = c.deltaNet!;
    const recurrence = r.kernels.get('delta_net_recurrence', undefined, { WG: d.state });
    const chunked = r.kernels.get('delta_net_chunked', undefined, { WG: d.state });
    const params = r.alloc.uniform('delta_net_recurrence', uniformData([{ u: d.state }, { u: d.kHeads }, { u: d.vHeads }, { f: c.normEps }]));
    const bindGroup = r.kernels.bindGroup(recurrence, [this.qkv, this.z, this.beta, this.alpha, r.vector(p + 'ssm_norm.weight'), state.matrix, this.y, params, r.step]);
    const grid = (): [number, number, number] => [d.vHeads, 1, 1];
    return [
      { kernel: recurrence, bindGroup, grid },
      { kernel: chunked, bindGroup, grid },
    ];
  }
}

/** Channels of the conv: q, k (k heads each) and v (v heads). */
function convChannels(d: DeltaNetConfig): number {
  return (2 * d.kHeads + d.vHeads) * d.state;
}

/** Bytes of one layer's recurrent state. */
export function recurrentStateBytes(d: DeltaNetConfig): { conv: number; matrix: number } {
  return { conv: Math.max(1, d.convKernel - 1) * convChannels(d) * 4, matrix: d.vHeads * d.state * d.state * 4 };
}

/** The step's scratch buffers, shared by every DeltaNet layer. */
function deltaNetScratch(d: DeltaNetConfig, maxBatch: number): { name: string; bytes: number }[] {
  const valueDim = d.vHeads * d.state;
  return [
    { name: 'dn_qkv', bytes: maxBatch * convChannels(d) * 4 },
    { name: 'dn_z', bytes: maxBatch * valueDim * 4 },
    { name: 'dn_beta', bytes: maxBatch * d.vHeads * 4 },
    { name: 'dn_alpha', bytes: maxBatch * d.vHeads * 4 },
    { name: 'dn_y', bytes: maxBatch * valueDim * 4 },
  ];
}

/** The buffers the DeltaNet blocks make (for the fit check before loading): scratch, and each layer's state. */
export function deltaNetBuffers(c: ModelConfig, recurrentLayers: number[], maxBatch: number): { name: string; bytes: number }[] {
  const d = c.deltaNet;
  if (!d) return [];
  const sizes = recurrentStateBytes(d);
  return [
    ...deltaNetScratch(d, maxBatch),
    // The live state and its checkpoint (LlamaModel.saveCheckpoint).
    ...recurrentLayers.flatMap((l) => ['state', 'checkpoint'].flatMap((kind) => [{ name: `conv_${kind}.${l}`, bytes: sizes.conv }, { name: `delta_${kind}.${l}`, bytes: sizes.matrix }])),
  ];
}
