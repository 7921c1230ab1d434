// Picks the next token on the GPU from the logits, so only a token id is read back.
// Order: logit bias and the allowed-token mask -> penalties -> temperature -> top-k -> min-p -> top-p -> draw. Temperature 0 is
// greedy argmax. One workgroup of 256 threads; thresholds are found by a bitwise search over the
// order-preserving u32 keys of the logits, so no sort is needed and ties are kept together.
// SampleParams, SampleState and the FILTER_ bits are shaders/sample_params.wgsl's.

// A masked token's logit: below every real one, and still finite after the penalties and the
// temperature divide it (exp of it minus the max is 0).
const MASKED = -3.0e38;

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> work: array<f32>;
@group(0) @binding(2) var<storage, read_write> history: array<u32>;
@group(0) @binding(3) var<storage, read_write> state: SampleState;
@group(0) @binding(4) var<storage, read_write> next_tokens: array<u32>;
@group(0) @binding(5) var<uniform> P: SampleParams;
// Occurrence counts of the penalty window; all zero between dispatches.
@group(0) @binding(6) var<storage, read_write> counts: array<atomic<u32>>;
// Constrained decoding: token i may be chosen when bit i % 32 of allowed[i / 32] is set.
@group(0) @binding(7) var<storage, read> allowed: array<u32>;
// logit_bias: added to each logit.
@group(0) @binding(8) var<storage, read> bias: array<f32>;

// The workgroup size; its reductions are shaders/reduce_tree.wgsl's (reduce_f, reduce_u, workgroup_*).
const WG = 256u;

// Maps floats to u32 so that a < b as floats iff key(a) < key(b) as u32.
fn key(x: f32) -> u32 {
  let b = bitcast<u32>(x);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

// The logit the filters leave: biased, or MASKED where the mask forbids the token.
fn filtered(i: u32) -> f32 {
  var l = logits[i];
  if ((P.filters & FILTER_BIAS) != 0u) { l += bias[i]; }
  if ((P.filters & FILTER_MASK) != 0u && ((allowed[i >> 5u] >> (i & 31u)) & 1u) == 0u) { l = MASKED; }
  return l;
}

fn pcg(v: u32) -> u32 {
  let s = v * 747796405u + 2891336453u;
  let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
  return (w >> 22u) ^ w;
}

// Largest key threshold th such that count(key >= th) >= k. (The bit loops count up with an
// unsigned index: a signed down-counting loop crashed SwiftShader's shader compiler.)
fn kth_key(lid: u32, k: u32) -> u32 {
  var th = 0u;
  for (var b = 0u; b < 32u; b++) {
    let bit = 31u - b;
    let cand = th | (1u << bit);
    var n = 0u;
    for (var i = lid; i < P.vocab; i += WG) { n += select(0u, 1u, key(work[i]) >= cand); }
    if (workgroup_sum_u(lid, n) >= k) { th = cand; }
  }
  return th;
}

// Largest key threshold th >= floor such that the probability mass with key >= th is >= goal.
fn mass_key(lid: u32, floor: u32, m: f32, goal: f32) -> u32 {
  var th = floor;
  for (var b = 0u; b < 32u; b++) {
    let bit = 31u - b;
    let cand = th | (1u << bit);
    var s = 0.0;
    for (var i = lid; i < P.vocab; i += WG) {
      let x = work[i];
      if (key(x) >= cand) { s += exp(x - m); }
    }
    if (workgroup_sum_f(lid, s) >= goal) { th = cand; }
  }
  return th;
}

@compute @workgroup_size(WG)
fn sample(@builtin(local_invocation_index) lid: u32) {
  let n_past = state.n_past;
  // 1. Copy the filtered logits; the penalty is computed from the filtered logit, so repeats
  // apply once (and a masked token stays masked).
  // Without penalties every later phase reads work[i] only in the invocation that wrote it (the
  // same i = lid + k * WG stride), so the barriers are needed only with them. (penalize comes
  // from the uniform P, so the branch keeps the barriers in uniform control flow.)
  if (P.filters == 0u) {
    for (var i = lid; i < P.vocab; i += WG) { work[i] = logits[i]; }
  } else {
    for (var i = lid; i < P.vocab; i += WG) { work[i] = filtered(i); }
  }
  let penalize = P.repetition_penalty != 1.0 || P.frequency_penalty != 0.0 || P.presence_penalty != 0.0;
  let window = min(n_past, P.penalty_last_n);
  if (penalize) {
    workgroupBarrier();
    storageBarrier();
    for (var j = lid; j < window; j += WG) {
      let tok = history[n_past - 1u - j];
      if (tok < P.vocab) { atomicAdd(&counts[tok], 1u); }
    }
    workgroupBarrier();
    storageBarrier();
    // Computed from the original logit and the full count, so repeated tokens write one value.
    for (var j = lid; j < window; j += WG) {
      let tok = history[n_past - 1u - j];
      if (tok < P.vocab) {
        let l = filtered(tok);
        let c = f32(atomicLoad(&counts[tok]));
        let r = select(l * P.repetition_penalty, l / P.repetition_penalty, l > 0.0);
        work[tok] = select(r - c * P.frequency_penalty - P.presence_penalty, MASKED, l == MASKED);
      }
    }
    workgroupBarrier();
    storageBarrier();
    for (var j = lid; j < window; j += WG) {
      let tok = history[n_past - 1u - j];
      if (tok < P.vocab) { atomicStore(&counts[tok], 0u); }
    }
    workgroupBarrier();
    storageBarrier();
  }

  var chosen = 0u;
  if (P.temperature <= 0.0) {
    // 2a. Greedy: the largest logit, lowest index on ties.
    var best = Ranked(-3.4e38, NO_INDEX);
    for (var i = lid; i < P.vocab; i += WG) {
      if (work[i] > best.value) { best = Ranked(work[i], i); }
    }
    chosen = workgroup_argmax(lid, best).index;  // read in invocation 0 alone
  } else {
    // 2b. Temperature, then the filters as key thresholds, then a seeded draw.
    var local_max = -3.4e38;
    for (var i = lid; i < P.vocab; i += WG) {
      let x = work[i] / P.temperature;
      work[i] = x;
      local_max = max(local_max, x);
    }
    let m = workgroup_max_f(lid, local_max);
    var floor = 0u;
    if (P.top_k > 0u && P.top_k < P.vocab) { floor = kth_key(lid, P.top_k); }
    if (P.min_p > 0.0) { floor = max(floor, key(m + log(P.min_p))); }
    if (P.top_p < 1.0) {
      var s = 0.0;
      for (var i = lid; i < P.vocab; i += WG) {
        if (key(work[i]) >= floor) { s += exp(work[i] - m); }
      }
      let total = workgroup_sum_f(lid, s);
      floor = mass_key(lid, floor, m, P.top_p * total);
    }
    // Each thread owns a contiguous slice of the vocabulary; a prefix over the slices finds the
    // one that holds the drawn point of the cumulative distribution.
    let per = (P.vocab + WG - 1u) / WG;
    let lo = min(lid * per, P.vocab);
    let hi = min(lo + per, P.vocab);
    var own = 0.0;
    var last_kept = 0xffffffffu;
    for (var i = lo; i < hi; i++) {
      if (key(work[i]) >= floor) { own += exp(work[i] - m); last_kept = i; }
    }
    workgroupBarrier();
    reduce_f[lid] = own;
    workgroupBarrier();
    if (lid == 0u) {
      var run = 0.0;
      for (var i = 0u; i < WG; i++) { let v = reduce_f[i]; reduce_f[i] = run; run += v; }
      let u = f32(pcg(P.seed ^ pcg(state.draws + 0x9e3779b9u)) >> 8u) / 16777216.0;
      reduce_u[0] = bitcast<u32>(u * run);
    }
    workgroupBarrier();
    let goal = bitcast<f32>(reduce_u[0]);
    let before = reduce_f[lid];
    var pick = 0xffffffffu;
    if (own > 0.0 && goal >= before) {
      var run = before;
      for (var i = lo; i < hi; i++) {
        if (key(work[i]) >= floor) {
          run += exp(work[i] - m);
          pick = i;
          if (run > goal) { break; }
        }
      }
      if (run <= goal) { pick = 0xffffffffu; }
    }
    // The first slice that reaches the goal wins; rounding past the end falls back to the last
    // kept token. (Both reductions always run: barriers must stay in uniform control flow, and
    // workgroupUniformLoad crashes SwiftShader's compiler.)
    let first_pick = workgroup_min_u(lid, pick);
    let last = workgroup_max_u(lid, select(last_kept, 0u, last_kept == 0xffffffffu));
    chosen = select(first_pick, last, first_pick == 0xffffffffu);
  }
  if (lid == 0u) {
    state.token = chosen;
    state.draws += select(0u, 1u, P.temperature > 0.0);
    history[n_past] = chosen;
    state.n_past = n_past + 1u;
    next_tokens[0] = chosen;
  }
}
