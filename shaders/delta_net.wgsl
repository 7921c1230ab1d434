// Qwen3.5's Gated DeltaNet (linear attention with a recurrent state), after its projections:
// delta_net_conv runs the short causal conv over q/k/v (with its rolling state) and the per-head
// gates; delta_net_recurrence runs the delta rule on each value head's state matrix, then the
// gated RMSNorm. Both take a step's tokens one after another inside the dispatch, so a prefill
// chunk and a decode step run the same recurrence (llama.cpp's autoregressive form, token by token).
//
// Layouts, a row per token: QKV [conv_dim] = q (k_heads x state) | k (k_heads x state) |
// v (v_heads x state); Z and Y [v_heads x state]; BETA and ALPHA [v_heads]. The conv state holds the
// last kernel - 1 QKV rows, oldest first; the delta state one state x state matrix per value head,
// M[i][j] at i * state + j (i along keys, j along values).

struct ConvParams {
  conv_dim: u32,
  kernel: u32,
  v_heads: u32,
}

struct RecurrenceParams {
  state: u32,
  k_heads: u32,
  v_heads: u32,
  eps: f32,
}

// The most conv taps (model/config.ts refuses more).
const MAX_KERNEL = 8u;

@group(0) @binding(0) var<storage, read> conv_w: array<f32>;          // [conv_dim][kernel]
@group(0) @binding(1) var<storage, read_write> QKV: array<f32>;
@group(0) @binding(2) var<storage, read_write> conv_state: array<f32>; // [kernel - 1][conv_dim]
@group(0) @binding(3) var<storage, read_write> BETA: array<f32>;
@group(0) @binding(4) var<storage, read_write> ALPHA: array<f32>;
@group(0) @binding(5) var<storage, read> dt_bias: array<f32>;
@group(0) @binding(6) var<storage, read> ssm_a: array<f32>;
@group(0) @binding(7) var<uniform> CP: ConvParams;
@group(0) @binding(8) var<uniform> S: Step;

// ggml's softplus: log(1 + e^x), x itself above 20.
fn softplus(x: f32) -> f32 {
  return select(log(1.0 + exp(x)), x, x > 20.0);
}

// A thread per channel, in place over the step's tokens: out = silu(sum_k window[k] * w[k]) with
// window = the kernel - 1 inputs before this token, then this one; the window rolls through the
// step and goes back into the conv state. Threads below v_heads also turn their head's beta into
// sigmoid(beta) and its alpha into the log-decay softplus(alpha + dt_bias) * ssm_a.
@compute @workgroup_size(64)
fn delta_net_conv(@builtin(global_invocation_id) id: vec3<u32>) {
  let ch = id.x;
  if (ch < CP.v_heads) {
    for (var t = 0u; t < S.n_tokens; t++) {
      let at = t * CP.v_heads + ch;
      BETA[at] = 1.0 / (1.0 + exp(-BETA[at]));
      ALPHA[at] = softplus(ALPHA[at] + dt_bias[ch]) * ssm_a[ch];
    }
  }
  if (ch >= CP.conv_dim) { return; }
  let taps = CP.kernel - 1u;
  var window: array<f32, MAX_KERNEL>;
  for (var k = 0u; k < taps; k++) { window[k] = conv_state[k * CP.conv_dim + ch]; }
  for (var t = 0u; t < S.n_tokens; t++) {
    let x = QKV[t * CP.conv_dim + ch];
    var sum = x * conv_w[ch * CP.kernel + taps];
    for (var k = 0u; k < taps; k++) { sum += window[k] * conv_w[ch * CP.kernel + k]; }
    QKV[t * CP.conv_dim + ch] = sum / (1.0 + exp(-sum));
    for (var k = 0u; k + 1u < taps; k++) { window[k] = window[k + 1u]; }
    if (taps > 0u) { window[taps - 1u] = x; }
  }
  for (var k = 0u; k < taps; k++) { conv_state[k * CP.conv_dim + ch] = window[k]; }
}
