// X[t] *= scale[0] for the step's rows (Gemma 4's per-layer output scale), a thread per value.

struct ScaleParams {
  dim: u32,
}

@group(0) @binding(0) var<storage, read_write> X: array<f32>;
@group(0) @binding(1) var<storage, read> scale: array<f32>;
@group(0) @binding(2) var<uniform> P: ScaleParams;
@group(0) @binding(3) var<uniform> S: Step;

@compute @workgroup_size(64)
fn scale_rows(@builtin(global_invocation_id) id: vec3<u32>) {
  if (id.x >= P.dim || id.y >= S.n_tokens) { return; }
  X[id.y * P.dim + id.x] *= scale[0];
}
