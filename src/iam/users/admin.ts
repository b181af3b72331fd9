import { sql } from 'kysely';
import { type AuditSource, record } from '../../audit-chain/index.ts';
import type { Db, DbOrTrx } from '../../db/index.ts';
import { AccordError } from '../../errors/index.ts';
import type { AuthContext } from '../../http/index.ts';
import { getTenant } from '../../tenancy/index.ts';
import { can } from '../authorize.ts';
import { checkPasswordPolicy } from '../account/passwords.ts';
import { missingOnTenant } from '../roles/custom-roles.ts';
import { rolePermissions } from '../roles/resolve.ts';
import { createUser, findUserByEmail, grantRole, normaliseEmail } from './users.ts';

/** Where an admin action applies: a tenant, and optionally one of its stages. */
export interface TenantScope {
  readonly tenantId: string;
  readonly tenantName: string;
}

/** The scope of a tenant named in a path (TENANCY_TENANT_NOT_FOUND when there is none). */
export async function tenantScope(db: DbOrTrx, tenantName: string): Promise<TenantScope> {
  const t = await getTenant(db, tenantName);
  return { tenantId: t.id, tenantName: t.name };
}

const isUniqueViolation = (err: unknown): boolean => (err as { code?: string })?.code === '23505';

/** A user as tenant admins see them. */
export interface UserView {
  readonly id: string;
  readonly email: string;
  readonly displayName: string;
  readonly status: string;
  readonly grants: readonly { role: string; stage: string | null }[];
}

/** Creates a user in a tenant's directory with a password; audited. */
export async function createTenantUser(
  db: Db,
  source: AuditSource,
  scope: TenantScope,
  input: { email: string; password: string; displayName?: string | undefined },
): Promise<UserView> {
  checkPasswordPolicy(input.password, input.email);
  try {
    return await db.transaction().execute(async (trx) => {
      const id = await createUser(trx, { tenantId: scope.tenantId, email: input.email, password: input.password, displayName: input.displayName ?? '' });
      await record(trx, source, { tenantId: scope.tenantId, action: 'user.created', target: { type: 'user', id }, outcome: 'success', details: { email: normaliseEmail(input.email) } });
      return { id, email: normaliseEmail(input.email), displayName: input.displayName ?? '', status: 'active', grants: [] };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw new AccordError('IAM_USER_EXISTS', { details: { email: normaliseEmail(input.email) }, cause: err });
    throw err;
  }
}

/** The tenant's users with their grants. */
export async function listTenantUsers(db: DbOrTrx, scope: TenantScope): Promise<UserView[]> {
  const users = await db.selectFrom('accord.users').select(['id', 'email', 'display_name', 'status']).where('tenant_id', '=', scope.tenantId).orderBy('email').execute();
  const grants = await db
    .selectFrom('accord.role_grants as g')
    .leftJoin('accord.stages as s', 's.id', 'g.stage_id')
    .select(['g.user_id', 'g.role', 's.name as stage'])
    .where('g.tenant_id', '=', scope.tenantId)
    .orderBy('g.role')
    .execute();
  return users.map((u) => ({
    id: u.id,
    email: u.email,
    displayName: u.display_name,
    status: u.status,
    grants: grants.filter((g) => g.user_id === u.id).map((g) => ({ role: g.role, stage: g.stage })),
  }));
}

async function tenantUser(db: DbOrTrx, scope: TenantScope, email: string) {
  const user = await findUserByEmail(db, scope.tenantId, email);
  if (!user) throw new AccordError('IAM_USER_NOT_FOUND', { details: { email: normaliseEmail(email) } });
  return user;
}

/** Throws IAM_GRANT_ESCALATION unless the actor holds every permission of `role` at the scope. */
export async function assertHoldsRole(db: DbOrTrx, actor: AuthContext, role: string, scope: TenantScope, stage: string | null | undefined): Promise<void> {
  const perms = await rolePermissions(db, scope.tenantId, role);
  // A tenant-wide grant needs the permissions on the whole tenant: a grant limited to one stage
  // lets its holder see the tenant (can() says yes to tenant:read and stage:read), yet it holds
  // them on no other stage and must not hand them out there.
  const missing = stage ? perms.filter((p) => !can(actor, p, { tenant: scope.tenantName, stage })) : missingOnTenant(actor, scope.tenantName, perms);
  if (missing.length > 0) throw new AccordError('IAM_GRANT_ESCALATION', { details: { role, missing } });
}

/**
 * Whoever disables, deletes or re-enables a user must hold every permission of every role that
 * user holds on the tenant: a tenant admin cannot lock out someone with powers it does not have.
 */
export async function assertOutranks(db: DbOrTrx, actor: AuthContext, scope: TenantScope, userId: string): Promise<void> {
  const grants = await db
    .selectFrom('accord.role_grants as g')
    .leftJoin('accord.stages as s', 's.id', 'g.stage_id')
    .select(['g.role', 's.name as stage'])
    .where('g.user_id', '=', userId)
    .where('g.tenant_id', '=', scope.tenantId)
    .execute();
  for (const g of grants) {
    // A grant of a custom role deleted since carries nothing: it does not protect its holder.
    await assertHoldsRole(db, actor, g.role, scope, g.stage).catch((err) => {
      if ((err as AccordError).code !== 'IAM_ROLE_UNKNOWN') throw err;
    });
  }
}

/** Disables or re-enables a user; disabling also ends their sessions. */
export async function setUserStatus(db: Db, actor: AuthContext, source: AuditSource, scope: TenantScope, email: string, status: 'active' | 'disabled'): Promise<void> {
  await db.transaction().execute(async (trx) => {
    const user = await tenantUser(trx, scope, email);
    await assertOutranks(trx, actor, scope, user.id);
    await trx.updateTable('accord.users').set({ status }).where('id', '=', user.id).execute();
    if (status === 'disabled') {
      await trx.updateTable('accord.sessions').set({ revoked_at: sql`now()` }).where('user_id', '=', user.id).where('revoked_at', 'is', null).execute();
    }
    await record(trx, source, { tenantId: scope.tenantId, action: status === 'disabled' ? 'user.disabled' : 'user.enabled', target: { type: 'user', id: user.id }, outcome: 'success' });
  });
}

/** Deletes a user, their grants and sessions. */
export async function deleteTenantUser(db: Db, actor: AuthContext, source: AuditSource, scope: TenantScope, email: string): Promise<void> {
  await db.transaction().execute(async (trx) => {
    const user = await tenantUser(trx, scope, email);
    await assertOutranks(trx, actor, scope, user.id);
    await trx.deleteFrom('accord.users').where('id', '=', user.id).execute();
    await record(trx, source, { tenantId: scope.tenantId, action: 'user.deleted', target: { type: 'user', id: user.id }, outcome: 'success', details: { email: user.email } });
  });
}

/**
 * Grants a role to a tenant user, optionally limited to one stage. The granter must hold every
 * permission of the role on that scope: nobody can hand out (or, by granting themselves, gain)
 * more than they have.
 */
export async function grantTenantRole(
  db: Db,
  granter: AuthContext,
  source: AuditSource,
  scope: TenantScope,
  input: { email: string; role: string; stage?: { id: string; name: string } | undefined },
): Promise<void> {
  if (input.role === 'platform-operator') throw new AccordError('IAM_GRANT_ESCALATION', { message: 'platform-operator is granted platform-wide only, not on a tenant.' });
  await assertHoldsRole(db, granter, input.role, scope, input.stage?.name);
  await db.transaction().execute(async (trx) => {
    const user = await tenantUser(trx, scope, input.email);
    await grantRole(trx, { userId: user.id, role: input.role, tenantId: scope.tenantId, stageId: input.stage?.id ?? null, grantedBy: granter.kind === 'user' ? granter.principalId : null });
    await record(trx, source, {
      tenantId: scope.tenantId,
      action: 'role.granted',
      target: { type: 'user', id: user.id },
      outcome: 'success',
      details: { role: input.role, stage: input.stage?.name ?? null },
    });
  });
}

/** Revokes one grant. The revoker needs the same standing as for granting it. */
export async function revokeTenantRole(
  db: Db,
  revoker: AuthContext,
  source: AuditSource,
  scope: TenantScope,
  input: { email: string; role: string; stage?: { id: string; name: string } | undefined },
): Promise<void> {
  await assertHoldsRole(db, revoker, input.role, scope, input.stage?.name);
  await db.transaction().execute(async (trx) => {
    const user = await tenantUser(trx, scope, input.email);
    let q = trx.deleteFrom('accord.role_grants').where('user_id', '=', user.id).where('role', '=', input.role).where('tenant_id', '=', scope.tenantId);
    q = input.stage ? q.where('stage_id', '=', input.stage.id) : q.where('stage_id', 'is', null);
    const res = await q.executeTakeFirst();
    if (Number(res.numDeletedRows) === 0) throw new AccordError('IAM_GRANT_NOT_FOUND', { details: { email: user.email, role: input.role } });
    await record(trx, source, {
      tenantId: scope.tenantId,
      action: 'role.revoked',
      target: { type: 'user', id: user.id },
      outcome: 'success',
      details: { role: input.role, stage: input.stage?.name ?? null },
    });
  });
}
