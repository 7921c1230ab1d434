// reduce.wgsl's workgroup_sum4 with subgroup operations (the `subgroups` feature and WGSL's
// subgroup_id): each subgroup adds its own invocations' values without workgroup memory, and one
// barrier later every invocation adds the subgroups' sums in subgroup order, so the result is the
// same on every run. The slots are indexed by subgroup_id: which invocations share a subgroup is
// up to the implementation, and subgroups hold at least 4 invocations.

struct Lane {
  @builtin(local_invocation_index) index: u32,
  @builtin(subgroup_id) subgroup: u32,
  @builtin(num_subgroups) subgroups: u32,
}

var<workgroup> reduce_partial: array<vec4<f32>, (WG + 3u) / 4u>;

fn workgroup_sum4(lane: Lane, v: vec4<f32>) -> vec4<f32> {
  let sum = subgroupAdd(v);
  if (subgroupElect()) { reduce_partial[lane.subgroup] = sum; }
  workgroupBarrier();
  var total = vec4<f32>(0.0);
  for (var i = 0u; i < lane.subgroups; i++) { total += reduce_partial[i]; }
  return total;
}
