// Reductions over the workgroup for kernels that reduce many times per invocation, one value
// each (the sampler's threshold searches, the log-prob kernel): a tree through workgroup memory,
// every call behind a barrier, so calls can follow each other and the kernel's own use of the
// scratch arrays. src/gpu/kernels.ts includes this file in every kernel whose source calls one of
// them. The kernel declares `const WG`, a power of two (its workgroup size), and calls them in
// uniform control flow, `lid` being its local_invocation_index.

// Scratch the kernel may use too, between calls (the barrier each call starts with keeps them apart).
var<workgroup> reduce_f: array<f32, WG>;
var<workgroup> reduce_u: array<u32, WG>;

// What a reduction computes, over values held as u32 bits (f32 ones bitcast).
const SUM_F32 = 0u;
const MAX_F32 = 1u;
const SUM_U32 = 2u;
const MIN_U32 = 3u;
const MAX_U32 = 4u;

fn reduce_combine(op: u32, a: u32, b: u32) -> u32 {
  switch op {
    case SUM_F32: { return bitcast<u32>(bitcast<f32>(a) + bitcast<f32>(b)); }
    case MAX_F32: { return bitcast<u32>(max(bitcast<f32>(a), bitcast<f32>(b))); }
    case SUM_U32: { return a + b; }
    case MIN_U32: { return min(a, b); }
    default: { return max(a, b); }
  }
}

// v combined by op over the workgroup (a tree: log2(WG) steps), in every invocation.
fn workgroup_reduce(lid: u32, op: u32, v: u32) -> u32 {
  workgroupBarrier();
  reduce_u[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { reduce_u[lid] = reduce_combine(op, reduce_u[lid], reduce_u[lid + s]); }
    workgroupBarrier();
  }
  return reduce_u[0];
}

fn workgroup_sum_f(lid: u32, v: f32) -> f32 { return bitcast<f32>(workgroup_reduce(lid, SUM_F32, bitcast<u32>(v))); }
fn workgroup_max_f(lid: u32, v: f32) -> f32 { return bitcast<f32>(workgroup_reduce(lid, MAX_F32, bitcast<u32>(v))); }
fn workgroup_sum_u(lid: u32, v: u32) -> u32 { return workgroup_reduce(lid, SUM_U32, v); }
fn workgroup_min_u(lid: u32, v: u32) -> u32 { return workgroup_reduce(lid, MIN_U32, v); }
fn workgroup_max_u(lid: u32, v: u32) -> u32 { return workgroup_reduce(lid, MAX_U32, v); }

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
