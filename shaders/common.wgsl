// Prepended to every kernel: the per-step values that change between dispatches of one model,
// and the activations several kernels share.
struct Step {
  pos: u32,       // position of the first token of this step
  n_tokens: u32,  // tokens in this step
}

// Workgroup size of the kernels written for CPU adapters (the *_rows kernels, without barriers).
// A CPU implementation runs a workgroup on one core as SIMD groups of a few invocations, and each
// group, idle or not, pays a prologue that grows with the shader's size (SwiftShader: about 0.02 µs
// per line of WGSL per group of 4, executed or not), so small workgroups waste least. Kept equal
// to ROWS_WORKGROUP in src/model/kernel-shapes.ts.
const ROWS_WG = 8u;

// Eight consecutive values of a row: what weight loaders return and kernels multiply.
struct W8 {
  lo: vec4<f32>,
  hi: vec4<f32>,
}

fn dot8(a: W8, b: W8) -> f32 {
  return dot(a.lo, b.lo) + dot(a.hi, b.hi);
}

fn silu(x: f32) -> f32 {
  return x / (1.0 + exp(-x));
}

// tanh, with the argument clamped: some implementations overflow exp() inside tanh for large
// |x|, and tanh(10) is already 1 in f32.
fn tanh_clamped(x: f32) -> f32 {
  return tanh(clamp(x, -10.0, 10.0));
}

// GELU, tanh approximation (ggml's ggml_gelu, Gemma's FFN).
fn gelu(x: f32) -> f32 {
  return 0.5 * x * (1.0 + tanh_clamped(0.7978845608028654 * x * (1.0 + 0.044715 * x * x)));
}

// cap * tanh(x / cap) (Gemma 2's soft-capping); cap 0 leaves x as it is.
fn softcap(x: f32, cap: f32) -> f32 {
  return select(x, cap * tanh_clamped(x / cap), cap > 0.0);
}
