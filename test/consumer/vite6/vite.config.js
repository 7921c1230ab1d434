// Vite 6 and 7: their dev server pre-bundles dependencies away from webgguf's worker file, and their
// default worker format (iife) cannot hold the worker's lazy XGrammar chunk.
export default { optimizeDeps: { exclude: ['webgguf'] }, worker: { format: 'es' } };
