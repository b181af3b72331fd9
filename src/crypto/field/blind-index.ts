// Blind index: a keyed, truncated HMAC-SHA-256 of a normalised value, stored next to the envelope so
// equality search works without decrypting. Each field has its own index key, derived with HKDF from
// the stage's index key, so equal values in two fields (or two stages, or two tenants) give unrelated
// index entries and one column's index says nothing about another's.
//
// Normalisation is part of the index format: changing it means rebuilding every index.
//   - always: Unicode NFC, so composed and decomposed spellings ("é" as U+00E9 or e + U+0301) match;
//   - caseInsensitive: then lower, upper and lower case again (Unicode default full case mappings,
//     locale independent), then NFC again. The round trip makes "STRASSE", "Straße", "STRAẞE" match,
//     and "ΟΔΟΣ" / "οδος" / "οδοσ", and "ﬁle" / "FILE", which a plain toLowerCase() would not. Per
//     code point it makes equal exactly what Unicode full case folding makes equal (checked against
//     Python's str.casefold for every assigned code point), except that dotless ı also matches i and I.
//   - nothing else: no NFKC, no trimming, no accent stripping. Callers normalise whitespace or formats
//     (e.g. phone numbers) before indexing if they want those to match.
//
// False positives: with b output bits and n distinct values in a column, a query value matches some
// other value's entry with probability about n / 2^b (16 bytes: n·2^-128; 8 bytes: n·2^-64), and
// some two values in the column share an entry with probability about n² / 2^(b+1). At the default of
// 16 bytes both stay below 2^-60 even for 2^32 values in one column, so a match can be trusted
// without decrypting the row to confirm it; 8 bytes halves the index size but needs that check for
// large columns. Truncation is not a privacy measure here: an entry still reveals which rows hold
// equal values (the inherent leak of any equality index), at any length this library allows.
import { createHmac, hkdfSync } from 'node:crypto';
import { checkContext, type FieldKeyContext, isWellFormed, lengthPrefixed } from './context.ts';
import { CryptoError } from './errors.ts';

export const INDEX_KEY_LENGTH = 32;
export const DEFAULT_INDEX_BYTES = 16;
export const MIN_INDEX_BYTES = 8;
export const MAX_INDEX_BYTES = 32;
export const FIELD_KEY_DOMAIN = 'accord/field-key/v1';
/** HKDF-SHA-256 accepts at most 1024 bytes of info (OpenSSL's limit). */
const MAX_INFO_LENGTH = 1024;

/** What a derived field key is for; one derived key never serves two purposes. */
export type FieldKeyPurpose = 'blind-index';
const PURPOSES: readonly string[] = ['blind-index'] satisfies FieldKeyPurpose[];
const FIELD_KEY_PARTS = ['tenant', 'stage', 'entity', 'field'] as const;

/** How a blind index entry is computed and written. */
export interface BlindIndexOptions {
  /** Output length in bytes, 8 .. 32; default 16 (128 bits). */
  readonly bytes?: number;
  /** Match regardless of case (see the normalisation above); default false. */
  readonly caseInsensitive?: boolean;
  /** Text form of the entry; default base64url (unpadded). */
  readonly encoding?: 'base64url' | 'hex';
}

function checkKey(key: unknown, path: string): asserts key is Buffer {
  if (!(key instanceof Uint8Array) || key.length !== INDEX_KEY_LENGTH) throw new RangeError(`${path} must be ${INDEX_KEY_LENGTH} bytes`);
}

/** The exact text whose UTF-8 bytes are MACed. */
export function normaliseForIndex(value: string, caseInsensitive = false): string {
  const nfc = value.normalize('NFC');
  return caseInsensitive ? nfc.toLowerCase().toUpperCase().toLowerCase().normalize('NFC') : nfc;
}

/**
 * Blind index entry of a value: HMAC-SHA-256 under the field's index key over the normalised value,
 * truncated to `bytes`. Equal (normalised) values give equal entries; anything else almost never.
 */
export function blindIndex(indexKey: Buffer, value: string, opts: BlindIndexOptions = {}): string {
  checkKey(indexKey, 'indexKey');
  const { bytes = DEFAULT_INDEX_BYTES, caseInsensitive = false, encoding = 'base64url' } = opts;
  if (!Number.isInteger(bytes) || bytes < MIN_INDEX_BYTES || bytes > MAX_INDEX_BYTES) {
    throw new RangeError(`opts.bytes must be an integer in ${MIN_INDEX_BYTES} .. ${MAX_INDEX_BYTES}`);
  }
  if (encoding !== 'base64url' && encoding !== 'hex') throw new TypeError(`opts.encoding must be 'base64url' or 'hex'`);
  if (typeof value !== 'string') throw new TypeError('value must be a string');
  if (!isWellFormed(value)) throw new CryptoError('CRYPTO_TEXT_INVALID');
  const mac = createHmac('sha256', indexKey).update(normaliseForIndex(value, caseInsensitive), 'utf8').digest();
  return mac.subarray(0, bytes).toString(encoding);
}

/**
 * Derives a field's own 32-byte key from the stage's index key with HKDF-SHA-256 (no salt; the input
 * key is already uniformly random). info = lp("accord/field-key/v1") || lp(purpose) || lp(tenant) ||
 * lp(stage) || lp(entity) || lp(field), with lp as in the envelope's associated data.
 */
export function deriveFieldKey(stageIndexKey: Buffer, context: FieldKeyContext, purpose: FieldKeyPurpose): Buffer {
  checkKey(stageIndexKey, 'stageIndexKey');
  checkContext(context, FIELD_KEY_PARTS, 'context');
  if (!PURPOSES.includes(purpose)) throw new TypeError(`purpose must be one of ${PURPOSES.join(', ')}`);
  const info = lengthPrefixed([FIELD_KEY_DOMAIN, purpose, ...FIELD_KEY_PARTS.map((p) => context[p])]);
  if (info.length > MAX_INFO_LENGTH) throw new RangeError(`context is too long: its encoding must fit in ${MAX_INFO_LENGTH} bytes`);
  return Buffer.from(hkdfSync('sha256', stageIndexKey, Buffer.alloc(0), info, INDEX_KEY_LENGTH));
}
