// Bandwidth probe for benchmarks: every thread streams vec4 words with a grid-stride loop and
// writes one sum, so the run time is the time to read the buffer once.

@group(0) @binding(0) var<storage, read> data: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> sums: array<u32>;

@compute @workgroup_size(256)
fn probe(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let stride = nwg.x * 256u;
  var acc = vec4<u32>(0u);
  for (var i = gid.x; i < arrayLength(&data); i += stride) { acc ^= data[i]; }
  sums[gid.x] = acc.x ^ acc.y ^ acc.z ^ acc.w;
}
