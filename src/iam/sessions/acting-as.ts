import type { AuditSource } from '../../audit-chain/index.ts';

/** The audit source of a request once it has proven which user it acts for. */
export function asUser(source: AuditSource, user: { readonly id: string; readonly email: string }): AuditSource {
  return { ...source, actor: { type: 'user', id: user.id, label: user.email, roles: [] } };
}
