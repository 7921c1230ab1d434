// Causal attention over the KV cache, split along the keys ("flash decoding"): one workgroup per
// (token, head), whose CHUNKS invocations each take a contiguous run of the keys and keep an
// online softmax over it (running max m, sum l, weighted values acc). After one barrier, the same
// invocations rescale the chunks to a common max and combine them, each for a share of the output
// dims. No redundant exponentials: each key's score and exp are computed once. Serves decode (one
// token) and prefill (a block of tokens).

struct AttnParams {
  n_heads: u32,
  n_kv_heads: u32,
  head_dim: u32,
  scale: f32,
  // Scores are soft-capped as cap * tanh(s / cap) (Gemma 2); 0: off.
  softcap: f32,
  // A query sees only the last `window` positions, itself included (sliding window); 0: all.
  window: u32,
}

const CHUNKS = 16u;
// The largest head_dim this pipeline serves; the model sets it to its own (src/gpu/kernels.ts),
// so the private arrays below are no larger than they need to be.
const MAX_HEAD_DIM = 256u;

@group(0) @binding(0) var<storage, read> Q: array<f32>;
@group(0) @binding(1) var<storage, read> K: array<f32>;
@group(0) @binding(2) var<storage, read> V: array<f32>;
// Scratch: per (token, head, chunk), m, l, then head_dim weighted sums.
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;
@group(0) @binding(4) var<storage, read_write> O: array<f32>;
@group(0) @binding(5) var<uniform> P: AttnParams;
@group(0) @binding(6) var<uniform> S: Step;

@compute @workgroup_size(CHUNKS)
fn attention(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) chunk: u32) {
  let head = wg.x;
  let t = wg.y;
  let hd = P.head_dim;
  let q_off = (t * P.n_heads + head) * hd;
  let kv_stride = P.n_kv_heads * hd;
  let kv_off = (head / (P.n_heads / P.n_kv_heads)) * hd;
  let n_keys = S.pos + t + 1u;
  let first = select(0u, n_keys - P.window, P.window > 0u && n_keys > P.window);
  let len = (n_keys - first + CHUNKS - 1u) / CHUNKS;
  let begin = first + chunk * len;
  let end = min(begin + len, n_keys);

  var q: array<f32, MAX_HEAD_DIM>;
  for (var i = 0u; i < hd; i++) { q[i] = Q[q_off + i]; }
  var m = -3.0e38;
  var l = 0.0;
  var acc: array<f32, MAX_HEAD_DIM>;
  for (var p = begin; p < end; p++) {
    let k = p * kv_stride + kv_off;
    var s = 0.0;
    for (var i = 0u; i < hd; i++) { s += q[i] * K[k + i]; }
    s = softcap(s * P.scale, P.softcap);
    // Rescale only when the max moves: most keys leave it where it is.
    if (s > m) {
      let correction = exp(m - s);
      l *= correction;
      for (var d = 0u; d < hd; d++) { acc[d] *= correction; }
      m = s;
    }
    let e = exp(s - m);
    l += e;
    for (var d = 0u; d < hd; d++) { acc[d] += e * V[k + d]; }
  }
  let base = (t * P.n_heads + head) * CHUNKS;
  let out = (base + chunk) * (hd + 2u);
  partial[out] = m;
  partial[out + 1u] = l;
  for (var d = 0u; d < hd; d++) { partial[out + 2u + d] = acc[d]; }
  // Every chunk's partial, written by this workgroup, is visible to all of it after this.
  storageBarrier();

  var max_all = -3.0e38;
  for (var c = 0u; c < CHUNKS; c++) { max_all = max(max_all, partial[(base + c) * (hd + 2u)]); }
  var weights: array<f32, CHUNKS>;
  var total = 0.0;
  for (var c = 0u; c < CHUNKS; c++) {
    let at = (base + c) * (hd + 2u);
    // Empty chunks (m = -3e38, l = 0) weigh exp(-huge) = 0.
    weights[c] = exp(partial[at] - max_all);
    total += weights[c] * partial[at + 1u];
  }
  for (var d = chunk; d < hd; d += CHUNKS) {
    var o = 0.0;
    for (var c = 0u; c < CHUNKS; c++) { o += weights[c] * partial[(base + c) * (hd + 2u) + 2u + d]; }
    O[q_off + d] = o / total;
  }
}
