import type { Trx } from '../../db/index.ts';
import { AccordError, isAccordError } from '../../errors/index.ts';
import type { AuthContext, ScopeTenant } from '../../http/index.ts';
import { can } from '../authorize.ts';
import { missingOnTenant } from '../roles/custom-roles.ts';
import { rolePermissions } from '../roles/resolve.ts';

/** The tenant an admin action applies to (a stage, where there is one, is named per grant). */
export interface TenantScope {
  readonly tenantId: string;
  readonly tenantName: string;
}

/** The scope of the tenant a request path names, as the route kit resolved it (no query). */
export const scopeOf = (tenant: ScopeTenant): TenantScope => ({ tenantId: tenant.id, tenantName: tenant.name });

/**
 * What an admin action touches, and so what standing it needs:
 * - `user`: a tenant user (by id). The caller must hold every role the user holds on the tenant.
 * - `session`: a session (by id); the standing of its user.
 * - `client`: an API client (by row id). The caller must hold every role the client holds:
 *   rotating hands out a secret carrying the client's powers.
 * - `role`: a role the caller names, to grant (or revoke by name) on the tenant or one stage.
 *   The caller must hold all its permissions there; an unknown role is IAM_ROLE_UNKNOWN.
 * - `grant`: a grant read from the catalog (an access review revoking it). As `role`, except that
 *   a grant of a custom role deleted since carries nothing and anyone may remove it.
 * - `appRoleGrant`: an app-role grant on a stage. App roles carry no platform permission, so the
 *   standing is `user:manage` on that stage (IAM_FORBIDDEN otherwise): what the app-role routes
 *   require of their callers anyway, and what an access reviewer must hold to revoke one.
 */
export type StandingTarget =
  | { readonly user: string }
  | { readonly session: string }
  | { readonly client: string }
  | { readonly role: string; readonly stage?: string | null | undefined }
  | { readonly grant: { readonly role: string; readonly stage: string | null } }
  | { readonly appRoleGrant: { readonly stage: string } };

/**
 * The one standing check of every admin action on another principal: may `actor` act on
 * `target`? Throws IAM_GRANT_ESCALATION (details: the role and the permissions missing) when it
 * may not. Runs inside the action's unit of work, so the grants it reads are the ones the change
 * is made against (a role granted to the target meanwhile is seen, or waits for this transaction).
 *
 * The rule is the same for every target: nobody may act on a principal, or hand out or take
 * away a grant, with powers they do not hold themselves. A tenant admin cannot lock out, reset or
 * end the sessions of someone with more powers, nor obtain a secret of a client that has them.
 */
export async function requireStanding(trx: Trx, actor: AuthContext, scope: TenantScope, target: StandingTarget): Promise<void> {
  if ('role' in target) return holdsRole(trx, actor, scope, target.role, target.stage);
  if ('grant' in target) return holdsHeldGrant(trx, actor, scope, target.grant);
  if ('appRoleGrant' in target) {
    const { stage } = target.appRoleGrant;
    if (can(actor, 'user:manage', { tenant: scope.tenantName, stage })) return;
    throw new AccordError('IAM_FORBIDDEN', { message: 'Revoking an app role needs user:manage on its stage.', details: { permission: 'user:manage', stage } });
  }
  let q = trx
    .selectFrom('accord.role_grants as g')
    .leftJoin('accord.stages as s', 's.id', 'g.stage_id')
    .select(['g.role', 's.name as stage'])
    .where('g.tenant_id', '=', scope.tenantId);
  if ('client' in target) q = q.where('g.client_id', '=', target.client);
  else if ('user' in target) q = q.where('g.user_id', '=', target.user);
  else q = q.where('g.user_id', '=', (eb) => eb.selectFrom('accord.sessions').select('user_id').where('id', '=', target.session));
  for (const g of await q.orderBy('g.role').execute()) await holdsHeldGrant(trx, actor, scope, g);
}

/** A grant that exists: a custom role deleted since carries nothing, so it protects nobody. */
async function holdsHeldGrant(trx: Trx, actor: AuthContext, scope: TenantScope, grant: { role: string; stage: string | null }): Promise<void> {
  await holdsRole(trx, actor, scope, grant.role, grant.stage).catch((err) => {
    if (!isAccordError(err, 'IAM_ROLE_UNKNOWN')) throw err;
  });
}

/** Throws IAM_GRANT_ESCALATION unless the actor holds every permission of `role` at the scope. */
async function holdsRole(trx: Trx, actor: AuthContext, scope: TenantScope, role: string, stage: string | null | undefined): Promise<void> {
  const perms = await rolePermissions(trx, scope.tenantId, role);
  // A tenant-wide grant needs the permissions on the whole tenant: a grant limited to one stage
  // lets its holder see the tenant (can() says yes to tenant:read and stage:read), yet it holds
  // them on no other stage and must not hand them out there.
  const missing = stage ? perms.filter((p) => !can(actor, p, { tenant: scope.tenantName, stage })) : missingOnTenant(actor, scope.tenantName, perms);
  if (missing.length > 0) throw new AccordError('IAM_GRANT_ESCALATION', { details: { role, missing } });
}
