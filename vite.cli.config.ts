import { defineConfig } from 'vite';

/** The Node CLI: one ESM file with the shaders inlined; dependencies stay external. */
export default defineConfig({
  build: {
    ssr: 'src/cli/main.ts',
    outDir: 'dist',
    emptyOutDir: false,
    target: 'node20',
    rollupOptions: { output: { entryFileNames: 'cli.js' } },
  },
});
