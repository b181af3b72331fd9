import type { Selectable } from 'kysely';
import type { AuditEventsTable, DbOrTrx } from '../db/index.ts';

/** Filters of the search API; all optional, combined with AND. */
export interface AuditQuery {
  readonly chain: string;
  /** Matches the actor's id or label (email) exactly. */
  readonly actor?: string;
  /** An exact action, or a prefix ending in `.*` (e.g. `auth.*`). */
  readonly action?: string;
  /** `type:id`, or an id alone. */
  readonly target?: string;
  readonly outcome?: 'success' | 'failure' | 'denied';
  readonly from?: Date;
  readonly to?: Date;
  /** Return records with a lower sequence than this (the cursor). */
  readonly beforeSeq?: number;
  readonly limit: number;
}

/** A record as the API and exports show it. */
export interface AuditRecordView {
  readonly chain: string;
  readonly seq: number;
  readonly id: string;
  readonly time: string;
  readonly tenantId: string | null;
  readonly actor: { readonly type: string; readonly id: string | null; readonly label: string | null; readonly roles: readonly string[] };
  readonly action: string;
  readonly target: { readonly type: string; readonly id: string } | null;
  readonly outcome: string;
  readonly reason: string | null;
  readonly source: { readonly ip: string | null; readonly userAgent: string | null; readonly requestId: string | null };
  readonly details: unknown;
  readonly hash: string;
}

/** A stored row as the API, the exports, the archives and the SIEM sink all show it. */
export function toRecordView(r: Selectable<AuditEventsTable>): AuditRecordView {
  return {
    chain: r.chain_id,
    seq: Number(r.seq),
    id: r.id,
    time: r.occurred_at.toISOString(),
    tenantId: r.tenant_id,
    actor: { type: r.actor_type, id: r.actor_id, label: r.actor_label, roles: r.actor_roles },
    action: r.action,
    target: r.target_type === null || r.target_id === null ? null : { type: r.target_type, id: r.target_id },
    outcome: r.outcome,
    reason: r.reason,
    source: { ip: r.source_ip, userAgent: r.user_agent, requestId: r.request_id },
    details: r.details,
    hash: r.hash.toString('hex'),
  };
}

/** Searches one chain, newest first. Returns one page and the cursor of the next, if any. */
export async function searchAudit(db: DbOrTrx, q: AuditQuery): Promise<{ records: AuditRecordView[]; nextBeforeSeq: number | null }> {
  let query = db.selectFrom('accord.audit_events').selectAll().where('chain_id', '=', q.chain);
  if (q.actor !== undefined) {
    const actor = q.actor;
    query = query.where((eb) => eb.or([eb('actor_id', '=', actor), eb('actor_label', '=', actor.toLowerCase())]));
  }
  if (q.action !== undefined) {
    query = q.action.endsWith('.*')
      ? query.where('action', 'like', `${q.action.slice(0, -2).replace(/[\\%_]/g, '\\$&')}.%`)
      : query.where('action', '=', q.action);
  }
  if (q.target !== undefined) {
    const i = q.target.indexOf(':');
    query =
      i > 0
        ? query.where('target_type', '=', q.target.slice(0, i)).where('target_id', '=', q.target.slice(i + 1))
        : query.where('target_id', '=', q.target);
  }
  if (q.outcome !== undefined) query = query.where('outcome', '=', q.outcome);
  if (q.from !== undefined) query = query.where('occurred_at', '>=', q.from);
  if (q.to !== undefined) query = query.where('occurred_at', '<', q.to);
  if (q.beforeSeq !== undefined) query = query.where('seq', '<', q.beforeSeq);
  const rows = await query.orderBy('seq', 'desc').limit(q.limit + 1).execute();
  const page = rows.slice(0, q.limit);
  return {
    records: page.map(toRecordView),
    nextBeforeSeq: rows.length > q.limit ? (page.at(-1)?.seq ?? null) : null,
  };
}
