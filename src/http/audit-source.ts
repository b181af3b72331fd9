import type { AuditSource } from '../audit-chain/index.ts';
import type { RequestMeta } from './context.ts';

/** The audit view of a request: who, from where, with which roles at that moment. */
export function auditSource(meta: RequestMeta): AuditSource {
  const auth = meta.auth;
  return {
    actor: auth
      ? { type: auth.kind === 'client' ? 'client' : 'user', id: auth.principalId, label: auth.label, roles: [...new Set(auth.grants.map((g) => g.role))] }
      : { type: 'anonymous', id: null, label: null, roles: [] },
    requestId: meta.requestId,
    sourceIp: meta.sourceIp,
    userAgent: meta.userAgent,
  };
}
