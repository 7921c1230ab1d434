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
  // 1: token t writes Y row step.pos + t (projections straight into the KV cache).
  y_at_pos: u32,
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
  let k = k8 * 8u;
  let b = t * P.x_stride + k;
  if (k + 8u <= P.w.cols) {
    return W8(vec4<f32>(X[b], X[b + 1u], X[b + 2u], X[b + 3u]), vec4<f32>(X[b + 4u], X[b + 5u], X[b + 6u], X[b + 7u]));
  }
  // Row tail: columns past `cols` read as zero (the padded weights there are zero too).
  var v: array<f32, 8>;
  for (var i = 0u; i < 8u; i++) {
    if (k + i < P.w.cols) { v[i] = X[b + i]; }
  }
  return W8(vec4<f32>(v[0], v[1], v[2], v[3]), vec4<f32>(v[4], v[5], v[6], v[7]));
}

fn store(t: u32, row: u32, value: f32) {
  let i = (select(0u, S.pos, P.y_at_pos == 1u) + t) * P.y_stride + P.y_offset + row;
  switch P.mode {
    case 1u: { Y[i] = Y[i] + value; }
    case 2u: { Y[i] = silu(Y[i]) * value; }
    case 3u: { Y[i] = gelu(Y[i]) * value; }
    case 4u: { Y[i] = softcap(value, P.cap); }
    default: { Y[i] = value; }
  }
}

const GEMV_WG = 64u;
var<workgroup> partial: array<f32, GEMV_WG>;

// One workgroup per output row; a 2D grid lifts the 65535-workgroup limit for large vocabularies.
@compute @workgroup_size(GEMV_WG)
fn gemv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = wg.x + wg.y * nwg.x;
  if (row >= P.w.rows) { return; }
  let n8 = (P.w.cols + 7u) / 8u;
  var acc = 0.0;
  for (var k8 = lid; k8 < n8; k8 += GEMV_WG) {
    acc += dot8(load_w8(P.w, row, k8), x8(0u, k8));
  }
  partial[lid] = acc;
  workgroupBarrier();
  for (var s = GEMV_WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { partial[lid] += partial[lid + s]; }
    workgroupBarrier();
  }
  if (lid == 0u) { store(0u, row, partial[0]); }
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

// The activations of token t at columns 32b .. 32b+31 and their sum. `whole`: the block lies
// within `cols`, so no column needs a bounds check (a branch per load costs as much as the math
// on CPU adapters).
fn x32(t: u32, b: u32, whole: bool) -> X32 {
  var a: W8;
  var c: W8;
  var e: W8;
  var g: W8;
  if (whole) {
    let i = t * P.x_stride + b * 32u;
    a = W8(vec4<f32>(X[i], X[i + 1u], X[i + 2u], X[i + 3u]), vec4<f32>(X[i + 4u], X[i + 5u], X[i + 6u], X[i + 7u]));
    c = W8(vec4<f32>(X[i + 8u], X[i + 9u], X[i + 10u], X[i + 11u]), vec4<f32>(X[i + 12u], X[i + 13u], X[i + 14u], X[i + 15u]));
    e = W8(vec4<f32>(X[i + 16u], X[i + 17u], X[i + 18u], X[i + 19u]), vec4<f32>(X[i + 20u], X[i + 21u], X[i + 22u], X[i + 23u]));
    g = W8(vec4<f32>(X[i + 24u], X[i + 25u], X[i + 26u], X[i + 27u]), vec4<f32>(X[i + 28u], X[i + 29u], X[i + 30u], X[i + 31u]));
  } else {
    a = x8(t, b * 4u);
    c = x8(t, b * 4u + 1u);
    e = x8(t, b * 4u + 2u);
    g = x8(t, b * 4u + 3u);
  }
  let sum = dot(a.lo + a.hi + c.lo + c.hi + e.lo + e.hi + g.lo + g.hi, vec4<f32>(1.0));
  return X32(a.lo, a.hi, c.lo, c.hi, e.lo, e.hi, g.lo, g.hi, sum);
}

// A block of a row for kinds without their own dot32 (weights.wgsl), eight columns at a time;
// groups of eight past the end of the row are not read (they would belong to the next row).
fn dot32_generic(d: WeightDesc, row: u32, b: u32, x: X32) -> f32 {
  let n8 = (d.cols + 7u) / 8u;
  let k8 = b * 4u;
  var s = dot8(load_w8(d, row, k8), W8(x.v0, x.v1));
  if (k8 + 1u < n8) { s += dot8(load_w8(d, row, k8 + 1u), W8(x.v2, x.v3)); }
  if (k8 + 2u < n8) { s += dot8(load_w8(d, row, k8 + 2u), W8(x.v4, x.v5)); }
  if (k8 + 3u < n8) { s += dot8(load_w8(d, row, k8 + 3u), W8(x.v6, x.v7)); }
  return s;
}

// Four output rows per thread, no workgroup memory or barriers: for adapters where barriers are
// expensive and every component operation is an instruction (CPU implementations such as
// SwiftShader). The loop takes a whole 32-column block per step (weights.wgsl's dot32: one scale
// per block, few operations per weight); the rows share each load of X, and the sums stay in one
// vec4 register. (Eight rows per thread ran out of registers and was slower.)
@compute @workgroup_size(ROWS_WG)
fn gemv_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row0 = (gid.x + gid.y * nwg.x * ROWS_WG) * 4u;
  if (row0 >= P.w.rows) { return; }
  let last = P.w.rows - 1u;
  let r1 = min(row0 + 1u, last);
  let r2 = min(row0 + 2u, last);
  let r3 = min(row0 + 3u, last);
  // Whole blocks without bounds checks, then the partial block at the end of a row, if any.
  let whole = P.w.cols / 32u;
  var acc = vec4<f32>(0.0);
  for (var b = 0u; b < whole; b++) {
    let x = prep32(x32(0u, b, true));
    acc += vec4<f32>(dot32(P.w, row0, b, x), dot32(P.w, r1, b, x), dot32(P.w, r2, b, x), dot32(P.w, r3, b, x));
  }
  if (whole * 32u < P.w.cols) {
    let x = prep32(x32(0u, whole, false));
    acc += vec4<f32>(dot32(P.w, row0, whole, x), dot32(P.w, r1, whole, x), dot32(P.w, r2, whole, x), dot32(P.w, r3, whole, x));
  }
  for (var r = 0u; r < 4u; r++) {
    if (row0 + r <= last) { store(0u, row0 + r, acc[r]); }
  }
}

// Prefill without barriers, for CPU adapters: a thread per 4 output rows and 4 tokens. Each
// weight is dequantized once for the 4 tokens and each activation loaded once for the 4 rows; the
// 16 sums live in four vec4 registers (a private array indexed in a loop would live in memory).
// Rows and tokens past the end repeat the last one and are not stored.
@compute @workgroup_size(ROWS_WG)
fn gemm_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
  let row0 = gid.x * 4u;
  let t0 = gid.y * 4u;
  if (row0 >= P.w.rows || t0 >= S.n_tokens) { return; }
  let last_row = P.w.rows - 1u;
  let last_t = S.n_tokens - 1u;
  let n8 = (P.w.cols + 7u) / 8u;
  var acc = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
  for (var k8 = 0u; k8 < n8; k8++) {
    let x0 = x8(t0, k8);
    let x1 = x8(min(t0 + 1u, last_t), k8);
    let x2 = x8(min(t0 + 2u, last_t), k8);
    let x3 = x8(min(t0 + 3u, last_t), k8);
    let w0 = load_w8(P.w, row0, k8);
    let w1 = load_w8(P.w, min(row0 + 1u, last_row), k8);
    let w2 = load_w8(P.w, min(row0 + 2u, last_row), k8);
    let w3 = load_w8(P.w, min(row0 + 3u, last_row), k8);
    acc[0] += vec4<f32>(dot8(w0, x0), dot8(w0, x1), dot8(w0, x2), dot8(w0, x3));
    acc[1] += vec4<f32>(dot8(w1, x0), dot8(w1, x1), dot8(w1, x2), dot8(w1, x3));
    acc[2] += vec4<f32>(dot8(w2, x0), dot8(w2, x1), dot8(w2, x2), dot8(w2, x3));
    acc[3] += vec4<f32>(dot8(w3, x0), dot8(w3, x1), dot8(w3, x2), dot8(w3, x3));
  }
  for (var r = 0u; r < 4u; r++) {
    for (var j = 0u; j < 4u; j++) {
      if (row0 + r <= last_row && t0 + j <= last_t) { store(t0 + j, row0 + r, acc[r][j]); }
    }
  }
}
