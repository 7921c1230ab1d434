// Adds a bias vector to each of a step's token rows, in place (Qwen2's q/k/v projections).

struct BiasParams {
  n: u32,      // elements per row
  stride: u32, // floats between rows (token t at row t)
}

@group(0) @binding(0) var<storage, read_write> V: array<f32>;
@group(0) @binding(1) var<storage, read> bias: array<f32>;
@group(0) @binding(2) var<uniform> P: BiasParams;
@group(0) @binding(3) var<uniform> S: Step;

@compute @workgroup_size(64)
fn add_bias(@builtin(global_invocation_id) gid: vec3<u32>) {
  let t = gid.y;
  if (t >= S.n_tokens || gid.x >= P.n) { return; }
  let i = t * P.stride + gid.x;
  V[i] = V[i] + bias[gid.x];
}
