import { createStore, delMany, get, keys, setMany, type UseStore } from 'idb-keyval';

/**
 * The small storage interface the weight cache needs (after wllama's): values are structured-
 * cloneable, and setMany is atomic, so a chunk and the progress record that counts it land
 * together or not at all.
 */
export interface KeyValueStore {
  get<T>(key: string): Promise<T | undefined>;
  setMany(entries: [string, unknown][]): Promise<void>;
  delMany(keys: string[]): Promise<void>;
  keys(): Promise<string[]>;
}

/** IndexedDB through idb-keyval, in a database of its own. */
export function indexedDBStore(database = 'webgguf', storeName = 'weights'): KeyValueStore {
  let store: UseStore | undefined;
  const use = () => (store ??= createStore(database, storeName));
  return {
    get: (key) => get(key, use()),
    setMany: (entries) => setMany(entries, use()),
    delMany: (k) => delMany(k, use()),
    keys: async () => (await keys(use())).map(String),
  };
}

/** A store in memory (Node, tests). */
export function memoryStore(): KeyValueStore {
  const map = new Map<string, unknown>();
  return {
    get: async <T>(key: string) => map.get(key) as T | undefined,
    setMany: async (entries) => entries.forEach(([k, v]) => map.set(k, v)),
    delMany: async (k) => k.forEach((key) => map.delete(key)),
    keys: async () => [...map.keys()],
  };
}
