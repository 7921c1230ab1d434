// Elementwise and pooling ops of the encoder models (BERT).

struct RowsParams {
  // Values per token row.
  n: u32,
  // pool: 1 mean, 2 first row (CLS), 3 last row.
  mode: u32,
}

@group(0) @binding(0) var<storage, read_write> Y: array<f32>;
@group(0) @binding(1) var<storage, read> V: array<f32>;
@group(0) @binding(2) var<uniform> P: RowsParams;
@group(0) @binding(3) var<uniform> S: Step;

// Y[t] = gelu(Y[t] + V): the feed-forward up projection's bias and activation.
@compute @workgroup_size(64)
fn bias_gelu(@builtin(global_invocation_id) gid: vec3<u32>) {
  let t = gid.y;
  if (t >= S.n_tokens || gid.x >= P.n) { return; }
  let i = t * P.n + gid.x;
  Y[i] = gelu(Y[i] + V[gid.x]);
}

// Y (one row) = the pooled rows of V: their mean, the first or the last.
@compute @workgroup_size(64)
fn pool(@builtin(global_invocation_id) gid: vec3<u32>) {
  let d = gid.x;
  if (d >= P.n) { return; }
  let n = S.n_tokens;
  if (P.mode == 2u) { Y[d] = V[d]; return; }
  if (P.mode == 3u) { Y[d] = V[(n - 1u) * P.n + d]; return; }
  var sum = 0.0;
  for (var t = 0u; t < n; t++) { sum += V[t * P.n + d]; }
  Y[d] = sum / f32(n);
}
