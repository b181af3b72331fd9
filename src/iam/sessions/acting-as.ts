import { type AuditSource, record } from '../../audit-chain/index.ts';
import type { Work } from '../../kernel/index.ts';

/**
 * The same unit of work, auditing as `source` instead of the request's source. For events whose
 * actor the request proves only inside the unit: the user behind an MFA challenge, a refresh
 * token or a one-time token (the request itself came from an anonymous caller). The writes, the
 * transaction, the after-commit hooks and the committed refusal are the unit's own.
 */
export function actingAs(w: Work, source: AuditSource): Work {
  return {
    trx: w.trx,
    source,
    audit: async (event) => {
      await record(w.trx, source, event);
    },
    afterCommit: (hook) => w.afterCommit(hook),
    refuse: async (error, ...events) => {
      for (const event of events) await record(w.trx, source, event);
      return w.refuse(error);
    },
  };
}

/** The audit source of a request once it has proven which user it acts for. */
export function asUser(source: AuditSource, user: { readonly id: string; readonly email: string }): AuditSource {
  return { ...source, actor: { type: 'user', id: user.id, label: user.email, roles: [] } };
}
