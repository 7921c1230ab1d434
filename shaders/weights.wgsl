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

struct W8 {
  lo: vec4<f32>,
  hi: vec4<f32>,
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
