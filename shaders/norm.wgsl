// RMSNorm: Y[t] = X[t] / sqrt(mean(X[t]^2) + eps) * weight. One workgroup per token.

struct NormParams {
  dim: u32,
  eps: f32,
  // 1: normalize only the last token of the step, into Y row 0 (input of the logits).
  last_only: u32,
  // 1: Y += the result (Gemma 2's norms on a block's output, fused with the residual add).
  accumulate: u32,
}

@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
@group(0) @binding(3) var<uniform> P: NormParams;
@group(0) @binding(4) var<uniform> S: Step;

const WG = 64u;

@compute @workgroup_size(WG)
fn rmsnorm(@builtin(workgroup_id) wg: vec3<u32>, lane: Lane) {
  let lid = lane.index;
  let src = select(wg.x, S.n_tokens - 1u, P.last_only == 1u) * P.dim;
  let dst = select(wg.x, 0u, P.last_only == 1u) * P.dim;
  var ss = 0.0;
  for (var i = lid; i < P.dim; i += WG) { ss += X[src + i] * X[src + i]; }
  let total = workgroup_sum4(lane, vec4<f32>(ss, 0.0, 0.0, 0.0)).x;
  let scale = inverseSqrt(total / f32(P.dim) + P.eps);
  for (var i = lid; i < P.dim; i += WG) {
    let y = X[src + i] * scale * weight[i];
    Y[dst + i] = select(y, Y[dst + i] + y, P.accumulate == 1u);
  }
}
