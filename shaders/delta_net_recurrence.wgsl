// The delta rule of Qwen3.5's Gated DeltaNet layers (see delta_net.wgsl for the layouts), in two
// forms that compute the same thing: delta_net_recurrence (decode) token by token, and
// delta_net_chunked (prefill) a chunk of tokens at a time.
//
// delta_net_recurrence: a workgroup per value head, an invocation per value dimension j, holding column j of the head's
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
// Tokens per chunk of delta_net_chunked: its two chunk x chunk matrices share one array in
// workgroup memory (4 KiB at 32; 64 would take all of WebGPU's guaranteed 16 KiB).
const CHUNK = 32u;

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

// delta_net_chunked: the delta rule over a chunk of C tokens at once (the chunked form of
// llama.cpp's and fla's gated delta rule), chunks in order, the state carried between them. With
// G_t the sum of the log-decays up to token t of the chunk, M0 the state before it, K, Q its
// normalised keys and queries, the token-by-token rule unrolls to
//   d_t = beta_t (v_t - e^G_t M0^T k_t) - sum_{s<t} A[t][s] d_s,  A[t][s] = beta_t e^(G_t - G_s) k_t.k_s
//   o_t = e^G_t M0^T q_t + sum_{s<=t} B[t][s] d_s,                  B[t][s] = e^(G_t - G_s) q_t.k_s
//   M   = e^G_C M0 + sum_s e^(G_C - G_s) k_s d_s^T
// (d_t is the recurrence's (v_t - M^T k_t) beta_t, the row it adds to the state). A workgroup per
// value head, an invocation per value dimension j holding column j of the state: the A and B of the
// chunk are computed once by the whole workgroup, then each invocation solves its own column of d
// (the triangular system I + A, by forward substitution), its o, and its column of the new state.
// Barriers per chunk: a few, against three per token for the recurrence; every exponent is a
// difference G_t - G_s <= 0, so nothing overflows however strong the decay.

var<workgroup> log_decay: array<f32, CHUNK>;   // G_t
var<workgroup> chunk_beta: array<f32, CHUNK>;
var<workgroup> q_scale: array<f32, CHUNK>;     // 1 / (|q_t| sqrt(state))
var<workgroup> k_scale: array<f32, CHUNK>;     // 1 / |k_t|
// A[t][s] (s < t) at t * CHUNK + s, below the diagonal; B[t][s] (s <= t) at s * CHUNK + t, on and above.
var<workgroup> mixing: array<f32, CHUNK * CHUNK>;

@compute @workgroup_size(WG)
fn delta_net_chunked(@builtin(workgroup_id) wg: vec3<u32>, lane: Lane) {
  let h = wg.x;
  let j = lane.index;
  let n = WG;
  let key_dim = P.k_heads * n;
  let value_dim = P.v_heads * n;
  let conv_dim = 2u * key_dim + value_dim;
  let q_at = (h % P.k_heads) * n;
  let k_at = key_dim + q_at;
  let v_at = 2u * key_dim + h * n;
  let base = h * n * n;
  var column: array<f32, WG>;
  for (var i = 0u; i < n; i++) { column[i] = M[base + i * n + j]; }
  var d: array<f32, CHUNK>;
  var o: array<f32, CHUNK>;
  for (var t0 = 0u; t0 < S.n_tokens; t0 += CHUNK) {
    let len = min(CHUNK, S.n_tokens - t0);
    for (var t = j; t < len; t += WG) {
      let row = (t0 + t) * conv_dim;
      var qq = 0.0;
      var kk = 0.0;
      for (var i = 0u; i < n; i++) {
        let q = QKV[row + q_at + i];
        let k = QKV[row + k_at + i];
        qq += q * q;
        kk += k * k;
      }
      q_scale[t] = inverseSqrt(f32(n)) / max(sqrt(qq), P.eps);
      k_scale[t] = 1.0 / max(sqrt(kk), P.eps);
    }
    if (j == 0u) {
      var g = 0.0;
      for (var t = 0u; t < len; t++) {
        g += ALPHA[(t0 + t) * P.v_heads + h];
        log_decay[t] = g;
        chunk_beta[t] = BETA[(t0 + t) * P.v_heads + h];
      }
    }
    workgroupBarrier();
    for (var e = j; e < len * len; e += WG) {
      let t = e / len;
      let s = e % len;
      if (s > t) { continue; }
      let row_t = (t0 + t) * conv_dim;
      let row_s = (t0 + s) * conv_dim;
      var qk = 0.0;
      var kk = 0.0;
      for (var i = 0u; i < n; i++) {
        let k = QKV[row_s + k_at + i];
        qk += QKV[row_t + q_at + i] * k;
        kk += QKV[row_t + k_at + i] * k;
      }
      let decay = exp(log_decay[t] - log_decay[s]);
      mixing[s * CHUNK + t] = decay * qk * q_scale[t] * k_scale[s];
      if (s < t) { mixing[t * CHUNK + s] = chunk_beta[t] * decay * kk * k_scale[t] * k_scale[s]; }
    }
    workgroupBarrier();
    for (var t = 0u; t < len; t++) {
      let row = (t0 + t) * conv_dim;
      var mk = 0.0;
      var mq = 0.0;
      for (var i = 0u; i < n; i++) {
        mk += column[i] * QKV[row + k_at + i];
        mq += column[i] * QKV[row + q_at + i];
      }
      let from_state = exp(log_decay[t]);
      var dt = chunk_beta[t] * (QKV[row + v_at + j] - from_state * mk * k_scale[t]);
      for (var s = 0u; s < t; s++) { dt -= mixing[t * CHUNK + s] * d[s]; }
      d[t] = dt;
      var ot = from_state * mq * q_scale[t];
      for (var s = 0u; s <= t; s++) { ot += mixing[s * CHUNK + t] * d[s]; }
      o[t] = ot;
    }
    let g_end = log_decay[len - 1u];
    for (var s = 0u; s < len; s++) { d[s] *= exp(g_end - log_decay[s]) * k_scale[s]; }
    let kept = exp(g_end);
    for (var i = 0u; i < n; i++) {
      var m = column[i] * kept;
      for (var s = 0u; s < len; s++) { m += QKV[(t0 + s) * conv_dim + k_at + i] * d[s]; }
      column[i] = m;
    }
    // The gated RMSNorm, four tokens per sum. Each sum's barrier also keeps this chunk's shared
    // values until every invocation is past reading them; the one after it keeps the partials.
    for (var t = 0u; t < len; t += 4u) {
      var sq = vec4<f32>(0.0);
      for (var c = 0u; c < 4u; c++) {
        if (t + c < len) { sq[c] = o[t + c] * o[t + c]; }
      }
      let ss = workgroup_sum4(lane, sq);
      for (var c = 0u; c < 4u; c++) {
        if (t + c < len) {
          let at = (t0 + t + c) * value_dim + h * n + j;
          let z = Z[at];
          Y[at] = o[t + c] * inverseSqrt(ss[c] / f32(n) + P.eps) * norm_w[j] * (z / (1.0 + exp(-z)));
        }
      }
      workgroupBarrier();
    }
  }
  for (var i = 0u; i < n; i++) { M[base + i * n + j] = column[i]; }
}
