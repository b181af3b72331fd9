import type { Trx } from '../db/index.ts';

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
const SECRET_KEY = /pass(word)?|secret|token|credential|private|api[-_]?key|^key$|authorization|cookie/i;

/** Copies details, replacing anything that looks like a secret with a marker. */
export function scrubDetails(details: unknown, depth = 0): unknown {
  if (depth > 5) return '[truncated]';
  if (Array.isArray(details)) return details.map((d) => scrubDetails(d, depth + 1));
  if (details !== null && typeof details === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(details)) out[k] = SECRET_KEY.test(k) ? '[redacted]' : scrubDetails(v, depth + 1);
    return out;
  }
  return details;
}

/**
 * Writes an audit record inside the caller's transaction, so the change and its record commit
 * or roll back together.
 */
export async function record(trx: Trx, source: AuditSource, event: AuditEvent): Promise<void> {
  await trx
    .insertInto('accord.audit_events')
    .values({
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
      details: JSON.stringify(scrubDetails(event.details ?? {})),
    })
    .execute();
}
