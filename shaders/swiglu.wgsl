// SwiGLU: gate = silu(gate) * up, in place, over a step's tokens.

struct SwigluParams {
  n: u32, // elements per token
}

@group(0) @binding(0) var<storage, read_write> gate: array<f32>;
@group(0) @binding(1) var<storage, read> up: array<f32>;
@group(0) @binding(2) var<uniform> P: SwigluParams;
@group(0) @binding(3) var<uniform> S: Step;

@compute @workgroup_size(64)
fn swiglu(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 65535u * 64u;
  if (i >= P.n * S.n_tokens) { return; }
  let g = gate[i];
  gate[i] = g / (1.0 + exp(-g)) * up[i];
}
