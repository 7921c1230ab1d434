// Reductions over the workgroup for kernels that reduce many times per invocation, one value
// each (the sampler's threshold searches, the log-prob kernel): a tree through workgroup memory,
// every call behind a barrier, so calls can follow each other and the kernel's own use of the
// scratch arrays. src/gpu/kernels.ts includes this file in every kernel whose source calls one of
// them. The kernel declares `const WG`, a power of two (its workgroup size), and calls them in
// uniform control flow, `lid` being its local_invocation_index.

// Scratch the kernel may use too, between calls (the barrier each call starts with keeps them apart).
var<workgroup> reduce_f: array<f32, WG>;
var<workgroup> reduce_u: array<u32, WG>;

// The sum of v over the workgroup, in every invocation.
fn workgroup_sum_f(lid: u32, v: f32) -> f32 {
  workgroupBarrier();
  reduce_f[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { reduce_f[lid] += reduce_f[lid + s]; }
    workgroupBarrier();
  }
  return reduce_f[0];
}

// The largest v over the workgroup, in every invocation.
fn workgroup_max_f(lid: u32, v: f32) -> f32 {
  workgroupBarrier();
  reduce_f[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { reduce_f[lid] = max(reduce_f[lid], reduce_f[lid + s]); }
    workgroupBarrier();
  }
  return reduce_f[0];
}

// The sum of v over the workgroup, in every invocation.
fn workgroup_sum_u(lid: u32, v: u32) -> u32 {
  workgroupBarrier();
  reduce_u[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { reduce_u[lid] += reduce_u[lid + s]; }
    workgroupBarrier();
  }
  return reduce_u[0];
}

// The smallest v over the workgroup, in every invocation.
fn workgroup_min_u(lid: u32, v: u32) -> u32 {
  workgroupBarrier();
  reduce_u[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { reduce_u[lid] = min(reduce_u[lid], reduce_u[lid + s]); }
    workgroupBarrier();
  }
  return reduce_u[0];
}

// The largest v over the workgroup, in every invocation.
fn workgroup_max_u(lid: u32, v: u32) -> u32 {
  workgroupBarrier();
  reduce_u[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { reduce_u[lid] = max(reduce_u[lid], reduce_u[lid + s]); }
    workgroupBarrier();
  }
  return reduce_u[0];
}

// A value and the index it came from (NO_INDEX: none).
struct Ranked {
  value: f32,
  index: u32,
}

const NO_INDEX = 0xffffffffu;

// The largest of the invocations' candidates, the lowest index on ties, candidates with NO_INDEX
// left out; the result is meant for invocation 0 alone (NO_INDEX where none had a candidate).
// One barrier, then invocation 0 scans the WG candidates: cheaper than two trees of barriers,
// above all where barriers are emulated (CPU adapters).
fn workgroup_argmax(lid: u32, own: Ranked) -> Ranked {
  workgroupBarrier();
  reduce_f[lid] = own.value;
  reduce_u[lid] = own.index;
  workgroupBarrier();
  var best = own;
  if (lid == 0u) {
    for (var j = 1u; j < WG; j++) {
      let u = reduce_u[j];
      if (u != NO_INDEX && (best.index == NO_INDEX || reduce_f[j] > best.value || (reduce_f[j] == best.value && u < best.index))) {
        best = Ranked(reduce_f[j], u);
      }
    }
  }
  return best;
}
