// Field encryption: AES-256-GCM with a random 96-bit nonce per value and a 128-bit tag, in a compact
// binary envelope.
//
// Envelope, format version 1 (33 bytes + the plaintext length):
//
//   offset   length  field
//   0        1       format version: 0x01
//   1        4       key version: unsigned 32-bit integer, big-endian (which data key sealed it)
//   5        12      nonce: 96 random bits, fresh for every value
//   17       n       ciphertext: AES-256-GCM, exactly as long as the plaintext (n may be 0)
//   17 + n   16      tag: the 128-bit GCM authentication tag
//
// Associated data (authenticated, never stored), with lp(s) = uint32be(byteLength(utf8(s))) || utf8(s):
//
//   lp("accord/field/v1") || envelope[0..5) || lp(tenant) || lp(stage) || lp(entity) || lp(field) || lp(recordId)
//
// The context binds the value to its row, field, stage and tenant: a ciphertext copied anywhere else
// fails its tag check. The 5 header bytes are bound too, so a changed format or key version can never
// decrypt, even if a key lookup were to hand out the same key for two versions. The domain string
// keeps these tags apart from any other use of the same key; a format version 2 changes it.
//
// With random 96-bit nonces, one key must seal fewer than 2^32 values (NIST SP 800-38D §8.3) to keep
// the chance of a repeated nonce below 2^-32; rotation of the stage data key enforces that.
import { createCipheriv, createDecipheriv, randomFillSync } from 'node:crypto';
import { checkContext, type FieldContext, isWellFormed, lengthPrefixed } from './context.ts';
import { CryptoError } from './errors.ts';

/** The envelope format this library writes (byte 0). */
export const FORMAT_VERSION = 0x01;
export const HEADER_LENGTH = 5;
export const NONCE_LENGTH = 12;
export const TAG_LENGTH = 16;
/** Bytes an envelope adds to its plaintext; also the length of the envelope of an empty value. */
export const ENVELOPE_OVERHEAD = HEADER_LENGTH + NONCE_LENGTH + TAG_LENGTH;
export const KEY_LENGTH = 32;
export const MAX_KEY_VERSION = 0xffff_ffff;
export const AAD_DOMAIN = 'accord/field/v1';

const AAD_DOMAIN_BYTES = lengthPrefixed([AAD_DOMAIN]);
const CONTEXT_PARTS = ['tenant', 'stage', 'entity', 'field', 'recordId'] as const;
const CIPHER = 'aes-256-gcm';

/** One version of a stage's data key. */
export interface DataKey {
  /** Stored in the envelope; an integer in 0 .. 2^32 - 1. */
  readonly version: number;
  /** 32 bytes of AES-256 key. */
  readonly key: Buffer;
}

/** Finds the data key of a version, or undefined when that version is not (or no longer) available. */
export type KeyLookup = (version: number) => DataKey | undefined;

function checkDataKey(key: unknown, path: string): asserts key is DataKey {
  if (typeof key !== 'object' || key === null) throw new TypeError(`${path} must be a DataKey`);
  const { version, key: bytes } = key as Partial<DataKey>;
  if (!Number.isInteger(version) || (version as number) < 0 || (version as number) > MAX_KEY_VERSION) {
    throw new RangeError(`${path}.version must be an integer in 0 .. 2^32 - 1`);
  }
  if (!(bytes instanceof Uint8Array) || bytes.length !== KEY_LENGTH) {
    throw new RangeError(`${path}.key must be ${KEY_LENGTH} bytes`);
  }
}

const view = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/** The associated data for an envelope header and a context (see the layout above). */
export function fieldAad(header: Uint8Array, context: FieldContext): Buffer {
  const { tenant, stage, entity, field, recordId } = context;
  return lengthPrefixed([tenant, stage, entity, field, recordId], [AAD_DOMAIN_BYTES, header.subarray(0, HEADER_LENGTH)]);
}

/**
 * AES-256-GCM seal: `head` bytes, then ciphertext, then tag, in one buffer. Exported for the
 * known-answer test of the primitive; `encryptField` seals through it.
 */
export function gcmSeal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, head: readonly Uint8Array[] = []): Buffer {
  const cipher = createCipheriv(CIPHER, key, nonce, { authTagLength: TAG_LENGTH });
  cipher.setAAD(aad);
  const ct = cipher.update(plaintext);
  cipher.final();
  let size = ct.length + TAG_LENGTH;
  for (const b of head) size += b.length;
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const b of head) {
    out.set(b, at);
    at += b.length;
  }
  out.set(ct, at);
  out.set(cipher.getAuthTag(), at + ct.length);
  return out;
}

/**
 * `encryptField` with a chosen nonce. Only for known-answer tests: a nonce used twice under one key
 * gives away the XOR of the plaintexts and the GCM authentication key. Not exported by index.ts.
 */
export function encryptFieldWithNonce(key: DataKey, plaintext: Uint8Array | string, context: FieldContext, nonce: Uint8Array): Buffer {
  checkDataKey(key, 'key');
  checkContext(context, CONTEXT_PARTS, 'aad');
  if (!(nonce instanceof Uint8Array) || nonce.length !== NONCE_LENGTH) throw new RangeError(`nonce must be ${NONCE_LENGTH} bytes`);
  let data: Uint8Array;
  if (typeof plaintext === 'string') {
    if (!isWellFormed(plaintext)) throw new CryptoError('CRYPTO_TEXT_INVALID');
    data = Buffer.from(plaintext, 'utf8');
  } else if (plaintext instanceof Uint8Array) {
    data = plaintext;
  } else {
    throw new TypeError('plaintext must be a Buffer or a string');
  }
  try {
    const header = Buffer.allocUnsafe(HEADER_LENGTH);
    header.writeUInt8(FORMAT_VERSION, 0);
    header.writeUInt32BE(key.version, 1);
    return gcmSeal(key.key, nonce, fieldAad(header, context), data, [header, nonce]);
  } finally {
    // Our own UTF-8 copy of a text value is wiped; the caller's string cannot be.
    if (typeof plaintext === 'string') data.fill(0);
  }
}

// randomBytes(12) per value is one call into OpenSSL's RNG each time (about 2 µs here, a fifth of an
// encryption). Nonces are drawn from a block of the same CSPRNG output instead, refilled when used up,
// as node:crypto's randomUUID() does: each 12-byte slice is handed out once and copied into its
// envelope before the block can be refilled. Worker threads load their own copy of this module.
const noncePool = Buffer.alloc(NONCE_LENGTH * 256);
let noncePoolAt = noncePool.length;

function nextNonce(): Buffer {
  if (noncePoolAt === noncePool.length) {
    randomFillSync(noncePool);
    noncePoolAt = 0;
  }
  const nonce = noncePool.subarray(noncePoolAt, noncePoolAt + NONCE_LENGTH);
  noncePoolAt += NONCE_LENGTH;
  return nonce;
}

/**
 * Encrypts one field value under a data key, bound to its tenant, stage, entity, field and record;
 * returns the envelope (format version, key version, nonce, ciphertext, tag). Text is UTF-8.
 */
export function encryptField(key: DataKey, plaintext: Uint8Array | string, aad: FieldContext): Buffer {
  return encryptFieldWithNonce(key, plaintext, aad, nextNonce());
}

function parseHeader(envelope: Uint8Array): number {
  if (!(envelope instanceof Uint8Array)) throw new TypeError('envelope must be a Buffer');
  if (envelope.length < ENVELOPE_OVERHEAD) {
    throw new CryptoError('CRYPTO_ENVELOPE_INVALID', { details: { reason: 'too-short', length: envelope.length } });
  }
  if (envelope[0] !== FORMAT_VERSION) {
    throw new CryptoError('CRYPTO_ENVELOPE_INVALID', { details: { reason: 'format-version', formatVersion: envelope[0]! } });
  }
  return view(envelope).readUInt32BE(1);
}

/** The key version an envelope was sealed with, read without decrypting (rotation uses it). */
export function envelopeKeyVersion(envelope: Uint8Array): number {
  return parseHeader(envelope);
}

/**
 * Decrypts an envelope made by `encryptField` for exactly this context, with the key of the version
 * it names. Fails closed with CRYPTO_ENVELOPE_INVALID, CRYPTO_KEY_VERSION_UNKNOWN or
 * CRYPTO_DECRYPT_FAILED; no plaintext is returned unless the tag verifies.
 */
export function decryptField(keys: KeyLookup, envelope: Uint8Array, aad: FieldContext): Buffer {
  const keyVersion = parseHeader(envelope);
  checkContext(aad, CONTEXT_PARTS, 'aad');
  const key = keys(keyVersion);
  if (key === undefined) throw new CryptoError('CRYPTO_KEY_VERSION_UNKNOWN', { details: { keyVersion } });
  checkDataKey(key, `keys(${keyVersion})`);
  if (key.version !== keyVersion) throw new RangeError(`keys(${keyVersion}) returned the key of version ${key.version}`);

  const bytes = view(envelope);
  const tagAt = bytes.length - TAG_LENGTH;
  const decipher = createDecipheriv(CIPHER, key.key, bytes.subarray(HEADER_LENGTH, HEADER_LENGTH + NONCE_LENGTH), {
    authTagLength: TAG_LENGTH,
  });
  decipher.setAAD(fieldAad(bytes, aad));
  decipher.setAuthTag(bytes.subarray(tagAt));
  const plaintext = decipher.update(bytes.subarray(HEADER_LENGTH + NONCE_LENGTH, tagAt));
  try {
    decipher.final();
  } catch (cause) {
    // GCM decrypts before it authenticates: unauthenticated plaintext never leaves this function.
    plaintext.fill(0);
    throw new CryptoError('CRYPTO_DECRYPT_FAILED', { details: { keyVersion }, cause });
  }
  return plaintext;
}

// base64url without padding, strict: Buffer.from(s, 'base64url') silently skips characters it does
// not know, so a mangled string could decode to a different envelope instead of failing.
const BASE64URL = /^[A-Za-z0-9_-]*$/;

/** An envelope as unpadded base64url text, for JSON, settings files and text columns. */
export function envelopeToString(envelope: Uint8Array): string {
  return view(envelope).toString('base64url');
}

/** Parses `envelopeToString` output; anything else is CRYPTO_ENVELOPE_INVALID. */
export function envelopeFromString(text: string): Buffer {
  if (typeof text !== 'string' || !BASE64URL.test(text) || text.length % 4 === 1) {
    throw new CryptoError('CRYPTO_ENVELOPE_INVALID', { details: { reason: 'encoding' } });
  }
  const bytes = Buffer.from(text, 'base64url');
  // Non-canonical trailing bits (e.g. "AB" vs "AA" for one byte) would give two texts per envelope.
  if (bytes.toString('base64url') !== text) throw new CryptoError('CRYPTO_ENVELOPE_INVALID', { details: { reason: 'encoding' } });
  return bytes;
}
