// The `pkcs11` KMS provider: the root key versions are AES-256 secret-key objects inside an HSM
// token (CKA_TOKEN, CKA_SENSITIVE, not CKA_EXTRACTABLE), labelled `<prefix>-v<N>` with a random
// CKA_ID. Wrapping is C_Encrypt with CKM_AES_GCM (our random 96-bit IV, the associated data of
// provider.ts, 128-bit tag) inside the HSM, so the key never leaves it; the output has the same
// format as the local provider's. C_WrapKey is not used: it would need the wrapped key as an HSM
// object first, and AES key wrap (CKM_AES_KEY_WRAP) has no associated data to bind the owner.
//
// A PKCS#11 library is process-global: one load and C_Initialize per module path, shared (with a
// reference count) by every provider opened on it; login state is per token and shared as well.
// Each provider has one read-write session and runs its calls one at a time on it.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { endianness } from 'node:os';
import type { Handle, PKCS11 } from 'pkcs11js';
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

type Pkcs11Module = typeof import('pkcs11js');

/** Options for {@link openPkcs11Kms}. */
export interface Pkcs11KmsOptions {
  /** Path of the vendor's PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so. */
  module: string;
  /** Label of the token (HSM partition) holding the root keys. */
  tokenLabel: string;
  /** User PIN of the token. */
  pin: string;
  /** Root key objects are labelled `<prefix>-v<N>` (default 'accord-root'). */
  keyLabelPrefix?: string;
  /** Generate root key v1 when the token has none (default true); see LocalKmsOptions. */
  createIfMissing?: boolean;
}

// Return values after which the session (or the whole token) must be assumed gone.
const SESSION_LOST = [
  'CKR_SESSION_HANDLE_INVALID',
  'CKR_SESSION_CLOSED',
  'CKR_USER_NOT_LOGGED_IN',
  'CKR_DEVICE_REMOVED',
  'CKR_TOKEN_NOT_PRESENT',
  'CKR_DEVICE_ERROR',
  'CKR_DEVICE_MEMORY',
  'CKR_CRYPTOKI_NOT_INITIALIZED',
];
const KEY_GONE = ['CKR_OBJECT_HANDLE_INVALID', 'CKR_KEY_HANDLE_INVALID'];

/** The CKR_* name of a pkcs11js error, if it is one (pkcs11js puts it in `message`). */
function ckr(err: unknown): string | undefined {
  const m = err instanceof Error ? /^(CKR_[A-Z0-9_]+)/.exec(err.message) : null;
  return m?.[1];
}

let pkcs11js: Pkcs11Module | undefined;

async function loadBinding(): Promise<Pkcs11Module> {
  if (pkcs11js) return pkcs11js;
  try {
    // Imported on first use, so the local provider works where the native addon is not built.
    const mod = (await import('pkcs11js')) as Pkcs11Module & { default?: Pkcs11Module };
    pkcs11js = mod.default ?? mod;
    return pkcs11js;
  } catch (err) {
    throw new KmsError('CRYPTO_KMS_UNAVAILABLE', {
      message: 'The PKCS#11 binding (pkcs11js) cannot be loaded.',
      details: { provider: 'pkcs11', reason: 'binding' },
      cause: err,
    });
  }
}

interface Login {
  /** HMAC of the PIN that logged in, to check a second provider's PIN (C_Login would not). */
  pinMac: Buffer;
  refs: number;
}

interface LoadedModule {
  path: string;
  lib: PKCS11;
  refs: number;
  /** False when something else in the process had initialised the library already. */
  finalize: boolean;
  logins: Map<string, Login>;
}

const modules = new Map<string, LoadedModule>();
const macKey = randomBytes(32);

function pinMac(pin: string): Buffer {
  return createHmac('sha256', macKey).update(pin).digest();
}

function unavailable(message: string, details: Record<string, unknown>, cause?: unknown): KmsError {
  return new KmsError('CRYPTO_KMS_UNAVAILABLE', { message, details: { provider: 'pkcs11', ...details }, cause });
}

function acquireModule(p: Pkcs11Module, path: string): LoadedModule {
  let real: string;
  try {
    real = realpathSync(path);
  } catch (err) {
    throw unavailable('The PKCS#11 module does not exist.', { module: path }, err);
  }
  const loaded = modules.get(real);
  if (loaded) {
    loaded.refs++;
    return loaded;
  }
  const lib = new p.PKCS11();
  try {
    lib.load(real);
  } catch (err) {
    throw unavailable('The PKCS#11 module cannot be loaded.', { module: path }, err);
  }
  let finalize = true;
  try {
    // OS locking: pkcs11js runs the *Async calls on libuv worker threads.
    lib.C_Initialize({ flags: p.CKF_OS_LOCKING_OK });
  } catch (err) {
    if (ckr(err) === 'CKR_CRYPTOKI_ALREADY_INITIALIZED') finalize = false;
    else {
      lib.close();
      throw unavailable('The PKCS#11 module failed to initialise.', { module: path, ckr: ckr(err) ?? null }, err);
    }
  }
  const entry: LoadedModule = { path: real, lib, refs: 1, finalize, logins: new Map() };
  modules.set(real, entry);
  return entry;
}

function releaseModule(m: LoadedModule): void {
  if (--m.refs > 0) return;
  modules.delete(m.path);
  try {
    if (m.finalize) m.lib.C_Finalize();
  } finally {
    m.lib.close();
  }
}

/** A CK_ULONG attribute value (native width and byte order). */
function ulong(buf: Buffer | undefined): number {
  if (!buf) return Number.NaN;
  const le = endianness() === 'LE';
  if (buf.length === 8) return Number(le ? buf.readBigUInt64LE(0) : buf.readBigUInt64BE(0));
  if (buf.length === 4) return le ? buf.readUInt32LE(0) : buf.readUInt32BE(0);
  return Number.NaN;
}

interface RootObject {
  ref: KeyRef;
  keyId: string;
  handle: Handle;
}

class Pkcs11Kms implements KmsProvider {
  readonly name = 'pkcs11' as const;
  readonly #p: Pkcs11Module;
  readonly #m: LoadedModule;
  readonly #slot: Handle;
  readonly #slotKey: string;
  readonly #tokenLabel: string;
  readonly #pin: string;
  readonly #labelPattern: RegExp;
  readonly #prefix: string;
  readonly #queue = new SerialQueue();
  #session: Handle | undefined;
  #keys = new Map<string, RootObject>();
  #current: RootObject | undefined;
  #closed = false;
  /** Whether this provider holds a reference on the token's login. */
  #loggedIn = false;

  constructor(p: Pkcs11Module, m: LoadedModule, slot: Handle, tokenLabel: string, pin: string, prefix: string) {
    this.#p = p;
    this.#m = m;
    this.#slot = slot;
    this.#slotKey = slot.toString('hex');
    this.#tokenLabel = tokenLabel;
    this.#pin = pin;
    this.#prefix = prefix;
    this.#labelPattern = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-v([1-9][0-9]{0,8})$`);
  }

  /** Opens the session and logs in (once per token and process; later PINs are compared). */
  login(): void {
    const { lib } = this.#m;
    const p = this.#p;
    try {
      this.#session = lib.C_OpenSession(this.#slot, p.CKF_SERIAL_SESSION | p.CKF_RW_SESSION);
    } catch (err) {
      throw unavailable('No session could be opened on the HSM token.', { tokenLabel: this.#tokenLabel, ckr: ckr(err) ?? null }, err);
    }
    const mac = pinMac(this.#pin);
    const known = this.#m.logins.get(this.#slotKey);
    if (known) {
      if (!timingSafeEqual(known.pinMac, mac)) throw new KmsError('CRYPTO_KMS_PIN_WRONG', { details: { tokenLabel: this.#tokenLabel } });
      known.refs++;
      this.#loggedIn = true;
      return;
    }
    try {
      lib.C_Login(this.#session, p.CKU_USER, this.#pin);
    } catch (err) {
      const code = ckr(err);
      if (code === 'CKR_PIN_INCORRECT' || code === 'CKR_PIN_INVALID' || code === 'CKR_PIN_LEN_RANGE' || code === 'CKR_PIN_LOCKED') {
        throw new KmsError('CRYPTO_KMS_PIN_WRONG', { details: { tokenLabel: this.#tokenLabel, ckr: code } });
      }
      // CKR_USER_ALREADY_LOGGED_IN here means another component of this process logged in, with
      // a PIN we cannot check: refuse rather than accept an unverified PIN.
      throw unavailable('Login to the HSM token failed.', { tokenLabel: this.#tokenLabel, ckr: code ?? null }, err);
    }
    this.#m.logins.set(this.#slotKey, { pinMac: mac, refs: 1 });
    this.#loggedIn = true;
  }

  #s(): Handle {
    if (this.#closed || !this.#session) throw unavailable('The KMS provider is closed.', { reason: 'closed' });
    return this.#session;
  }

  /** Re-reads the root key objects of the token (another node may have rotated or retired). */
  refresh(): void {
    const { lib } = this.#m;
    const p = this.#p;
    const s = this.#s();
    lib.C_FindObjectsInit(s, [
      { type: p.CKA_CLASS, value: p.CKO_SECRET_KEY },
      { type: p.CKA_KEY_TYPE, value: p.CKK_AES },
    ]);
    const handles: Handle[] = [];
    try {
      // A shared HSM partition may hold many other AES keys; read them all in batches.
      for (let batch = lib.C_FindObjects(s, 256); batch.length > 0; batch = lib.C_FindObjects(s, 256)) handles.push(...batch);
    } finally {
      lib.C_FindObjectsFinal(s);
    }
    const keys = new Map<string, RootObject>();
    for (const handle of handles) {
      const [label, id] = lib.C_GetAttributeValue(s, handle, [{ type: p.CKA_LABEL }, { type: p.CKA_ID }]);
      const m = this.#labelPattern.exec((label?.value as Buffer | undefined)?.toString('utf8') ?? '');
      const idHex = (id?.value as Buffer | undefined)?.toString('hex') ?? '';
      if (!m || !/^[0-9a-f]{16}$/.test(idHex)) continue;
      this.#checkProtected(handle, m[0]);
      const ref: KeyRef = { provider: 'pkcs11', id: idHex, version: Number(m[1]) };
      keys.set(formatKeyId(ref), { ref, keyId: formatKeyId(ref), handle });
    }
    this.#keys = keys;
    // Highest version; two nodes racing to create the same version both keep working, and all
    // agree on the current one (lowest id).
    let current: RootObject | undefined;
    for (const k of keys.values()) {
      if (!current || k.ref.version > current.ref.version || (k.ref.version === current.ref.version && k.ref.id < current.ref.id)) current = k;
    }
    this.#current = current;
  }

  /** A root key that could leave the HSM is refused, whoever created it. */
  #checkProtected(handle: Handle, label: string): void {
    const p = this.#p;
    const attrs = this.#m.lib.C_GetAttributeValue(this.#s(), handle, [
      { type: p.CKA_SENSITIVE },
      { type: p.CKA_EXTRACTABLE },
      { type: p.CKA_VALUE_LEN },
    ]);
    const flag = (i: number) => (attrs[i]?.value as Buffer | undefined)?.[0] === 1;
    if (!flag(0) || flag(1) || ulong(attrs[2]?.value as Buffer | undefined) !== WRAPPED_KEY_BYTES) {
      throw new KmsError('CRYPTO_KMS_KEYSTORE_INSECURE', {
        message: 'A root key object in the HSM is extractable, not sensitive, or not AES-256.',
        details: { tokenLabel: this.#tokenLabel, keyLabel: label },
      });
    }
  }

  /** Generates root key version `version` in the token. */
  generate(version: number): void {
    const p = this.#p;
    this.#m.lib.C_GenerateKey(this.#s(), { mechanism: p.CKM_AES_KEY_GEN }, [
      { type: p.CKA_CLASS, value: p.CKO_SECRET_KEY },
      { type: p.CKA_KEY_TYPE, value: p.CKK_AES },
      { type: p.CKA_VALUE_LEN, value: WRAPPED_KEY_BYTES },
      { type: p.CKA_TOKEN, value: true },
      { type: p.CKA_PRIVATE, value: true },
      { type: p.CKA_SENSITIVE, value: true },
      { type: p.CKA_EXTRACTABLE, value: false },
      { type: p.CKA_ENCRYPT, value: true },
      { type: p.CKA_DECRYPT, value: true },
      { type: p.CKA_WRAP, value: false },
      { type: p.CKA_UNWRAP, value: false },
      { type: p.CKA_SIGN, value: false },
      { type: p.CKA_VERIFY, value: false },
      { type: p.CKA_DERIVE, value: false },
      { type: p.CKA_LABEL, value: `${this.#prefix}-v${version}` },
      { type: p.CKA_ID, value: randomBytes(8) },
    ]);
  }

  hasKeys(): boolean {
    return this.#current !== undefined;
  }

  /**
   * Runs `op` on the session, one at a time. After a lost session it logs in again and retries
   * once; anything else that is not a KmsError becomes CRYPTO_KMS_UNAVAILABLE.
   */
  #run<T>(what: string, op: () => Promise<T>): Promise<T> {
    return this.#queue.run(async () => {
      this.#s();
      try {
        return await op();
      } catch (err) {
        if (!SESSION_LOST.includes(ckr(err) ?? '')) throw this.#fail(what, err);
      }
      try {
        this.#reopen();
        return await op();
      } catch (err) {
        throw this.#fail(what, err);
      }
    });
  }

  #fail(what: string, err: unknown): KmsError {
    if (err instanceof KmsError) return err;
    return unavailable(`The HSM failed to ${what}.`, { tokenLabel: this.#tokenLabel, ckr: ckr(err) ?? null }, err);
  }

  #reopen(): void {
    const { lib } = this.#m;
    const p = this.#p;
    try {
      if (this.#session) lib.C_CloseSession(this.#session);
    } catch {
      // already gone
    }
    this.#session = lib.C_OpenSession(this.#slot, p.CKF_SERIAL_SESSION | p.CKF_RW_SESSION);
    try {
      lib.C_Login(this.#session, p.CKU_USER, this.#pin);
    } catch (err) {
      if (ckr(err) !== 'CKR_USER_ALREADY_LOGGED_IN') throw err;
    }
    this.refresh();
  }

  #gcm(iv: Buffer, keyId: string, aad: string) {
    const p = this.#p;
    return { mechanism: p.CKM_AES_GCM, parameter: { type: p.CK_PARAMS_GCM, iv, ivBits: NONCE_BYTES * 8, aad: wrapAad(keyId, aad), tagBits: TAG_BYTES * 8 } };
  }

  currentKeyId(): string {
    this.#s();
    if (!this.#current) throw new KmsError('CRYPTO_KMS_ROOT_KEY_MISSING', { details: { tokenLabel: this.#tokenLabel } });
    return this.#current.keyId;
  }

  wrap(key: Buffer, aad: string): Promise<{ keyId: string; wrapped: Buffer }> {
    checkWrapInput(key, aad);
    return this.#run('wrap a key', async () => {
      const { lib } = this.#m;
      const attempt = async () => {
        const root = this.#current;
        if (!root) throw new KmsError('CRYPTO_KMS_ROOT_KEY_MISSING', { details: { tokenLabel: this.#tokenLabel } });
        const iv = randomBytes(NONCE_BYTES);
        // Our own copy: the native call reads it on a worker thread, after the caller moved on.
        const input = Buffer.alloc(WRAPPED_KEY_BYTES);
        key.copy(input);
        let sealed: Buffer;
        try {
          lib.C_EncryptInit(this.#s(), this.#gcm(iv, root.keyId, aad), root.handle);
          sealed = await lib.C_EncryptAsync(this.#s(), input, Buffer.alloc(WRAPPED_KEY_BYTES + TAG_BYTES + 16));
        } finally {
          input.fill(0);
        }
        if (sealed.length !== WRAPPED_KEY_BYTES + TAG_BYTES) throw unavailable('The HSM returned a malformed ciphertext.', { tokenLabel: this.#tokenLabel });
        return { keyId: root.keyId, wrapped: joinWrapped(iv, sealed) };
      };
      try {
        return await attempt();
      } catch (err) {
        // The current version was retired by another node: pick up the token's current one.
        if (!KEY_GONE.includes(ckr(err) ?? '')) throw err;
        this.refresh();
        return attempt();
      }
    });
  }

  unwrap(keyId: string, wrapped: Buffer, aad: string): Promise<Buffer> {
    checkAad(aad);
    return this.#run('unwrap a key', async () => {
      parseKeyId('pkcs11', keyId);
      let root = this.#keys.get(keyId);
      if (!root) {
        // Perhaps a version another node created since we looked.
        this.refresh();
        root = this.#keys.get(keyId);
      }
      if (!root) throw new KmsError('CRYPTO_KMS_KEY_NOT_FOUND', { details: { keyId } });
      const { nonce, sealed } = splitWrapped(wrapped, keyId);
      const { lib } = this.#m;
      const out = Buffer.alloc(WRAPPED_KEY_BYTES + TAG_BYTES + 16);
      let plain: Buffer;
      try {
        lib.C_DecryptInit(this.#s(), this.#gcm(Buffer.from(nonce), keyId, aad), root.handle);
        plain = await lib.C_DecryptAsync(this.#s(), Buffer.from(sealed), out);
      } catch (err) {
        out.fill(0);
        const code = ckr(err) ?? '';
        if (SESSION_LOST.includes(code)) throw err;
        if (KEY_GONE.includes(code)) {
          this.refresh();
          throw new KmsError('CRYPTO_KMS_KEY_NOT_FOUND', { details: { keyId } });
        }
        // SoftHSM reports a bad tag as CKR_GENERAL_ERROR, others as CKR_ENCRYPTED_DATA_INVALID.
        throw new KmsError('CRYPTO_KMS_UNWRAP_FAILED', { details: { keyId } });
      }
      if (plain.length !== WRAPPED_KEY_BYTES) {
        out.fill(0);
        throw new KmsError('CRYPTO_KMS_UNWRAP_FAILED', { details: { keyId } });
      }
      const key = ownedKey(plain);
      out.fill(0);
      return key;
    });
  }

  rotateRoot(): Promise<string> {
    return this.#run('rotate the root key', async () => {
      this.refresh();
      this.generate((this.#current?.ref.version ?? 0) + 1);
      this.refresh();
      return this.#current!.keyId;
    });
  }

  retireRoot(keyId: string): Promise<void> {
    return this.#run('retire a root key', async () => {
      parseKeyId('pkcs11', keyId);
      this.refresh();
      const root = this.#keys.get(keyId);
      if (!root) throw new KmsError('CRYPTO_KMS_KEY_NOT_FOUND', { details: { keyId } });
      if (root === this.#current) throw new KmsError('CRYPTO_KMS_KEY_CURRENT', { details: { keyId } });
      this.#m.lib.C_DestroyObject(this.#s(), root.handle);
      this.#keys.delete(keyId);
    });
  }

  async health(): Promise<{ ok: boolean; detail: string }> {
    if (this.#closed) return { ok: false, detail: 'pkcs11: closed' };
    try {
      return await this.#run('answer', async () => {
        this.#m.lib.C_GetSessionInfo(this.#s());
        return { ok: true, detail: `pkcs11: token "${this.#tokenLabel}", current v${this.#current?.ref.version ?? '?'}` };
      });
    } catch (err) {
      const code = err instanceof KmsError ? (err.details?.ckr ?? err.code) : 'error';
      return { ok: false, detail: `pkcs11: token "${this.#tokenLabel}" unavailable (${String(code)})` };
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#queue.drain();
    this.#closed = true;
    this.#keys = new Map();
    this.#current = undefined;
    const { lib } = this.#m;
    try {
      if (this.#session) lib.C_CloseSession(this.#session);
    } catch {
      // the token went away; nothing left to close
    }
    this.#session = undefined;
    const login = this.#loggedIn ? this.#m.logins.get(this.#slotKey) : undefined;
    // Closing the last session of the token logs out (PKCS#11 §5.6); forget the PIN with it.
    if (login && --login.refs <= 0) this.#m.logins.delete(this.#slotKey);
    this.#loggedIn = false;
    releaseModule(this.#m);
  }

}

function findSlot(p: Pkcs11Module, lib: PKCS11, tokenLabel: string, module: string): Handle {
  let slots: Handle[];
  try {
    slots = lib.C_GetSlotList(true);
  } catch (err) {
    throw unavailable('The PKCS#11 module lists no slots.', { module, ckr: ckr(err) ?? null }, err);
  }
  const available: string[] = [];
  const matches: Handle[] = [];
  for (const slot of slots) {
    try {
      const info = lib.C_GetTokenInfo(slot);
      if ((info.flags & p.CKF_TOKEN_INITIALIZED) === 0) continue;
      const label = info.label.replace(/[ \0]+$/, '');
      available.push(label);
      if (label === tokenLabel) matches.push(slot);
    } catch {
      // a slot whose token went away while we looked
    }
  }
  if (matches.length === 1) return matches[0]!;
  // Token labels are names, not secrets; listing them helps with a typo.
  throw new KmsError('CRYPTO_KMS_TOKEN_NOT_FOUND', {
    message: matches.length === 0 ? undefined : 'Several HSM tokens carry the configured label.',
    details: { tokenLabel, available },
  });
}

/**
 * Opens the root key store in an HSM token through PKCS#11: loads `module`, finds the token by
 * label, logs in as user and finds (or, on first start, generates) root key v1.
 */
export async function openPkcs11Kms(options: Pkcs11KmsOptions): Promise<KmsProvider> {
  const { module, tokenLabel, pin, keyLabelPrefix = 'accord-root', createIfMissing = true } = options;
  if (typeof module !== 'string' || module === '') throw new TypeError('pkcs11.module: expected the path of a PKCS#11 library');
  if (typeof tokenLabel !== 'string' || tokenLabel === '' || Buffer.byteLength(tokenLabel) > 32) {
    throw new TypeError('pkcs11.tokenLabel: expected a token label of 1-32 bytes');
  }
  if (typeof pin !== 'string' || pin === '') throw new TypeError('pkcs11.pin: expected a non-empty string');
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,40}$/.test(keyLabelPrefix)) throw new TypeError('pkcs11.keyLabelPrefix: expected letters, digits, . _ -');

  const p = await loadBinding();
  const m = acquireModule(p, module);
  let slot: Handle;
  try {
    slot = findSlot(p, m.lib, tokenLabel, module);
    let mechanisms: number[];
    try {
      mechanisms = m.lib.C_GetMechanismList(slot);
    } catch (err) {
      throw unavailable('The HSM token lists no mechanisms.', { tokenLabel, ckr: ckr(err) ?? null }, err);
    }
    if (!mechanisms.includes(p.CKM_AES_GCM) || !mechanisms.includes(p.CKM_AES_KEY_GEN)) {
      throw new KmsError('CRYPTO_KMS_MECHANISM_UNSUPPORTED', { details: { tokenLabel } });
    }
  } catch (err) {
    releaseModule(m);
    throw err;
  }
  const kms = new Pkcs11Kms(p, m, slot, tokenLabel, pin, keyLabelPrefix);
  try {
    kms.login();
    kms.refresh();
    if (!kms.hasKeys()) {
      if (!createIfMissing) throw new KmsError('CRYPTO_KMS_ROOT_KEY_MISSING', { details: { tokenLabel, keyLabelPrefix } });
      kms.generate(1);
      kms.refresh();
    }
    return kms;
  } catch (err) {
    await kms.close().catch(() => undefined);
    throw err instanceof KmsError ? err : unavailable('The HSM token cannot be used.', { tokenLabel, ckr: ckr(err) ?? null }, err);
  }
}
