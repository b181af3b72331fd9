import { AccordError } from '../errors/index.ts';
import type { AuthContext, GrantView, RequestMeta, RouteAccess } from '../http/index.ts';
import { roleHas } from './permissions.ts';

// Seeing that a tenant and its stages exist is part of any grant on it; a developer limited to
// one stage still sees the tenant. Everything else needs a grant covering the whole scope.
const VISIBILITY = new Set(['tenant:read', 'stage:read']);

function covers(g: GrantView, tenantName: string | undefined, stageName: string | undefined, permission: string): boolean {
  if (g.tenantId !== null && g.tenantName !== tenantName) return false;
  if (g.stageId === null) return true;
  if (stageName !== undefined) return g.stageName === stageName;
  return VISIBILITY.has(permission);
}

/** Whether the caller may use `permission` on the tenant (and stage) named, if any. */
export function can(auth: AuthContext, permission: string, scope: { tenant?: string; stage?: string } = {}): boolean {
  return auth.grants.some((g) => {
    if (!roleHas(g.role, permission)) return false;
    if (scope.tenant === undefined) return g.tenantId === null;
    return covers(g, scope.tenant, scope.stage, permission);
  });
}

/** Whether the caller holds any grant at all on the tenant (or platform-wide). */
export function seesTenant(auth: AuthContext, tenant: string): boolean {
  return auth.grants.some((g) => g.tenantId === null || g.tenantName === tenant);
}

/**
 * Enforces a route's declared access. A caller with no grant on the tenant named in the path
 * gets the same 404 as for a tenant that does not exist, so tenants cannot be enumerated.
 */
export function authorize(meta: RequestMeta, acc: RouteAccess, params: Record<string, string | undefined>): void {
  if (acc.kind === 'public') return;
  const auth = meta.auth;
  if (!auth) throw new AccordError('IAM_UNAUTHENTICATED');
  if (acc.kind === 'authenticated') return;
  const tenant = acc.tenantParam === undefined ? undefined : params[acc.tenantParam];
  const stage = acc.stageParam === undefined ? undefined : params[acc.stageParam];
  if (tenant !== undefined && !seesTenant(auth, tenant)) {
    throw new AccordError('TENANCY_TENANT_NOT_FOUND', { details: { tenant } });
  }
  if (!can(auth, acc.permission, { ...(tenant === undefined ? {} : { tenant }), ...(stage === undefined ? {} : { stage }) })) {
    throw new AccordError('IAM_FORBIDDEN', { details: { permission: acc.permission } });
  }
}
