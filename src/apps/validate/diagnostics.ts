import type { ErrorCode } from '../../errors/index.ts';

/** The codes a manifest diagnostic can carry: catalog codes with the APP_ prefix. */
export type DiagnosticCode = ErrorCode & `APP_${string}`;

/** One finding of the validator, placed in the file and in the document. */
export interface Diagnostic {
  readonly severity: 'error' | 'warning';
  readonly code: DiagnosticCode;
  /** JSON Pointer (RFC 6901) to the value the finding is about. */
  readonly pointer: string;
  readonly file: string;
  /** 1-based; inside a rule expression, the position of the offending part. */
  readonly line: number;
  readonly column: number;
  /** What is wrong. */
  readonly message: string;
  /** How to fix it. */
  readonly hint: string;
}

/** Orders diagnostics by position, errors before warnings at the same place. */
export function sortDiagnostics(list: readonly Diagnostic[]): Diagnostic[] {
  return [...list].sort((a, b) => a.line - b.line || a.column - b.column || (a.severity === b.severity ? 0 : a.severity === 'error' ? -1 : 1) || a.code.localeCompare(b.code));
}

/** `file:line:column: error CODE: message (fix: hint)` for people. */
export function formatDiagnostic(d: Diagnostic): string {
  return `${d.file}:${d.line}:${d.column}: ${d.severity} ${d.code}: ${d.message} at ${d.pointer || '/'} (fix: ${d.hint})`;
}
