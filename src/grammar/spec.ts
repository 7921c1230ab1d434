/**
 * What a request asks its output to be: plain data, checked without XGrammar (the page's thin
 * client and the request checks use it), that crosses to the worker.
 */
import { WebGGUFError } from '../errors.js';
import { checkJsonSchema } from './schema.js';

/** What the output must be. */
export type ConstraintSpec =
  /** Any JSON object (OpenAI's response_format json_object). */
  | { type: 'json_object' }
  /** JSON that validates against `schema` (the keywords in grammar/schema.ts). */
  | { type: 'json_schema'; schema: unknown }
  /** Text that a GBNF grammar (llama.cpp's format; the rule `root` starts) matches. */
  | { type: 'grammar'; grammar: string }
  /**
   * The text `prefix` (if any: the rest of an opener the output had begun), an optional newline,
   * JSON that validates against `schema`, then the text `suffix`: a tool call and its closing tag
   * (the engine makes these from `tools`; requests cannot give one).
   */
  | { type: 'tool_call'; schema: unknown; suffix: string; prefix?: string };

/** The most characters of a grammar or schema a request may carry (bounded compile work). */
export const MAX_CONSTRAINT_CHARS = 1 << 20;

const invalid = (message: string) => new WebGGUFError('invalid-argument', message);

/** Checks a spec's shape and, for a schema, every keyword; throws invalid-argument. Synchronous and cheap. */
export function checkConstraintSpec(given: unknown, what = 'constraint'): asserts given is ConstraintSpec {
  if (typeof given !== 'object' || given === null) throw invalid(`${what} must be an object with a type`);
  const spec = given as ConstraintSpec;
  if (spec.type === 'json_object') return;
  if (spec.type === 'json_schema' || spec.type === 'tool_call') {
    if (spec.type === 'tool_call' && (typeof spec.suffix !== 'string' || (spec.prefix !== undefined && typeof spec.prefix !== 'string'))) {
      throw invalid(`${what}: a tool call's prefix and suffix must be strings`);
    }
    let text: string;
    try {
      text = JSON.stringify(spec.schema ?? null);
    } catch {
      throw invalid(`${what}: the schema is not JSON (a cycle?)`);
    }
    if (text.length > MAX_CONSTRAINT_CHARS) throw invalid(`${what}: the schema is over ${MAX_CONSTRAINT_CHARS} characters`);
    checkJsonSchema(spec.schema, what);
    return;
  }
  if (spec.type === 'grammar') {
    if (typeof spec.grammar !== 'string' || !/\S/.test(spec.grammar)) throw invalid(`${what} must be a non-empty GBNF grammar string`);
    if (spec.grammar.length > MAX_CONSTRAINT_CHARS) throw invalid(`${what}: the grammar is over ${MAX_CONSTRAINT_CHARS} characters`);
    if (!/(^|\n)\s*root\s*::=/.test(spec.grammar)) throw invalid(`${what}: a GBNF grammar needs a rule named root (root ::= ...)`);
    return;
  }
  throw invalid(`${what}: unknown constraint type ${JSON.stringify((spec as { type?: unknown }).type)}`);
}
