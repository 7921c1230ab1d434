// llama.cpp in the page, through @wllama/wllama 3.x (llama.cpp's llama-server core built to wasm).
// Page functions (window.llama*) for the differential tests (test/llamacpp.gpu.test.ts), the
// tokenizer oracle (test/helpers/llamacpp.ts) and `npm run bench:browser`.
//
// wllama 3 has no tokenize, decode or logits calls any more: everything goes through llama-server's
// completion and embedding tasks. So prompts go in as text, log-probabilities come back with the completion (n_probs), and tokenization
// is read back from an embedding run of a model built for it (see llamaTokenStats).
import { Wllama } from '@wllama/wllama';
import { guard } from './guard.js';

const WASM = new URL('../../node_modules/@wllama/wllama/esm/wasm/wllama.wasm', import.meta.url).href;
let llama;

/**
 * Loads a GGUF into llama.cpp, on its CPU backend (n_gpu_layers 0: wllama 3 would otherwise run it
 * on WebGPU, SwiftShader here, and the differential tests' bounds are about the CPU kernels).
 * Threads need cross-origin isolation (the test server sends COOP/COEP).
 */
window.llamaLoad = guard(async (url, { threads = 1, context = 512, embeddings = false, pooling = 'last' } = {}) => {
  await llama?.exit();
  llama = undefined;
  const instance = new Wllama({ default: WASM }, { suppressNativeLog: !window.llamaVerbose });
  const blob = await (await fetch(url)).blob();
  await instance.loadModel([blob], {
    n_ctx: context, n_batch: context, n_ubatch: context, n_threads: threads, n_gpu_layers: 0, n_parallel: 1,
    ...(embeddings ? { embeddings: true, pooling_type: pooling } : {}),
  });
  llama = instance;
  const info = llama.getLoadedContextInfo();
  return { threads: llama.getNumThreads(), multithread: llama.isMultithread(), crossOriginIsolated, addBos: info.add_bos_token, addEos: info.add_eos_token, bos: info.token_bos, eos: info.token_eos };
});

window.llamaExit = guard(async () => {
  await llama?.exit();
  llama = undefined;
});

/**
 * The completion request for a greedy continuation with llama.cpp's top-k log-probabilities.
 * `banned` ids are never sampled (they still count in the probabilities, which come from the raw
 * logits): wllama 3 fails a whole request whose generated text is not valid UTF-8 (its JSON
 * encoder throws), so tests on random-weight models ban the byte tokens.
 */
const greedy = (prompt, steps, k, banned = []) => ({
  prompt, max_tokens: steps, temperature: 0, n_probs: k, ignore_eos: true, cache_prompt: false, stream: false,
  logit_bias: banned.map((id) => [id, false]),
});

/**
 * Per generated token: the token llama.cpp sampled, and its top-k as [{ token, logprob }], best
 * first (log-softmax of the full logits).
 */
function stepsOf(response) {
  const content = response.choices[0]?.logprobs?.content;
  if (!Array.isArray(content)) throw new Error(`no logprobs in llama.cpp's answer: ${JSON.stringify(response).slice(0, 300)}`);
  return content.map((step) => ({ sampled: step.id, top: step.top_logprobs.map((t) => ({ token: t.id, logprob: t.logprob })) }));
}

/**
 * llama.cpp's own greedy continuation of the text `prompt` (which it tokenizes itself, special
 * tokens added and parsed: wllama 3 takes no token ids), with its top-k next-token
 * log-probabilities at every step: the sequence the differential tests feed through our engine.
 */
window.llamaTextTopK = guard(async (text, steps, k, banned) => {
  const response = await llama.createCompletion(greedy(text, steps, k, banned));
  return { promptTokens: response.usage.prompt_tokens, steps: stepsOf(response) };
});

/**
 * How many tokens llama.cpp makes of `text` as a prompt (BOS included when the model adds one);
 * `bias` (token id to logit bias) keeps the one token it generates printable.
 */
window.llamaPromptTokens = guard(async (text, bias) => (await llama.createCompletion({ prompt: text, max_tokens: 1, temperature: 0, cache_prompt: false, logit_bias: bias })).usage.prompt_tokens);

/**
 * Greedy generation of `gen` tokens after the text `prompt` with llama.cpp's own sampler, streamed
 * and timed on the main thread (as ours is): time to the first token, then the decode rate.
 */
window.llamaBench = guard(async (prompt, gen, bias) => {
  const t0 = performance.now();
  let firstAt = 0;
  let usage;
  const stream = await llama.createCompletion({ prompt, max_tokens: gen, temperature: 0, ignore_eos: true, cache_prompt: false, logit_bias: bias, stream: true, stream_options: { include_usage: true } });
  for await (const chunk of stream) {
    if (!firstAt && chunk.choices?.length) firstAt = performance.now();
    if (chunk.usage) usage = chunk.usage;
  }
  const end = performance.now();
  const generated = usage?.completion_tokens ?? gen;
  return { generated, promptTokens: usage?.prompt_tokens, ttftMs: firstAt - t0, decodeTokS: (generated - 1) / ((end - firstAt) / 1000) };
});

/**
 * What llama.cpp's tokenizer makes of each text (special tokens added and parsed: llama-server's
 * way): the token count, and the last token's id, read back from an embedding run (pooling "last")
 * of a model whose embedding row i spells i out as angles (see test/helpers/llamacpp.ts). wllama 3
 * returns one vector per text, so the ids in between are out of reach.
 */
window.llamaTokenStats = guard(async (texts, base) => {
  const out = [];
  for (const text of texts) {
    const response = await llama.createEmbedding({ input: text, embd_normalize: -1 });
    out.push({ count: response.usage.prompt_tokens, last: idOf(response.data[0].embedding, base) });
  }
  return out;
});

/** Decodes a token id from its output vector: pairs (cos, sin) of 2π·digit/base, lowest digit first. */
function idOf(v, base) {
  let id = 0;
  for (let d = 0, scale = 1; 2 * d + 1 < v.length; d++, scale *= base) {
    const angle = Math.atan2(v[2 * d + 1], v[2 * d]);
    id += (((Math.round((angle / (2 * Math.PI)) * base) % base) + base) % base) * scale;
  }
  return id;
}

/**
 * llama.cpp's embedding of each text (tokenized by llama.cpp, special tokens added), pooled as the
 * model was loaded ('unspecified': the file's own pooling_type) and L2-normalized (embd_normalize 2,
 * llama-server's default), with its token count.
 */
window.llamaEmbed = guard(async (texts) => {
  const out = [];
  for (const text of texts) {
    const response = await llama.createEmbedding({ input: text, embd_normalize: 2 });
    out.push({ tokens: response.usage.prompt_tokens, embedding: Array.from(response.data[0].embedding) });
  }
  return out;
});
