import { type KeyObject, randomBytes } from 'node:crypto';
import { commonNameFor, type SanEntry } from './hostnames.ts';
import { derToPem } from './pem.ts';
import { loadX509 } from './x509-loader.ts';

/** A freshly issued certificate and its key, as written to disk. */
export interface IssuedCertificate {
  readonly certPem: string;
  readonly keyPem: string;
}

const EC_KEY = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY_MS = 24 * 60 * 60 * 1000;
// Clients on other machines may run a little behind; a certificate valid from "now" would be
// rejected as not yet valid by them for those minutes.
const BACKDATE_MS = 5 * 60 * 1000;
// 397 days is the longest leaf lifetime browsers accept (Apple and Chrome cap it at 398).
const SERVER_VALIDITY_DAYS = 397;
const CA_VALIDITY_YEARS = 10;

const webcrypto = globalThis.crypto;

function serialNumber(): string {
  const bytes = randomBytes(16);
  // Clearing the top bit keeps the INTEGER positive (RFC 5280 4.1.2.2) and setting the next one
  // stops DER from trimming a leading zero byte, so every serial is exactly 16 octets.
  bytes[0] = (bytes[0]! & 0x3f) | 0x40;
  return bytes.toString('hex');
}

async function exportPkcs8Pem(key: CryptoKey): Promise<string> {
  return derToPem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', key));
}

/** Tells whether a key can sign as our CA: only the ECDSA P-256 keys this module generates are supported. */
export function isSupportedCaKey(key: KeyObject): boolean {
  return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
}

/** Generates a self-signed ECDSA P-256 CA that may sign end-entity certificates only. */
export async function createLocalCa(now: Date): Promise<IssuedCertificate> {
  const x509 = await loadX509();
  const keys = await webcrypto.subtle.generateKey(EC_KEY, true, ['sign', 'verify']);
  const notBefore = new Date(now.getTime() - BACKDATE_MS);
  const notAfter = new Date(notBefore);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + CA_VALIDITY_YEARS);
  // The random suffix tells CAs of different installations apart in a trust store listing.
  const name = [{ CN: [`Accord Local CA ${randomBytes(4).toString('hex')}`] }];
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serialNumber(),
      name,
      notBefore,
      notAfter,
      keys,
      signingAlgorithm: SIGNING,
      extensions: [
        // pathLen 0: even if this key leaks it cannot mint intermediate CAs.
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, webcrypto),
      ],
    },
    webcrypto,
  );
  return { certPem: derToPem('CERTIFICATE', cert.rawData), keyPem: await exportPkcs8Pem(keys.privateKey) };
}

/**
 * Issues an ECDSA P-256 server certificate for `sans`, signed by the CA. Its lifetime never
 * extends past the CA's, since no client would accept the part after it.
 */
export async function issueServerCertificate(
  ca: { readonly certDer: Uint8Array; readonly key: KeyObject },
  sans: readonly SanEntry[],
  now: Date,
): Promise<IssuedCertificate> {
  const x509 = await loadX509();
  const caCert = new x509.X509Certificate(Uint8Array.from(ca.certDer));
  const signingKey = await webcrypto.subtle.importKey(
    'pkcs8',
    ca.key.export({ type: 'pkcs8', format: 'der' }),
    EC_KEY,
    false,
    ['sign'],
  );
  const keys = await webcrypto.subtle.generateKey(EC_KEY, true, ['sign', 'verify']);
  const notBefore = new Date(now.getTime() - BACKDATE_MS);
  const notAfter = new Date(
    Math.min(notBefore.getTime() + SERVER_VALIDITY_DAYS * DAY_MS, caCert.notAfter.getTime()),
  );
  // Reusing the CA's own key identifier keeps chain building exact even for a CA that was not
  // made by this module; computing it is the fallback when the CA carries none.
  const caKeyId = caCert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  const authorityKeyId =
    caKeyId === undefined
      ? await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey, false, webcrypto)
      : new x509.AuthorityKeyIdentifierExtension(caKeyId);
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: serialNumber(),
      subject: [{ CN: [commonNameFor(sans)] }],
      issuer: caCert.subjectName,
      notBefore,
      notAfter,
      publicKey: keys.publicKey,
      signingKey,
      signingAlgorithm: SIGNING,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension(sans.map((san) => ({ type: san.type, value: san.value }))),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, webcrypto),
        authorityKeyId,
      ],
    },
    webcrypto,
  );
  return { certPem: derToPem('CERTIFICATE', cert.rawData), keyPem: await exportPkcs8Pem(keys.privateKey) };
}
