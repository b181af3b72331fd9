import { AccordError, type ErrorCode } from '../../errors/index.ts';
// KMS errors. Their entries live in the one catalog (src/errors/catalog.ts); messages are safe for
// any client: no key bytes, PINs or passphrases, ever; the underlying cause goes to `cause`.

/** The KMS codes of the error catalog. */
export type KmsErrorCode = Extract<ErrorCode, `CRYPTO_KMS_${string}`>;

/** Details are public: ids, labels, paths and counts only, never secret material. */
export type KmsErrorDetails = Readonly<Record<string, unknown>>;

/** An expected KMS failure: a catalog error; `message` is public, `cause` is for the log only. */
export class KmsError extends AccordError {
  declare readonly code: KmsErrorCode;

  constructor(code: KmsErrorCode, opts: { message?: string; details?: KmsErrorDetails; cause?: unknown } = {}) {
    super(code, opts);
    this.name = 'KmsError';
  }
}

/** Type guard; with `code`, also checks which KMS error it is. */
export function isKmsError(err: unknown, code?: KmsErrorCode): err is KmsError {
  return err instanceof KmsError && (code === undefined || err.code === code);
}
