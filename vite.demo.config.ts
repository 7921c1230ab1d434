import { defineConfig } from 'vite';

/** `npm run build:demo`: the demo as a static site that works from any static host. */
export default defineConfig({
  root: 'demo',
  base: './',
  worker: {
    format: 'es',
    // XGrammar's chunk (loaded only for constrained requests) named for what it is: the CSP test checks it never loads.
    rollupOptions: { output: { chunkFileNames: (c) => (c.moduleIds.some((id) => id.includes('/@mlc-ai/web-xgrammar/')) ? 'assets/xgrammar-[hash].js' : 'assets/[name]-[hash].js') } },
  },
  build: { outDir: '../dist-demo', emptyOutDir: true, target: 'es2022' },
});
