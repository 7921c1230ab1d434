import { uniformData } from '../../gpu/allocator.js';
import { formatFor } from '../../quant/formats.js';
import type { LayerPlan, ModelConfig } from '../config.js';
import type { ForwardRecorder, Op, ResidualStream } from '../recorder.js';

/**
 * Gemma 4's per-layer embeddings. Each token has a row of n_layers slices in a table too large for
 * the GPU (most of the file: E2B's is 262144 x 8960), so the table stays on the CPU, in the file's
 * own bytes, and each step uploads its tokens' rows, dequantized (`upload`). At the start of a
 * step the slices are mixed with a projection of the scaled token embedding (`recordInputs`):
 * inputs[l] = (rmsnorm(W · x / sqrt(dim)) · norm + row[l] · sqrt(width)) / sqrt(2). At the end of
 * layer l: x += rmsnorm(Wproj · (gelu(Wgate · x) * inputs[l])) · post_norm (`record`), then x is
 * scaled by the layer's output scale (`recordOutputScale`).
 */
export class PerLayerEmbeddingBlocks {
  /** The step's per-layer inputs, a row of n_layers * width per token. */
  private readonly inputs: GPUBuffer;
  /** The table rows of the step's tokens, times sqrt(width), written by `upload`. */
  private readonly rows: GPUBuffer;
  /** A layer's gate (a row of width per token). */
  private readonly gate: GPUBuffer;
  private readonly rowBytes: number;
  private readonly rowValues: number;

  constructor(
    private readonly r: ForwardRecorder,
    maxBatch: number,
    /** The table's bytes as in the file (weights.ts's host plan), and its GGML type. */
    private readonly table: Uint32Array,
    private readonly type: number,
  ) {
    const c = r.config;
    const [inputs, , gate] = perLayerEmbeddingBuffers(c, maxBatch);
    this.inputs = r.alloc.storage(inputs!.name, inputs!.bytes);
    this.rows = r.alloc.storage('per_layer_rows', inputs!.bytes);
    this.gate = r.alloc.storage(gate!.name, gate!.bytes);
    this.rowValues = c.perLayerInput * c.nLayers;
    const format = formatFor(type, 'per_layer_token_embd.weight');
    this.rowBytes = (this.rowValues / format.blockSize) * format.blockBytes;
  }

  /** Writes the table rows of a step's `tokens` (dequantized on the CPU) for the next submit. */
  upload(tokens: ArrayLike<number>): void {
    const c = this.r.config;
    const format = formatFor(this.type);
    const bytes = new Uint8Array(this.table.buffer, this.table.byteOffset, this.table.byteLength);
    const out = new Float32Array(tokens.length * this.rowValues);
    const scale = Math.sqrt(c.perLayerInput);
    for (let t = 0; t < tokens.length; t++) {
      const token = Math.min(tokens[t]!, c.vocabSize - 1);
      const row = out.subarray(t * this.rowValues, (t + 1) * this.rowValues);
      format.dequantize(bytes.subarray(token * this.rowBytes, (token + 1) * this.rowBytes), this.rowValues, row);
      for (let i = 0; i < row.length; i++) row[i]! *= scale;
    }
    this.r.alloc.device.queue.writeBuffer(this.rows, 0, out);
  }

  /** The step's per-layer inputs, from the scaled token embeddings in `residual.x`. */
  recordInputs(residual: ResidualStream): void {
    const { r } = this;
    const c = r.config;
    r.add(...r.matmul(r.matrix('per_layer_model_proj.weight'), residual.x, this.inputs));
    const kernel = r.kernels.get('ple_inputs');
    const params = r.alloc.uniform('ple_inputs', uniformData([
      { u: c.perLayerInput }, { u: this.rowValues }, { f: 1 / Math.sqrt(c.dim) }, { f: Math.SQRT1_2 }, { f: c.normEps }, { u: 0 },
    ]));
    r.add({
      kernel,
      bindGroup: r.kernels.bindGroup(kernel, [this.inputs, this.rows, r.vector('per_layer_proj_norm.weight'), params, r.step]),
      grid: (n) => [c.nLayers, n, 1],
    });
  }

  /** Layer `layer`'s per-layer embedding block, added to the residual stream. */
  record(layer: LayerPlan, residual: ResidualStream): void {
    const { r } = this;
    const c = r.config;
    const p = layer.prefix;
    r.add(...r.matmul(r.matrix(p + 'inp_gate.weight'), residual.x, this.gate));
    const kernel = r.kernels.get('ple_gate');
    const params = r.alloc.uniform('ple_gate', uniformData([{ u: c.perLayerInput }, { u: this.rowValues }, { u: layer.index }]));
    r.add({
      kernel,
      bindGroup: r.kernels.bindGroup(kernel, [this.gate, this.inputs, params, r.step]),
      grid: (n) => [Math.ceil(c.perLayerInput / 64), n, 1],
    });
    r.add(...r.residualAdd(residual, r.matrix(p + 'proj.weight'), this.gate, r.vector(p + 'post_norm.weight')));
  }
}

/** x *= the layer's output scale (Gemma 4's blk.N.layer_output_scale, one value). */
export function recordOutputScale(r: ForwardRecorder, layer: LayerPlan, residual: ResidualStream): void {
  const c = r.config;
  const kernel = r.kernels.get('scale_rows');
  const params = r.alloc.uniform('scale_rows', uniformData([{ u: c.dim }]));
  const op: Op = {
    kernel,
    bindGroup: r.kernels.bindGroup(kernel, [residual.x, r.vector(layer.prefix + 'layer_output_scale.weight'), params, r.step]),
    grid: (n) => [Math.ceil(c.dim / 64), n, 1],
  };
  r.add(op);
}

/** The buffers the per-layer embedding blocks make (for the fit check before loading). */
export function perLayerEmbeddingBuffers(c: ModelConfig, maxBatch: number): { name: string; bytes: number }[] {
  if (!c.perLayerInput) return [];
  const inputs = maxBatch * c.perLayerInput * c.nLayers * 4;
  return [
    { name: 'per_layer_inputs', bytes: inputs },
    { name: 'per_layer_rows', bytes: inputs },
    { name: 'per_layer_gate', bytes: maxBatch * c.perLayerInput * 4 },
  ];
}
