/**
 * A JSON Schema validator for the keywords constrained decoding supports (src/grammar/schema.ts),
 * written from the specification (draft 2020-12) for the tests: ajv is not a dependency. Returns
 * the first violation as a path and reason, or undefined when `value` validates.
 */
type Schema = boolean | Record<string, unknown>;

export function validateJson(schema: Schema, value: unknown): string | undefined {
  const root = schema;
  const resolve = (ref: string): Schema => {
    let node: unknown = root;
    if (ref !== '#') for (const part of ref.slice(2).split('/')) node = (node as Record<string, unknown>)[decodeURIComponent(part).replace(/~1/g, '/').replace(/~0/g, '~')];
    return node as Schema;
  };
  const typeOf = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v === 'number' ? (Number.isInteger(v) ? 'integer' : 'number') : typeof v);
  const equal = (a: unknown, b: unknown): boolean => JSON.stringify(canon(a)) === JSON.stringify(canon(b));
  const canon = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(canon) : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, x]) => [k, canon(x)])) : v;
  const check = (s: Schema, v: unknown, at: string): string | undefined => {
    if (s === true) return undefined;
    if (s === false) return `${at}: no value allowed`;
    if (typeof s.$ref === 'string') {
      const r = check(resolve(s.$ref), v, at);
      if (r) return r;
    }
    if (s.type !== undefined) {
      const types = Array.isArray(s.type) ? s.type : [s.type];
      const t = typeOf(v);
      if (!types.includes(t) && !(t === 'integer' && types.includes('number'))) return `${at}: ${t} is not ${types.join('|')}`;
    }
    if (Array.isArray(s.enum) && !s.enum.some((e) => equal(e, v))) return `${at}: not in enum`;
    if ('const' in s && !equal(s.const, v)) return `${at}: not the const`;
    if (Array.isArray(s.anyOf) && !s.anyOf.some((x) => !check(x as Schema, v, at))) return `${at}: matches no anyOf branch`;
    if (Array.isArray(s.oneOf) && s.oneOf.filter((x) => !check(x as Schema, v, at)).length !== 1) return `${at}: matches not exactly one oneOf branch`;
    if (typeof v === 'string') {
      const n = [...v].length;
      if (typeof s.minLength === 'number' && n < s.minLength) return `${at}: shorter than ${s.minLength}`;
      if (typeof s.maxLength === 'number' && n > s.maxLength) return `${at}: longer than ${s.maxLength}`;
      if (typeof s.pattern === 'string' && !new RegExp(s.pattern, 'u').test(v)) return `${at}: does not match ${s.pattern}`;
    }
    if (typeof v === 'number') {
      if (typeof s.minimum === 'number' && v < s.minimum) return `${at}: below ${s.minimum}`;
      if (typeof s.maximum === 'number' && v > s.maximum) return `${at}: above ${s.maximum}`;
      if (typeof s.exclusiveMinimum === 'number' && v <= s.exclusiveMinimum) return `${at}: not above ${s.exclusiveMinimum}`;
      if (typeof s.exclusiveMaximum === 'number' && v >= s.exclusiveMaximum) return `${at}: not below ${s.exclusiveMaximum}`;
    }
    if (Array.isArray(v)) {
      if (typeof s.minItems === 'number' && v.length < s.minItems) return `${at}: fewer than ${s.minItems} items`;
      if (typeof s.maxItems === 'number' && v.length > s.maxItems) return `${at}: more than ${s.maxItems} items`;
      const prefix = Array.isArray(s.prefixItems) ? (s.prefixItems as Schema[]) : [];
      for (const [i, x] of v.entries()) {
        const item = i < prefix.length ? prefix[i]! : (s.items as Schema | undefined);
        const r = item === undefined ? undefined : check(item, x, `${at}/${i}`);
        if (r) return r;
      }
    }
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const props = (s.properties ?? {}) as Record<string, Schema>;
      for (const k of (s.required ?? []) as string[]) if (!Object.hasOwn(v, k)) return `${at}: missing ${k}`;
      for (const [k, x] of Object.entries(v)) {
        const sub = Object.hasOwn(props, k) ? props[k]! : (s.additionalProperties as Schema | undefined);
        const r = sub === undefined ? undefined : check(sub, x, `${at}/${k}`);
        if (r) return r;
      }
    }
    return undefined;
  };
  return check(schema, value, '#');
}
