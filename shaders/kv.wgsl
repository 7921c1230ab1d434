// Writes a step's keys and values into a layer's KV cache at rows step.pos .. step.pos + n - 1:
// from the f32 rows the prefill projections, biases and RoPE leave in K_NEW and V_NEW (token t at
// row t), as f32 or (KV_BITS 16) as f16 pairs packed in u32, so the cache takes half the memory.
// The decode projection (gemv_qkv.wgsl) writes the cache the same way itself.

struct KvStoreParams {
  kv_dim: u32, // values per row (n_kv_heads * head_dim), even with KV_BITS 16
}

@group(0) @binding(0) var<storage, read> K_NEW: array<f32>;
@group(0) @binding(1) var<storage, read> V_NEW: array<f32>;
@group(0) @binding(2) var<storage, read_write> K: array<u32>;
@group(0) @binding(3) var<storage, read_write> V: array<u32>;
@group(0) @binding(4) var<uniform> P: KvStoreParams;
@group(0) @binding(5) var<uniform> S: Step;

const KV_BITS = 32u;

// One word of each cache per invocation: two values (f16) or one (f32).
@compute @workgroup_size(64)
fn kv_store(@builtin(global_invocation_id) gid: vec3<u32>) {
  let t = gid.y;
  let per_value = KV_BITS / 16u; // 2: f32, 1: f16 pairs
  let words = P.kv_dim * per_value / 2u;
  if (t >= S.n_tokens || gid.x >= words) { return; }
  let to = (S.pos + t) * words + gid.x;
  if (KV_BITS == 16u) {
    let at = t * P.kv_dim + 2u * gid.x;
    K[to] = pack2x16float(vec2<f32>(K_NEW[at], K_NEW[at + 1u]));
    V[to] = pack2x16float(vec2<f32>(V_NEW[at], V_NEW[at + 1u]));
  } else {
    let at = t * P.kv_dim + gid.x;
    K[to] = bitcast<u32>(K_NEW[at]);
    V[to] = bitcast<u32>(V_NEW[at]);
  }
}
