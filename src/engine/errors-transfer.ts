import * as Comlink from 'comlink';
import { WebGGUFError, type ErrorCode } from '../errors.js';

interface SerializedError {
  isError: true;
  value: { name: string; message: string; code?: ErrorCode; stack?: string } | unknown;
}

/**
 * Comlink's default turns thrown errors into plain Errors; this keeps our `code`, so callers on
 * the main thread get a WebGGUFError, never "[object Object]". Installed on both sides.
 */
export function installErrorTransfer(): void {
  const handler = Comlink.transferHandlers.get('throw') as Comlink.TransferHandler<unknown, SerializedError>;
  Comlink.transferHandlers.set('throw', {
    canHandle: handler.canHandle,
    serialize(thrown: unknown) {
      const value = (thrown as { value: unknown }).value;
      if (value instanceof Error) {
        const code = (value as WebGGUFError).code;
        return [{ isError: true, value: { name: value.name, message: value.message, code, stack: value.stack } }, []];
      }
      return [{ isError: false, value } as unknown as SerializedError, []];
    },
    deserialize(serialized: SerializedError) {
      if (!serialized.isError) throw serialized.value;
      const v = serialized.value as { name: string; message: string; code?: ErrorCode; stack?: string };
      const e = v.code ? new WebGGUFError(v.code, v.message) : Object.assign(new Error(v.message), { name: v.name });
      if (v.stack) e.stack = v.stack;
      throw e;
    },
  });
}
