// Gemma 4's per-layer embedding gate: gate[t] = gelu(gate[t]) * inputs[t][layer], the layer's
// slice of the step's per-layer inputs (shaders/per_layer_embedding.wgsl), a thread per value.

struct GateParams {
  width: u32,
  row: u32,
  layer: u32,
}

@group(0) @binding(0) var<storage, read_write> gate: array<f32>;
@group(0) @binding(1) var<storage, read> inputs: array<f32>;
@group(0) @binding(2) var<uniform> P: GateParams;
@group(0) @binding(3) var<uniform> S: Step;

@compute @workgroup_size(64)
fn ple_gate(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.x;
  let t = id.y;
  if (i >= P.width || t >= S.n_tokens) { return; }
  gate[t * P.width + i] = gelu(gate[t * P.width + i]) * inputs[t * P.row + P.layer * P.width + i];
}

