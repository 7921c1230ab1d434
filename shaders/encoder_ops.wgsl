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
// pool: per input packed into the step, the [start, end) of its rows.
@group(0) @binding(4) var<storage, read> spans: array<u32>;

// Y[t] = gelu(Y[t] + V): the feed-forward up projection's bias and activation.
@compute @workgroup_size(64)
fn bias_gelu(@builtin(global_invocation_id) gid: vec3<u32>) {
  let t = gid.y;
  if (t >= S.n_tokens || gid.x >= P.n) { return; }
  let i = t * P.n + gid.x;
  Y[i] = gelu(Y[i] + V[gid.x]);
}

// Per input packed into the step (its rows [start, end) of V, from `spans`), a row of Y: the
// mean of its rows, the first or the last. One input: spans (0, n).
@compute @workgroup_size(64)
fn pool(@builtin(global_invocation_id) gid: vec3<u32>) {
  let d = gid.x;
  if (d >= P.n) { return; }
  let start = spans[2u * gid.y];
  let end = spans[2u * gid.y + 1u];
  let y = gid.y * P.n + d;
  if (P.mode == 2u) { Y[y] = V[start * P.n + d]; return; }
  if (P.mode == 3u) { Y[y] = V[(end - 1u) * P.n + d]; return; }
  var sum = 0.0;
  for (var t = start; t < end; t++) { sum += V[t * P.n + d]; }
  Y[y] = sum / f32(end - start);
}
