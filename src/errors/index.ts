import { catalog, type ErrorCode } from './catalog.ts';

export { catalog, type ErrorCode } from './catalog.ts';

/** Details are public (sent to clients): never put secrets or raw secret input in them. */
export type ErrorDetails = Readonly<Record<string, unknown>>;

/**
 * The one error type the platform throws for expected failures. `message` is public; `cause`
 * stays in the log.
 */
export class AccordError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: ErrorDetails | undefined;
  /** Extra response headers, e.g. Retry-After. */
  readonly headers: Readonly<Record<string, string>> | undefined;
  /**
   * Extra top-level members a protocol requires in the error body (RFC 6749's `error` and
   * `error_description` for OAuth2 clients). They never replace the problem's own members.
   */
  readonly extensions: Readonly<Record<string, string>> | undefined;

  constructor(
    code: ErrorCode,
    opts: { message?: string; details?: ErrorDetails; cause?: unknown; headers?: Record<string, string>; extensions?: Record<string, string> } = {},
  ) {
    super(opts.message ?? catalog[code].message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'AccordError';
    this.code = code;
    this.status = catalog[code].status;
    this.details = opts.details;
    this.headers = opts.headers;
    this.extensions = opts.extensions;
  }
}

/** Type guard; with `code`, also checks which catalog error it is. */
export function isAccordError(err: unknown, code?: ErrorCode): err is AccordError {
  return err instanceof AccordError && (code === undefined || err.code === code);
}

/** RFC 9457 problem document with our stable `code`. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  code: ErrorCode;
  detail: string;
  instance?: string;
  requestId?: string;
  details?: ErrorDetails;
  [extension: string]: unknown;
}

/** Turns any thrown value into the problem a client may see; unknown errors become INTERNAL. */
export function toProblem(err: unknown, requestId?: string): Problem {
  const e = isAccordError(err) ? err : new AccordError('INTERNAL');
  const entry = catalog[e.code];
  return {
    ...e.extensions,
    type: `https://accord.dev/problems/${e.code.toLowerCase().replaceAll('_', '-')}`,
    title: entry.title,
    status: e.status,
    code: e.code,
    detail: e.message,
    ...(requestId === undefined ? {} : { requestId }),
    ...(e.details === undefined ? {} : { details: e.details }),
  };
}
