import { AccordError, catalog, type ErrorCode, isAccordError } from '../errors/index.ts';

/** How a command prints: `--json` for machines, short text for people. */
export interface Output {
  readonly json: boolean;
  /** Prints a command's result: the JSON document, or the text `human` renders from it. */
  result(value: unknown, human?: (v: never) => string): void;
  /** Progress for people; nothing in JSON mode, so stdout stays one document. */
  info(line: string): void;
}

export function output(json: boolean): Output {
  return {
    json,
    result(value, human) {
      if (json) process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
      else if (human) process.stdout.write(`${human(value as never)}\n`);
    },
    info(line) {
      if (!json) process.stderr.write(`${line}\n`);
    },
  };
}

/** An error from the server, carrying its problem document's code. */
export class RemoteError extends Error {
  readonly code: string;
  readonly status: number;
  readonly details: unknown;
  constructor(code: string, status: number, message: string, details?: unknown) {
    super(message);
    this.code = code;
    this.status = status;
    this.details = details;
  }
}

/**
 * Prints an error and sets a non-zero exit code. Catalog and server errors print their code and
 * message; anything else prints a generic line (no stack traces for users; ACCORD_DEBUG=1 shows it).
 */
/** What `--json` shows that a person needs too: when to retry, which permission is missing. */
function humanHints(details: unknown): string {
  if (typeof details !== 'object' || details === null) return '';
  const d = details as { retryAfterSeconds?: unknown; permission?: unknown };
  const hints: string[] = [];
  if (typeof d.retryAfterSeconds === 'number') hints.push(`retry after ${d.retryAfterSeconds} s`);
  if (typeof d.permission === 'string') hints.push(`missing permission ${d.permission}`);
  return hints.length ? ` (${hints.join('; ')})` : '';
}

export function reportError(err: unknown, json: boolean): void {
  let code: string;
  let message: string;
  let details: unknown;
  if (err instanceof RemoteError) {
    ({ code, message, details } = err);
  } else if (isAccordError(err)) {
    ({ code, message, details } = err);
  } else {
    code = 'INTERNAL';
    message = `Unexpected error: ${err instanceof Error ? err.message : String(err)}`;
  }
  if (process.env.ACCORD_DEBUG === '1' && err instanceof Error) process.stderr.write(`${err.stack}\n`);
  if (json) {
    process.stdout.write(`${JSON.stringify({ error: { code, message, ...(details === undefined ? {} : { details }) } }, null, 2)}\n`);
  } else {
    process.stderr.write(`error ${code}: ${message}${humanHints(details)}\n`);
  }
  process.exitCode = code === 'CLI_USAGE' || code === 'CONFIG_UNKNOWN_KEY' ? 2 : 1;
}

/** Shorthand for CLI-side catalog errors. */
export function cliError(code: ErrorCode & `CLI_${string}`, message: string, details?: Record<string, unknown>): AccordError {
  return new AccordError(code, { message: message || catalog[code].message, ...(details ? { details } : {}) });
}

/** A small fixed-width table for human output. */
export function table<T extends object>(rows: readonly T[], columns: readonly (keyof T & string)[]): string {
  if (rows.length === 0) return '(none)';
  const cells = [columns.map((c) => c.toUpperCase()), ...rows.map((r) => columns.map((c) => String(r[c] ?? '')))];
  const widths = columns.map((_, i) => Math.max(...cells.map((row) => row[i]?.length ?? 0)));
  return cells.map((row) => row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n');
}
