// Causal attention over the KV cache, one workgroup per (token, head). Keys are visited in tiles
// of 64 with an online softmax (running max and sum), so any context length fits in a fixed
// amount of workgroup memory. Serves decode (one token) and prefill (a block of tokens).

struct AttnParams {
  n_heads: u32,
  n_kv_heads: u32,
  head_dim: u32,
  scale: f32,
}

@group(0) @binding(0) var<storage, read> Q: array<f32>;
@group(0) @binding(1) var<storage, read> K: array<f32>;
@group(0) @binding(2) var<storage, read> V: array<f32>;
@group(0) @binding(3) var<storage, read_write> O: array<f32>;
@group(0) @binding(4) var<uniform> P: AttnParams;
@group(0) @binding(5) var<uniform> S: Step;

const WG = 64u;
const MAX_HEAD_DIM = 256u;
var<workgroup> q: array<f32, MAX_HEAD_DIM>;
var<workgroup> scores: array<f32, WG>;

@compute @workgroup_size(WG)
fn attention(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let head = wg.x;
  let t = wg.y;
  let hd = P.head_dim;
  let q_stride = P.n_heads * hd;
  let kv_stride = P.n_kv_heads * hd;
  let kv_off = (head / (P.n_heads / P.n_kv_heads)) * hd;
  let n_keys = S.pos + t + 1u;
  for (var i = lid; i < hd; i += WG) { q[i] = Q[t * q_stride + head * hd + i]; }
  workgroupBarrier();

  var running_max = -3.0e38;
  var running_sum = 0.0;
  var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0); // output dims lid, lid+64, lid+128, lid+192
  for (var base = 0u; base < n_keys; base += WG) {
    let p = base + lid;
    var score = -3.0e38;
    if (p < n_keys) {
      score = 0.0;
      for (var i = 0u; i < hd; i++) { score += q[i] * K[p * kv_stride + kv_off + i]; }
      score *= P.scale;
    }
    scores[lid] = score;
    workgroupBarrier();
    let n = min(WG, n_keys - base);
    var tile_max = running_max;
    for (var j = 0u; j < n; j++) { tile_max = max(tile_max, scores[j]); }
    let correction = exp(running_max - tile_max);
    running_sum *= correction;
    for (var d = 0u; d < 4u; d++) { acc[d] *= correction; }
    for (var j = 0u; j < n; j++) {
      let e = exp(scores[j] - tile_max);
      running_sum += e;
      let v = (base + j) * kv_stride + kv_off;
      for (var d = 0u; d < 4u; d++) {
        let dim = lid + d * WG;
        if (dim < hd) { acc[d] += e * V[v + dim]; }
      }
    }
    running_max = tile_max;
    workgroupBarrier();
  }
  for (var d = 0u; d < 4u; d++) {
    let dim = lid + d * WG;
    if (dim < hd) { O[t * q_stride + head * hd + dim] = acc[d] / running_sum; }
  }
}
