// Rotary position embedding, GGUF llama layout: adjacent pairs (v[2i], v[2i+1]) of each head
// turn by (pos * theta^(-2i/rope_dim)). Applied in place, to Q and to K already in the KV cache.

struct RopeParams {
  n_heads: u32,
  head_dim: u32,
  rope_dim: u32,
  stride: u32,
  log2_theta: f32,
  // 1: token t lives at row step.pos + t of V (K in the cache); 0: at row t.
  rows_at_pos: u32,
}

@group(0) @binding(0) var<storage, read_write> V: array<f32>;
@group(0) @binding(1) var<uniform> P: RopeParams;
@group(0) @binding(2) var<uniform> S: Step;

@compute @workgroup_size(64)
fn rope(@builtin(global_invocation_id) gid: vec3<u32>) {
  let pairs = P.rope_dim / 2u;
  let t = gid.y;
  if (t >= S.n_tokens || gid.x >= P.n_heads * pairs) { return; }
  let head = gid.x / pairs;
  let i = (gid.x % pairs) * 2u;
  let pos = S.pos + t;
  let angle = f32(pos) * exp2(-f32(i) / f32(P.rope_dim) * P.log2_theta);
  let c = cos(angle);
  let s = sin(angle);
  let b = (select(0u, S.pos, P.rows_at_pos == 1u) + t) * P.stride + head * P.head_dim + i;
  let x0 = V[b];
  let x1 = V[b + 1u];
  V[b] = x0 * c - x1 * s;
  V[b + 1u] = x0 * s + x1 * c;
}
