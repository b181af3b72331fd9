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
  /** Return sealed records with a lower sequence than this, and no unsealed ones (a cursor). */
  readonly beforeSeq?: number;
  /** Return unsealed records inserted before this one, then every sealed record (a cursor). */
  readonly beforeIns?: number;
  /** Leave out events the sealer has not linked into the chain yet (exports). */
  readonly sealedOnly?: boolean;
  readonly limit: number;
}

/** Where the next page starts: below a sealed sequence number, or below an unsealed insertion. */
export type AuditCursor = { readonly beforeSeq: number } | { readonly beforeIns: number };

/** A record as the API and exports show it. */
export interface AuditRecordView {
  readonly chain: string;
  /** null: written, but not linked into the chain yet (see docs/audit.md, sealing). */
  readonly seq: number | null;
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
  /** null while unsealed. */
  readonly hash: string | null;
}

/** A stored row as the API, the exports, the archives and the SIEM sink all show it. */
export function toRecordView(r: Selectable<AuditEventsTable>): AuditRecordView {
  return {
    chain: r.chain_id,
    seq: r.seq === null ? null : Number(r.seq),
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
    hash: r.hash === null ? null : r.hash.toString('hex'),
  };
}

/**
 * Searches one chain, newest first: events not sealed yet (they are the newest, by insertion),
 * then sealed records by sequence. Returns one page and the cursor of the next, if any.
 */
export async function searchAudit(db: DbOrTrx, q: AuditQuery): Promise<{ records: AuditRecordView[]; next: AuditCursor | null }> {
  const filtered = () => {
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
    return query;
  };
  const rows: Selectable<AuditEventsTable>[] = [];
  // One more than the page, to know whether another page follows.
  const want = q.limit + 1;
  if (!q.sealedOnly && q.beforeSeq === undefined) {
    let unsealed = filtered().where('seq', 'is', null);
    if (q.beforeIns !== undefined) unsealed = unsealed.where('ins', '<', q.beforeIns);
    rows.push(...(await unsealed.orderBy('ins', 'desc').limit(want).execute()));
  }
  if (rows.length < want) {
    let sealed = filtered().where('seq', 'is not', null);
    if (q.beforeSeq !== undefined) sealed = sealed.where('seq', '<', q.beforeSeq);
    rows.push(...(await sealed.orderBy('seq', 'desc').limit(want - rows.length).execute()));
  }
  const page = rows.slice(0, q.limit);
  const last = page.at(-1);
  let next: AuditCursor | null = null;
  if (rows.length > q.limit && last) next = last.seq === null ? { beforeIns: Number(last.ins) } : { beforeSeq: Number(last.seq) };
  return { records: page.map(toRecordView), next };
}
