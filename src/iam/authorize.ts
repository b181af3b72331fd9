import { AccordError } from '../errors/index.ts';
import type { AuthContext, GrantView, RequestMeta, RouteAccess } from '../http/index.ts';

// Seeing that a tenant and its stages exist is part of any grant on it; a developer limited to
// one stage still sees the tenant. Everything else needs a grant covering the whole scope.
const VISIBILITY = new Set(['tenant:read', 'stage:read']);

function covers(g: GrantView, tenantName: string | undefined, stageName: string | undefined, permission: string): boolean {
  if (g.tenantId !== null && g.tenantName !== tenantName) return false;
  if (g.stageId === null) return true;
  if (stageName !== undefined) return g.stageName === stageName;
  return VISIBILITY.has(permission);
}

/** The caller's grant that allows `permission` on the tenant (and stage) named, if any. */
export function grantFor(auth: AuthContext, permission: string, scope: { tenant?: string; stage?: string } = {}): GrantView | undefined {
  return auth.grants.find((g) => {
    if (!g.permissions.includes(permission)) return false;
    if (scope.tenant === undefined) return g.tenantId === null;
    return covers(g, scope.tenant, scope.stage, permission);
  });
}

/** Whether the caller may use `permission` on the tenant (and stage) named, if any. */
export function can(auth: AuthContext, permission: string, scope: { tenant?: string; stage?: string } = {}): boolean {
  return grantFor(auth, permission, scope) !== undefined;
}

/** Whether the caller holds any grant at all on the tenant (or platform-wide). */
export function seesTenant(auth: AuthContext, tenant: string): boolean {
  return auth.grants.some((g) => g.tenantId === null || g.tenantName === tenant);
}

/**
 * Enforces a route's declared access and returns the grant that allowed it (for last-use
 * tracking), if a grant was needed. A caller with no grant on the tenant named in the path gets
 * the same 404 as for a tenant that does not exist, so tenants cannot be enumerated. End-user
 * tokens only open their own stage's app routes; console tokens never open those.
 */
export function authorize(meta: RequestMeta, acc: RouteAccess, params: Record<string, string | undefined>): GrantView | undefined {
  if (acc.kind === 'public') return undefined;
  const auth = meta.auth;
  if (!auth) throw new AccordError(meta.authError ?? 'IAM_UNAUTHENTICATED');
  if (acc.kind === 'end-user') {
    // API clients where the route lets them in (the route kit checks the client's tenant).
    if (acc.clients === true && auth.kind === 'client') return undefined;
    const scope = auth.endUser;
    if (auth.kind !== 'end-user' || !scope) throw new AccordError('IAM_WRONG_AUDIENCE', { message: 'This route needs an end-user token of this stage (POST /t/{tenant}/{stage}/auth/login).' });
    if (scope.tenant !== params[acc.tenantParam] || scope.stage !== params[acc.stageParam]) {
      throw new AccordError('IAM_WRONG_AUDIENCE', { message: 'This end-user token belongs to another stage.' });
    }
    return undefined;
  }
  if (auth.kind === 'end-user') throw new AccordError('IAM_WRONG_AUDIENCE', { message: 'End-user tokens are only valid on their stage (/t/{tenant}/{stage}/...).' });
  if (auth.enrolmentOnly && !(acc.kind === 'authenticated' && acc.enrolment === true)) throw new AccordError('IAM_MFA_ENROLMENT_REQUIRED');
  if (acc.kind === 'authenticated') return undefined;
  const tenant = acc.tenantParam === undefined ? undefined : params[acc.tenantParam];
  const stage = acc.stageParam === undefined ? undefined : params[acc.stageParam];
  if (tenant !== undefined && !seesTenant(auth, tenant)) {
    throw new AccordError('TENANCY_TENANT_NOT_FOUND', { details: { tenant } });
  }
  const grant = grantFor(auth, acc.permission, { ...(tenant === undefined ? {} : { tenant }), ...(stage === undefined ? {} : { stage }) });
  if (!grant) throw new AccordError('IAM_FORBIDDEN', { details: { permission: acc.permission } });
  return grant;
}
