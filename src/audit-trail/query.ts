import type { AuditCursor, AuditQuery } from '../audit-chain/index.ts';
import { AccordError } from '../errors/index.ts';

/** Raw query-string filters, as the search and export routes receive them. */
export interface RawAuditFilters {
  actor?: string;
  action?: string;
  target?: string;
  outcome?: string;
  from?: string;
  to?: string;
  limit?: string;
  cursor?: string;
}

const ACTION = /^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*(\.\*)?$/;
const OUTCOMES = new Set(['success', 'failure', 'denied']);

const invalid = (message: string, field: string) => new AccordError('AUDIT_QUERY_INVALID', { message, details: { field } });

function parseTime(value: string, field: string): Date {
  // ISO 8601 with a zone only: a time without one means something different on every machine.
  if (!/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2}))?$/.test(value)) {
    throw invalid(`${field} must be an ISO 8601 date or date-time with a zone, e.g. 2026-11-26T10:00:00Z`, field);
  }
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) throw invalid(`${field} is not a valid time`, field);
  return d;
}

/**
 * Cursors are opaque to clients; inside they are the sequence number to continue below (`s:`),
 * or the insertion number of an unsealed event to continue below (`u:`).
 */
export const encodeCursor = (c: AuditCursor): string => Buffer.from('beforeSeq' in c ? `s:${c.beforeSeq}` : `u:${c.beforeIns}`).toString('base64url');

function decodeCursor(cursor: string): AuditCursor {
  const m = /^([su]):(\d{1,15})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!m?.[2]) throw invalid('cursor is not one this API returned', 'cursor');
  return m[1] === 's' ? { beforeSeq: Number(m[2]) } : { beforeIns: Number(m[2]) };
}

/**
 * Validates filters into a query on one chain. The online window bounds every search: older
 * records live in signed archives, not in the database.
 */
export function parseAuditFilters(raw: RawAuditFilters, chain: string, opts: { onlineDays: number; maxLimit: number; now?: Date }): AuditQuery {
  if (raw.outcome !== undefined && !OUTCOMES.has(raw.outcome)) throw invalid('outcome must be success, failure or denied', 'outcome');
  if (raw.action !== undefined && !ACTION.test(raw.action)) throw invalid('action must be a dotted name like auth.login, or a prefix like auth.*', 'action');
  if (raw.actor !== undefined && (raw.actor.length === 0 || raw.actor.length > 254)) throw invalid('actor must be 1-254 characters', 'actor');
  if (raw.target !== undefined && (raw.target.length === 0 || raw.target.length > 300)) throw invalid('target must be 1-300 characters', 'target');
  let limit = 100;
  if (raw.limit !== undefined) {
    if (!/^\d{1,6}$/.test(raw.limit) || Number(raw.limit) < 1 || Number(raw.limit) > opts.maxLimit) {
      throw invalid(`limit must be an integer from 1 to ${opts.maxLimit}`, 'limit');
    }
    limit = Number(raw.limit);
  }
  const now = opts.now ?? new Date();
  const onlineFrom = new Date(now.getTime() - opts.onlineDays * 86_400_000);
  const from = raw.from === undefined ? undefined : parseTime(raw.from, 'from');
  const to = raw.to === undefined ? undefined : parseTime(raw.to, 'to');
  if (from && to && from.getTime() >= to.getTime()) throw invalid('from must be before to', 'from');
  return {
    chain,
    ...(raw.actor === undefined ? {} : { actor: raw.actor }),
    ...(raw.action === undefined ? {} : { action: raw.action }),
    ...(raw.target === undefined ? {} : { target: raw.target }),
    ...(raw.outcome === undefined ? {} : { outcome: raw.outcome as 'success' | 'failure' | 'denied' }),
    from: from && from > onlineFrom ? from : onlineFrom,
    ...(to === undefined ? {} : { to }),
    ...(raw.cursor === undefined ? {} : decodeCursor(raw.cursor)),
    limit,
  };
}
