// Causal (or, for encoders, bidirectional) attention over the KV cache, split along the keys ("flash decoding"): one workgroup per
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
  // Bidirectional: the positions within window / 2 either side (llama.cpp's symmetric SWA).
  window: u32,
  // 1: every query sees every key of the step (encoders, EmbeddingGemma); 0, the padding's zero
  // when a model writes no such field: causal.
  bidirectional: u32,
}

const CHUNKS = 16u;
// The largest head_dim this pipeline serves; the model sets it to its own (src/gpu/kernels.ts),
// so the private arrays below are no larger than they need to be.
const MAX_HEAD_DIM = 256u;
const MAX_HEAD_VEC4 = (MAX_HEAD_DIM + 3u) / 4u;
// Bits per cached value: 32 (f32) or 16 (f16 pairs; head_dim is then even, so a key's values
// start on a whole word).
const KV_BITS = 32u;

// Cached values a .. a+3 of K or V (a even).
fn key4(a: u32) -> vec4<f32> {
  if (KV_BITS == 16u) { return vec4<f32>(unpack2x16float(K[a >> 1u]), unpack2x16float(K[(a >> 1u) + 1u])); }
  return bitcast<vec4<f32>>(vec4<u32>(K[a], K[a + 1u], K[a + 2u], K[a + 3u]));
}

fn value4(a: u32) -> vec4<f32> {
  if (KV_BITS == 16u) { return vec4<f32>(unpack2x16float(V[a >> 1u]), unpack2x16float(V[(a >> 1u) + 1u])); }
  return bitcast<vec4<f32>>(vec4<u32>(V[a], V[a + 1u], V[a + 2u], V[a + 3u]));
}

@group(0) @binding(0) var<storage, read> Q: array<f32>;
// The layer's KV cache: a row of n_kv_heads * head_dim values per position, as f32 or (KV_BITS 16)
// f16 pairs packed in u32 (kv.wgsl).
@group(0) @binding(1) var<storage, read> K: array<u32>;
@group(0) @binding(2) var<storage, read> V: array<u32>;
// Scratch: per (token, head, chunk), m, l, then head_dim weighted sums.
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;
@group(0) @binding(4) var<storage, read_write> O: array<f32>;
@group(0) @binding(5) var<uniform> P: AttnParams;
@group(0) @binding(6) var<uniform> S: Step;
// attention_spans: per token of the step, the [start, end) of the keys it sees (its own input's
// rows, when an encoder packs several inputs into one step: block-diagonal attention).
@group(0) @binding(7) var<storage, read> spans: array<u32>;

@compute @workgroup_size(CHUNKS)
fn attention(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) chunk: u32) {
  let t = wg.y;
  let q_pos = S.pos + t;
  var n_keys = q_pos + 1u;
  var first = select(0u, n_keys - P.window, P.window > 0u && n_keys > P.window);
  if (P.bidirectional == 1u) {
    let half = P.window / 2u;
    n_keys = select(S.pos + S.n_tokens, min(S.pos + S.n_tokens, q_pos + half + 1u), P.window > 0u);
    first = select(0u, q_pos - half, P.window > 0u && q_pos > half);
  }
  attend(wg.x, t, chunk, first, n_keys);
}

@compute @workgroup_size(CHUNKS)
fn attention_spans(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) chunk: u32) {
  let t = wg.y;
  attend(wg.x, t, chunk, spans[2u * t], spans[2u * t + 1u]);
}

// Query t of head `head` over keys [first, n_keys).
fn attend(head: u32, t: u32, chunk: u32, first: u32, n_keys: u32) {
  let hd = P.head_dim;
  let q_off = (t * P.n_heads + head) * hd;
  let kv_stride = P.n_kv_heads * hd;
  let kv_off = (head / (P.n_heads / P.n_kv_heads)) * hd;
  let len = (n_keys - first + CHUNKS - 1u) / CHUNKS;
  let begin = first + chunk * len;
  let end = min(begin + len, n_keys);

  // q and the weighted sums in vec4s: a quarter of the loop steps and private-array accesses
  // (those arrays live in memory on CPU adapters). The last vec4 may reach past head_dim: q is zero
  // there, so the scores ignore whatever K holds, and those lanes of acc are never written out.
  let hd4 = (hd + 3u) / 4u;
  var q: array<vec4<f32>, MAX_HEAD_VEC4>;
  for (var i = 0u; i < hd4; i++) {
    let d = 4u * i;
    q[i] = vec4<f32>(Q[q_off + d], select(0.0, Q[q_off + d + 1u], d + 1u < hd), select(0.0, Q[q_off + d + 2u], d + 2u < hd), select(0.0, Q[q_off + d + 3u], d + 3u < hd));
  }
  var m = -3.0e38;
  var l = 0.0;
  var acc: array<vec4<f32>, MAX_HEAD_VEC4>;
  // Four keys per step: a quarter of the loop steps and of the passes over acc (on CPU adapters
  // each loop step and each private-array access costs more than the arithmetic). Past the end of
  // the chunk, the last step repeats its last key with weight zero.
  for (var p = begin; p < end; p += 4u) {
    let k1 = p * kv_stride + kv_off;
    let k2 = min(p + 1u, end - 1u) * kv_stride + kv_off;
    let k3 = min(p + 2u, end - 1u) * kv_stride + kv_off;
    let k4 = min(p + 3u, end - 1u) * kv_stride + kv_off;
    var s1 = vec4<f32>(0.0);
    var s2 = vec4<f32>(0.0);
    var s3 = vec4<f32>(0.0);
    var s4 = vec4<f32>(0.0);
    for (var i = 0u; i < hd4; i++) {
      let o = 4u * i;
      s1 += q[i] * key4(k1 + o);
      s2 += q[i] * key4(k2 + o);
      s3 += q[i] * key4(k3 + o);
      s4 += q[i] * key4(k4 + o);
    }
    let ones = vec4<f32>(1.0);
    let sc = vec4<f32>(dot(s1, ones), dot(s2, ones), dot(s3, ones), dot(s4, ones)) * P.scale;
    let sv = vec4<f32>(softcap(sc.x, P.softcap), softcap(sc.y, P.softcap), softcap(sc.z, P.softcap), softcap(sc.w, P.softcap));
    // The running max moves with every larger score; the rescale rides along in the same loop as
    // the new values (no branch: on CPU adapters a branch costs as much as the math it skips).
    let m_new = max(m, max(max(sv.x, sv.y), max(sv.z, sv.w)));
    let correction = exp(m - m_new);
    let e = select(vec4<f32>(0.0), exp(sv - m_new), p + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(end));
    l = l * correction + dot(e, vec4<f32>(1.0));
    m = m_new;
    for (var i = 0u; i < hd4; i++) {
      let o = 4u * i;
      acc[i] = acc[i] * correction + e.x * value4(k1 + o) + e.y * value4(k2 + o) + e.z * value4(k3 + o) + e.w * value4(k4 + o);
    }
  }
  let base = (t * P.n_heads + head) * CHUNKS;
  let out = (base + chunk) * (hd + 2u);
  partial[out] = m;
  partial[out + 1u] = l;
  for (var d = 0u; d < hd; d++) { partial[out + 2u + d] = acc[d / 4u][d % 4u]; }
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

// Prefill on GPUs, flash-attention style: a workgroup per (head, block of QUERY_BLOCK tokens), an
// invocation per query. The keys the block needs go through workgroup memory in tiles of TILE_KEYS
// keys, so each key and value is read from the cache once per block of queries instead of once per
// query; each query keeps an online softmax over the tiles (a tile's scores first, then one rescale
// of its sums per tile). Same arithmetic as `attention` up to the order of the sums. TILE_KEYS x
// MAX_HEAD_VEC4 is at most 512 (2 x 8 KiB of workgroup memory: src/model/blocks/attention.ts).
const QUERY_BLOCK = 64u;
const TILE_KEYS = 8u;
var<workgroup> tile_k: array<vec4<f32>, TILE_KEYS * MAX_HEAD_VEC4>;
var<workgroup> tile_v: array<vec4<f32>, TILE_KEYS * MAX_HEAD_VEC4>;

@compute @workgroup_size(QUERY_BLOCK)
fn attention_tiled(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let head = wg.x;
  let t0 = wg.y * QUERY_BLOCK;
  let t = t0 + lid;
  let live = t < S.n_tokens;
  let hd = P.head_dim;
  let hd4 = (hd + 3u) / 4u;
  let kv_stride = P.n_kv_heads * hd;
  let kv_off = (head / (P.n_heads / P.n_kv_heads)) * hd;
  // This query's keys [first, n_keys), and the block's: from its first query's first key to its
  // last live query's last.
  let n_keys = select(S.pos + t + 1u, S.pos + S.n_tokens, P.bidirectional == 1u);
  let first = select(0u, n_keys - P.window, P.window > 0u && n_keys > P.window);
  let t_last = min(t0 + QUERY_BLOCK, S.n_tokens) - 1u;
  let block_end = select(S.pos + t_last + 1u, S.pos + S.n_tokens, P.bidirectional == 1u);
  let block_first_keys = select(S.pos + t0 + 1u, S.pos + S.n_tokens, P.bidirectional == 1u);
  let block_begin = select(0u, block_first_keys - P.window, P.window > 0u && block_first_keys > P.window);

  var q: array<vec4<f32>, MAX_HEAD_VEC4>;
  var acc: array<vec4<f32>, MAX_HEAD_VEC4>;
  let q_off = (min(t, S.n_tokens - 1u) * P.n_heads + head) * hd;
  for (var i = 0u; i < hd4; i++) {
    let d = 4u * i;
    q[i] = vec4<f32>(Q[q_off + d], select(0.0, Q[q_off + d + 1u], d + 1u < hd), select(0.0, Q[q_off + d + 2u], d + 2u < hd), select(0.0, Q[q_off + d + 3u], d + 3u < hd));
    acc[i] = vec4<f32>(0.0);
  }
  var m = -3.0e38;
  var l = 0.0;
  var scores: array<f32, TILE_KEYS>;
  for (var k0 = block_begin; k0 < block_end; k0 += TILE_KEYS) {
    // Every invocation loads a share of the tile (keys past block_end repeat its last key; no
    // query weighs them).
    for (var i = lid; i < TILE_KEYS * hd4; i += QUERY_BLOCK) {
      let key = min(k0 + i / hd4, block_end - 1u);
      let a = key * kv_stride + kv_off + 4u * (i % hd4);
      tile_k[i] = key4(a);
      tile_v[i] = value4(a);
    }
    workgroupBarrier();
    var tile_max = -3.0e38;
    for (var j = 0u; j < TILE_KEYS; j++) {
      var s4 = vec4<f32>(0.0);
      for (var i = 0u; i < hd4; i++) { s4 += q[i] * tile_k[j * hd4 + i]; }
      let key = k0 + j;
      let s = softcap(dot(s4, vec4<f32>(1.0)) * P.scale, P.softcap);
      let seen = live && key >= first && key < n_keys;
      scores[j] = select(-3.0e38, s, seen);
      tile_max = max(tile_max, scores[j]);
    }
    let m_new = max(m, tile_max);
    let correction = exp(m - m_new);
    l *= correction;
    for (var i = 0u; i < hd4; i++) { acc[i] *= correction; }
    for (var j = 0u; j < TILE_KEYS; j++) {
      // A key this query does not see weighs exactly 0 (its score is -3e38, never the max of a
      // query with at least one key: its own).
      let e = select(0.0, exp(scores[j] - m_new), scores[j] > -3.0e38);
      l += e;
      for (var i = 0u; i < hd4; i++) { acc[i] += e * tile_v[j * hd4 + i]; }
    }
    m = m_new;
    workgroupBarrier();
  }
  if (!live) { return; }
  let out = (t * P.n_heads + head) * hd;
  for (var d = 0u; d < hd; d++) { O[out + d] = acc[d / 4u][d % 4u] / l; }
}
