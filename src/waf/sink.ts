// Defence at the sink: checks for the places where tenant input reaches something the platform
// builds itself (SQL text, file paths). Request-time rules cannot see what a value becomes; these
// can. A violation throws (fail closed) and is recorded as a security event by the caller
// (`recordDetection` with kind `sink`).
import { resolve, sep } from 'node:path';

/** A sink check failed: tenant input would have become code or left its directory. */
export class SinkViolation extends Error {
  readonly sink: 'sql' | 'path';
  readonly check: string;
  constructor(sink: 'sql' | 'path', check: string) {
    super(`sink check failed: ${sink} ${check}`);
    this.name = 'SinkViolation';
    this.sink = sink;
    this.check = check;
  }
}

/**
 * Asserts that SQL text built by the platform carries tenant values only as parameters: none of
 * `tenantValues` (of three characters or more) appears in the text, and the text has one
 * statement and no comments. `sql` is the compiled text (Kysely's `compile().sql`).
 */
export function checkSinkSql(sql: string, tenantValues: readonly unknown[]): void {
  // Quoted identifiers are the platform's names (tables, columns): a tenant value equal to one
  // (a filter on "status" = 'status') is not in the text; a spliced value is, in a literal or bare.
  const named = sql.replace(/"(?:[^"]|"")*"/g, '""');
  for (const v of tenantValues) {
    if (typeof v !== 'string' || v.length < 3) continue;
    if (named.includes(v)) throw new SinkViolation('sql', 'tenant value in statement text');
  }
  // String literals are removed too: a comment marker inside them is data.
  const bare = named.replace(/'(?:[^']|'')*'/g, "''");
  if (/--|\/\*/.test(bare)) throw new SinkViolation('sql', 'comment in statement');
  if (/;\s*\S/.test(bare)) throw new SinkViolation('sql', 'more than one statement');
}

/** Resolves `name` under `base` and asserts it stays there (no NUL, no escape by .. or an absolute path). */
export function checkSinkPath(base: string, name: string): string {
  if (name.includes('\0')) throw new SinkViolation('path', 'NUL in path');
  const root = resolve(base);
  const full = resolve(root, name);
  if (full !== root && !full.startsWith(root + sep)) throw new SinkViolation('path', 'path leaves its directory');
  return full;
}
