import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { defineConfig, type Plugin } from 'vite';

/**
 * The service worker (demo/sw.js) with the build's file list, so the app shell is stored on the
 * first visit and the page opens offline after it. Its name is fixed (sw.js): the page registers it.
 */
function serviceWorker(): Plugin {
  return {
    name: 'webgguf-demo-sw',
    apply: 'build',
    generateBundle(_, bundle) {
      // XGrammar (a megabyte, for JSON mode only) is stored when first used, not on every first visit.
      const files = Object.keys(bundle).filter((f) => !f.endsWith('.map') && f !== 'index.html' && !/xgrammar/.test(f)).sort().map((f) => `./${f}`);
      const version = createHash('sha256').update(files.join('\n')).digest('hex').slice(0, 12);
      const source = readFileSync(new URL('./demo/sw.js', import.meta.url), 'utf8')
        .replace('__SHELL_FILES__', JSON.stringify(files))
        .replace('__SHELL_VERSION__', JSON.stringify(version));
      this.emitFile({ type: 'asset', fileName: 'sw.js', source });
    },
  };
}

/** `npm run build:demo`: the demo as a static site that works from any static host. */
export default defineConfig({
  root: 'demo',
  base: './',
  plugins: [serviceWorker()],
  worker: {
    format: 'es',
    // XGrammar's chunk (loaded only for constrained requests) named for what it is: the CSP test checks it never loads.
    rollupOptions: { output: { chunkFileNames: (c) => (c.moduleIds.some((id) => id.includes('/@mlc-ai/web-xgrammar/')) ? 'assets/xgrammar-[hash].js' : 'assets/[name]-[hash].js') } },
  },
  build: { outDir: '../dist-demo', emptyOutDir: true, target: 'es2022' },
});
