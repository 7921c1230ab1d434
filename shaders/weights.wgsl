// Reads weights from their GPU layout (src/quant/formats.ts). Each kind has a load_w8_<kind>
// that returns the 8 dequantized weights at columns 8*k8 .. 8*k8+7 of a row; a kernel picks one
// kind by defining `fn load_w8(row: u32, k8: u32) -> W8` (see src/gpu/kernels.ts). The kernel
// that includes this file declares `W: array<u32>` and `P.w: WeightDesc`.

struct WeightDesc {
  rows: u32,
  cols: u32,
  row_words: u32,
  scale_offset: u32,
}

fn scale_f16(d: WeightDesc, block: u32) -> f32 {
  return unpack2x16float(W[d.scale_offset + (block >> 1u)])[block & 1u];
}

fn load_w8_f32(d: WeightDesc, row: u32, k8: u32) -> W8 {
  let b = row * d.row_words + k8 * 8u;
  return W8(
    bitcast<vec4<f32>>(vec4<u32>(W[b], W[b + 1u], W[b + 2u], W[b + 3u])),
    bitcast<vec4<f32>>(vec4<u32>(W[b + 4u], W[b + 5u], W[b + 6u], W[b + 7u])),
  );
}

fn load_w8_f16(d: WeightDesc, row: u32, k8: u32) -> W8 {
  let b = row * d.row_words + k8 * 4u;
  return W8(
    vec4<f32>(unpack2x16float(W[b]), unpack2x16float(W[b + 1u])),
    vec4<f32>(unpack2x16float(W[b + 2u]), unpack2x16float(W[b + 3u])),
  );
}

fn bf16x2(w: u32) -> vec2<f32> {
  return vec2<f32>(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u));
}

fn load_w8_bf16(d: WeightDesc, row: u32, k8: u32) -> W8 {
  let b = row * d.row_words + k8 * 4u;
  return W8(vec4<f32>(bf16x2(W[b]), bf16x2(W[b + 1u])), vec4<f32>(bf16x2(W[b + 2u]), bf16x2(W[b + 3u])));
}

fn i8x4(w: u32) -> vec4<f32> {
  return vec4<f32>(vec4<i32>(i32(w << 24u) >> 24u, i32(w << 16u) >> 24u, i32(w << 8u) >> 24u, i32(w) >> 24u));
}

// Q8_0: 8 words of int8 per 32-weight block, one f16 scale per block.
fn load_w8_q8_0(d: WeightDesc, row: u32, k8: u32) -> W8 {
  let block = row * (d.cols >> 5u) + (k8 >> 2u);
  let b = block * 8u + (k8 & 3u) * 2u;
  let s = scale_f16(d, block);
  return W8(i8x4(W[b]) * s, i8x4(W[b + 1u]) * s);
}

// Q4_0: 4 words per block, word i holding weights 8i..8i+7 as nibbles (low first); w = d*(q-8).
fn load_w8_q4_0(d: WeightDesc, row: u32, k8: u32) -> W8 {
  let block = row * (d.cols >> 5u) + (k8 >> 2u);
  let w = W[block * 4u + (k8 & 3u)];
  let s = scale_f16(d, block);
  let lo = vec4<f32>((vec4<u32>(w, w >> 4u, w >> 8u, w >> 12u) & vec4<u32>(15u)));
  let hi = vec4<f32>((vec4<u32>(w >> 16u, w >> 20u, w >> 24u, w >> 28u) & vec4<u32>(15u)));
  return W8((lo - 8.0) * s, (hi - 8.0) * s);
}

// ---- Whole 32-column blocks, for the CPU-adapter GEMV (matmul.wgsl's gemv_rows). On a CPU
// implementation every component operation is an instruction, so these spend as few as they can
// per weight: one mask or shift, one int-to-float conversion, the multiply-add. A kind with a
// dot32_<kind> here uses it; any other kind goes through load_w8 (dot32_generic). A kernel calls
// them through dot32/prep32 (dot<i>/prep<i> for weight binding i), as load_w8 (src/gpu/kernels.ts).

// Kernels reading weights also get `const PARTIAL_BLOCKS` from src/gpu/kernels.ts: 1 where a row
// may end in a partial block of 32 columns (f32, f16, bf16); quantized rows are whole blocks, so
// their kernels compile without the partial-block code.

// The 32 activations of one block of columns, in the form the kind's dot32 wants (prep32_<kind>;
// plain where a kind has none), and, where the prep sets them, their plain sum and the plain sum of
// the last 16 (sum_hi, for Q6_K's scales per 16 columns).
struct X32 {
  v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>, v3: vec4<f32>,
  v4: vec4<f32>, v5: vec4<f32>, v6: vec4<f32>, v7: vec4<f32>,
  sum: f32,
  sum_hi: f32,
}

// The four nibbles of a 16-bit group left in place: n_k * 16^k, exact in f32 and below 2^16, so
// the conversion can go through i32 (the cheap one). prep32_q4_0 divides x by 16^k to match.
fn nibbles_in_place(w: u32) -> vec4<f32> {
  return vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(w) & vec4<u32>(0xfu, 0xf0u, 0xf00u, 0xf000u)));
}

// Every vec4 of a block's activations times k, with their plain sum (for the kinds whose quants
// carry an offset).
fn scaled32(x: X32, k: vec4<f32>) -> X32 {
  let sum = dot(x.v0 + x.v1 + x.v2 + x.v3 + x.v4 + x.v5 + x.v6 + x.v7, vec4<f32>(1.0));
  return X32(x.v0 * k, x.v1 * k, x.v2 * k, x.v3 * k, x.v4 * k, x.v5 * k, x.v6 * k, x.v7 * k, sum, 0.0);
}

fn prep32_q4_0(x: X32) -> X32 {
  return scaled32(x, vec4<f32>(1.0, 1.0 / 16.0, 1.0 / 256.0, 1.0 / 4096.0));
}

// sum d * (q - 8) * x = d * (sum q * x - 8 * sum x): the offset costs one multiply per block.
fn dot32_q4_0(d: WeightDesc, row: u32, b: u32, x: X32) -> f32 {
  let block = row * (d.cols >> 5u) + b;
  let w0 = W[block * 4u];
  let w1 = W[block * 4u + 1u];
  let w2 = W[block * 4u + 2u];
  let w3 = W[block * 4u + 3u];
  let s = dot(nibbles_in_place(w0), x.v0) + dot(nibbles_in_place(w0 >> 16u), x.v1)
        + dot(nibbles_in_place(w1), x.v2) + dot(nibbles_in_place(w1 >> 16u), x.v3)
        + dot(nibbles_in_place(w2), x.v4) + dot(nibbles_in_place(w2 >> 16u), x.v5)
        + dot(nibbles_in_place(w3), x.v6) + dot(nibbles_in_place(w3 >> 16u), x.v7);
  return scale_f16(d, block) * (s - 8.0 * x.sum);
}

// Q8_0 the same way: with the sign bits flipped (w ^ 0x80808080) each byte is q + 128, unsigned;
// two bytes of each 16-bit half stay in place (u * 256^k, below 2^16: the i32 conversion), the
// offset comes off the block's sum, and prep32_q8_0 divides x by 256^k.
fn bytes_in_place(w: u32) -> vec4<f32> {
  let u = w ^ 0x80808080u;
  return vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(u, u, u >> 16u, u >> 16u) & vec4<u32>(0xffu, 0xff00u, 0xffu, 0xff00u)));
}

fn prep32_q8_0(x: X32) -> X32 {
  return scaled32(x, vec4<f32>(1.0, 1.0 / 256.0, 1.0, 1.0 / 256.0));
}

fn dot32_q8_0(d: WeightDesc, row: u32, b: u32, x: X32) -> f32 {
  let block = row * (d.cols >> 5u) + b;
  let q = block * 8u;
  let s = dot(bytes_in_place(W[q]), x.v0) + dot(bytes_in_place(W[q + 1u]), x.v1)
        + dot(bytes_in_place(W[q + 2u]), x.v2) + dot(bytes_in_place(W[q + 3u]), x.v3)
        + dot(bytes_in_place(W[q + 4u]), x.v4) + dot(bytes_in_place(W[q + 5u]), x.v5)
        + dot(bytes_in_place(W[q + 6u]), x.v6) + dot(bytes_in_place(W[q + 7u]), x.v7);
  return scale_f16(d, block) * (s - 128.0 * x.sum);
}

// A block for kinds without their own dot32, eight columns at a time. Unless the block is `whole`,
// groups of eight past the end of the row are not read (they would belong to the next row).
fn dot32_generic(d: WeightDesc, row: u32, b: u32, x: X32, whole: bool) -> f32 {
  let n8 = (d.cols + 7u) / 8u;
  let k8 = b * 4u;
  var s = dot8(load_w8(d, row, k8), W8(x.v0, x.v1));
  if (whole || k8 + 1u < n8) { s += dot8(load_w8(d, row, k8 + 1u), W8(x.v2, x.v3)); }
  if (whole || k8 + 2u < n8) { s += dot8(load_w8(d, row, k8 + 2u), W8(x.v4, x.v5)); }
  if (whole || k8 + 3u < n8) { s += dot8(load_w8(d, row, k8 + 3u), W8(x.v6, x.v7)); }
  return s;
}

// ---- Kinds kept in ggml's block order (src/quant/formats.ts BLOCK_KINDS), words per block:
// q4_1 5, q5_0 6, q5_1 6.

// Eight 4-bit values from eight consecutive bytes (words w0, w1): low or high nibbles.
fn nibbles8(w0: u32, w1: u32, high: bool) -> array<vec4<f32>, 2> {
  let s = select(vec4<u32>(0u, 8u, 16u, 24u), vec4<u32>(4u, 12u, 20u, 28u), high);
  return array<vec4<f32>, 2>(vec4<f32>((vec4<u32>(w0) >> s) & vec4<u32>(15u)), vec4<f32>((vec4<u32>(w1) >> s) & vec4<u32>(15u)));
}

// Bits j..j+7 of qh, each as 0 or 16 (the fifth bit of a Q5 value).
fn fifth8(qh: u32, j: u32) -> array<vec4<f32>, 2> {
  let s = vec4<u32>(j, j + 1u, j + 2u, j + 3u);
  return array<vec4<f32>, 2>(vec4<f32>(((vec4<u32>(qh) >> s) & vec4<u32>(1u)) * 16u),
                            vec4<f32>(((vec4<u32>(qh) >> (s + 4u)) & vec4<u32>(1u)) * 16u));
}

// Q4_1/Q5_0/Q5_1 blocks of 32: element e < 16 is the low nibble of byte e, e >= 16 the high nibble
// of byte e - 16; Q5's fifth bit of element e is bit e of qh.
fn q4_1_like(base: u32, k8: u32, qs: u32) -> array<vec4<f32>, 2> {
  let part = k8 & 3u; // which 8 of the 32
  let w = base + qs + (part & 1u) * 2u;
  return nibbles8(W[w], W[w + 1u], part >= 2u);
}

fn load_w8_q4_1(d: WeightDesc, row: u32, k8: u32) -> W8 {
  let base = (row * (d.cols >> 5u) + (k8 >> 2u)) * 5u;
  let dm = unpack2x16float(W[base]);
  let q = q4_1_like(base, k8, 1u);
  return W8(q[0] * dm.x + dm.y, q[1] * dm.x + dm.y);
}

fn load_w8_q5_0(d: WeightDesc, row: u32, k8: u32) -> W8 {
  let base = (row * (d.cols >> 5u) + (k8 >> 2u)) * 6u;
  let scale = unpack2x16float(W[base]).x;
  let q = q4_1_like(base, k8, 2u);
  let h = fifth8(W[base + 1u], (k8 & 3u) * 8u);
  return W8((q[0] + h[0] - 16.0) * scale, (q[1] + h[1] - 16.0) * scale);
}

fn load_w8_q5_1(d: WeightDesc, row: u32, k8: u32) -> W8 {
  let base = (row * (d.cols >> 5u) + (k8 >> 2u)) * 6u;
  let dm = unpack2x16float(W[base]);
  let q = q4_1_like(base, k8, 2u);
  let h = fifth8(W[base + 1u], (k8 & 3u) * 8u);
  return W8((q[0] + h[0]) * dm.x + dm.y, (q[1] + h[1]) * dm.x + dm.y);
}

// ---- K-quants, repacked at load (src/quant/formats.ts K_KINDS): each 32-column sub-block sb
// (row * cols / 32 + b) is 4 words of nibbles in column order as Q4_0's, then Q5_K's word of fifth
// bits or Q6_K's two words of top bit pairs (Q4_K 4, Q5_K 5, Q6_K 6 words a sub-block); after the
// quants, a record of 5 words per 256-column super-block holds its scales, decoded. The four high
// bits of each group of four columns sit 4 apart (formats.ts kHighBit), so one shift and mask put
// them just above the group's nibbles.

// Word `i` of the scale record of sub-block sb's super-block.
fn k_record(d: WeightDesc, sb: u32, i: u32) -> u32 {
  return W[d.scale_offset + (sb >> 3u) * 5u + i];
}

// Q4_K/Q5_K: sub-block sb's (d * scale, dmin * min), in f32 as ggml's dequantize_row_q4_K.
fn k_scale_min(d: WeightDesc, sb: u32) -> vec2<f32> {
  let sm = k_record(d, sb, 1u + ((sb >> 1u) & 3u)) >> ((sb & 1u) * 16u);
  return unpack2x16float(k_record(d, sb, 0u)) * vec2<f32>(f32(sm & 255u), f32((sm >> 8u) & 255u));
}

// Q6_K: the scales (d * int8 scale) of sub-block sb's two halves of 16 columns.
fn q6_k_scales(d: WeightDesc, sb: u32) -> vec2<f32> {
  let s = k_record(d, sb, 1u + ((sb >> 1u) & 3u)) >> ((sb & 1u) * 16u);
  return bitcast<f32>(k_record(d, sb, 0u)) * vec2<f32>(f32(i32(s << 24u) >> 24u), f32(i32(s << 16u) >> 24u));
}

// The eight nibbles of word w, in column order.
fn nibbles_of(w: u32) -> array<vec4<u32>, 2> {
  let s = vec4<u32>(0u, 4u, 8u, 12u);
  return array<vec4<u32>, 2>((vec4<u32>(w) >> s) & vec4<u32>(15u), (vec4<u32>(w >> 16u) >> s) & vec4<u32>(15u));
}

fn load_w8_q4_k(d: WeightDesc, row: u32, k8: u32) -> W8 {
  let sb = row * (d.cols >> 5u) + (k8 >> 2u);
  let q = nibbles_of(W[sb * 4u + (k8 & 3u)]);
  let sm = k_scale_min(d, sb);
  return W8(vec4<f32>(q[0]) * sm.x - sm.y, vec4<f32>(q[1]) * sm.x - sm.y);
}

// Columns 8p .. 8p+7 of a sub-block are groups 2p and 2p+1; Q5_K's fifth bit of column 4g + k is
// bit 4k + (g & 3) + 16 (g >> 2) of the sub-block's fifth word.
fn load_w8_q5_k(d: WeightDesc, row: u32, k8: u32) -> W8 {
  let sb = row * (d.cols >> 5u) + (k8 >> 2u);
  let p = k8 & 3u;
  let q = nibbles_of(W[sb * 5u + p]);
  let h = W[sb * 5u + 4u] >> (2u * (p & 1u) + 16u * (p >> 1u));
  let s = vec4<u32>(0u, 4u, 8u, 12u);
  let sm = k_scale_min(d, sb);
  let lo = q[0] | (((vec4<u32>(h) >> s) & vec4<u32>(1u)) << vec4<u32>(4u));
  let hi = q[1] | (((vec4<u32>(h >> 1u) >> s) & vec4<u32>(1u)) << vec4<u32>(4u));
  return W8(vec4<f32>(lo) * sm.x - sm.y, vec4<f32>(hi) * sm.x - sm.y);
}

// Q6_K: the top bit pair of column 4g + k is in high word g >> 2 at bit 4k + 2 (g & 1) + 16 ((g >> 1) & 1).
fn load_w8_q6_k(d: WeightDesc, row: u32, k8: u32) -> W8 {
  let sb = row * (d.cols >> 5u) + (k8 >> 2u);
  let p = k8 & 3u;
  let q = nibbles_of(W[sb * 6u + p]);
  let h = W[sb * 6u + 4u + (p >> 1u)] >> (16u * (p & 1u));
  let s = vec4<u32>(0u, 4u, 8u, 12u);
  let lo = q[0] | (((vec4<u32>(h) >> s) & vec4<u32>(3u)) << vec4<u32>(4u));
  let hi = q[1] | (((vec4<u32>(h >> 2u) >> s) & vec4<u32>(3u)) << vec4<u32>(4u));
  let scale = q6_k_scales(d, sb)[p >> 1u];
  return W8((vec4<f32>(lo) - 32.0) * scale, (vec4<f32>(hi) - 32.0) * scale);
}

// Whole sub-blocks for gemv_rows, the way dot32_q4_0 reads Q4_0 (activations scaled by
// prep32_q4_0's 16^-k, nibbles masked in place). The high bits of a group are shifted to just
// above its nibbles and or-ed in before the one conversion. (No module-scope constants here:
// multi-weight kernels include this file once per binding, renaming only functions.)

fn prep32_q4_k(x: X32) -> X32 {
  return prep32_q4_0(x);
}

// sum (d sc q - dmin m) x = d sc (sum q x) - dmin m (sum x).
fn dot32_q4_k(d: WeightDesc, row: u32, b: u32, x: X32) -> f32 {
  let sb = row * (d.cols >> 5u) + b;
  let w0 = W[sb * 4u];
  let w1 = W[sb * 4u + 1u];
  let w2 = W[sb * 4u + 2u];
  let w3 = W[sb * 4u + 3u];
  let s = dot(nibbles_in_place(w0), x.v0) + dot(nibbles_in_place(w0 >> 16u), x.v1)
        + dot(nibbles_in_place(w1), x.v2) + dot(nibbles_in_place(w1 >> 16u), x.v3)
        + dot(nibbles_in_place(w2), x.v4) + dot(nibbles_in_place(w2 >> 16u), x.v5)
        + dot(nibbles_in_place(w3), x.v6) + dot(nibbles_in_place(w3 >> 16u), x.v7);
  let sm = k_scale_min(d, sb);
  return sm.x * s - sm.y * x.sum;
}

// A group's four nibbles (low 16 bits of w) in place with its fifth bits, already at bits
// 4, 8, 12, 16 of h, above them: (n + 16 h) * 16^k.
fn q5_in_place(w: u32, h: u32) -> vec4<f32> {
  return vec4<f32>(bitcast<vec4<i32>>((vec4<u32>(w) & vec4<u32>(0xfu, 0xf0u, 0xf00u, 0xf000u)) | (vec4<u32>(h) & vec4<u32>(0x10u, 0x100u, 0x1000u, 0x10000u))));
}

fn prep32_q5_k(x: X32) -> X32 {
  return prep32_q4_0(x);
}

fn dot32_q5_k(d: WeightDesc, row: u32, b: u32, x: X32) -> f32 {
  let sb = row * (d.cols >> 5u) + b;
  let w0 = W[sb * 5u];
  let w1 = W[sb * 5u + 1u];
  let w2 = W[sb * 5u + 2u];
  let w3 = W[sb * 5u + 3u];
  let h = W[sb * 5u + 4u];
  let h4 = h << 4u;
  let s = dot(q5_in_place(w0, h4), x.v0) + dot(q5_in_place(w0 >> 16u, h4 >> 1u), x.v1)
        + dot(q5_in_place(w1, h4 >> 2u), x.v2) + dot(q5_in_place(w1 >> 16u, h4 >> 3u), x.v3)
        + dot(q5_in_place(w2, h >> 12u), x.v4) + dot(q5_in_place(w2 >> 16u, h >> 13u), x.v5)
        + dot(q5_in_place(w3, h >> 14u), x.v6) + dot(q5_in_place(w3 >> 16u, h >> 15u), x.v7);
  let sm = k_scale_min(d, sb);
  return sm.x * s - sm.y * x.sum;
}

// Q6_K: the same with two high bits at 4-5, 8-9, 12-13, 16-17 of h: (n + 16 h) * 16^k, below 2^18.
fn q6_in_place(w: u32, h: u32) -> vec4<f32> {
  return vec4<f32>(bitcast<vec4<i32>>((vec4<u32>(w) & vec4<u32>(0xfu, 0xf0u, 0xf00u, 0xf000u)) | (vec4<u32>(h) & vec4<u32>(0x30u, 0x300u, 0x3000u, 0x30000u))));
}

// Q6_K's scales cover 16 columns: the offset of 32 comes off each half's sum, so the prep also
// keeps the sum of the second half.
fn prep32_q6_k(x: X32) -> X32 {
  var p = prep32_q4_0(x);
  p.sum_hi = dot(x.v4 + x.v5 + x.v6 + x.v7, vec4<f32>(1.0));
  return p;
}

// sum d sc_h (q - 32) x over each half h = d sc_h (sum q x - 32 sum x).
fn dot32_q6_k(d: WeightDesc, row: u32, b: u32, x: X32) -> f32 {
  let sb = row * (d.cols >> 5u) + b;
  let w0 = W[sb * 6u];
  let w1 = W[sb * 6u + 1u];
  let w2 = W[sb * 6u + 2u];
  let w3 = W[sb * 6u + 3u];
  let h0 = W[sb * 6u + 4u];
  let h1 = W[sb * 6u + 5u];
  let s0 = dot(q6_in_place(w0, h0 << 4u), x.v0) + dot(q6_in_place(w0 >> 16u, h0 << 2u), x.v1)
         + dot(q6_in_place(w1, h0 >> 12u), x.v2) + dot(q6_in_place(w1 >> 16u, h0 >> 14u), x.v3);
  let s1 = dot(q6_in_place(w2, h1 << 4u), x.v4) + dot(q6_in_place(w2 >> 16u, h1 << 2u), x.v5)
         + dot(q6_in_place(w3, h1 >> 12u), x.v6) + dot(q6_in_place(w3 >> 16u, h1 >> 14u), x.v7);
  let sc = q6_k_scales(d, sb);
  return sc.x * (s0 - 32.0 * (x.sum - x.sum_hi)) + sc.y * (s1 - 32.0 * x.sum_hi);
}
