// The demo's service worker: after the first visit the page opens with the network off. The app
// shell (the build's files, listed by vite.demo.config.ts) is stored on install, and files loaded
// later (XGrammar's, for JSON mode) when first used. A request goes to the network first, so a new
// build shows at once, and falls back to the stored copy. Models are not here: the engine keeps
// them in IndexedDB.
const SHELL = 'webgguf-demo-shell-' + __SHELL_VERSION__;
const FILES = __SHELL_FILES__;

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(SHELL).then((cache) => cache.addAll(['./', ...FILES])).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) if (key.startsWith('webgguf-demo-shell-') && key !== SHELL) await caches.delete(key);
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  const url = new URL(request.url);
  // Only this site's own files; model bytes (ranges, other hosts) go straight to the network.
  if (request.method !== 'GET' || url.origin !== self.location.origin || request.headers.has('range')) return;
  event.respondWith((async () => {
    try {
      const response = await fetch(request);
      if (response.status === 200 && (request.mode === 'navigate' || url.pathname.includes('/assets/'))) {
        const cache = await caches.open(SHELL);
        await cache.put(request.mode === 'navigate' ? './' : request, response.clone());
      }
      return response;
    } catch (error) {
      const cached = await caches.match(request.mode === 'navigate' ? './' : request, { ignoreSearch: request.mode === 'navigate' });
      if (cached) return cached;
      throw error;
    }
  })());
});
