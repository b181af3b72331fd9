import { randomUUID } from 'node:crypto';
import { CompiledQuery, type QueryExecutorProvider, type Selectable } from 'kysely';
import type { AuditEventsTable, Trx } from '../db/index.ts';
import { type CanonicalRecord, chainIdFor } from './canonical.ts';
import { auditWritten } from './wake.ts';

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

/** A row as the chain hashes it: a stored event with the sequence number it has (or is given). */
export type CanonicalRow = Omit<Selectable<AuditEventsTable>, 'seq' | 'hash' | 'details' | 'xid' | 'ins'> & { seq: number; details: unknown };

/** A stored event that is linked into its chain. */
export type SealedRow = Selectable<AuditEventsTable> & { seq: number; hash: Buffer };

/** Narrows a row read with `seq is not null` to a sealed row (throws on one that is not). */
export function sealedRow(row: Selectable<AuditEventsTable>): SealedRow {
  if (row.seq === null || row.hash === null) throw new Error(`audit event ${row.id} is not sealed`);
  return row as SealedRow;
}

/** The canonical (hashed) form of a stored row. */
export function toCanonical(row: CanonicalRow): CanonicalRecord {
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
 * The columns of one event, as both ways into the trail write them: `record()` (adding `id` and
 * `occurred_at`) and a stage session's INSERT (adding `id`; the database dates it). The one column
 * mapping.
 */
export interface AuditEventFields {
  readonly chain_id: string;
  readonly tenant_id: string | null;
  readonly actor_type: AuditActor['type'];
  readonly actor_id: string | null;
  readonly actor_label: string | null;
  readonly actor_roles: string[];
  readonly action: string;
  readonly target_type: string | null;
  readonly target_id: string | null;
  readonly outcome: AuditEvent['outcome'];
  readonly reason: string | null;
  readonly source_ip: string | null;
  readonly user_agent: string | null;
  readonly request_id: string | null;
  readonly details: unknown;
}

/** Builds the columns of an event (details scrubbed of secrets). */
export function auditEventFields(source: AuditSource, event: AuditEvent): AuditEventFields {
  return {
    chain_id: chainIdFor(event.tenantId),
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
}

// The request path's one statement, written out once: building it per call through the query
// builder costs more than sending it. `seq` and `hash` stay NULL until sealed; `xid`
// (pg_current_xact_id(): the top-level transaction, also inside a savepoint) and `ins` are defaults.
const COLUMNS = [
  'chain_id',
  'id',
  'occurred_at',
  'tenant_id',
  'actor_type',
  'actor_id',
  'actor_label',
  'actor_roles',
  'action',
  'target_type',
  'target_id',
  'outcome',
  'reason',
  'source_ip',
  'user_agent',
  'request_id',
  'details',
] as const;
const INSERT = `insert into accord.audit_events (${COLUMNS.join(', ')}) values (${COLUMNS.map((c, i) => `$${i + 1}${c === 'details' ? '::jsonb' : ''}`).join(', ')})`;

/**
 * Writes an audit event inside the caller's transaction, so the change and its event commit or
 * roll back together. The event is inserted unsealed (one small INSERT, no lock on the chain):
 * the sealer gives it its sequence number and hash once its transaction has ended (see seal.ts).
 * Returns the event's id.
 */
export async function record(trx: Trx, source: AuditSource, event: AuditEvent, now = new Date()): Promise<string> {
  const fields = auditEventFields(source, event);
  const id = randomUUID();
  // Milliseconds only: the stored timestamp must read back exactly as it will be hashed.
  const row: Record<(typeof COLUMNS)[number], unknown> = { ...fields, id, occurred_at: new Date(Math.floor(now.getTime())), details: JSON.stringify(fields.details) };
  await trx.executeQuery(CompiledQuery.raw(INSERT, COLUMNS.map((c) => row[c])));
  auditWritten(fields.chain_id);
  return id;
}

/**
 * The columns a stage session writes (migration 015 grants it these and no others): an event
 * goes in unsealed and is dated by the database, like every stage write, under row-level security
 * that holds it to the stage's tenant.
 */
export const STAGE_AUDIT_COLUMNS: readonly string[] = COLUMNS.filter((c) => c !== 'occurred_at');
const SQL_TYPES: Partial<Record<(typeof COLUMNS)[number], string>> = { id: 'uuid', tenant_id: 'uuid', actor_roles: 'text[]', details: 'jsonb' };
/** The SQL type of each of STAGE_AUDIT_COLUMNS, for a statement that casts its parameters. */
export const STAGE_AUDIT_TYPES: readonly string[] = STAGE_AUDIT_COLUMNS.map((c) => SQL_TYPES[c as (typeof COLUMNS)[number]] ?? 'text');
const STAGE_INSERT = `insert into accord.audit_events (${STAGE_AUDIT_COLUMNS.join(', ')}) values (${STAGE_AUDIT_COLUMNS.map((c, i) => `$${i + 1}${c === 'details' ? '::jsonb' : ''}`).join(', ')})`;

/**
 * A stage's event as the values of STAGE_AUDIT_COLUMNS, in order (details as JSON text), with its
 * id: the stage cannot read the row back, so the id is made here.
 */
export function stageAuditValues(source: AuditSource, event: AuditEvent): { readonly id: string; readonly values: readonly unknown[] } {
  const fields = auditEventFields(source, event);
  const id = randomUUID();
  const row: Record<string, unknown> = { ...fields, id, details: JSON.stringify(fields.details) };
  return { id, values: STAGE_AUDIT_COLUMNS.map((c) => row[c]) };
}

/**
 * The INSERT that appends a stage's event, for callers that send it with others in one round trip
 * (a stage session's COMMIT); they ring `auditWritten` themselves once it committed.
 */
export function stageAuditStatement(source: AuditSource, event: AuditEvent): { readonly id: string; readonly text: string; readonly values: readonly unknown[] } {
  return { ...stageAuditValues(source, event), text: STAGE_INSERT };
}

/** Appends one event from a stage session (see STAGE_AUDIT_COLUMNS). Returns its id. */
export async function appendStageAuditEvent(trx: QueryExecutorProvider, source: AuditSource, event: AuditEvent): Promise<string> {
  const s = stageAuditStatement(source, event);
  await trx.getExecutor().executeQuery(CompiledQuery.raw(s.text, [...s.values]));
  auditWritten(chainIdFor(event.tenantId));
  return s.id;
}
