import { defineConfig } from 'vite';

/** `npm run build:demo`: the demo as a static site that works from any static host. */
export default defineConfig({
  root: 'demo',
  base: './',
  worker: { format: 'es' },
  build: { outDir: '../dist-demo', emptyOutDir: true, target: 'es2022' },
});
