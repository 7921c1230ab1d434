// A sum over the workgroup, for kernels that reduce once per invocation (gemv, the fused decode
// GEMVs, rmsnorm). Two variants with one interface; src/gpu/kernels.ts includes one of them: this
// one through workgroup memory, reduce_subgroups.wgsl with subgroup operations where the adapter
// has them. The kernel declares `const WG` (its workgroup size) and takes a `Lane` as entry-point
// input.

struct Lane {
  @builtin(local_invocation_index) index: u32,
}

var<workgroup> reduce_partial: array<vec4<f32>, WG>;

// The sum of v over the workgroup, in every invocation, added in the same order on every run.
// One barrier, then each invocation adds the WG partials itself: cheaper than a tree of log2(WG)
// barriers, above all where barriers are emulated (CPU adapters).
fn workgroup_sum4(lane: Lane, v: vec4<f32>) -> vec4<f32> {
  reduce_partial[lane.index] = v;
  workgroupBarrier();
  var total = vec4<f32>(0.0);
  for (var i = 0u; i < WG; i++) { total += reduce_partial[i]; }
  return total;
}
