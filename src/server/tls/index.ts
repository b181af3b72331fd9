/**
 * TLS material for the HTTPS listener: operator-provided files, or a local CA and a server
 * certificate kept under `<dataDir>/tls/`.
 */
export type { TlsMaterial, TlsMaterialOptions } from './tls-material.ts';
export { loadOrCreateTlsMaterial } from './tls-material.ts';
export type { TlsErrorCode } from './tls-error.ts';
export { isTlsError, TlsError } from './tls-error.ts';
export { TLS_POLICY, tlsServerOptions } from './policy.ts';
