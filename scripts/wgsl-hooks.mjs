// Node module hooks so source files can `import x from './k.wgsl?raw'` outside Vite
// (the CLI and benchmarks run from source in development; the published build inlines shaders).
import { readFile } from 'node:fs/promises';

export async function load(url, context, nextLoad) {
  if (url.endsWith('.wgsl?raw')) {
    const source = await readFile(new URL(url.slice(0, -4)), 'utf8');
    return { format: 'module', shortCircuit: true, source: `export default ${JSON.stringify(source)};` };
  }
  return nextLoad(url, context);
}
