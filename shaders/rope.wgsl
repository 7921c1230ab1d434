// Rotary position embedding, GGUF llama layout: adjacent pairs (v[2i], v[2i+1]) of each head
// turn by angle(pos, i). Applied in place, to Q and to K already in the KV cache. The angles come
// as a (cos, sin) table made on the CPU in double precision: WGSL's sin/cos are only specified to
// 2^-11 on [-pi, pi], and positions reach far beyond that.

struct RopeParams {
  n_heads: u32,
  head_dim: u32,
  rope_dim: u32,
  stride: u32,
  // 1: token t lives at row step.pos + t of V (K in the cache); 0: at row t.
  rows_at_pos: u32,
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
  let b = (select(0u, S.pos, P.rows_at_pos == 1u) + t) * P.stride + head * P.head_dim + pair * 2u;
  let x0 = V[b];
  let x1 = V[b + 1u];
  V[b] = x0 * cs.x - x1 * cs.y;
  V[b + 1u] = x0 * cs.y + x1 * cs.x;
}
