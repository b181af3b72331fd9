// Opaque keyset cursors: the sort values of the last row of a page and a hash of the query they
// belong to, MACed with the server's key. A cursor that was altered, or presented with another
// query (filter, parameters, sort, fields, entity, stage, caller), is refused: it cannot be used
// to probe rows through someone else's ordering.
import { createHash, timingSafeEqual } from 'node:crypto';
import { AccordError } from '../../errors/index.ts';

/** MACs cursor payloads (HMAC-SHA-256 under a key of the server's). */
export type CursorMac = (data: string) => Buffer;

export const queryHash = (parts: readonly unknown[]): string => createHash('sha256').update(JSON.stringify(parts)).digest('base64url').slice(0, 22);

export function encodeCursor(mac: CursorMac, query: string, values: readonly (string | null)[]): string {
  const payload = Buffer.from(JSON.stringify({ q: query, v: values })).toString('base64url');
  return `${payload}.${mac(payload).subarray(0, 16).toString('base64url')}`;
}

const invalid = (why: string) => new AccordError('DATA_CURSOR_INVALID', { message: `The cursor is not valid for this query (${why}).` });

export function decodeCursor(mac: CursorMac, query: string, cursor: string, length: number): (string | null)[] {
  const m = /^([A-Za-z0-9_-]{1,4096})\.([A-Za-z0-9_-]{22})$/.exec(cursor);
  if (!m) throw invalid('malformed');
  const [, payload, tag] = m as unknown as [string, string, string];
  const expected = mac(payload).subarray(0, 16);
  const given = Buffer.from(tag, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw invalid('altered');
  let body: { q?: unknown; v?: unknown };
  try {
    body = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    throw invalid('malformed');
  }
  if (body.q !== query) throw invalid('it belongs to another query');
  if (!Array.isArray(body.v) || body.v.length !== length || !body.v.every((x) => x === null || typeof x === 'string')) throw invalid('malformed');
  return body.v as (string | null)[];
}
