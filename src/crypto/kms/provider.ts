// The KMS extension point and what every provider shares: key ids, the wrapped-key format and the
// associated data. Both providers produce the same bytes for the same root key, nonce and input,
// so the format is documented once.
import { KmsError } from './errors.ts';

/** Which provider holds the root key. */
export type KmsProviderName = 'local' | 'pkcs11';

/**
 * Holds the versioned root key and wraps/unwraps 32-byte keys under it. The root key never leaves
 * the provider. A new provider (cloud KMS, Vault Transit) implements this and runs kms.test.ts.
 */
export interface KmsProvider {
  readonly name: KmsProviderName;
  /** Id of the current root key version, e.g. 'local:3f2a9c0e1b7d4a65:v1'; stored next to wrapped keys. */
  currentKeyId(): string;
  /**
   * Wraps a 32-byte key under the current root key with AES-256-GCM (random 96-bit nonce,
   * 128-bit tag); `aad` binds the wrap to its owner, e.g. 'tenant:<id>:kek:v2'.
   */
  wrap(key: Buffer, aad: string): Promise<{ keyId: string; wrapped: Buffer }>;
  /** Unwraps with the root key version `keyId` names; the caller owns (and should wipe) the result. */
  unwrap(keyId: string, wrapped: Buffer, aad: string): Promise<Buffer>;
  /** Creates a new root key version that later wraps use; older versions still unwrap until retired. */
  rotateRoot(): Promise<string>;
  /** Destroys a root key version, after everything it wrapped was rewrapped. Never the current one. */
  retireRoot(keyId: string): Promise<void>;
  /** Whether the provider can serve requests now, with a short, secret-free explanation. */
  health(): Promise<{ ok: boolean; detail: string }>;
  /** Releases files, sessions and the PKCS#11 module. Idempotent. */
  close(): Promise<void>;
}

/** Length of the keys a provider wraps (AES-256). */
export const WRAPPED_KEY_BYTES = 32;
/**
 * Wrapped-key format 1: `0x01 ‖ nonce (12) ‖ AES-256-GCM ciphertext (32) ‖ tag (16)`, 61 bytes.
 * The GCM associated data is `accord-kms-wrap/1 LF keyId LF aad` (UTF-8), so a wrapped key only
 * unwraps under the key id and owner it was made for.
 */
export const WRAP_FORMAT = 1;
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;
export const WRAPPED_BYTES = 1 + NONCE_BYTES + WRAPPED_KEY_BYTES + TAG_BYTES;
const MAX_AAD_BYTES = 1024;

/** A parsed root key id: `<provider>:<16 hex id>:v<version>`. */
export interface KeyRef {
  provider: KmsProviderName;
  /** Random per-version id (the CKA_ID on an HSM), lowercase hex. */
  id: string;
  version: number;
}

const KEY_ID = /^(local|pkcs11):([0-9a-f]{16}):v([1-9][0-9]{0,8})$/;

export function formatKeyId(ref: KeyRef): string {
  return `${ref.provider}:${ref.id}:v${ref.version}`;
}

/** Parses a key id of `provider`; anything else is a key that provider does not have. */
export function parseKeyId(provider: KmsProviderName, keyId: string): KeyRef {
  const m = typeof keyId === 'string' ? KEY_ID.exec(keyId) : null;
  if (!m || m[1] !== provider) {
    throw new KmsError('CRYPTO_KMS_KEY_NOT_FOUND', { details: { keyId: typeof keyId === 'string' ? keyId.slice(0, 80) : null, provider } });
  }
  return { provider, id: m[2]!, version: Number(m[3]) };
}

/** GCM associated data for a wrap under `keyId` for the owner `aad`. */
export function wrapAad(keyId: string, aad: string): Buffer {
  return Buffer.from(`accord-kms-wrap/${WRAP_FORMAT}\n${keyId}\n${aad}`, 'utf8');
}

/** Caller misuse (a wrong key length, a missing owner) throws a TypeError naming the argument. */
export function checkWrapInput(key: unknown, aad: unknown): void {
  if (!Buffer.isBuffer(key) || key.length !== WRAPPED_KEY_BYTES) throw new TypeError(`key: expected a ${WRAPPED_KEY_BYTES}-byte Buffer`);
  checkAad(aad);
}

export function checkAad(aad: unknown): void {
  if (typeof aad !== 'string' || aad.length === 0 || Buffer.byteLength(aad) > MAX_AAD_BYTES) {
    throw new TypeError(`aad: expected a non-empty string of at most ${MAX_AAD_BYTES} bytes`);
  }
}

/** Splits a wrapped key; a wrong length or format byte fails like a bad tag would. */
export function splitWrapped(wrapped: unknown, keyId: string): { nonce: Buffer; sealed: Buffer } {
  if (!Buffer.isBuffer(wrapped) || wrapped.length !== WRAPPED_BYTES || wrapped[0] !== WRAP_FORMAT) {
    throw new KmsError('CRYPTO_KMS_UNWRAP_FAILED', { details: { keyId, reason: 'format' } });
  }
  return { nonce: wrapped.subarray(1, 1 + NONCE_BYTES), sealed: wrapped.subarray(1 + NONCE_BYTES) };
}

/** Joins nonce and `ciphertext ‖ tag` into format 1. */
export function joinWrapped(nonce: Buffer, sealed: Buffer): Buffer {
  const out = Buffer.alloc(WRAPPED_BYTES);
  out[0] = WRAP_FORMAT;
  nonce.copy(out, 1);
  sealed.copy(out, 1 + NONCE_BYTES);
  return out;
}

/** Copies an unwrapped key into memory of its own (never a pooled slab) and wipes the source. */
export function ownedKey(source: Buffer): Buffer {
  const key = Buffer.alloc(WRAPPED_KEY_BYTES);
  source.copy(key, 0, 0, WRAPPED_KEY_BYTES);
  source.fill(0);
  return key;
}

/** Runs tasks one after the other (a session, a file), whatever each one's outcome. */
export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(task);
    this.#tail = result.catch(() => undefined);
    return result;
  }

  /** Resolves once everything queued so far has finished. */
  drain(): Promise<void> {
    return this.#tail.then(() => undefined);
  }
}
