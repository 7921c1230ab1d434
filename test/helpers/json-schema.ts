/**
 * JSON Schema validation for the tests: ajv (draft 2020-12, so `prefixItems` and `$defs` mean
 * what the constraint engine takes them to mean). Returns the first violation as a path and
 * reason, or undefined when `value` validates.
 */
import { Ajv2020 } from 'ajv/dist/2020.js';

const ajv = new Ajv2020({ strict: false, allErrors: false });

export function validateJson(schema: boolean | Record<string, unknown>, value: unknown): string | undefined {
  const validate = ajv.compile(schema);
  if (validate(value)) return undefined;
  const e = validate.errors?.[0];
  return e ? `${e.instancePath || '/'}: ${e.message ?? e.keyword}` : 'invalid';
}
