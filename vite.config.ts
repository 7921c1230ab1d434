import { defineConfig } from 'vitest/config';

export default defineConfig({
  // Relative asset URLs: the worker chunk is found next to dist/index.js wherever it is served.
  base: './',
  worker: { format: 'es' },
  build: {
    lib: { entry: { index: 'src/index.ts' }, formats: ['es'] },
    outDir: 'dist',
    target: 'es2022',
    // Dependencies stay imports, so an app's bundler shares them; shaders are inlined.
    rollupOptions: { external: [/^node:/, 'webgpu', /^@huggingface\//, /^@noble\//, 'comlink', 'idb-keyval'] },
  },
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    // Memory tests collect garbage before they measure.
    execArgv: ['--expose-gc'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
