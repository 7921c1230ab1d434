// Drives the built library (dist/) the way an app would. Tests call these window functions.
import { createEngine } from '../../dist/index.js';
import { guard } from './guard.js';

window.longTasks = [];
new PerformanceObserver((list) => window.longTasks.push(...list.getEntries().map((e) => e.duration))).observe({ type: 'longtask' });

let engine;

window.engineLoad = guard(async (url) => {
  engine ??= await createEngine();
  return engine.load(url);
});
/** engine.load with headers, or with a fetch of the page's own that adds the token (it crosses to the worker). */
window.engineLoadWith = guard(async (url, { headers, token } = {}) => {
  engine ??= await createEngine();
  let fetchCalls = 0;
  const phases = new Set();
  const withToken = (input, init) => {
    fetchCalls++;
    const h = new Headers(init?.headers);
    h.set('Authorization', token);
    return fetch(input, { ...init, headers: h });
  };
  const info = await engine.load(url, { headers, fetch: token ? withToken : undefined, onProgress: (p) => phases.add(p.phase) });
  return { info, fetchCalls, phases: [...phases] };
});
window.greedy = guard(async (prompt, maxTokens) => {
  const tokens = [];
  let text = '';
  for await (const t of engine.generate(prompt, { temperature: 0, maxTokens })) {
    tokens.push(t.token);
    text += t.text;
  }
  return { tokens, text };
});
window.chat = guard(async (request) => engine.chat.completions.create(request));
window.chatStream = guard(async (request, abortAfterChunks) => {
  const controller = new AbortController();
  const chunks = [];
  let contentChunks = 0;
  for await (const c of await engine.chat.completions.create({ ...request, stream: true }, { signal: controller.signal })) {
    chunks.push(c);
    if (c.choices[0]?.delta.content && ++contentChunks === abortAfterChunks) controller.abort();
  }
  return { chunks, contentChunks };
});
window.completion = guard(async (request) => {
  if (!request.stream) return engine.completions.create(request);
  const chunks = [];
  for await (const c of await engine.completions.create(request)) chunks.push(c);
  return chunks;
});
window.embed = guard(async (request) => engine.embeddings.create(request));
window.cacheList = guard(async () => engine.cache.list());
window.cacheDelete = guard(async (id) => engine.cache.delete(id));
window.cacheUsage = guard(async () => engine.cache.usage());
/** Every key in the weight store (to prove nothing half-written stays). */
window.storeKeys = guard(() => new Promise((resolve, reject) => {
  const open = indexedDB.open('webgguf');
  open.onerror = () => reject(open.error);
  open.onsuccess = () => {
    const db = open.result;
    if (!db.objectStoreNames.contains('weights')) return resolve([]);
    const req = db.transaction('weights').objectStore('weights').getAllKeys();
    req.onsuccess = () => resolve(req.result.map(String));
    req.onerror = () => reject(req.error);
  };
}));
window.ready = true;
