/**
 * XGrammar as one ES module: imported dynamically by the default loader (grammar/xgrammar.ts), so
 * bundlers put XGrammar and its CommonJS interop together in one lazy chunk, and the worker itself
 * needs no shared runtime chunk (it stays one self-contained file).
 */
import * as xgrammar from '@mlc-ai/web-xgrammar';

export default xgrammar;
