import { catalog, type ErrorCode } from './catalog.ts';
import type { DetailsOf } from './details.ts';

export { catalog, type ErrorCode } from './catalog.ts';
export type { CatalogDetails, DetailsOf } from './details.ts';

/** Details are public (sent to clients): never put secrets or raw secret input in them. */
export type ErrorDetails = Readonly<Record<string, unknown>>;

/**
 * The one error type the platform throws for expected failures. `message` is public; `cause`
 * stays in the log.
 */
export class AccordError<C extends ErrorCode = ErrorCode> extends Error {
  readonly code: C;
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
    code: C,
    opts: { message?: string; details?: DetailsOf<C>; cause?: unknown; headers?: Record<string, string>; extensions?: Record<string, string> } = {},
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
export function isAccordError<C extends ErrorCode = ErrorCode>(err: unknown, code?: C): err is AccordError<C> {
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

/**
 * Turns any thrown value into the problem a client may see; unknown errors become INTERNAL.
 * Errors have two audiences: for a server-side failure (5xx) the client gets the catalog's
 * public message and nothing else (no KMS labels, driver codes, file names or job text: the
 * precise message and the cause are for the log); a refusal (4xx) keeps its precise message and
 * its public details, which tell the caller what to fix.
 */
export function toProblem(err: unknown, requestId?: string): Problem {
  const e = isAccordError(err) ? err : new AccordError('INTERNAL');
  const entry = catalog[e.code];
  const serverSide = e.status >= 500;
  return {
    ...(serverSide ? {} : e.extensions),
    type: `https://accord.dev/problems/${e.code.toLowerCase().replaceAll('_', '-')}`,
    title: entry.title,
    status: e.status,
    code: e.code,
    detail: serverSide ? entry.message : e.message,
    ...(requestId === undefined ? {} : { requestId }),
    ...(e.details === undefined || serverSide ? {} : { details: e.details }),
  };
}
