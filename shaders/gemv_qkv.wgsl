// Decode's attention input in one dispatch: the q, k and v projections of one token, plus the
// q/k/v biases (Qwen2) and RoPE of q and k, with k and v written straight into the KV cache at
// step.pos (as f32, or with KV_BITS 16 as f16 pairs: see finish_two), or (to_cache 0: q/k norms
// still to come) as f32 rows of the new-keys buffers that kv.wgsl then stores. Each work item computes a pair of rows that RoPE turns together (adjacent pairs, or
// NEOX halves), so the rotation needs nothing from other items. `gemv_qkv` takes a workgroup per
// two pairs (GPUs); `gemv_qkv_rows` a thread per two pairs of one matrix, with no barriers (CPU
// adapters).

struct QkvParams {
  q: WeightDesc,
  k: WeightDesc,
  v: WeightDesc,
  head_dim: u32,
  rope_dim: u32,
  // 1: NEOX pairs (v[i], v[i + rope_dim/2]); 0: adjacent pairs.
  neox: u32,
  // 1: add the biases stored in C from bias_offset on (q rows, then k, then v).
  has_bias: u32,
  bias_offset: u32,
  // 1: K and V are the layer's KV cache (row step.pos); 0: the f32 new-keys buffers (row 0).
  to_cache: u32,
}

// Bits per cached value (attention.wgsl): 32, or 16 for f16 pairs. With 16, head_dim and rope_dim
// are multiples of 4 (src/model/blocks/attention.ts kvCacheBits), so each work item's two pairs
// fill whole words: two adjacent pairs (v, and the values past rope_dim), or two NEOX pairs i and
// i + 1, whose first and second values share a word each.
const KV_BITS = 32u;

@group(0) @binding(0) var<storage, read> W0: array<u32>; // attn_q
@group(0) @binding(1) var<storage, read> W1: array<u32>; // attn_k
@group(0) @binding(2) var<storage, read> W2: array<u32>; // attn_v
@group(0) @binding(3) var<storage, read> X: array<f32>;
@group(0) @binding(4) var<storage, read_write> Q: array<f32>;
@group(0) @binding(5) var<storage, read_write> K: array<u32>;
@group(0) @binding(6) var<storage, read_write> V: array<u32>;
// The model's constants: the RoPE (cos, sin) table [position][rope_dim / 2] from 0, the biases.
@group(0) @binding(7) var<storage, read> C: array<f32>;
@group(0) @binding(8) var<uniform> P: QkvParams;
@group(0) @binding(9) var<uniform> S: Step;

fn x8(k8: u32) -> W8 {
  return x8_at(0u, P.q.cols, k8);
}

// Dot products of rows r.x and r.y of one matrix over columns k8 = first, first + step, ...
fn dots(m: u32, r: vec2<u32>, first: u32, step: u32) -> vec2<f32> {
  let n8 = (P.q.cols + 7u) / 8u;
  var acc = vec2<f32>(0.0);
  switch m {
    case 0u: {
      for (var k8 = first; k8 < n8; k8 += step) { let x = x8(k8); acc += vec2<f32>(dot8(load0(P.q, r.x, k8), x), dot8(load0(P.q, r.y, k8), x)); }
    }
    case 1u: {
      for (var k8 = first; k8 < n8; k8 += step) { let x = x8(k8); acc += vec2<f32>(dot8(load1(P.k, r.x, k8), x), dot8(load1(P.k, r.y, k8), x)); }
    }
    default: {
      for (var k8 = first; k8 < n8; k8 += step) { let x = x8(k8); acc += vec2<f32>(dot8(load2(P.v, r.x, k8), x), dot8(load2(P.v, r.y, k8), x)); }
    }
  }
  return acc;
}

// Dot products of rows r.x .. r.w of one matrix over whole 32-column blocks, all columns in one
// thread (weights.wgsl's dot32): the four rows share each load of X.
fn dots_blocks(m: u32, r: vec4<u32>) -> vec4<f32> {
  let whole = P.q.cols / 32u;
  let tail = PARTIAL_BLOCKS == 1u && whole * 32u < P.q.cols;
  var acc = vec4<f32>(0.0);
  switch m {
    case 0u: {
      for (var b = 0u; b < whole; b++) { let x = prep0(x32_at(0u, P.q.cols, b, true)); acc += vec4<f32>(dot0(P.q, r.x, b, x, true), dot0(P.q, r.y, b, x, true), dot0(P.q, r.z, b, x, true), dot0(P.q, r.w, b, x, true)); }
      if (tail) { let x = prep0(x32_at(0u, P.q.cols, whole, false)); acc += vec4<f32>(dot0(P.q, r.x, whole, x, false), dot0(P.q, r.y, whole, x, false), dot0(P.q, r.z, whole, x, false), dot0(P.q, r.w, whole, x, false)); }
    }
    case 1u: {
      for (var b = 0u; b < whole; b++) { let x = prep1(x32_at(0u, P.q.cols, b, true)); acc += vec4<f32>(dot1(P.k, r.x, b, x, true), dot1(P.k, r.y, b, x, true), dot1(P.k, r.z, b, x, true), dot1(P.k, r.w, b, x, true)); }
      if (tail) { let x = prep1(x32_at(0u, P.q.cols, whole, false)); acc += vec4<f32>(dot1(P.k, r.x, whole, x, false), dot1(P.k, r.y, whole, x, false), dot1(P.k, r.z, whole, x, false), dot1(P.k, r.w, whole, x, false)); }
    }
    default: {
      for (var b = 0u; b < whole; b++) { let x = prep2(x32_at(0u, P.q.cols, b, true)); acc += vec4<f32>(dot2(P.v, r.x, b, x, true), dot2(P.v, r.y, b, x, true), dot2(P.v, r.z, b, x, true), dot2(P.v, r.w, b, x, true)); }
      if (tail) { let x = prep2(x32_at(0u, P.q.cols, whole, false)); acc += vec4<f32>(dot2(P.v, r.x, whole, x, false), dot2(P.v, r.y, whole, x, false), dot2(P.v, r.z, whole, x, false), dot2(P.v, r.w, whole, x, false)); }
    }
  }
  return acc;
}

struct Pair {
  m: u32,         // 0: q, 1: k, 2: v
  rows: vec2<u32>,
  rotation: u32,  // which RoPE pair of the head, or rope_dim / 2 when not rotated
}

fn pair_of(p: u32) -> Pair {
  let qp = P.q.rows / 2u;
  let kp = P.k.rows / 2u;
  var m = 0u;
  var local = p;
  if (p >= qp + kp) { m = 2u; local = p - qp - kp; } else if (p >= qp) { m = 1u; local = p - qp; }
  let half = P.head_dim / 2u;
  let head0 = (local / half) * P.head_dim;
  let i = local % half;
  let rope_pairs = P.rope_dim / 2u;
  if (m == 2u || i >= rope_pairs) {
    // Not rotated: the values past rope_dim (and all of v), as adjacent pairs.
    let first = select(2u * i, P.rope_dim + 2u * (i - rope_pairs), P.neox == 1u && m < 2u);
    return Pair(m, vec2<u32>(head0 + first, head0 + first + 1u), rope_pairs);
  }
  if (P.neox == 1u) { return Pair(m, vec2<u32>(head0 + i, head0 + i + rope_pairs), i); }
  return Pair(m, vec2<u32>(head0 + 2u * i, head0 + 2u * i + 1u), i);
}

// A pair's values after the bias and RoPE.
fn finished(pair: Pair, raw: vec2<f32>) -> vec2<f32> {
  var y = raw;
  if (P.has_bias == 1u) {
    let base = P.bias_offset + select(0u, P.q.rows, pair.m >= 1u) + select(0u, P.k.rows, pair.m == 2u);
    y += vec2<f32>(C[base + pair.rows.x], C[base + pair.rows.y]);
  }
  let rope_pairs = P.rope_dim / 2u;
  if (pair.rotation < rope_pairs) {
    let at = (S.pos * rope_pairs + pair.rotation) * 2u;
    let c = C[at];
    let s = C[at + 1u];
    y = vec2<f32>(y.x * c - y.y * s, y.x * s + y.y * c);
  }
  return y;
}

// Where matrix m's (k or v) output row starts, in values.
fn row_start(m: u32) -> u32 {
  return select(0u, S.pos * select(P.k.rows, P.v.rows, m == 2u), P.to_cache == 1u);
}

// Word i of matrix m's output (k or v).
fn store_word(m: u32, i: u32, word: u32) {
  if (m == 1u) { K[i] = word; } else { V[i] = word; }
}

// Value `row` of q, or f32 value `row` of k or v's output row.
fn store_f32(m: u32, row: u32, y: f32) {
  if (m == 0u) {
    Q[row] = y;
  } else {
    store_word(m, row_start(m) + row, bitcast<u32>(y));
  }
}

// Stores pair a and, if `both`, pair b (the next pair of the same matrix).
fn finish_two(a: Pair, raw_a: vec2<f32>, b: Pair, raw_b: vec2<f32>, both: bool) {
  let ya = finished(a, raw_a);
  let yb = finished(b, raw_b);
  if (KV_BITS == 32u || a.m == 0u || P.to_cache == 0u) {
    store_f32(a.m, a.rows.x, ya.x);
    store_f32(a.m, a.rows.y, ya.y);
    if (both) {
      store_f32(b.m, b.rows.x, yb.x);
      store_f32(b.m, b.rows.y, yb.y);
    }
    return;
  }
  let row = row_start(a.m);
  if (a.rows.y == a.rows.x + 1u) {
    store_word(a.m, (row + a.rows.x) / 2u, pack2x16float(ya));
    if (both) { store_word(b.m, (row + b.rows.x) / 2u, pack2x16float(yb)); }
  } else {
    store_word(a.m, (row + a.rows.x) / 2u, pack2x16float(vec2<f32>(ya.x, yb.x)));
    store_word(a.m, (row + a.rows.y) / 2u, pack2x16float(vec2<f32>(ya.y, yb.y)));
  }
}

const WG = 64u;

// Two pairs per workgroup, their four sums in one reduction (reduce.wgsl). The pairs may belong
// to different matrices, so each has its own loop.
@compute @workgroup_size(WG)
fn gemv_qkv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, lane: Lane) {
  let p0 = (wg.x + wg.y * nwg.x) * 2u;
  let pairs = (P.q.rows + P.k.rows + P.v.rows) / 2u;
  if (p0 >= pairs) { return; }
  let first = pair_of(p0);
  let second = pair_of(min(p0 + 1u, pairs - 1u));
  let sums = workgroup_sum4(lane, vec4<f32>(dots(first.m, first.rows, lane.index, WG), dots(second.m, second.rows, lane.index, WG)));
  // One invocation stores both pairs: with an f16 cache they may share words.
  if (lane.index == 0u) {
    if (first.m == second.m) {
      finish_two(first, sums.xy, second, sums.zw, p0 + 1u < pairs);
    } else {
      finish_two(first, sums.xy, first, sums.xy, false);
      finish_two(second, sums.zw, second, sums.zw, false);
    }
  }
}

// Two pairs at a time per thread, both of one matrix, so their four rows share each load of X;
// threads stride over these groups (as matmul.wgsl's gemv_rows over groups of four rows). A matrix
// with an odd number of pairs ends in a group whose second pair repeats the first, not stored.
@compute @workgroup_size(ROWS_WG)
fn gemv_qkv_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let threads = nwg.x * nwg.y * ROWS_WG;
  let counts = vec3<u32>(P.q.rows, P.k.rows, P.v.rows) / 2u;
  let groups = (counts + 1u) / 2u;
  for (var g = gid.x + gid.y * nwg.x * ROWS_WG; g < groups.x + groups.y + groups.z; g += threads) {
    var m = 0u;
    var local = g;
    var first = 0u;
    if (g >= groups.x + groups.y) {
      m = 2u;
      local = g - groups.x - groups.y;
      first = counts.x + counts.y;
    } else if (g >= groups.x) {
      m = 1u;
      local = g - groups.x;
      first = counts.x;
    }
    let count = counts[m];
    let a = pair_of(first + 2u * local);
    let b = pair_of(first + min(2u * local + 1u, count - 1u));
    let sums = dots_blocks(m, vec4<u32>(a.rows, b.rows));
    finish_two(a, sums.xy, b, sums.zw, 2u * local + 1u < count);
  }
}
