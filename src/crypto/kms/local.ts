// The `local` KMS provider: versioned 256-bit root keys in <dataDir>/kms/root-keys.json (file mode
// 0600, directory 0700), optionally sealed under a passphrase. It protects against a database
// dump or backup taken without the data directory; it does not protect against someone who can
// read the data directory and the passphrase. Use `pkcs11` when the root key must live in an HSM.
//
// Passphrase sealing: scrypt (N=2^15, r=8, p=1, 16-byte random salt, 32-byte output; ~32 MiB and
// ~0.1 s, once per start) derives a key that seals the key list with AES-256-GCM; the file header
// (format, KDF and its parameters, cipher) is the associated data, so it cannot be edited either.
// A wrong passphrase and an altered file are the same failure: the tag does not verify.
import {
  createCipheriv,
  createDecipheriv,
  createSecretKey,
  type KeyObject,
  randomBytes,
  type ScryptOptions,
  scrypt as scryptCallback,
} from 'node:crypto';
import { chmod, link, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { KmsError } from './errors.ts';
import {
  checkAad,
  checkWrapInput,
  formatKeyId,
  joinWrapped,
  type KeyRef,
  type KmsProvider,
  NONCE_BYTES,
  ownedKey,
  parseKeyId,
  SerialQueue,
  splitWrapped,
  TAG_BYTES,
  WRAPPED_KEY_BYTES,
  wrapAad,
} from './provider.ts';

/** Options for {@link openLocalKms}. */
export interface LocalKmsOptions {
  /** Directory of the root key file, normally `<dataDir>/kms`; created with mode 0700. */
  dir: string;
  /** Seals the root key file (the caller reads it from ACCORD_ROOT_KEY_PASSPHRASE_FILE). */
  passphrase?: string;
  /**
   * Generate a root key when there is none (default true). Pass false once anything was wrapped
   * (e.g. the catalog holds wrapped keys), so a lost key file is an error, not a fresh key.
   */
  createIfMissing?: boolean;
}

/** File name of the root key store inside `dir`. */
export const ROOT_KEY_FILE = 'root-keys.json';

const FORMAT = 'accord-root-keys';
const FORMAT_VERSION = 1;
/** scrypt cost written into new files; see the header comment. */
export const SCRYPT_PARAMS = { N: 2 ** 15, r: 8, p: 1 } as const;
const SALT_BYTES = 16;
// Limits on what a file may ask for, so an edited header cannot make start-up take minutes.
const SCRYPT_MAX_N = 2 ** 20;
const SCRYPT_MAX_R = 16;
const SCRYPT_MAX_P = 4;

interface StoredKey {
  id: string;
  version: number;
  createdAt: string;
  key: string;
}

interface KdfParams {
  name: 'scrypt';
  N: number;
  r: number;
  p: number;
  salt: string;
}

type RootKeyFile =
  | { format: typeof FORMAT; formatVersion: number; protection: 'none'; keys: StoredKey[] }
  | {
      format: typeof FORMAT;
      formatVersion: number;
      protection: 'passphrase';
      kdf: KdfParams;
      cipher: 'aes-256-gcm';
      nonce: string;
      ciphertext: string;
      tag: string;
    };

interface RootKey {
  ref: KeyRef;
  keyId: string;
  createdAt: string;
  key: KeyObject;
}

/** The passphrase-derived sealing key, kept to rewrite the file on rotation without re-running scrypt. */
interface Seal {
  kdf: KdfParams;
  key: KeyObject;
}

function scrypt(passphrase: string, salt: Buffer, params: { N: number; r: number; p: number }): Promise<Buffer> {
  // OpenSSL needs a little over 128·N·r bytes; the default maxmem (32 MiB) is just too small for N=2^15.
  const options: ScryptOptions = { ...params, maxmem: 256 * params.N * params.r + 1024 * 1024 };
  return new Promise((resolve, reject) => {
    scryptCallback(passphrase.normalize('NFC'), salt, 32, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

function invalid(path: string, reason: string, cause?: unknown): KmsError {
  return new KmsError('CRYPTO_KMS_KEYSTORE_INVALID', { details: { path, reason }, cause });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function b64(v: unknown, path: string, what: string, bytes?: number): Buffer {
  if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) throw invalid(path, `${what} is not base64`);
  const buf = Buffer.from(v, 'base64');
  if (bytes !== undefined && buf.length !== bytes) throw invalid(path, `${what} has the wrong length`);
  return buf;
}

function parseFile(text: string, path: string): RootKeyFile {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw invalid(path, 'not JSON', err);
  }
  if (!isRecord(doc) || doc.format !== FORMAT) throw invalid(path, 'not a root key file');
  if (doc.formatVersion !== FORMAT_VERSION) throw invalid(path, `unsupported format version ${String(doc.formatVersion)}`);
  if (doc.protection === 'none') {
    return { format: FORMAT, formatVersion: FORMAT_VERSION, protection: 'none', keys: parseKeys(doc.keys, path) };
  }
  if (doc.protection !== 'passphrase') throw invalid(path, 'unknown protection');
  const kdf = doc.kdf;
  if (
    !isRecord(kdf) ||
    kdf.name !== 'scrypt' ||
    !Number.isInteger(kdf.N) ||
    !Number.isInteger(kdf.r) ||
    !Number.isInteger(kdf.p) ||
    (kdf.N as number) < SCRYPT_PARAMS.N ||
    (kdf.N as number) > SCRYPT_MAX_N ||
    ((kdf.N as number) & ((kdf.N as number) - 1)) !== 0 ||
    (kdf.r as number) < SCRYPT_PARAMS.r ||
    (kdf.r as number) > SCRYPT_MAX_R ||
    (kdf.p as number) < 1 ||
    (kdf.p as number) > SCRYPT_MAX_P
  ) {
    throw invalid(path, 'unsupported key derivation parameters');
  }
  if (doc.cipher !== 'aes-256-gcm') throw invalid(path, 'unsupported cipher');
  b64(kdf.salt, path, 'kdf.salt', SALT_BYTES);
  b64(doc.nonce, path, 'nonce', NONCE_BYTES);
  b64(doc.tag, path, 'tag', TAG_BYTES);
  b64(doc.ciphertext, path, 'ciphertext');
  return {
    format: FORMAT,
    formatVersion: FORMAT_VERSION,
    protection: 'passphrase',
    kdf: { name: 'scrypt', N: kdf.N as number, r: kdf.r as number, p: kdf.p as number, salt: kdf.salt as string },
    cipher: 'aes-256-gcm',
    nonce: doc.nonce as string,
    ciphertext: doc.ciphertext as string,
    tag: doc.tag as string,
  };
}

function parseKeys(v: unknown, path: string): StoredKey[] {
  if (!Array.isArray(v) || v.length === 0) throw invalid(path, 'no root keys');
  const seen = new Set<number>();
  return v.map((k): StoredKey => {
    if (
      !isRecord(k) ||
      typeof k.id !== 'string' ||
      !/^[0-9a-f]{16}$/.test(k.id) ||
      !Number.isInteger(k.version) ||
      (k.version as number) < 1 ||
      typeof k.createdAt !== 'string' ||
      seen.has(k.version as number)
    ) {
      throw invalid(path, 'malformed root key entry');
    }
    seen.add(k.version as number);
    b64(k.key, path, 'key', WRAPPED_KEY_BYTES);
    return { id: k.id, version: k.version as number, createdAt: k.createdAt, key: k.key as string };
  });
}

/** The sealed file's header, which is the GCM associated data. */
function sealHeader(kdf: KdfParams): Buffer {
  return Buffer.from(JSON.stringify({ format: FORMAT, formatVersion: FORMAT_VERSION, protection: 'passphrase', kdf, cipher: 'aes-256-gcm' }));
}

function seal(keys: StoredKey[], s: Seal): RootKeyFile {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', s.key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(sealHeader(s.kdf));
  const plain = Buffer.from(JSON.stringify({ keys }));
  const ciphertext = Buffer.concat([cipher.update(plain), cipher.final()]);
  plain.fill(0);
  return {
    format: FORMAT,
    formatVersion: FORMAT_VERSION,
    protection: 'passphrase',
    kdf: s.kdf,
    cipher: 'aes-256-gcm',
    nonce: nonce.toString('base64'),
    ciphertext: ciphertext.toString('base64'),
    tag: cipher.getAuthTag().toString('base64'),
  };
}

function unseal(file: Extract<RootKeyFile, { protection: 'passphrase' }>, s: Seal, path: string): StoredKey[] {
  let plain: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-gcm', s.key, Buffer.from(file.nonce, 'base64'), { authTagLength: TAG_BYTES });
    decipher.setAAD(sealHeader(file.kdf));
    decipher.setAuthTag(Buffer.from(file.tag, 'base64'));
    plain = Buffer.concat([decipher.update(Buffer.from(file.ciphertext, 'base64')), decipher.final()]);
  } catch {
    // No cause: it would only say "unable to authenticate data".
    throw new KmsError('CRYPTO_KMS_PASSPHRASE_WRONG', { details: { path } });
  }
  try {
    const doc: unknown = JSON.parse(plain.toString('utf8'));
    return parseKeys(isRecord(doc) ? doc.keys : undefined, path);
  } catch (err) {
    throw err instanceof KmsError ? err : invalid(path, 'sealed content is not JSON');
  } finally {
    plain.fill(0);
  }
}

/** Writes via a temporary file, fsync and rename (or link, when the file must not exist yet). */
async function writeAtomic(dir: string, path: string, data: string, exclusive: boolean): Promise<boolean> {
  const tmp = join(dir, `.${ROOT_KEY_FILE}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (exclusive) {
      try {
        await link(tmp, path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
        throw err;
      }
    } else {
      await rename(tmp, path);
    }
    const d = await open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
    return true;
  } catch (err) {
    throw new KmsError('CRYPTO_KMS_UNAVAILABLE', { message: 'The root key file cannot be written.', details: { path }, cause: err });
  } finally {
    await rm(tmp, { force: true });
  }
}

async function checkMode(path: string): Promise<void> {
  const st = await stat(path);
  // Like ssh: a key file others can read (or replace) is refused rather than silently fixed.
  if ((st.mode & 0o077) !== 0) {
    throw new KmsError('CRYPTO_KMS_KEYSTORE_INSECURE', {
      details: { path, mode: `0${(st.mode & 0o777).toString(8)}`, expected: '0600' },
    });
  }
}

class LocalKms implements KmsProvider {
  readonly name = 'local' as const;
  readonly #dir: string;
  readonly #path: string;
  readonly #seal: Seal | undefined;
  readonly #queue = new SerialQueue();
  #keys: Map<string, RootKey>;
  #current: RootKey;
  #closed = false;

  constructor(dir: string, path: string, sealKey: Seal | undefined, keys: RootKey[]) {
    this.#dir = dir;
    this.#path = path;
    this.#seal = sealKey;
    this.#keys = new Map(keys.map((k) => [k.keyId, k]));
    this.#current = currentOf(keys);
  }

  #open(): void {
    if (this.#closed) throw new KmsError('CRYPTO_KMS_UNAVAILABLE', { details: { provider: 'local', reason: 'closed' } });
  }

  currentKeyId(): string {
    this.#open();
    return this.#current.keyId;
  }

  async wrap(key: Buffer, aad: string): Promise<{ keyId: string; wrapped: Buffer }> {
    checkWrapInput(key, aad);
    this.#open();
    const root = this.#current;
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', root.key, nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(wrapAad(root.keyId, aad));
    const sealed = Buffer.concat([cipher.update(key), cipher.final(), cipher.getAuthTag()]);
    return { keyId: root.keyId, wrapped: joinWrapped(nonce, sealed) };
  }

  async unwrap(keyId: string, wrapped: Buffer, aad: string): Promise<Buffer> {
    checkAad(aad);
    this.#open();
    parseKeyId('local', keyId);
    const root = this.#keys.get(keyId);
    if (!root) throw new KmsError('CRYPTO_KMS_KEY_NOT_FOUND', { details: { keyId } });
    const { nonce, sealed } = splitWrapped(wrapped, keyId);
    const decipher = createDecipheriv('aes-256-gcm', root.key, nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(wrapAad(keyId, aad));
    decipher.setAuthTag(sealed.subarray(WRAPPED_KEY_BYTES));
    const plain = decipher.update(sealed.subarray(0, WRAPPED_KEY_BYTES));
    try {
      decipher.final();
    } catch {
      plain.fill(0);
      throw new KmsError('CRYPTO_KMS_UNWRAP_FAILED', { details: { keyId } });
    }
    return ownedKey(plain);
  }

  rotateRoot(): Promise<string> {
    return this.#queue.run(async () => {
      this.#open();
      const next = newRootKey(this.#current.ref.version + 1);
      await this.#persist([...this.#keys.values(), next]);
      this.#keys.set(next.keyId, next);
      this.#current = next;
      return next.keyId;
    });
  }

  retireRoot(keyId: string): Promise<void> {
    return this.#queue.run(async () => {
      this.#open();
      parseKeyId('local', keyId);
      if (!this.#keys.has(keyId)) throw new KmsError('CRYPTO_KMS_KEY_NOT_FOUND', { details: { keyId } });
      if (keyId === this.#current.keyId) throw new KmsError('CRYPTO_KMS_KEY_CURRENT', { details: { keyId } });
      await this.#persist([...this.#keys.values()].filter((k) => k.keyId !== keyId));
      this.#keys.delete(keyId);
    });
  }

  async #persist(keys: RootKey[]): Promise<void> {
    const stored = keys.map(toStored);
    const file: RootKeyFile = this.#seal
      ? seal(stored, this.#seal)
      : { format: FORMAT, formatVersion: FORMAT_VERSION, protection: 'none', keys: stored };
    await writeAtomic(this.#dir, this.#path, `${JSON.stringify(file, null, 2)}\n`, false);
  }

  async health(): Promise<{ ok: boolean; detail: string }> {
    if (this.#closed) return { ok: false, detail: 'local: closed' };
    try {
      await checkMode(this.#path);
    } catch (err) {
      const why = err instanceof KmsError ? err.message : `${ROOT_KEY_FILE} is not accessible`;
      return { ok: false, detail: `local: ${why}` };
    }
    return { ok: true, detail: `local: ${this.#keys.size} root key version(s), current v${this.#current.ref.version}` };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#queue.drain();
    this.#closed = true;
    this.#keys = new Map();
  }
}

function currentOf(keys: RootKey[]): RootKey {
  return keys.reduce((a, b) => (b.ref.version > a.ref.version ? b : a));
}

function newRootKey(version: number): RootKey {
  const raw = randomBytes(WRAPPED_KEY_BYTES);
  const ref: KeyRef = { provider: 'local', id: randomBytes(8).toString('hex'), version };
  const key = createSecretKey(raw);
  raw.fill(0);
  return { ref, keyId: formatKeyId(ref), createdAt: new Date().toISOString(), key };
}

function fromStored(s: StoredKey): RootKey {
  const raw = Buffer.from(s.key, 'base64');
  const ref: KeyRef = { provider: 'local', id: s.id, version: s.version };
  const key = createSecretKey(raw);
  raw.fill(0);
  return { ref, keyId: formatKeyId(ref), createdAt: s.createdAt, key };
}

function toStored(k: RootKey): StoredKey {
  const raw = k.key.export();
  const key = raw.toString('base64');
  raw.fill(0);
  return { id: k.ref.id, version: k.ref.version, createdAt: k.createdAt, key };
}

async function newSeal(passphrase: string): Promise<Seal> {
  const salt = randomBytes(SALT_BYTES);
  const kdf: KdfParams = { name: 'scrypt', ...SCRYPT_PARAMS, salt: salt.toString('base64') };
  const raw = await scrypt(passphrase, salt, SCRYPT_PARAMS);
  const key = createSecretKey(raw);
  raw.fill(0);
  return { kdf, key };
}

/**
 * Opens the local root key store in `dir`, generating root key v1 on first start. With a
 * passphrase the file is sealed (scrypt + AES-256-GCM); a wrong passphrase is
 * CRYPTO_KMS_PASSPHRASE_WRONG and never leads to a new key.
 */
export async function openLocalKms(options: LocalKmsOptions): Promise<KmsProvider> {
  const { dir, passphrase, createIfMissing = true } = options;
  if (typeof dir !== 'string' || dir === '') throw new TypeError('dir: expected a directory path');
  if (passphrase !== undefined && (typeof passphrase !== 'string' || passphrase === '')) {
    throw new TypeError('passphrase: expected a non-empty string, or leave it out');
  }
  const path = join(dir, ROOT_KEY_FILE);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
  } catch (err) {
    throw new KmsError('CRYPTO_KMS_UNAVAILABLE', { message: 'The root key directory cannot be created.', details: { dir }, cause: err });
  }

  for (;;) {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new KmsError('CRYPTO_KMS_UNAVAILABLE', { message: 'The root key file cannot be read.', details: { path }, cause: err });
      }
      if (!createIfMissing) throw new KmsError('CRYPTO_KMS_ROOT_KEY_MISSING', { details: { path } });
      const first = newRootKey(1);
      const sealKey = passphrase === undefined ? undefined : await newSeal(passphrase);
      const stored = [toStored(first)];
      const file: RootKeyFile = sealKey
        ? seal(stored, sealKey)
        : { format: FORMAT, formatVersion: FORMAT_VERSION, protection: 'none', keys: stored };
      // Exclusive: if another process created the file meanwhile, use theirs.
      if (await writeAtomic(dir, path, `${JSON.stringify(file, null, 2)}\n`, true)) return new LocalKms(dir, path, sealKey, [first]);
      continue;
    }
    await checkMode(path);
    const file = parseFile(text, path);
    if (file.protection === 'none') {
      if (passphrase !== undefined) throw new KmsError('CRYPTO_KMS_PASSPHRASE_UNEXPECTED', { details: { path } });
      return new LocalKms(dir, path, undefined, file.keys.map(fromStored));
    }
    if (passphrase === undefined) throw new KmsError('CRYPTO_KMS_PASSPHRASE_REQUIRED', { details: { path } });
    const raw = await scrypt(passphrase, Buffer.from(file.kdf.salt, 'base64'), file.kdf);
    const sealKey: Seal = { kdf: file.kdf, key: createSecretKey(raw) };
    raw.fill(0);
    return new LocalKms(dir, path, sealKey, unseal(file, sealKey, path).map(fromStored));
  }
}
