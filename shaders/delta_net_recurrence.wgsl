// The delta rule of Qwen3.5's Gated DeltaNet layers (see delta_net.wgsl for the layouts). A
// workgroup per value head, an invocation per value dimension j, holding column j of the head's
// state matrix in registers through the step's tokens. Per token (value head h reads q/k head
// h % k_heads, as llama.cpp's ggml_repeat tiles them):
//   q, k = L2-normalised (x / max(|x|, eps)), q scaled by 1/sqrt(state);
//   M *= exp(alpha); d[j] = (v[j] - sum_i M[i][j] k[i]) * beta; M[i][j] += k[i] d[j];
//   o[j] = sum_i M[i][j] q[i]; Y = rmsnorm(o) * norm * silu(z), over the head.

struct RecurrenceParams {
  state: u32,
  k_heads: u32,
  v_heads: u32,
  eps: f32,
}

@group(0) @binding(0) var<storage, read> QKV: array<f32>;
@group(0) @binding(1) var<storage, read> Z: array<f32>;
@group(0) @binding(2) var<storage, read> BETA: array<f32>;
@group(0) @binding(3) var<storage, read> ALPHA: array<f32>;
@group(0) @binding(4) var<storage, read> norm_w: array<f32>;
@group(0) @binding(5) var<storage, read_write> M: array<f32>;
@group(0) @binding(6) var<storage, read_write> Y: array<f32>;
@group(0) @binding(7) var<uniform> P: RecurrenceParams;
@group(0) @binding(8) var<uniform> S: Step;

// The state width (a head's dimensions), set to the model's: the workgroup and the column.
const WG = 128u;

var<workgroup> q_shared: array<f32, WG>;
var<workgroup> k_shared: array<f32, WG>;

@compute @workgroup_size(WG)
fn delta_net_recurrence(@builtin(workgroup_id) wg: vec3<u32>, lane: Lane) {
  let h = wg.x;
  let j = lane.index;
  let n = WG;
  let kh = h % P.k_heads;
  let key_dim = P.k_heads * n;
  let value_dim = P.v_heads * n;
  let conv_dim = 2u * key_dim + value_dim;
  let base = h * n * n;
  var column: array<f32, WG>;
  for (var i = 0u; i < n; i++) { column[i] = M[base + i * n + j]; }
  for (var t = 0u; t < S.n_tokens; t++) {
    let row = t * conv_dim;
    let q = QKV[row + kh * n + j];
    let k = QKV[row + key_dim + kh * n + j];
    let v = QKV[row + 2u * key_dim + h * n + j];
    let sums = workgroup_sum4(lane, vec4<f32>(q * q, k * k, 0.0, 0.0));
    q_shared[j] = q / max(sqrt(sums.x), P.eps) * inverseSqrt(f32(n));
    k_shared[j] = k / max(sqrt(sums.y), P.eps);
    workgroupBarrier();
    let decay = exp(ALPHA[t * P.v_heads + h]);
    let beta = BETA[t * P.v_heads + h];
    var sk = 0.0;
    for (var i = 0u; i < n; i++) {
      column[i] *= decay;
      sk += column[i] * k_shared[i];
    }
    let d = (v - sk) * beta;
    var o = 0.0;
    for (var i = 0u; i < n; i++) {
      column[i] += k_shared[i] * d;
      o += column[i] * q_shared[i];
    }
    // The sum's barrier also keeps q_shared and k_shared until every invocation has read them.
    let ss = workgroup_sum4(lane, vec4<f32>(o * o, 0.0, 0.0, 0.0)).x;
    let z = Z[t * value_dim + h * n + j];
    Y[t * value_dim + h * n + j] = o * inverseSqrt(ss / f32(n) + P.eps) * norm_w[j] * (z / (1.0 + exp(-z)));
    // The next token's first sum overwrites the partials this one's readers may still be adding.
    workgroupBarrier();
  }
  for (var i = 0u; i < n; i++) { M[base + i * n + j] = column[i]; }
}
