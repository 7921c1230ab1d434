// Decode's feed-forward input in one dispatch: Y = act(W_gate · X) * (W_up · X) for one token,
// act being silu (SwiGLU) or gelu (GeGLU, Gemma).
// Both matrices read X in the same loop, so X is loaded once for both. `gemv_swiglu` takes a
// workgroup per two output rows (GPUs); `gemv_swiglu_rows` a thread per four rows, with no barriers
// (CPU adapters), as matmul.wgsl's gemv and gemv_rows.

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

fn x8(k8: u32) -> W8 {
  return x8_at(0u, P.gate.cols, k8);
}

// The gate and up dot products of rows r.x and r.y over columns k8 = first, first + step, ...:
// (gate r.x, up r.x, gate r.y, up r.y).
fn gate_up(r: vec2<u32>, first: u32, step: u32) -> vec4<f32> {
  let n8 = (P.gate.cols + 7u) / 8u;
  var acc = vec4<f32>(0.0);
  for (var k8 = first; k8 < n8; k8 += step) {
    let x = x8(k8);
    acc += vec4<f32>(dot8(load0(P.gate, r.x, k8), x), dot8(load1(P.up, r.x, k8), x),
                     dot8(load0(P.gate, r.y, k8), x), dot8(load1(P.up, r.y, k8), x));
  }
  return acc;
}

fn glu(v: vec2<f32>) -> f32 {
  return select(silu(v.x), gelu(v.x), P.activation == 1u) * v.y;
}

const WG = 64u;

// Two rows per workgroup, their four sums in one reduction (reduce.wgsl).
@compute @workgroup_size(WG)
fn gemv_swiglu(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, lane: Lane) {
  let row0 = (wg.x + wg.y * nwg.x) * 2u;
  if (row0 >= P.gate.rows) { return; }
  let sums = workgroup_sum4(lane, gate_up(vec2<u32>(row0, min(row0 + 1u, P.gate.rows - 1u)), lane.index, WG));
  if (lane.index < 2u && row0 + lane.index < P.gate.rows) { Y[row0 + lane.index] = glu(select(sums.xy, sums.zw, lane.index == 1u)); }
}

struct GateUp4 {
  gate: vec4<f32>,
  up: vec4<f32>,
}

// The gate and up rows r.x .. r.w against block b (weights.wgsl's dot32).
fn gate_up_block(r: vec4<u32>, b: u32, whole: bool) -> GateUp4 {
  let x = x32_at(0u, P.gate.cols, b, whole);
  let xg = prep0(x);
  let xu = prep1(x);
  return GateUp4(
    vec4<f32>(dot0(P.gate, r.x, b, xg, whole), dot0(P.gate, r.y, b, xg, whole), dot0(P.gate, r.z, b, xg, whole), dot0(P.gate, r.w, b, xg, whole)),
    vec4<f32>(dot1(P.up, r.x, b, xu, whole), dot1(P.up, r.y, b, xu, whole), dot1(P.up, r.z, b, xu, whole), dot1(P.up, r.w, b, xu, whole)),
  );
}

// Four rows at a time per thread, a whole 32-column block per step, threads striding over the
// groups of rows, as matmul.wgsl's gemv_rows.
@compute @workgroup_size(ROWS_WG)
fn gemv_swiglu_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let threads = nwg.x * nwg.y * ROWS_WG;
  let last = P.gate.rows - 1u;
  let whole = P.gate.cols / 32u;
  for (var row0 = (gid.x + gid.y * nwg.x * ROWS_WG) * 4u; row0 <= last; row0 += threads * 4u) {
    let r = vec4<u32>(row0, min(row0 + 1u, last), min(row0 + 2u, last), min(row0 + 3u, last));
    var gate = vec4<f32>(0.0);
    var up = vec4<f32>(0.0);
    for (var b = 0u; b < whole; b++) {
      let d = gate_up_block(r, b, true);
      gate += d.gate;
      up += d.up;
    }
    if (PARTIAL_BLOCKS == 1u && whole * 32u < P.gate.cols) {
      let d = gate_up_block(r, whole, false);
      gate += d.gate;
      up += d.up;
    }
    for (var i = 0u; i < 4u; i++) {
      if (row0 + i <= last) { Y[row0 + i] = glu(vec2<f32>(gate[i], up[i])); }
    }
  }
}
