import activationsWgsl from '../../shaders/activations.wgsl?raw';
import attentionWgsl from '../../shaders/attention.wgsl?raw';
import biasWgsl from '../../shaders/bias.wgsl?raw';
import commonWgsl from '../../shaders/common.wgsl?raw';
import deltaNetWgsl from '../../shaders/delta_net.wgsl?raw';
import deltaNetRecurrenceWgsl from '../../shaders/delta_net_recurrence.wgsl?raw';
import embeddingWgsl from '../../shaders/embedding.wgsl?raw';
import encoderWgsl from '../../shaders/encoder.wgsl?raw';
import encoderOpsWgsl from '../../shaders/encoder_ops.wgsl?raw';
import gemvQkvWgsl from '../../shaders/gemv_qkv.wgsl?raw';
import gemvSwigluWgsl from '../../shaders/gemv_swiglu.wgsl?raw';
import kvWgsl from '../../shaders/kv.wgsl?raw';
import matmulWgsl from '../../shaders/matmul.wgsl?raw';
import normWgsl from '../../shaders/norm.wgsl?raw';
import outputGateWgsl from '../../shaders/output_gate.wgsl?raw';
import perLayerEmbeddingWgsl from '../../shaders/per_layer_embedding.wgsl?raw';
import perLayerGateWgsl from '../../shaders/per_layer_gate.wgsl?raw';
import probeWgsl from '../../shaders/probe.wgsl?raw';
import reduceWgsl from '../../shaders/reduce.wgsl?raw';
import reduceSubgroupsWgsl from '../../shaders/reduce_subgroups.wgsl?raw';
import reduceTreeWgsl from '../../shaders/reduce_tree.wgsl?raw';
import qkNormRopeWgsl from '../../shaders/qk_norm_rope.wgsl?raw';
import ropeWgsl from '../../shaders/rope.wgsl?raw';
import logprobsWgsl from '../../shaders/logprobs.wgsl?raw';
import sampleWgsl from '../../shaders/sample.wgsl?raw';
import sampleParamsWgsl from '../../shaders/sample_params.wgsl?raw';
import scaleRowsWgsl from '../../shaders/scale_rows.wgsl?raw';
import weightsWgsl from '../../shaders/weights.wgsl?raw';
import { WebGGUFError } from '../errors.js';
import type { GpuWeightKind } from '../quant/formats.js';

/** Binding kinds, in binding order: read-only storage, read-write storage, uniform. */
type BindingKind = 'read' | 'write' | 'uniform';

interface KernelSpec {
  source: string;
  entry: string;
  bindings: BindingKind[];
  /**
   * Kernels that read weights are specialised per weight kind. With one weight binding the kernel
   * declares `W` and calls `load_w8`; with n > 1 it declares W0..W(n-1) and calls load0..load(n-1),
   * each for its own kind.
   */
  weights?: number;
  /** The kernel declares `X: array<f32>` and reads it through activations.wgsl. */
  activations?: boolean;
}

const R = 'read', RW = 'write', U = 'uniform';
const SPECS = {
  gemv: { source: matmulWgsl, entry: 'gemv', bindings: [R, R, RW, U, U], weights: 1, activations: true },
  gemv_rows: { source: matmulWgsl, entry: 'gemv_rows', bindings: [R, R, RW, U, U], weights: 1, activations: true },
  gemm: { source: matmulWgsl, entry: 'gemm', bindings: [R, R, RW, U, U], weights: 1, activations: true },
  gemm_rows: { source: matmulWgsl, entry: 'gemm_rows', bindings: [R, R, RW, U, U], weights: 1, activations: true },
  gemv_swiglu: { source: gemvSwigluWgsl, entry: 'gemv_swiglu', bindings: [R, R, R, RW, U, U], weights: 2, activations: true },
  gemv_swiglu_rows: { source: gemvSwigluWgsl, entry: 'gemv_swiglu_rows', bindings: [R, R, R, RW, U, U], weights: 2, activations: true },
  gemv_qkv: { source: gemvQkvWgsl, entry: 'gemv_qkv', bindings: [R, R, R, R, RW, RW, RW, R, U, U], weights: 3, activations: true },
  gemv_qkv_rows: { source: gemvQkvWgsl, entry: 'gemv_qkv_rows', bindings: [R, R, R, R, RW, RW, RW, R, U, U], weights: 3, activations: true },
  embed: { source: embeddingWgsl, entry: 'embed', bindings: [R, R, RW, U, U], weights: 1 },
  rmsnorm: { source: normWgsl, entry: 'rmsnorm', bindings: [R, R, RW, U, U] },
  rope: { source: ropeWgsl, entry: 'rope', bindings: [RW, RW, R, U, U] },
  qk_norm_rope: { source: qkNormRopeWgsl, entry: 'qk_norm_rope', bindings: [RW, RW, R, R, R, U, U] },
  ple_inputs: { source: perLayerEmbeddingWgsl, entry: 'ple_inputs', bindings: [RW, R, R, U, U] },
  ple_gate: { source: perLayerGateWgsl, entry: 'ple_gate', bindings: [RW, R, U, U] },
  scale_rows: { source: scaleRowsWgsl, entry: 'scale_rows', bindings: [RW, R, U, U] },
  add_bias: { source: biasWgsl, entry: 'add_bias', bindings: [RW, R, U, U] },
  attention: { source: attentionWgsl, entry: 'attention', bindings: [R, R, R, RW, RW, U, U] },
  attention_spans: { source: attentionWgsl, entry: 'attention_spans', bindings: [R, R, R, RW, RW, U, U, R] },
  layernorm: { source: encoderWgsl, entry: 'layernorm', bindings: [RW, R, R, R, R, U, U] },
  bias_gelu: { source: encoderOpsWgsl, entry: 'bias_gelu', bindings: [RW, R, U, U] },
  pool: { source: encoderOpsWgsl, entry: 'pool', bindings: [RW, R, U, U, R] },
  split_query_gate: { source: outputGateWgsl, entry: 'split_query_gate', bindings: [R, RW, U, U] },
  apply_output_gate: { source: outputGateWgsl, entry: 'apply_output_gate', bindings: [R, RW, U, U] },
  delta_net_conv: { source: deltaNetWgsl, entry: 'delta_net_conv', bindings: [R, RW, RW, RW, RW, R, R, U, U] },
  delta_net_recurrence: { source: deltaNetRecurrenceWgsl, entry: 'delta_net_recurrence', bindings: [R, R, R, R, R, RW, RW, U, U] },
  attention_tiled: { source: attentionWgsl, entry: 'attention_tiled', bindings: [R, R, R, RW, RW, U, U] },
  kv_store: { source: kvWgsl, entry: 'kv_store', bindings: [R, R, RW, RW, U, U] },
  delta_net_chunked: { source: deltaNetRecurrenceWgsl, entry: 'delta_net_chunked', bindings: [R, R, R, R, R, RW, RW, U, U] },
  probe: { source: probeWgsl, entry: 'probe', bindings: [R, RW] },
  sample: { source: sampleWgsl, entry: 'sample', bindings: [R, RW, RW, RW, RW, U, RW, R, R] },
  logprobs: { source: logprobsWgsl, entry: 'logprobs', bindings: [R, R, R, RW, U] },
} satisfies Record<string, KernelSpec>;

export type KernelName = keyof typeof SPECS;

const WEIGHT_STRUCTS = weightsWgsl.match(/struct \w+ \{[^}]*\}/g)!.join('\n');

/** The functions a WGSL source defines. */
function functionNames(wgsl: string): string[] {
  return [...wgsl.matchAll(/\bfn (\w+)\s*\(/g)].map((m) => m[1]!);
}

/**
 * weights.wgsl for weight binding i of a multi-weight kernel: WGSL cannot pass a storage buffer to
 * a function, so each binding gets its own copy of the loaders, reading W<i> under names suffixed
 * _<i>, and `load<i>`, `dot<i>` and `prep<i>` read this binding's kind.
 */
function weightsFor(kind: GpuWeightKind, i: number): string {
  // Comments go first: they mention function names too.
  let body = weightsWgsl.replace(/\/\/[^\n]*/g, '').replace(/struct \w+ \{[^}]*\}/g, '');
  const names = functionNames(body);
  body = body
    .replace(/\bW\[/g, `W${i}[`)
    .replace(new RegExp(`\\b(${names.join('|')})\\(`, 'g'), `$1_${i}(`)
    .replace(/\bload_w8\(/g, `load${i}(`);
  return `${body}\n${kindAliases(kind, { load: `load${i}`, dot: `dot${i}`, prep: `prep${i}` }, `_${i}`)}`;
}

/** Kinds whose rows may end in a partial block of 32 columns (quantized rows are whole blocks). */
const PLAIN_KINDS = new Set<GpuWeightKind>(['f32', 'f16', 'bf16']);

const BLOCK_DOT_KINDS = new Set([...weightsWgsl.matchAll(/\bfn dot32_(\w+)\s*\(/g)].map((m) => m[1]!));
const BLOCK_PREP_KINDS = new Set([...weightsWgsl.matchAll(/\bfn prep32_(\w+)\s*\(/g)].map((m) => m[1]!));

/**
 * How a kernel reads weights of `kind`: eight columns (`load`, the kind's load_w8_<kind>) or a
 * whole 32-column block (`dot`/`prep`: the kind's dot32_<kind>/prep32_<kind> where weights.wgsl
 * has them, else dot32_generic over load_w8 and plain activations). `suffix` names binding i's
 * renamed copy of the loaders in a multi-weight kernel.
 */
function kindAliases(kind: GpuWeightKind, names: { load: string; dot: string; prep: string }, suffix = ''): string {
  // A kind's own block dot reads whole blocks only (quantized rows have no partial block).
  const dot = BLOCK_DOT_KINDS.has(kind) ? `dot32_${kind}${suffix}(d, row, b, x)` : `dot32_generic${suffix}(d, row, b, x, whole)`;
  return [
    `fn ${names.load}(d: WeightDesc, row: u32, k8: u32) -> W8 { return load_w8_${kind}${suffix}(d, row, k8); }`,
    `fn ${names.dot}(d: WeightDesc, row: u32, b: u32, x: X32, whole: bool) -> f32 { return ${dot}; }`,
    `fn ${names.prep}(x: X32) -> X32 { return ${BLOCK_PREP_KINDS.has(kind) ? `prep32_${kind}${suffix}(x)` : 'x'}; }`,
  ].join('\n');
}

/** A call of one of reduce_tree.wgsl's functions. */
const CALLS_REDUCE_TREE = new RegExp(`\\b(${functionNames(reduceTreeWgsl).join('|')})\\(`);

const sharedKernels = new WeakMap<GPUDevice, Map<boolean, Kernels>>();

export interface Kernel {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
}

/**
 * Compiles each (kernel, weight kind) pipeline once per device, on first use. With `subgroups`
 * (the device has the feature and WGSL its subgroup_id), the kernels that reduce over a workgroup
 * do it with subgroup operations (reduce_subgroups.wgsl) instead of workgroup memory.
 */
export class Kernels {
  private readonly cache = new Map<string, Kernel>();
  private readonly layouts = new Map<string, GPUBindGroupLayout>();
  constructor(private readonly device: GPUDevice, private readonly subgroups: boolean) {}

  /**
   * The device's shared kernels: every model loaded on a device (a second model, a reload, the
   * speed probe's samples) reuses the pipelines the first compiled, since compiling is most of a
   * small model's load time (seconds on SwiftShader).
   */
  static forDevice(device: GPUDevice, subgroups: boolean): Kernels {
    let bySubgroups = sharedKernels.get(device);
    if (!bySubgroups) sharedKernels.set(device, (bySubgroups = new Map()));
    let kernels = bySubgroups.get(subgroups);
    if (!kernels) bySubgroups.set(subgroups, (kernels = new Kernels(device, subgroups)));
    return kernels;
  }

  /**
   * `constants` replaces the values of the source's `const NAME = ...u;` declarations: sizes
   * that must be known at compile time (private arrays), fitted to the model.
   */
  get(name: KernelName, kind?: GpuWeightKind | GpuWeightKind[], constants: Record<string, number> = {}): Kernel {
    const spec: KernelSpec = SPECS[name];
    const kinds = kind === undefined ? [] : Array.isArray(kind) ? kind : [kind];
    const id = [name, kinds.join(','), ...Object.entries(constants).map(([c, v]) => `${c}=${v}`)].join(':');
    let k = this.cache.get(id);
    if (!k) {
      let source = spec.source;
      for (const [c, v] of Object.entries(constants)) {
        const declaration = new RegExp(`const ${c} = \\d+u;`);
        if (!declaration.test(source) || !Number.isInteger(v) || v < 1) throw new Error(`internal: ${spec.entry} cannot set ${c} to ${v}`);
        source = source.replace(declaration, `const ${c} = ${v}u;`);
      }
      k = this.compile({ ...spec, source }, kinds);
      this.cache.set(id, k);
    }
    return k;
  }

  bindGroup(kernel: Kernel, resources: (GPUBuffer | GPUBufferBinding)[]): GPUBindGroup {
    return this.device.createBindGroup({
      layout: kernel.layout,
      entries: resources.map((r, binding) => ({ binding, resource: 'buffer' in r ? r : { buffer: r } })),
    });
  }

  /** One layout per binding signature, so kernels with the same bindings share bind groups. */
  private layoutFor(bindings: BindingKind[]): GPUBindGroupLayout {
    const key = bindings.join(',');
    let layout = this.layouts.get(key);
    if (!layout) {
      layout = this.device.createBindGroupLayout({
        entries: bindings.map((b, binding) => ({
          binding,
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type: b === 'uniform' ? 'uniform' : b === 'read' ? 'read-only-storage' : 'storage' },
        })),
      });
      this.layouts.set(key, layout);
    }
    return layout;
  }

  private compile(spec: KernelSpec, kinds: GpuWeightKind[]): Kernel {
    if ((spec.weights ?? 0) !== kinds.length) throw new Error(`internal: ${spec.entry} needs ${spec.weights ?? 0} weight kinds`);
    // Sources whose kernels sum over a workgroup get reduce.wgsl's workgroup_sum4, or its subgroup variant.
    const reduces = /\bworkgroup_sum4\(/.test(spec.source);
    const subgroups = this.subgroups && reduces;
    const code = [
      // An enable directive must come before any declaration.
      subgroups ? 'enable subgroups;' : '',
      commonWgsl,
      ...(kinds.length === 1
        ? [weightsWgsl, kindAliases(kinds[0]!, { load: 'load_w8', dot: 'dot32', prep: 'prep32' })]
        : [WEIGHT_STRUCTS, ...kinds.map(weightsFor)]),
      spec.activations ? activationsWgsl : '',
      reduces ? (subgroups ? reduceSubgroupsWgsl : reduceWgsl) : '',
      // Sources that reduce many times per invocation (the sampler, log-probs) get reduce_tree.wgsl's.
      CALLS_REDUCE_TREE.test(spec.source) ? reduceTreeWgsl : '',
      // The sampler and the log-probs kernel after it read the same uniform and state.
      /\bSampleParams\b/.test(spec.source) ? sampleParamsWgsl : '',
      kinds.length ? `const PARTIAL_BLOCKS = ${kinds.some((k) => PLAIN_KINDS.has(k)) ? 1 : 0}u;` : '',
      spec.source,
    ].join('\n');
    const module = this.device.createShaderModule({ code, label: spec.entry });
    const layout = this.layoutFor(spec.bindings);
    try {
      const pipeline = this.device.createComputePipeline({
        layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
        compute: { module, entryPoint: spec.entry },
        label: `${spec.entry}${kinds.length ? ':' + kinds.join(',') : ''}`,
      });
      return { pipeline, layout };
    } catch (e) {
      throw new WebGGUFError('gpu', `Compiling kernel ${spec.entry} failed: ${(e as Error).message}`, { cause: e });
    }
  }
}

/** Runs one kernel's dispatches in one pass and submit; milliseconds until the GPU is done. */
export async function timedPass(device: GPUDevice, kernel: Kernel, dispatches: [GPUBindGroup, [number, number, number]][]): Promise<number> {
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(kernel.pipeline);
  for (const [bindGroup, grid] of dispatches) {
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(...grid);
  }
  pass.end();
  const start = performance.now();
  device.queue.submit([enc.finish()]);
  await device.queue.onSubmittedWorkDone();
  return performance.now() - start;
}
