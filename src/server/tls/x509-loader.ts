type X509Module = typeof import('@peculiar/x509');

let loading: Promise<X509Module> | undefined;

/**
 * Loads @peculiar/x509 on first use, so that restarts with existing or provided files never pay
 * for it. It registers its algorithms with tsyringe, which refuses to load without the Reflect
 * metadata API: the polyfill must be in place before that import runs.
 */
export function loadX509(): Promise<X509Module> {
  loading ??= (async () => {
    await import('reflect-metadata');
    return await import('@peculiar/x509');
  })();
  return loading;
}
