/**
 * XGrammar (@mlc-ai/web-xgrammar: WebAssembly) is loaded only when a request is constrained, so
 * a page that never constrains never instantiates WebAssembly (and runs under a CSP without
 * 'wasm-unsafe-eval').
 */
import type * as XGrammarModule from '@mlc-ai/web-xgrammar';
import { WebGGUFError } from '../errors.js';

export type XGrammar = Pick<typeof XGrammarModule, 'Grammar' | 'GrammarCompiler' | 'GrammarMatcher' | 'TokenizerInfo'>;

/**
 * In a browser the package is imported (the bundler turns its UMD file into a module). Node
 * cannot import it as published (a UMD file in a "type": "module" package), so webgguf/node
 * installs its own loader (node/xgrammar.ts).
 */
let loader: () => Promise<XGrammar> = async () => {
  // The namespace of a CommonJS module: its exports, or (by bundler) under `default`.
  const m = (await import('./xgrammar-module.js')).default as unknown as { default?: XGrammar } & Partial<XGrammar>;
  return m.GrammarCompiler ? (m as XGrammar) : m.default!;
};
let loaded: Promise<XGrammar> | undefined;

export function useXGrammarLoader(load: () => Promise<XGrammar>): void {
  if (load === loader) return;
  loader = load;
  loaded = undefined;
}

export function loadXGrammar(): Promise<XGrammar> {
  loaded ??= loader().catch((e: unknown) => {
    loaded = undefined;
    throw new WebGGUFError('invalid-argument', `constrained decoding needs XGrammar, which failed to load: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  });
  return loaded;
}

/**
 * Runs an XGrammar compile that may fail: its C++ parser reports a bad grammar or schema by
 * printing the reason (on the console, through Emscripten's own binding to it) and aborting the
 * WebAssembly call, after which the module stays usable. The failure becomes invalid-argument.
 */
export async function compiling<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    throw new WebGGUFError('invalid-argument', `${what} does not compile (XGrammar's parser printed the reason to the console): ${reason}`, { cause: e });
  }
}
