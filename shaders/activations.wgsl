// Reading activations: the kernels that include this file declare `X: array<f32>`. `start` is
// where the token's row begins in X, `cols` its length; columns past `cols` read as zero (the
// padded weights there are zero too).

// Eight activations at columns 8*k8 .. 8*k8+7, all within the row: no bounds checks (on CPU
// adapters a branch per load costs as much as the math).
fn x8_whole(start: u32, k8: u32) -> W8 {
  let b = start + k8 * 8u;
  return W8(vec4<f32>(X[b], X[b + 1u], X[b + 2u], X[b + 3u]), vec4<f32>(X[b + 4u], X[b + 5u], X[b + 6u], X[b + 7u]));
}

// Eight activations at columns 8*k8 .. 8*k8+7.
fn x8_at(start: u32, cols: u32, k8: u32) -> W8 {
  let k = k8 * 8u;
  let b = start + k;
  if (k + 8u <= cols) {
    return x8_whole(start, k8);
  }
  var v: array<f32, 8>;
  for (var i = 0u; i < 8u; i++) {
    if (k + i < cols) { v[i] = X[b + i]; }
  }
  return W8(vec4<f32>(v[0], v[1], v[2], v[3]), vec4<f32>(v[4], v[5], v[6], v[7]));
}

// The 32 activations of block b (columns 32b .. 32b+31), for weights.wgsl's dot32 (the sum is
// left to the preps that need it).
// `whole`: the block lies within `cols`, so no column needs a bounds check. Callers pass a literal,
// so the other path folds away.
fn x32_at(start: u32, cols: u32, b: u32, whole: bool) -> X32 {
  var a: W8;
  var c: W8;
  var e: W8;
  var g: W8;
  if (whole) {
    a = x8_whole(start, b * 4u);
    c = x8_whole(start, b * 4u + 1u);
    e = x8_whole(start, b * 4u + 2u);
    g = x8_whole(start, b * 4u + 3u);
  } else {
    a = x8_at(start, cols, b * 4u);
    c = x8_at(start, cols, b * 4u + 1u);
    e = x8_at(start, cols, b * 4u + 2u);
    g = x8_at(start, cols, b * 4u + 3u);
  }
  return X32(a.lo, a.hi, c.lo, c.hi, e.lo, e.hi, g.lo, g.hi, 0.0, 0.0);
}
