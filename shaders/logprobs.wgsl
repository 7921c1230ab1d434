// Log-probabilities of a step, after the sampler chose its token: the chosen token's and the
// `top_logprobs` most likely tokens', from the log-softmax of the logits plus the logit bias (what
// OpenAI and llama.cpp report: not the temperature, penalties, truncation or grammar mask the
// draw itself used). Only this small record is read back, never the logits. One workgroup.

// The sampler's uniform (shaders/sample_params.wgsl): this kernel reads the vocabulary size, the
// filter bits (logit bias) and the number of top entries.
const MAX_TOP = 20u;

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> bias: array<f32>;
@group(0) @binding(2) var<storage, read> state: SampleState;
// The record: [chosen token's logprob (f32 bits), chosen token, then top_logprobs pairs of
// (token, logprob bits)], most likely first, lower id first on ties.
@group(0) @binding(3) var<storage, read_write> record: array<u32>;
@group(0) @binding(4) var<uniform> P: SampleParams;

// The workgroup size; its reductions are shaders/reduce_tree.wgsl's (workgroup_*).
const WG = 256u;
// The entry found last, which the next search stays below.
var<workgroup> last_f: f32;
var<workgroup> last_u: u32;

fn biased(i: u32) -> f32 {
  var l = logits[i];
  if ((P.filters & FILTER_BIAS) != 0u) { l += bias[i]; }
  return l;
}

@compute @workgroup_size(WG)
fn logprobs(@builtin(local_invocation_index) lid: u32) {
  var local_max = -3.4e38;
  for (var i = lid; i < P.vocab; i += WG) { local_max = max(local_max, biased(i)); }
  let m = workgroup_max_f(lid, local_max);
  var s = 0.0;
  for (var i = lid; i < P.vocab; i += WG) { s += exp(biased(i) - m); }
  let log_z = m + log(workgroup_sum_f(lid, s));
  if (lid == 0u) {
    let chosen = state.token;
    record[0] = bitcast<u32>(biased(chosen) - log_z);
    record[1] = chosen;
    last_f = 3.4e38;
    last_u = 0u;
  }
  // The top entries in order: each round the largest (value, then lowest id) below the last one.
  let rounds = min(min(P.top_logprobs, MAX_TOP), P.vocab);
  for (var r = 0u; r < rounds; r++) {
    workgroupBarrier();
    let below_f = last_f;
    let below_u = last_u;
    var best = Ranked(-3.4e38, NO_INDEX);
    for (var i = lid; i < P.vocab; i += WG) {
      let v = biased(i);
      let after = v < below_f || (v == below_f && i > below_u) || (r == 0u);
      if (after && (best.index == NO_INDEX || v > best.value)) { best = Ranked(v, i); }
    }
    best = workgroup_argmax(lid, best);
    if (lid == 0u) {
      record[2u + 2u * r] = best.index;
      record[3u + 2u * r] = bitcast<u32>(best.value - log_z);
      last_f = best.value;
      last_u = best.index;
    }
  }
}
