/**
 * The TLS policy of the HTTPS listener: Mozilla's "intermediate" profile narrowed to forward
 * secrecy with AEAD only. TLS 1.3 uses OpenSSL's three default suites; TLS 1.2 offers ECDHE
 * with AES-GCM or ChaCha20-Poly1305 only (no CBC, no CCM/CCM8, no static RSA, no finite-field
 * DHE). Both ECDSA and RSA certificates are covered, as operators may bring either. The client
 * picks among these suites (all are strong), as Mozilla recommends.
 */
export const TLS_POLICY = Object.freeze({
  minVersion: 'TLSv1.2' as const,
  /** TLS 1.3 suites, in OpenSSL's naming. */
  tls13Suites: Object.freeze(['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256']),
  /** TLS 1.2 suites, in OpenSSL's naming. */
  tls12Suites: Object.freeze([
    'ECDHE-ECDSA-AES128-GCM-SHA256',
    'ECDHE-RSA-AES128-GCM-SHA256',
    'ECDHE-ECDSA-AES256-GCM-SHA384',
    'ECDHE-RSA-AES256-GCM-SHA384',
    'ECDHE-ECDSA-CHACHA20-POLY1305',
    'ECDHE-RSA-CHACHA20-POLY1305',
  ]),
  /** Key-exchange groups, preferred first. */
  curves: Object.freeze(['X25519', 'prime256v1', 'secp384r1']),
});

/** The policy as node:tls server options. */
export function tlsServerOptions(): { minVersion: 'TLSv1.2'; ciphers: string; ecdhCurve: string; honorCipherOrder: false } {
  return {
    minVersion: TLS_POLICY.minVersion,
    // Node takes TLS 1.3 suites in the same list as the TLS 1.2 ones.
    ciphers: [...TLS_POLICY.tls13Suites, ...TLS_POLICY.tls12Suites].join(':'),
    ecdhCurve: TLS_POLICY.curves.join(':'),
    honorCipherOrder: false,
  };
}
