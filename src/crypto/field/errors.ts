import { AccordError } from '../../errors/index.ts';
// The field library's errors. Their entries live in the one catalog (src/errors/catalog.ts); the
// messages are fixed strings: no value, key, nonce or ciphertext ever enters them.

/** The field library's codes in the error catalog. */
export type CryptoErrorCode = 'CRYPTO_ENVELOPE_INVALID' | 'CRYPTO_KEY_VERSION_UNKNOWN' | 'CRYPTO_DECRYPT_FAILED' | 'CRYPTO_TEXT_INVALID';

/** Details are public: key versions, lengths and reasons only, never bytes of a value or a key. */
export type CryptoErrorDetails = Readonly<Record<string, string | number>>;

/** A field-library failure: a catalog error with a fixed public message (never value or key bytes). */
export class CryptoError extends AccordError {
  declare readonly code: CryptoErrorCode;

  constructor(code: CryptoErrorCode, opts: { details?: CryptoErrorDetails; cause?: unknown } = {}) {
    super(code, opts);
    this.name = 'CryptoError';
  }
}

/** Type guard; with `code`, also checks which error it is. */
export function isCryptoError(err: unknown, code?: CryptoErrorCode): err is CryptoError {
  return err instanceof CryptoError && (code === undefined || err.code === code);
}
