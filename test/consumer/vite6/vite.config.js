// Vite 6 and 7: their dev server pre-bundles dependencies away from webgguf's worker file.
export default { optimizeDeps: { exclude: ['webgguf'] } };
