/**
 * Which JSON Schema keywords constrained decoding honours. XGrammar skips keywords it does not
 * know, which would let output through that the schema forbids; so every keyword of a request's
 * schema is checked here first, and one outside this list is an invalid-argument error naming it.
 */
import { WebGGUFError } from '../errors.js';

/** Keywords that shape the output (XGrammar compiles each of them into the grammar). */
const CONSTRAINING = new Set([
  'type', 'properties', 'required', 'additionalProperties', 'items', 'prefixItems', 'enum', 'const', 'anyOf', 'oneOf',
  '$ref', '$defs', 'definitions', 'minItems', 'maxItems', 'minLength', 'maxLength',
]);
// Measured and left out (tests/constraint.test.ts walks): XGrammar 0.1.27 let an integer with
// maximum 150 print 154, so minimum/maximum/exclusive* are refused; pattern and format are not
// checked yet, so they are refused too.
/** Keywords that describe and never constrain. */
const ANNOTATIONS = new Set(['title', 'description', 'default', 'examples', '$schema', '$id', '$comment', 'deprecated', 'readOnly', 'writeOnly']);
const TYPES = new Set(['object', 'array', 'string', 'number', 'integer', 'boolean', 'null']);
/** Keywords whose value is a schema, a list of schemas, or a map of schemas. */
const SUBSCHEMA = new Set(['additionalProperties', 'items']);
const SCHEMA_LISTS = new Set(['anyOf', 'oneOf', 'prefixItems']);
const SCHEMA_MAPS = new Set(['properties', '$defs', 'definitions']);

/** Deeper schemas are refused (bounded recursion here and in XGrammar's compiler). */
const MAX_DEPTH = 64;

const invalid = (message: string) => new WebGGUFError('invalid-argument', message);

/**
 * Throws invalid-argument naming the first unsupported keyword (with its JSON pointer), a bad
 * `type`, or a `$ref` that does not point into this schema.
 */
export function checkJsonSchema(schema: unknown, what = 'schema'): void {
  const root = schema;
  const visit = (s: unknown, path: string): void => {
    if (typeof s === 'boolean') return;
    if (path.split('/').length > MAX_DEPTH) throw invalid(`${what}: nested deeper than ${MAX_DEPTH} levels`);
    if (typeof s !== 'object' || s === null || Array.isArray(s)) throw invalid(`${what}${path || ''} must be a JSON Schema object or boolean`);
    for (const [key, value] of Object.entries(s)) {
      const at = `${path}/${key}`;
      if (!CONSTRAINING.has(key) && !ANNOTATIONS.has(key)) {
        throw invalid(`${what}: the JSON Schema keyword "${key}" (at ${at}) is not supported by constrained decoding; supported: ${[...CONSTRAINING].join(', ')}`);
      }
      if (key === 'type') {
        const types = Array.isArray(value) ? value : [value];
        if (types.length === 0 || !types.every((t) => typeof t === 'string' && TYPES.has(t))) throw invalid(`${what}: "type" at ${at} must be one of ${[...TYPES].join(', ')} or a list of them`);
      } else if (SUBSCHEMA.has(key)) {
        visit(value, at);
      } else if (SCHEMA_LISTS.has(key)) {
        if (!Array.isArray(value) || value.length === 0) throw invalid(`${what}: "${key}" at ${at} must be a non-empty list of schemas`);
        value.forEach((v, i) => visit(v, `${at}/${i}`));
      } else if (SCHEMA_MAPS.has(key)) {
        if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(`${what}: "${key}" at ${at} must be an object of schemas`);
        for (const [name, v] of Object.entries(value)) visit(v, `${at}/${name}`);
      } else if (key === 'required') {
        if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw invalid(`${what}: "required" at ${at} must be a list of property names`);
      } else if (key === 'enum') {
        if (!Array.isArray(value) || value.length === 0) throw invalid(`${what}: "enum" at ${at} must be a non-empty list`);
      } else if (key === '$ref') {
        if (typeof value !== 'string' || !resolves(root, value)) throw invalid(`${what}: "$ref" ${JSON.stringify(value)} at ${at} does not point into this schema (only local "#/..." references are supported)`);
      } else if (['minItems', 'maxItems', 'minLength', 'maxLength'].includes(key)) {
        if (!Number.isSafeInteger(value) || (value as number) < 0) throw invalid(`${what}: "${key}" at ${at} must be an integer >= 0`);
      }
    }
  };
  visit(schema, '');
}

function resolves(root: unknown, ref: string): boolean {
  if (ref === '#') return true;
  if (!ref.startsWith('#/')) return false;
  let node: unknown = root;
  for (const raw of ref.slice(2).split('/')) {
    const part = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    if (typeof node !== 'object' || node === null || !Object.hasOwn(node, part)) return false;
    node = (node as Record<string, unknown>)[part];
  }
  return typeof node === 'object' || typeof node === 'boolean';
}
