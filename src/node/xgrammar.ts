import { readFileSync } from 'node:fs';
import * as nodeModule from 'node:module';
import type { XGrammar } from '../grammar/xgrammar.js';

/**
 * @mlc-ai/web-xgrammar ships a UMD file in a "type": "module" package, which Node refuses to
 * import (its CommonJS branch calls require); it is run here as the CommonJS file it is, the way
 * Node's own CommonJS loader wraps one. Its one dynamic import (Emscripten's `import('module')`)
 * is handed node:module directly: code made by `new Function` has no module loader under vitest.
 */
export async function loadXGrammarInNode(): Promise<XGrammar> {
  const require = nodeModule.createRequire(import.meta.url);
  const file = require.resolve('@mlc-ai/web-xgrammar');
  const source = readFileSync(file, 'utf8');
  const parts = source.split("import('module')");
  if (parts.length !== 2) throw new Error(`${file}: unexpected build of @mlc-ai/web-xgrammar (expected one import('module'))`);
  const module = { exports: {} as XGrammar };
  const run = new Function('exports', 'module', 'require', '__filename', '__dirname', '__nodeModule', parts.join('Promise.resolve(__nodeModule)'));
  run(module.exports, module, nodeModule.createRequire(file), file, file.replace(/[/\\][^/\\]*$/, ''), nodeModule);
  return module.exports;
}
