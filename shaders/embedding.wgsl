// Token embedding lookup: X[t] = row tokens[t] of the embedding matrix, dequantized (weights.wgsl).
// A matrix too large for one binding comes in parts of rows; each part's dispatch writes the tokens
// whose rows it holds.

struct EmbedParams {
  w: WeightDesc,
  // This part's first row, and the rows of the whole matrix (ids beyond it read the last row).
  row_start: u32,
  total_rows: u32,
  // Multiplies every value (Gemma scales its embeddings by sqrt(dim)).
  scale: f32,
}

@group(0) @binding(0) var<storage, read> W: array<u32>;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;
@group(0) @binding(2) var<storage, read_write> X: array<f32>;
@group(0) @binding(3) var<uniform> P: EmbedParams;
@group(0) @binding(4) var<uniform> S: Step;

@compute @workgroup_size(64)
fn embed(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n8 = (P.w.cols + 7u) / 8u;
  let t = gid.y;
  let k8 = gid.x;
  if (t >= S.n_tokens || k8 >= n8) { return; }
  let token = min(tokens[t], P.total_rows - 1u);
  if (token < P.row_start || token >= P.row_start + P.w.rows) { return; }
  let w = load_w8(P.w, token - P.row_start, k8);
  let out = t * P.w.cols + k8 * 8u;
  for (var i = 0u; i < 4u; i++) {
    if (k8 * 8u + i < P.w.cols) { X[out + i] = w.lo[i] * P.scale; }
    if (k8 * 8u + 4u + i < P.w.cols) { X[out + 4u + i] = w.hi[i] * P.scale; }
  }
}
