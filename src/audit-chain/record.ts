import { randomUUID } from 'node:crypto';
import type { AuditEventsTable, Trx } from '../db/index.ts';
import { type CanonicalRecord, chainHash, chainIdFor } from './canonical.ts';

/** Who acted. `roles` are the actor's roles at the time of the event. */
export interface AuditActor {
  readonly type: 'user' | 'client' | 'system' | 'anonymous';
  readonly id: string | null;
  /** Human-readable: an email, a client name, `system`. */
  readonly label: string | null;
  readonly roles: readonly string[];
}

/** Where the action came from. */
export interface AuditSource {
  readonly actor: AuditActor;
  readonly requestId: string | null;
  readonly sourceIp: string | null;
  readonly userAgent: string | null;
}

/** One security-relevant action. `action` is a dotted verb from docs/audit.md. */
export interface AuditEvent {
  /** null: the platform chain. */
  readonly tenantId: string | null;
  readonly action: string;
  readonly target?: { readonly type: string; readonly id: string };
  readonly outcome: 'success' | 'failure' | 'denied';
  /** A catalog code or short reason, for failure and denied outcomes. */
  readonly reason?: string;
  readonly details?: Readonly<Record<string, unknown>>;
}

/** The actor for work the platform does by itself (bootstrap, scheduled jobs). */
export const systemSource: AuditSource = Object.freeze({
  actor: Object.freeze({ type: 'system', id: null, label: 'system', roles: [] }),
  requestId: null,
  sourceIp: null,
  userAgent: null,
});

// Names that suggest a secret; their values never reach the audit trail, whatever the caller passes.
const SECRET_KEY = /pass(word|phrase)?|secret|token|credential|private|api[-_]?key|^key$|authorization|cookie|ciphertext|plaintext/i;

/**
 * Copies details into plain JSON, replacing anything that looks like a secret with a marker and
 * dropping what JSON cannot hold, so the stored jsonb reads back exactly as it was hashed.
 */
export function scrubDetails(details: unknown, depth = 0): unknown {
  if (depth > 6) return '[truncated]';
  if (details === null || details === undefined) return null;
  if (typeof details === 'string') return details.replaceAll('\u0000', '').slice(0, 2000);
  if (typeof details === 'number') return Number.isFinite(details) ? details : null;
  if (typeof details === 'boolean') return details;
  if (details instanceof Date) return details.toISOString();
  if (Array.isArray(details)) return details.slice(0, 200).map((d) => scrubDetails(d, depth + 1));
  if (typeof details === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(details)) {
      if (v === undefined) continue;
      out[k.replaceAll('\u0000', '')] = SECRET_KEY.test(k) ? '[redacted]' : scrubDetails(v, depth + 1);
    }
    return out;
  }
  return String(details);
}

/** The canonical (hashed) form of a stored row. */
export function toCanonical(row: Omit<AuditEventsTable, 'hash' | 'details'> & { details: unknown }): CanonicalRecord {
  return {
    v: 1,
    chain: row.chain_id,
    seq: Number(row.seq),
    id: row.id,
    time: row.occurred_at.toISOString(),
    tenant: row.tenant_id,
    actor: { type: row.actor_type, id: row.actor_id, label: row.actor_label, roles: row.actor_roles },
    action: row.action,
    target: row.target_type === null || row.target_id === null ? null : { type: row.target_type, id: row.target_id },
    outcome: row.outcome,
    reason: row.reason,
    source: { ip: row.source_ip, userAgent: row.user_agent, requestId: row.request_id },
    details: row.details,
  };
}

/**
 * Writes an audit record inside the caller's transaction, so the change and its record commit
 * or roll back together. The chain head row is locked until commit: concurrent writers to one
 * chain (on any node) take turns, which keeps every chain gap-free and linear.
 */
export async function record(trx: Trx, source: AuditSource, event: AuditEvent, now = new Date()): Promise<{ chain: string; seq: number }> {
  const chain = chainIdFor(event.tenantId);
  // One round trip creates the chain if needed and locks its head until commit.
  const head = await trx
    .insertInto('accord.audit_chains')
    .values({ chain_id: chain, tenant_id: event.tenantId })
    .onConflict((oc) => oc.column('chain_id').doUpdateSet((eb) => ({ chain_id: eb.ref('excluded.chain_id') })))
    .returning(['last_seq', 'last_hash'])
    .executeTakeFirstOrThrow();
  // Milliseconds only: the stored timestamp must read back exactly as it was hashed.
  const occurredAt = new Date(Math.floor(now.getTime()));
  const row = {
    chain_id: chain,
    seq: Number(head.last_seq) + 1,
    id: randomUUID(),
    occurred_at: occurredAt,
    tenant_id: event.tenantId,
    actor_type: source.actor.type,
    actor_id: source.actor.id,
    actor_label: source.actor.label,
    actor_roles: [...source.actor.roles],
    action: event.action,
    target_type: event.target?.type ?? null,
    target_id: event.target?.id ?? null,
    outcome: event.outcome,
    reason: event.reason ?? null,
    source_ip: source.sourceIp,
    user_agent: source.userAgent,
    request_id: source.requestId,
    details: scrubDetails(event.details ?? {}),
  };
  const hash = chainHash(head.last_hash, toCanonical(row));
  // The insert and the head move share one statement: round trips are most of the cost.
  await trx
    .with('inserted', (db) => db.insertInto('accord.audit_events').values({ ...row, details: JSON.stringify(row.details), hash }).returning('seq'))
    .updateTable('accord.audit_chains')
    .set({ last_seq: row.seq, last_hash: hash })
    .where('chain_id', '=', chain)
    .execute();
  return { chain, seq: row.seq };
}

/** Runs `fn` in its own transaction and records an event there: for events with no other change. */
export async function recordAlone(
  db: { transaction(): { execute<T>(fn: (trx: Trx) => Promise<T>): Promise<T> } },
  source: AuditSource,
  event: AuditEvent,
): Promise<void> {
  await db.transaction().execute((trx) => record(trx, source, event));
}

