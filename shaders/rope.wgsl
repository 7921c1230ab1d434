// Rotary position embedding of a step's queries and keys, in one dispatch: pair i of each head
// turns by angle(pos, i). GGUF's llama layout pairs adjacent values (v[2i], v[2i+1]); NEOX style
// (Qwen2) pairs the halves (v[i], v[i + rope_dim/2]). Applied in place, to Q and to the step's new
// keys before they go to the KV cache (kv.wgsl), token t at row t of both; token t is at position
// step.pos + t. The angles come as a (cos, sin)
// table made on the CPU in double precision: WGSL's sin/cos are only specified to 2^-11 on
// [-pi, pi], and positions reach far beyond that.

struct RopeParams {
  n_heads: u32,
  n_kv_heads: u32,
  head_dim: u32,
  rope_dim: u32,
  // 1: NEOX pairs; 0: adjacent pairs.
  neox: u32,
  // Where this layer's table starts in `table` (Gemma 3's windowed layers have their own).
  table_offset: u32,
}

@group(0) @binding(0) var<storage, read_write> Q: array<f32>;
@group(0) @binding(1) var<storage, read_write> K: array<f32>;
@group(0) @binding(2) var<storage, read> table: array<vec2<f32>>; // [position][rope_dim / 2]
@group(0) @binding(3) var<uniform> P: RopeParams;
@group(0) @binding(4) var<uniform> S: Step;

fn pair_offsets(row: u32, head: u32, pair: u32) -> vec2<u32> {
  let pairs = P.rope_dim / 2u;
  let b0 = row + head * P.head_dim + select(pair * 2u, pair, P.neox == 1u);
  return vec2<u32>(b0, b0 + select(1u, pairs, P.neox == 1u));
}

@compute @workgroup_size(64)
fn rope(@builtin(global_invocation_id) gid: vec3<u32>) {
  let pairs = P.rope_dim / 2u;
  let t = gid.y;
  let q_pairs = P.n_heads * pairs;
  if (t >= S.n_tokens || gid.x >= q_pairs + P.n_kv_heads * pairs) { return; }
  let cs = table[P.table_offset + (S.pos + t) * pairs + gid.x % pairs];
  if (gid.x < q_pairs) {
    let b = pair_offsets(t * P.n_heads * P.head_dim, gid.x / pairs, gid.x % pairs);
    let x0 = Q[b.x];
    let x1 = Q[b.y];
    Q[b.x] = x0 * cs.x - x1 * cs.y;
    Q[b.y] = x0 * cs.y + x1 * cs.x;
  } else {
    let i = gid.x - q_pairs;
    let b = pair_offsets(t * P.n_kv_heads * P.head_dim, i / pairs, i % pairs);
    let x0 = K[b.x];
    let x1 = K[b.y];
    K[b.x] = x0 * cs.x - x1 * cs.y;
    K[b.y] = x0 * cs.y + x1 * cs.x;
  }
}
