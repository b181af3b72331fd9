import { createHash } from 'node:crypto';

/** Wraps DER bytes in a PEM block with 64-character lines, as OpenSSL writes them. */
export function derToPem(label: 'CERTIFICATE' | 'PRIVATE KEY', der: ArrayBuffer | Uint8Array): string {
  const base64 = Buffer.from(der instanceof Uint8Array ? der : new Uint8Array(der)).toString('base64');
  const lines = base64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/**
 * SHA-256 of a certificate's DER as uppercase hex pairs joined by ':', the format of Node's
 * `X509Certificate#fingerprint256` and of most browsers' certificate viewers, so an operator
 * can compare what they see with what the server logged.
 */
export function certificateFingerprint(der: Uint8Array): string {
  const hex = createHash('sha256').update(der).digest('hex').toUpperCase();
  return hex.match(/../g)!.join(':');
}
