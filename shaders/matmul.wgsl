// Y = W · X with W dequantized on the fly (weights.wgsl). W is [rows][cols]; X holds tokens of
// `cols` floats, Y tokens of `rows` floats. `gemv` serves one token (decode and the logits);
// `gemm` a block of prompt tokens.

struct MatmulParams {
  w: WeightDesc,
  x_stride: u32,
  y_stride: u32,
  // How the result lands in Y: 0: Y = W·X; 1: Y += W·X (fuses the residual add);
  // 2: Y = silu(Y) * W·X and 3: Y = gelu(Y) * W·X (fuse SwiGLU / GeGLU: Y holds the gate
  // projection, W is the up projection); 4: Y = softcap(W·X, cap) (Gemma 2's final logits).
  mode: u32,
  // Where this matrix's rows start in a Y row: a matrix split into parts of rows (for binding
  // size limits) is one dispatch per part.
  y_offset: u32,
  cap: f32,
}

@group(0) @binding(0) var<storage, read> W: array<u32>;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
@group(0) @binding(3) var<uniform> P: MatmulParams;
@group(0) @binding(4) var<uniform> S: Step;

fn x8(t: u32, k8: u32) -> W8 {
  return x8_at(t * P.x_stride, P.w.cols, k8);
}

fn store(t: u32, row: u32, value: f32) {
  let i = t * P.y_stride + P.y_offset + row;
  switch P.mode {
    case 1u: { Y[i] = Y[i] + value; }
    case 2u: { Y[i] = silu(Y[i]) * value; }
    case 3u: { Y[i] = gelu(Y[i]) * value; }
    case 4u: { Y[i] = softcap(value, P.cap); }
    default: { Y[i] = value; }
  }
}

const WG = 64u;

// Four output rows per workgroup (GPUs): each invocation takes every WG-th group of eight columns
// of all four rows, so each load of X serves four rows, and one reduction (reduce.wgsl) sums the
// four at once. Rows past the end repeat the last one and are not stored. A 2D grid lifts the
// 65535-workgroup limit for large vocabularies.
@compute @workgroup_size(WG)
fn gemv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, lane: Lane) {
  let row0 = (wg.x + wg.y * nwg.x) * 4u;
  if (row0 >= P.w.rows) { return; }
  let last = P.w.rows - 1u;
  let rows = vec4<u32>(row0, min(row0 + 1u, last), min(row0 + 2u, last), min(row0 + 3u, last));
  let n8 = (P.w.cols + 7u) / 8u;
  var acc = vec4<f32>(0.0);
  for (var k8 = lane.index; k8 < n8; k8 += WG) {
    let x = x8(0u, k8);
    acc += vec4<f32>(dot8(load_w8(P.w, rows.x, k8), x), dot8(load_w8(P.w, rows.y, k8), x),
                     dot8(load_w8(P.w, rows.z, k8), x), dot8(load_w8(P.w, rows.w, k8), x));
  }
  let sums = workgroup_sum4(lane, acc);
  if (lane.index < 4u && row0 + lane.index <= last) { store(0u, row0 + lane.index, sums[lane.index]); }
}

// 16 rows x 16 tokens per workgroup; each of 64 threads owns a 2x2 block of outputs. K advances
// 32 columns at a time through workgroup memory.
const TILE = 16u;
var<workgroup> tile_w: array<array<f32, 33>, TILE>;
var<workgroup> tile_x: array<array<f32, 33>, TILE>;

@compute @workgroup_size(64)
fn gemm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row0 = wg.x * TILE;
  let tok0 = wg.y * TILE;
  let n8 = (P.w.cols + 7u) / 8u;
  let my_row = (lid % 8u) * 2u;
  let my_tok = (lid / 8u) * 2u;
  let load_i = lid / 4u;        // which row / token this thread loads
  let load_k = (lid % 4u) * 8u; // which 8 columns of the 32
  var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
  for (var kb = 0u; kb < n8; kb += 4u) {
    let k8 = kb + lid % 4u;
    var w = W8(vec4<f32>(0.0), vec4<f32>(0.0));
    if (row0 + load_i < P.w.rows && k8 < n8) { w = load_w8(P.w, row0 + load_i, k8); }
    var x = W8(vec4<f32>(0.0), vec4<f32>(0.0));
    if (tok0 + load_i < S.n_tokens && k8 < n8) { x = x8(tok0 + load_i, k8); }
    for (var i = 0u; i < 4u; i++) {
      tile_w[load_i][load_k + i] = w.lo[i];
      tile_w[load_i][load_k + 4u + i] = w.hi[i];
      tile_x[load_i][load_k + i] = x.lo[i];
      tile_x[load_i][load_k + 4u + i] = x.hi[i];
    }
    workgroupBarrier();
    for (var k = 0u; k < 32u; k++) {
      let w0 = tile_w[my_row][k];
      let w1 = tile_w[my_row + 1u][k];
      let x0 = tile_x[my_tok][k];
      let x1 = tile_x[my_tok + 1u][k];
      acc[0] += w0 * x0;
      acc[1] += w1 * x0;
      acc[2] += w0 * x1;
      acc[3] += w1 * x1;
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let row = row0 + my_row + (i & 1u);
    let tok = tok0 + my_tok + (i >> 1u);
    if (row < P.w.rows && tok < S.n_tokens) { store(tok, row, acc[i]); }
  }
}

// Four output rows at a time per thread, no workgroup memory or barriers: for adapters where
// barriers are expensive and every component operation is an instruction (CPU implementations
// such as SwiftShader). The loop takes a whole 32-column block per step (weights.wgsl's dot32: one
// scale per block, few operations per weight); the rows share each load of X, and the sums stay in
// one vec4 register. (Eight rows per thread ran out of registers and was slower.) The grid may hold
// fewer threads than groups of rows (src/model/kernel-shapes.ts cpuGrid): each thread then takes every
// threads-th group, since each group of invocations a dispatch starts costs a fixed prologue.
@compute @workgroup_size(ROWS_WG)
fn gemv_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let threads = nwg.x * nwg.y * ROWS_WG;
  let last = P.w.rows - 1u;
  let whole = P.w.cols / 32u;
  for (var row0 = (gid.x + gid.y * nwg.x * ROWS_WG) * 4u; row0 <= last; row0 += threads * 4u) {
    let r1 = min(row0 + 1u, last);
    let r2 = min(row0 + 2u, last);
    let r3 = min(row0 + 3u, last);
    // Whole blocks without bounds checks, then the partial block at the end of a row, if any.
    var acc = vec4<f32>(0.0);
    for (var b = 0u; b < whole; b++) {
      let x = prep32(x32_at(0u, P.w.cols, b, true));
      acc += vec4<f32>(dot32(P.w, row0, b, x, true), dot32(P.w, r1, b, x, true), dot32(P.w, r2, b, x, true), dot32(P.w, r3, b, x, true));
    }
    if (PARTIAL_BLOCKS == 1u && whole * 32u < P.w.cols) {
      let x = prep32(x32_at(0u, P.w.cols, whole, false));
      acc += vec4<f32>(dot32(P.w, row0, whole, x, false), dot32(P.w, r1, whole, x, false), dot32(P.w, r2, whole, x, false), dot32(P.w, r3, whole, x, false));
    }
    for (var r = 0u; r < 4u; r++) {
      if (row0 + r <= last) { store(0u, row0 + r, acc[r]); }
    }
  }
}

// Prefill without barriers, for CPU adapters: a thread per 4 output rows and 4 tokens. Each
// weight is dequantized once for the 4 tokens and each activation loaded once for the 4 rows; the
// 16 sums live in four vec4 registers (a private array indexed in a loop would live in memory).
// Rows and tokens past the end repeat the last one and are not stored. Groups of eight columns
// within the row take no bounds checks; a partial group at the end of the row, if any, comes last.
struct Rows4Tokens4 {
  r0: vec4<f32>,
  r1: vec4<f32>,
  r2: vec4<f32>,
  r3: vec4<f32>,
}

fn gemm_step(rows: vec4<u32>, k8: u32, x0: W8, x1: W8, x2: W8, x3: W8) -> Rows4Tokens4 {
  let w0 = load_w8(P.w, rows.x, k8);
  let w1 = load_w8(P.w, rows.y, k8);
  let w2 = load_w8(P.w, rows.z, k8);
  let w3 = load_w8(P.w, rows.w, k8);
  return Rows4Tokens4(
    vec4<f32>(dot8(w0, x0), dot8(w0, x1), dot8(w0, x2), dot8(w0, x3)),
    vec4<f32>(dot8(w1, x0), dot8(w1, x1), dot8(w1, x2), dot8(w1, x3)),
    vec4<f32>(dot8(w2, x0), dot8(w2, x1), dot8(w2, x2), dot8(w2, x3)),
    vec4<f32>(dot8(w3, x0), dot8(w3, x1), dot8(w3, x2), dot8(w3, x3)),
  );
}

@compute @workgroup_size(ROWS_WG)
fn gemm_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
  let row0 = gid.x * 4u;
  let t0 = gid.y * 4u;
  if (row0 >= P.w.rows || t0 >= S.n_tokens) { return; }
  let last_row = P.w.rows - 1u;
  let last_t = S.n_tokens - 1u;
  let rows = vec4<u32>(row0, min(row0 + 1u, last_row), min(row0 + 2u, last_row), min(row0 + 3u, last_row));
  let starts = vec4<u32>(t0, min(t0 + 1u, last_t), min(t0 + 2u, last_t), min(t0 + 3u, last_t)) * P.x_stride;
  let whole8 = P.w.cols / 8u;
  var acc = Rows4Tokens4(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
  for (var k8 = 0u; k8 < whole8; k8++) {
    let d = gemm_step(rows, k8, x8_whole(starts.x, k8), x8_whole(starts.y, k8), x8_whole(starts.z, k8), x8_whole(starts.w, k8));
    acc = Rows4Tokens4(acc.r0 + d.r0, acc.r1 + d.r1, acc.r2 + d.r2, acc.r3 + d.r3);
  }
  if (whole8 * 8u < P.w.cols) {
    let c = P.w.cols;
    let d = gemm_step(rows, whole8, x8_at(starts.x, c, whole8), x8_at(starts.y, c, whole8), x8_at(starts.z, c, whole8), x8_at(starts.w, c, whole8));
    acc = Rows4Tokens4(acc.r0 + d.r0, acc.r1 + d.r1, acc.r2 + d.r2, acc.r3 + d.r3);
  }
  for (var j = 0u; j < 4u; j++) {
    if (t0 + j <= last_t) {
      if (row0 <= last_row) { store(t0 + j, row0, acc.r0[j]); }
      if (row0 + 1u <= last_row) { store(t0 + j, row0 + 1u, acc.r1[j]); }
      if (row0 + 2u <= last_row) { store(t0 + j, row0 + 2u, acc.r2[j]); }
      if (row0 + 3u <= last_row) { store(t0 + j, row0 + 3u, acc.r3[j]); }
    }
  }
}
