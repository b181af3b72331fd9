import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { requiredSans, type SanEntry, sansCover, sansOf } from './hostnames.ts';
import { createLocalCa, isSupportedCaKey, issueServerCertificate } from './local-ca.ts';
import { certificateFingerprint } from './pem.ts';
import {
  CERT_MODE,
  ensurePrivateDir,
  KEY_MODE,
  publishExclusive,
  readOptional,
  readRequired,
  removeFile,
  tightenKeyMode,
  withLock,
  writeAtomic,
} from './tls-files.ts';
import { TlsError } from './tls-error.ts';

/** Where the TLS listener's certificate comes from. */
export interface TlsMaterialOptions {
  /** The platform's data directory; generated material lives in `<dataDir>/tls/`. */
  dataDir: string;
  /** PEM certificate (chain) to serve as is; requires `keyFile`. */
  certFile?: string;
  /** PEM private key for `certFile`; requires `certFile`. */
  keyFile?: string;
  /** Names the generated server certificate must cover besides localhost, 127.0.0.1 and ::1. */
  hostnames?: string[];
  /** The current time; tests pass a frozen clock. Defaults to the system clock. */
  now?: Date;
}

/** What a TLS listener needs, plus what to tell an operator about it. */
export interface TlsMaterial {
  /** PEM chain to serve: the server certificate, then the CA certificate when generated. */
  cert: string;
  /** PEM private key of the server certificate. */
  key: string;
  /** Path of `<dataDir>/tls/ca.pem`, for clients to trust; only when the material is generated. */
  caFile?: string;
  /** SHA-256 of the CA certificate's DER, uppercase hex pairs joined by ':'; only when generated. */
  caFingerprint?: string;
  /** The same fingerprint for the server (leaf) certificate. */
  fingerprint: string;
  /** 'new': a CA was created now; 'existing': the CA was already there; 'provided': certFile/keyFile. */
  generated: 'new' | 'existing' | 'provided';
}

const DAY_MS = 24 * 60 * 60 * 1000;
// Re-issuing a month ahead leaves room for a node that restarts rarely.
const RENEW_BEFORE_MS = 30 * DAY_MS;
// A bounded number of retries for the case where exclusive creation finds another process's CA.
const CREATE_ATTEMPTS = 3;

interface TlsPaths {
  readonly dir: string;
  readonly caCert: string;
  readonly caKey: string;
  readonly serverCert: string;
  readonly serverKey: string;
}

interface StoredFiles {
  readonly caCert: string | undefined;
  readonly caKey: string | undefined;
  readonly serverCert: string | undefined;
  readonly serverKey: string | undefined;
}

interface LocalCa {
  readonly cert: X509Certificate;
  readonly key: KeyObject;
}

interface ServerPair {
  readonly cert: X509Certificate;
  readonly keyPem: string;
}

type CaState = { readonly kind: 'absent' } | { readonly kind: 'orphan-key' } | { readonly kind: 'ready'; readonly ca: LocalCa };

function tlsPaths(dataDir: string): TlsPaths {
  const dir = join(dataDir, 'tls');
  return {
    dir,
    caCert: join(dir, 'ca.pem'),
    caKey: join(dir, 'ca-key.pem'),
    serverCert: join(dir, 'server.pem'),
    serverKey: join(dir, 'server-key.pem'),
  };
}

function parseCertificate(pem: string, path: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new TlsError('TLS_FILE_INVALID', `${path} does not hold a PEM certificate`, { path, cause: err });
  }
}

function parsePrivateKey(pem: string, path: string): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch (err) {
    // The cause is OpenSSL's decoder message, which never quotes the input.
    throw new TlsError('TLS_FILE_INVALID', `${path} does not hold an unencrypted PEM private key`, {
      path,
      cause: err,
    });
  }
}

/** Milliseconds since the epoch of one of Node's X509Certificate validity strings, NaN if unreadable. */
function validityTime(value: string): number {
  return Date.parse(value);
}

async function loadProvided(certFile: string, keyFile: string): Promise<TlsMaterial> {
  const cert = await readRequired(certFile);
  const key = await readRequired(keyFile);
  const leaf = parseCertificate(cert, certFile);
  // Caught here, the mismatch names both files; caught by tls.createServer it would read
  // "key values mismatch" with no hint of which files are meant.
  if (!leaf.checkPrivateKey(parsePrivateKey(key, keyFile))) {
    throw new TlsError('TLS_KEY_MISMATCH', `${keyFile} is not the private key of the certificate in ${certFile}`, {
      path: keyFile,
    });
  }
  return { cert, key, fingerprint: certificateFingerprint(leaf.raw), generated: 'provided' };
}

async function readStored(paths: TlsPaths): Promise<StoredFiles> {
  return {
    caCert: await readOptional(paths.caCert),
    caKey: await readOptional(paths.caKey),
    serverCert: await readOptional(paths.serverCert),
    serverKey: await readOptional(paths.serverKey),
  };
}

function evaluateCa(stored: StoredFiles, paths: TlsPaths, now: Date): CaState {
  if (stored.caCert === undefined) return stored.caKey === undefined ? { kind: 'absent' } : { kind: 'orphan-key' };
  const cert = parseCertificate(stored.caCert, paths.caCert);
  // The CA is what clients were told to trust: it is never replaced behind the operator's back.
  if (stored.caKey === undefined) {
    throw new TlsError(
      'TLS_CA_KEY_MISSING',
      `${paths.caCert} exists but ${paths.caKey} does not; restore the key, or delete ${paths.caCert} ` +
        'to create a new local CA (clients will then have to trust the new one)',
      { path: paths.caKey },
    );
  }
  const key = parsePrivateKey(stored.caKey, paths.caKey);
  if (!isSupportedCaKey(key)) {
    throw new TlsError('TLS_FILE_INVALID', `${paths.caKey} is not an ECDSA P-256 key`, { path: paths.caKey });
  }
  if (!cert.checkPrivateKey(key)) {
    throw new TlsError('TLS_KEY_MISMATCH', `${paths.caKey} is not the private key of ${paths.caCert}`, {
      path: paths.caKey,
    });
  }
  if (!cert.ca) {
    throw new TlsError('TLS_FILE_INVALID', `${paths.caCert} is not a CA certificate`, { path: paths.caCert });
  }
  if (!(validityTime(cert.validTo) > now.getTime())) {
    throw new TlsError(
      'TLS_CA_EXPIRED',
      `the local CA in ${paths.caCert} expired on ${cert.validTo}; delete ${paths.caCert} and ${paths.caKey} to create a new one`,
      { path: paths.caCert },
    );
  }
  return { kind: 'ready', ca: { cert, key } };
}

/** The stored server pair if it can be served as is: ours, intact, current and covering `sans`. */
function usableServer(
  stored: StoredFiles,
  ca: LocalCa,
  sans: readonly SanEntry[],
  now: Date,
): ServerPair | undefined {
  if (stored.serverCert === undefined || stored.serverKey === undefined) return undefined;
  let cert: X509Certificate;
  let key: KeyObject;
  try {
    cert = new X509Certificate(stored.serverCert);
    key = createPrivateKey(stored.serverKey);
  } catch {
    // Unlike the CA, the server pair is ours to replace: a damaged one is simply issued again.
    return undefined;
  }
  // A pair caught half-replaced by another process also fails here, and the caller then waits on
  // the lock and reads the finished pair.
  if (!cert.checkPrivateKey(key)) return undefined;
  if (!cert.checkIssued(ca.cert) || !cert.verify(ca.cert.publicKey)) return undefined;
  if (!(validityTime(cert.validFrom) <= now.getTime())) return undefined;
  if (!(validityTime(cert.validTo) - now.getTime() > RENEW_BEFORE_MS)) return undefined;
  if (!sansCover(sansOf(cert), sans)) return undefined;
  return { cert, keyPem: stored.serverKey };
}

async function tightenKeys(paths: TlsPaths): Promise<void> {
  await tightenKeyMode(paths.caKey);
  await tightenKeyMode(paths.serverKey);
}

function toMaterial(
  ca: LocalCa,
  server: ServerPair,
  paths: TlsPaths,
  generated: 'new' | 'existing',
): TlsMaterial {
  return {
    // Re-encoded from the parsed certificates, so the chain holds exactly leaf + CA even if a
    // file was hand-edited to carry more.
    cert: `${server.cert.toString().trimEnd()}\n${ca.cert.toString().trimEnd()}\n`,
    key: server.keyPem,
    caFile: paths.caCert,
    caFingerprint: certificateFingerprint(ca.cert.raw),
    fingerprint: certificateFingerprint(server.cert.raw),
    generated,
  };
}

async function createOrRepair(
  paths: TlsPaths,
  sans: readonly SanEntry[],
  now: Date,
  attempt = 1,
): Promise<TlsMaterial> {
  const stored = await readStored(paths);
  const state = evaluateCa(stored, paths, now);
  let ca: LocalCa;
  let generated: 'new' | 'existing' = 'existing';
  if (state.kind === 'ready') {
    ca = state.ca;
  } else {
    // A key without a certificate is what a crash between the two writes leaves. No client can
    // trust a CA whose certificate was never written, so replacing it loses nothing.
    if (state.kind === 'orphan-key') await removeFile(paths.caKey);
    const created = await createLocalCa(now);
    // Exclusive creation backs up the lock: even if a live lock were wrongly taken over, two
    // processes cannot both install a CA; the loser reads the winner's files instead.
    const published =
      (await publishExclusive(paths.caKey, created.keyPem, KEY_MODE)) &&
      (await publishExclusive(paths.caCert, created.certPem, CERT_MODE));
    if (!published) {
      if (attempt >= CREATE_ATTEMPTS) {
        throw new TlsError('TLS_LOCK_TIMEOUT', `another process keeps changing the local CA in ${paths.dir}`, {
          path: paths.dir,
        });
      }
      return createOrRepair(paths, sans, now, attempt + 1);
    }
    ca = { cert: new X509Certificate(created.certPem), key: createPrivateKey(created.keyPem) };
    generated = 'new';
  }
  let server = generated === 'new' ? undefined : usableServer(stored, ca, sans, now);
  if (server === undefined) {
    const issued = await issueServerCertificate({ certDer: ca.cert.raw, key: ca.key }, sans, now);
    await writeAtomic(paths.serverKey, issued.keyPem, KEY_MODE);
    await writeAtomic(paths.serverCert, issued.certPem, CERT_MODE);
    server = { cert: new X509Certificate(issued.certPem), keyPem: issued.keyPem };
  }
  await tightenKeys(paths);
  return toMaterial(ca, server, paths, generated);
}

/**
 * Returns the certificate and key for the HTTPS listener: the operator's files when `certFile`
 * and `keyFile` are given, otherwise a local CA and server certificate under `<dataDir>/tls/`,
 * created on first start and re-issued (server certificate only) when it nears expiry or stops
 * covering the requested hostnames. Safe to call from several processes at once.
 *
 * @throws {TlsError} with a stable `code`; messages name files, never their content.
 */
export async function loadOrCreateTlsMaterial(opts: TlsMaterialOptions): Promise<TlsMaterial> {
  const { certFile, keyFile } = opts;
  if (certFile !== undefined || keyFile !== undefined) {
    if (certFile === undefined || keyFile === undefined) {
      const [given, missing] = certFile === undefined ? ['keyFile', 'certFile'] : ['certFile', 'keyFile'];
      throw new TlsError(
        'TLS_INCOMPLETE',
        `${given} was given without ${missing}; give both, or neither to use a generated certificate`,
      );
    }
    return loadProvided(certFile, keyFile);
  }
  if (typeof opts.dataDir !== 'string' || opts.dataDir === '') {
    throw new TypeError('dataDir must be a non-empty path');
  }
  const sans = requiredSans(opts.hostnames);
  const now = opts.now ?? new Date();
  const paths = tlsPaths(opts.dataDir);

  // The common start reads four files and takes no lock. Files are only ever replaced by rename,
  // so whatever is read is whole; anything inconsistent is settled under the lock below.
  const stored = await readStored(paths);
  const state = evaluateCa(stored, paths, now);
  if (state.kind === 'ready') {
    const server = usableServer(stored, state.ca, sans, now);
    if (server !== undefined) {
      await tightenKeys(paths);
      return toMaterial(state.ca, server, paths, 'existing');
    }
  }
  await ensurePrivateDir(paths.dir);
  return withLock(paths.dir, () => createOrRepair(paths, sans, now));
}
