// Gemma 4's per-layer embeddings (src/model/blocks/per-layer-embedding.ts). A step's inputs are a
// row per token of n_layers slices of `width`: the projection of the scaled token embedding (in
// `inputs`) and the table rows of the step's tokens (`rows`, uploaded by the host, already scaled
// by sqrt(width)).

struct PerLayerParams {
  width: u32,
  // n_layers * width: one token's row.
  row: u32,
  // ple_inputs: the projection's scale (1/sqrt(dim)) and the sum's (1/sqrt(2)).
  in_scale: f32,
  out_scale: f32,
  eps: f32,
  // ple_gate: the layer whose slice gates.
  layer: u32,
}

@group(0) @binding(0) var<storage, read_write> inputs: array<f32>;
@group(0) @binding(1) var<storage, read> rows: array<f32>;
@group(0) @binding(2) var<storage, read> norm_weight: array<f32>;
@group(0) @binding(3) var<uniform> P: PerLayerParams;
@group(0) @binding(4) var<uniform> S: Step;

const WG = 64u;

// inputs[t][l] = (rmsnorm(inputs[t][l] * in_scale) * norm_weight + rows[t][l]) * out_scale, in
// place: a workgroup per (layer, token).
@compute @workgroup_size(WG)
fn ple_inputs(@builtin(workgroup_id) wg: vec3<u32>, lane: Lane) {
  let base = wg.y * P.row + wg.x * P.width;
  var ss = 0.0;
  for (var i = lane.index; i < P.width; i += WG) { let v = inputs[base + i] * P.in_scale; ss += v * v; }
  // Every read above is done before the barrier in workgroup_sum4, so the writes below, each to
  // a value only its own invocation reads, are safe in place.
  let scale = inverseSqrt(workgroup_sum4(lane, vec4<f32>(ss, 0.0, 0.0, 0.0)).x / f32(P.width) + P.eps);
  for (var i = lane.index; i < P.width; i += WG) {
    inputs[base + i] = (inputs[base + i] * P.in_scale * scale * norm_weight[i] + rows[base + i]) * P.out_scale;
  }
}
