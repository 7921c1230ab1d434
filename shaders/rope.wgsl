// Rotary position embedding: pair i of each head turns by angle(pos, i). GGUF's llama layout pairs
// adjacent values (v[2i], v[2i+1]); NEOX style (Qwen2) pairs the halves (v[i], v[i + rope_dim/2]). Applied in place, to Q and to K already in the KV cache. The angles come
// as a (cos, sin) table made on the CPU in double precision: WGSL's sin/cos are only specified to
// 2^-11 on [-pi, pi], and positions reach far beyond that.

struct RopeParams {
  n_heads: u32,
  head_dim: u32,
  rope_dim: u32,
  stride: u32,
  // 1: token t lives at row step.pos + t of V (K in the cache); 0: at row t.
  rows_at_pos: u32,
  // 1: NEOX pairs; 0: adjacent pairs.
  neox: u32,
}

@group(0) @binding(0) var<storage, read_write> V: array<f32>;
@group(0) @binding(1) var<storage, read> table: array<vec2<f32>>; // [position][rope_dim / 2]
@group(0) @binding(2) var<uniform> P: RopeParams;
@group(0) @binding(3) var<uniform> S: Step;

@compute @workgroup_size(64)
fn rope(@builtin(global_invocation_id) gid: vec3<u32>) {
  let pairs = P.rope_dim / 2u;
  let t = gid.y;
  if (t >= S.n_tokens || gid.x >= P.n_heads * pairs) { return; }
  let head = gid.x / pairs;
  let pair = gid.x % pairs;
  let cs = table[(S.pos + t) * pairs + pair];
  let row = (select(0u, S.pos, P.rows_at_pos == 1u) + t) * P.stride + head * P.head_dim;
  let b0 = row + select(pair * 2u, pair, P.neox == 1u);
  let b1 = b0 + select(1u, pairs, P.neox == 1u);
  let x0 = V[b0];
  let x1 = V[b1];
  V[b0] = x0 * cs.x - x1 * cs.y;
  V[b1] = x0 * cs.y + x1 * cs.x;
}
