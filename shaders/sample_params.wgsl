// The sampler's uniform and state, shared by shaders/sample.wgsl (which chooses the token) and
// shaders/logprobs.wgsl (which reports its log-probabilities after it); the kernel builder puts
// this before any source that names SampleParams. src/model/blocks/output-head.ts writes both.

struct SampleParams {
  vocab: u32,
  top_k: u32,          // 0: off
  top_p: f32,          // 1: off
  min_p: f32,          // 0: off
  temperature: f32,    // 0: greedy
  repetition_penalty: f32,  // 1: off
  penalty_last_n: u32, // how many recent tokens the penalties look at
  seed: u32,
  frequency_penalty: f32, // subtracted once per occurrence (OpenAI); 0: off
  presence_penalty: f32,  // subtracted once if present (OpenAI); 0: off
  filters: u32,           // FILTER_MASK: only tokens set in `allowed`; FILTER_BIAS: add `bias`
  top_logprobs: u32,      // read by shaders/logprobs.wgsl, which runs after this when log-probs are asked for
}

const FILTER_MASK = 1u;
const FILTER_BIAS = 2u;

struct SampleState {
  n_past: u32,  // tokens in `history`
  draws: u32,   // random numbers drawn so far (advances the seeded stream)
  token: u32,   // the chosen token
}
