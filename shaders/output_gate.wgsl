// Qwen3.5's gated attention: q's projection makes, per head, head_dim queries then head_dim gates
// (a row of 2 x n_heads x head_dim per token, in QG). split_query_gate copies the queries out into
// the query buffer the attention kernels read; apply_output_gate multiplies the heads' outputs by
// the sigmoid of their gates. A thread per value, a row of workgroups per token.

struct GateParams {
  n_heads: u32,
  head_dim: u32,
}

@group(0) @binding(0) var<storage, read> QG: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@group(0) @binding(2) var<uniform> P: GateParams;
@group(0) @binding(3) var<uniform> S: Step;

// Where value i of token t's queries (or, with `gate`, its gate) sits in QG.
fn query_gate_index(t: u32, i: u32, gate: bool) -> u32 {
  let h = i / P.head_dim;
  return t * 2u * P.n_heads * P.head_dim + (2u * h + select(0u, 1u, gate)) * P.head_dim + i % P.head_dim;
}

@compute @workgroup_size(64)
fn split_query_gate(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.x;
  let t = id.y;
  if (i >= P.n_heads * P.head_dim) { return; }
  Y[t * P.n_heads * P.head_dim + i] = QG[query_gate_index(t, i, false)];
}

@compute @workgroup_size(64)
fn apply_output_gate(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.x;
  let t = id.y;
  if (i >= P.n_heads * P.head_dim) { return; }
  let g = QG[query_gate_index(t, i, true)];
  Y[t * P.n_heads * P.head_dim + i] *= 1.0 / (1.0 + exp(-g));
}
