// Runs llama.cpp (@wllama/wllama 3, wasm) and webgguf (dist/) on the same file in one page.
// Used by `npm run bench:browser` and by the differential tests (test/llamacpp.gpu.test.ts).
import { createEngine } from '../../dist/index.js';
import { guard } from '../../test/browser/guard.js';
// llama.cpp's side (window.llamaLoad, llamaBench, llamaTextTopK, ...).
import '../../test/browser/llamacpp.js';

let engine;

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
  return { generated: tokens.length, ttftMs: firstAt - t0, decodeTokS: (tokens.length - 1) / ((end - firstAt) / 1000) };
});
window.ready = true;
