// Decode's feed-forward input in one dispatch: Y = act(W_gate · X) * (W_up · X) for one token,
// act being silu (SwiGLU) or gelu (GeGLU, Gemma).
// Both matrices read X in the same loop, so X is loaded once for two rows. `gemv_swiglu` takes a
// workgroup per output row (GPUs); `gemv_swiglu_rows` a thread per row, with no barriers (CPU
// adapters), as matmul.wgsl's gemv and gemv_rows.

struct SwigluParams {
  gate: WeightDesc,
  up: WeightDesc,
  // 0: silu, 1: gelu.
  activation: u32,
}

@group(0) @binding(0) var<storage, read> W0: array<u32>; // gate
@group(0) @binding(1) var<storage, read> W1: array<u32>; // up
@group(0) @binding(2) var<storage, read> X: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
@group(0) @binding(4) var<uniform> P: SwigluParams;
@group(0) @binding(5) var<uniform> S: Step;

// Columns past `cols` read as zero (the padded weights there are zero too).
fn x8(k8: u32) -> W8 {
  var v: array<f32, 8>;
  for (var i = 0u; i < 8u; i++) {
    if (k8 * 8u + i < P.gate.cols) { v[i] = X[k8 * 8u + i]; }
  }
  return W8(vec4<f32>(v[0], v[1], v[2], v[3]), vec4<f32>(v[4], v[5], v[6], v[7]));
}

// The gate and up dot products of one row over columns k8 = first, first + step, ...
fn gate_up(row: u32, first: u32, step: u32) -> vec2<f32> {
  let n8 = (P.gate.cols + 7u) / 8u;
  var acc = vec2<f32>(0.0);
  for (var k8 = first; k8 < n8; k8 += step) {
    let x = x8(k8);
    let g = load0(P.gate, row, k8);
    let u = load1(P.up, row, k8);
    acc += vec2<f32>(dot8(g, x), dot8(u, x));
  }
  return acc;
}

fn glu(v: vec2<f32>) -> f32 {
  return select(silu(v.x), gelu(v.x), P.activation == 1u) * v.y;
}

const WG = 64u;
var<workgroup> partial: array<vec2<f32>, WG>;

@compute @workgroup_size(WG)
fn gemv_swiglu(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let row = wg.x + wg.y * nwg.x;
  if (row >= P.gate.rows) { return; }
  partial[lid] = gate_up(row, lid, WG);
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { partial[lid] += partial[lid + s]; }
    workgroupBarrier();
  }
  if (lid == 0u) { Y[row] = glu(partial[0]); }
}

@compute @workgroup_size(ROWS_WG)
fn gemv_swiglu_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = gid.x + gid.y * nwg.x * ROWS_WG;
  if (row >= P.gate.rows) { return; }
  Y[row] = glu(gate_up(row, 0u, 1u));
}
