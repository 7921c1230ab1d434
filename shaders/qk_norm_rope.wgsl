// Per-head RMSNorm of a step's queries and keys, then their RoPE, in place, in one dispatch (Qwen 3,
// Gemma 3: the norms come between the projections and RoPE). A workgroup per (head, token): heads
// 0..n_heads-1 are Q's, the rest K's: the step's new keys before they go to the KV cache (kv.wgsl);
// token t at row t of both.
// Each head is normalized on its own by one weight of head_dim shared by all heads; then pairs are
// rotated as in rope.wgsl, from the (cos, sin) table at table_offset.

struct QkNormRopeParams {
  n_heads: u32,
  n_kv_heads: u32,
  head_dim: u32,
  rope_dim: u32,
  // 1: NEOX pairs; 0: adjacent pairs.
  neox: u32,
  table_offset: u32,
  eps: f32,
  // 0: normalize only (SmolLM3-style layers without RoPE).
  rope: u32,
}

@group(0) @binding(0) var<storage, read_write> Q: array<f32>;
@group(0) @binding(1) var<storage, read_write> K: array<f32>;
@group(0) @binding(2) var<storage, read> table: array<vec2<f32>>; // [position][rope_dim / 2]
@group(0) @binding(3) var<storage, read> q_weight: array<f32>;
@group(0) @binding(4) var<storage, read> k_weight: array<f32>;
@group(0) @binding(5) var<uniform> P: QkNormRopeParams;
@group(0) @binding(6) var<uniform> S: Step;

const WG = 64u;

fn load(is_q: bool, i: u32) -> f32 {
  if (is_q) { return Q[i]; }
  return K[i];
}

fn store(is_q: bool, i: u32, v: f32) {
  if (is_q) { Q[i] = v; } else { K[i] = v; }
}

fn norm_weight(is_q: bool, i: u32) -> f32 {
  if (is_q) { return q_weight[i]; }
  return k_weight[i];
}

@compute @workgroup_size(WG)
fn qk_norm_rope(@builtin(workgroup_id) wg: vec3<u32>, lane: Lane) {
  let t = wg.y;
  let is_q = wg.x < P.n_heads;
  let base = select(t * P.n_kv_heads + wg.x - P.n_heads, t * P.n_heads + wg.x, is_q) * P.head_dim;
  var ss = 0.0;
  for (var i = lane.index; i < P.head_dim; i += WG) { let v = load(is_q, base + i); ss += v * v; }
  // Every read above is done before the barrier in workgroup_sum4, so the writes below, each to
  // values only its own invocation reads, are safe in place.
  let scale = inverseSqrt(workgroup_sum4(lane, vec4<f32>(ss, 0.0, 0.0, 0.0)).x / f32(P.head_dim) + P.eps);
  let pairs = select(0u, P.rope_dim / 2u, P.rope == 1u);
  for (var p = lane.index; p < pairs; p += WG) {
    let cs = table[P.table_offset + (S.pos + t) * pairs + p];
    let i0 = select(2u * p, p, P.neox == 1u);
    let i1 = i0 + select(1u, pairs, P.neox == 1u);
    let x0 = load(is_q, base + i0) * scale * norm_weight(is_q, i0);
    let x1 = load(is_q, base + i1) * scale * norm_weight(is_q, i1);
    store(is_q, base + i0, x0 * cs.x - x1 * cs.y);
    store(is_q, base + i1, x0 * cs.y + x1 * cs.x);
  }
  // The values past the rotated ones (all of them without RoPE) are only normalized.
  for (var i = 2u * pairs + lane.index; i < P.head_dim; i += WG) { store(is_q, base + i, load(is_q, base + i) * scale * norm_weight(is_q, i)); }
}
