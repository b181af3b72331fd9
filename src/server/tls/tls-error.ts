import { AccordError, type ErrorCode } from '../../errors/index.ts';

/** Stable codes (entries of the one catalog) for everything that can stop the TLS listener from getting its material. */
export type TlsErrorCode = Extract<
  ErrorCode,
  /** A file we must read exists but cannot be read (permissions, a directory, I/O error). */
  | 'TLS_FILE_UNREADABLE'
  /** The TLS directory or one of its files cannot be created or replaced. */
  | 'TLS_FILE_UNWRITABLE'
  /** A file was read but holds no usable certificate or key. */
  | 'TLS_FILE_INVALID'
  /** Only one of `certFile` / `keyFile` was given. */
  | 'TLS_INCOMPLETE'
  /** A private key does not belong to the certificate it was paired with. */
  | 'TLS_KEY_MISMATCH'
  /** `ca.pem` exists without `ca-key.pem`, so no server certificate can be issued from it. */
  | 'TLS_CA_KEY_MISSING'
  /** The local CA has expired; issuing from it would only produce an unverifiable chain. */
  | 'TLS_CA_EXPIRED'
  /** A requested hostname cannot be put in a certificate. */
  | 'TLS_INVALID_HOSTNAME'
  /** Another process held the TLS directory's lock for too long. */
  | 'TLS_LOCK_TIMEOUT'
>;

/**
 * The error every failure of this module is reported with. Messages name files and options but
 * never contain file content, so they are safe to print and log.
 */
export class TlsError extends AccordError {
  declare readonly code: TlsErrorCode;
  /** The file the error is about, when there is one. */
  readonly path: string | undefined;

  constructor(code: TlsErrorCode, message: string, options: { path?: string; cause?: unknown } = {}) {
    super(code, { message, ...(options.cause === undefined ? {} : { cause: options.cause }) });
    this.name = 'TlsError';
    this.path = options.path;
  }
}

/** Tells whether `err` is a {@link TlsError}, optionally with the given code. */
export function isTlsError(err: unknown, code?: TlsErrorCode): err is TlsError {
  return err instanceof TlsError && (code === undefined || err.code === code);
}
