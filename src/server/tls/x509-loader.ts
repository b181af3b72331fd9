type X509Module = typeof import('@peculiar/x509');

type MetadataMap = Map<unknown, unknown>;
type ReflectWithMetadata = typeof Reflect & {
  getMetadata?: (key: unknown, target: object, property?: PropertyKey) => unknown;
  getOwnMetadata?: (key: unknown, target: object, property?: PropertyKey) => unknown;
  defineMetadata?: (key: unknown, value: unknown, target: object, property?: PropertyKey) => void;
};

/**
 * @peculiar/x509 registers its algorithms with tsyringe, which refuses to load unless
 * `Reflect.getMetadata` exists. The usual fix is the `reflect-metadata` package, which this
 * project does not depend on; tsyringe only needs these three functions, so a small WeakMap
 * store is enough. It is installed only when nothing else provides the API, and a real polyfill
 * loaded later simply replaces it (@peculiar/x509 keeps no metadata that would be lost).
 */
function ensureReflectMetadata(): void {
  const reflect = Reflect as ReflectWithMetadata;
  if (typeof reflect.getMetadata === 'function') return;
  const store = new WeakMap<object, Map<PropertyKey | undefined, MetadataMap>>();
  const own = (target: object, property: PropertyKey | undefined, create: boolean) => {
    let byProperty = store.get(target);
    if (byProperty === undefined) {
      if (!create) return undefined;
      byProperty = new Map();
      store.set(target, byProperty);
    }
    let map = byProperty.get(property);
    if (map === undefined && create) {
      map = new Map();
      byProperty.set(property, map);
    }
    return map;
  };
  reflect.defineMetadata = (key, value, target, property) => {
    own(target, property, true)?.set(key, value);
  };
  reflect.getOwnMetadata = (key, target, property) => own(target, property, false)?.get(key);
  reflect.getMetadata = (key, target, property) => {
    // Metadata is inherited along the prototype chain, as in the reflect-metadata proposal.
    for (let t: object | null = target; t !== null; t = Object.getPrototypeOf(t)) {
      const map = own(t, property, false);
      if (map?.has(key)) return map.get(key);
    }
    return undefined;
  };
}

let loading: Promise<X509Module> | undefined;

/**
 * Loads @peculiar/x509 on first use. It is loaded lazily so that starting with provided files
 * never pays for it, and so the metadata shim is in place before tsyringe's import-time check.
 */
export function loadX509(): Promise<X509Module> {
  loading ??= (async () => {
    ensureReflectMetadata();
    return await import('@peculiar/x509');
  })();
  return loading;
}
