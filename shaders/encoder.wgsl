// The encoder models' own ops (BERT): LayerNorm with a bias, the bias-and-GELU of the feed-forward's
// up projection, and pooling a sequence's rows into one vector.

struct LayerNormParams {
  dim: u32,
  eps: f32,
  // How A and B add to X before the norm: 0 not at all, 1 a row per token, 2 one row for every token.
  a_mode: u32,
  b_mode: u32,
}

@group(0) @binding(0) var<storage, read_write> X: array<f32>;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read> weight: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<uniform> P: LayerNormParams;
@group(0) @binding(6) var<uniform> S: Step;

const WG = 64u;

// X[t] = LayerNorm(X[t] + A + B) * weight + bias, in place: one workgroup per token, each
// invocation reading and writing only its own elements.
@compute @workgroup_size(WG)
fn layernorm(@builtin(workgroup_id) wg: vec3<u32>, lane: Lane) {
  let t = wg.x;
  let row = t * P.dim;
  var sum = 0.0;
  var sq = 0.0;
  for (var i = lane.index; i < P.dim; i += WG) {
    var v = X[row + i];
    if (P.a_mode != 0u) { v += A[select(i, row + i, P.a_mode == 1u)]; }
    if (P.b_mode != 0u) { v += B[select(i, row + i, P.b_mode == 1u)]; }
    sum += v;
    sq += v * v;
  }
  let total = workgroup_sum4(lane, vec4<f32>(sum, sq, 0.0, 0.0));
  let mean = total.x / f32(P.dim);
  let variance = max(total.y / f32(P.dim) - mean * mean, 0.0);
  let scale = inverseSqrt(variance + P.eps);
  for (var i = lane.index; i < P.dim; i += WG) {
    var v = X[row + i];
    if (P.a_mode != 0u) { v += A[select(i, row + i, P.a_mode == 1u)]; }
    if (P.b_mode != 0u) { v += B[select(i, row + i, P.b_mode == 1u)]; }
    X[row + i] = (v - mean) * scale * weight[i] + bias[i];
  }
}
