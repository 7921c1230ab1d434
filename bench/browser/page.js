// Runs llama.cpp (@wllama/wllama, wasm) and webgguf (dist/) on the same file in one page.
// Used by `npm run bench:browser` and by the differential tests (test/llamacpp.test.ts).
import { Wllama } from '@wllama/wllama';
import { createEngine } from '../../dist/index.js';
import { guard } from '../../test/browser/guard.js';

const WLLAMA = new URL('../../node_modules/@wllama/wllama/esm/', import.meta.url).href;
let llama;
let engine;


/** Loads a GGUF into llama.cpp. Threads need cross-origin isolation (the bench server sends COOP/COEP). */
window.llamaLoad = guard(async (url, { threads = 1, context = 512 } = {}) => {
  await llama?.exit();
  llama = new Wllama({ 'single-thread/wllama.wasm': WLLAMA + 'single-thread/wllama.wasm', 'multi-thread/wllama.wasm': WLLAMA + 'multi-thread/wllama.wasm' },
    { suppressNativeLog: true });
  const blob = await (await fetch(url)).blob();
  await llama.loadModel([blob], { n_ctx: context, n_batch: context, n_threads: threads });
  return { threads: llama.getNumThreads(), multithread: llama.isMultithread(), crossOriginIsolated };
});

window.llamaTokenize = guard((text) => llama.tokenize(text, true));
/** The BOS id as a one-element list when the model wants it prepended, else empty. */
window.llamaBos = guard(async () => (llama.mustAddBosToken() ? [llama.getBOS()] : []));

/**
 * llama.cpp's own greedy continuation of `prompt` (token ids), with its top-k next-token
 * probabilities at every step: the sequence the differential tests feed through our engine.
 */
window.llamaGreedyTopK = guard(async (prompt, steps, k) => {
  await llama.kvClear();
  await llama.decode(prompt, {});
  const out = [];
  for (let i = 0; i < steps; i++) {
    const top = await llama.getLogits(k);
    out.push(top.map((t) => ({ token: t.token, logprob: Math.log(t.p) })));
    await llama.decode([top[0].token], {});
  }
  return out;
});

/** Prefill `prompt` (ids), then `gen` greedy tokens with llama.cpp's own sampler, timed. */
window.llamaBench = guard(async (prompt, gen) => {
  await llama.kvClear();
  await llama.samplingInit({ temp: 0 });
  const t0 = performance.now();
  await llama.decode(prompt, {});
  const tokens = [];
  let firstAt = 0;
  for (let i = 0; i < gen; i++) {
    const { token } = await llama.samplingSample();
    if (i === 0) firstAt = performance.now();
    tokens.push(token);
    await llama.samplingAccept([token]);
    await llama.decode([token], {});
  }
  const end = performance.now();
  return { tokens, ttftMs: firstAt - t0, prefillTokS: prompt.length / ((firstAt - t0) / 1000), decodeTokS: (gen - 1) / ((end - firstAt) / 1000) };
});

window.oursLoad = guard(async (url) => {
  engine ??= await createEngine();
  return engine.load(url);
});

/** The same measurement through our public API: a worker engine, greedy, timed on the main thread. */
window.oursBench = guard(async (prompt, gen) => {
  const t0 = performance.now();
  const tokens = [];
  let firstAt = 0;
  for await (const t of engine.generate(prompt, { temperature: 0, maxTokens: gen, ignoreEos: true })) {
    if (!tokens.length) firstAt = performance.now();
    tokens.push(t.token);
  }
  const end = performance.now();
  return { tokens, ttftMs: firstAt - t0, decodeTokS: (tokens.length - 1) / ((end - firstAt) / 1000) };
});
window.ready = true;
