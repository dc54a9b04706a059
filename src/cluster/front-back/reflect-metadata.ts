/**
 * The three metadata calls of the Reflect metadata proposal that the certificate library's dependency
 * container makes (getMetadata, getOwnMetadata, defineMetadata), when nothing else has provided them.
 * Imported for its effect, before the certificate library.
 */
type Store = Map<unknown, unknown>;
const stores = new WeakMap<object, Store>();

interface MetadataReflect {
  getMetadata?(key: unknown, target: object): unknown;
  getOwnMetadata?(key: unknown, target: object): unknown;
  defineMetadata?(key: unknown, value: unknown, target: object): void;
}

const R = Reflect as typeof Reflect & MetadataReflect;
if (typeof R.getMetadata !== 'function') {
  R.defineMetadata = (key, value, target) => {
    let store = stores.get(target);
    if (store === undefined) stores.set(target, (store = new Map()));
    store.set(key, value);
  };
  R.getOwnMetadata = (key, target) => stores.get(target)?.get(key);
  R.getMetadata = (key, target) => {
    for (let t: object | null = target; t !== null; t = Object.getPrototypeOf(t)) {
      const store = stores.get(t);
      if (store?.has(key)) return store.get(key);
    }
    return undefined;
  };
}
