// The one byte encoding used for everything that binds a value to where it lives (the GCM associated
// data, the HKDF info): each part is its UTF-8 length as uint32 big-endian followed by its bytes, so
// no two different lists of parts encode to the same bytes ("ab"+"c" ≠ "a"+"bc").

/** Where an encrypted value lives; every part is bound into the ciphertext. */
export interface FieldContext {
  readonly tenant: string;
  readonly stage: string;
  readonly entity: string;
  readonly field: string;
  readonly recordId: string;
}

/** Where a field lives, without the record: what a per-field key is derived for. */
export type FieldKeyContext = Omit<FieldContext, 'recordId'>;

// In unicode mode a valid surrogate pair is one code point, so this matches lone surrogates only.
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * True when `text` encodes to UTF-8 and back unchanged. A lone surrogate would be replaced by
 * U+FFFD on encoding, so two different strings would bind or index the same bytes.
 */
export const isWellFormed = (text: string): boolean => !LONE_SURROGATE.test(text);

/** Caller misuse (our code passing a bad context): throws naming the option path. */
export function checkContext(context: unknown, parts: readonly string[], path: string): void {
  if (typeof context !== 'object' || context === null) throw new TypeError(`${path} must be an object`);
  for (const part of parts) {
    const value = (context as Record<string, unknown>)[part];
    if (typeof value !== 'string' || value.length === 0) throw new TypeError(`${path}.${part} must be a non-empty string`);
    if (!isWellFormed(value)) throw new TypeError(`${path}.${part} must be well-formed Unicode (it has a lone surrogate)`);
  }
}

/**
 * `prefix` bytes as they are, then `uint32be(byteLength(part)) || utf8(part)` for each part. Parts
 * must be well-formed (checkContext), so their UTF-8 length is exact.
 */
export function lengthPrefixed(parts: readonly string[], prefix: readonly Uint8Array[] = []): Buffer {
  let size = 0;
  for (const b of prefix) size += b.length;
  for (const p of parts) size += 4 + Buffer.byteLength(p, 'utf8');
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const b of prefix) {
    out.set(b, at);
    at += b.length;
  }
  for (const p of parts) {
    const n = out.write(p, at + 4, 'utf8');
    out.writeUInt32BE(n, at);
    at += 4 + n;
  }
  return out;
}
