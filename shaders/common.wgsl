// Prepended to every kernel: the per-step values that change between dispatches of one model.
struct Step {
  pos: u32,       // position of the first token of this step
  n_tokens: u32,  // tokens in this step
}
