import { sql } from 'kysely';
import type { AuditSource } from '../../audit-chain/index.ts';
import type { Db, DbOrTrx, Trx } from '../../db/index.ts';
import { AccordError } from '../../errors/index.ts';
import type { AuthContext } from '../../http/index.ts';
import { unitOfWork } from '../../kernel/index.ts';
import { getTenant } from '../../tenancy/index.ts';
import { checkPasswordPolicy } from '../account/passwords.ts';
import { requireStanding, type TenantScope } from './standing.ts';
import { createUser, findUserByEmail, grantRole, normaliseEmail } from './users.ts';

export { scopeOf, type TenantScope } from './standing.ts';

/**
 * The scope of a tenant named in a path (TENANCY_TENANT_NOT_FOUND when there is none).
 * Converted routes use `scopeOf(ctx.tenant)` (no query); this stays for routes not moved yet.
 */
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
    return await unitOfWork(db, source, async ({ trx, audit }) => {
      const id = await createUser(trx, { tenantId: scope.tenantId, email: input.email, password: input.password, displayName: input.displayName ?? '' });
      await audit({ tenantId: scope.tenantId, action: 'user.created', target: { type: 'user', id }, outcome: 'success', details: { email: normaliseEmail(input.email) } });
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

/**
 * Whoever disables, deletes, resets or re-enables a user must hold every permission of every
 * role that user holds on the tenant: a tenant admin cannot lock out someone with powers it does
 * not have. The same check as `requireStanding(trx, actor, scope, { user: userId })`; kept under
 * this name for the account and MFA routes that call it.
 */
export function assertOutranks(trx: Trx, actor: AuthContext, scope: TenantScope, userId: string): Promise<void> {
  return requireStanding(trx, actor, scope, { user: userId });
}

/** Disables or re-enables a user; disabling also ends their sessions. */
export async function setUserStatus(db: Db, actor: AuthContext, source: AuditSource, scope: TenantScope, email: string, status: 'active' | 'disabled'): Promise<void> {
  await unitOfWork(db, source, async ({ trx, audit }) => {
    const user = await tenantUser(trx, scope, email);
    await requireStanding(trx, actor, scope, { user: user.id });
    await trx.updateTable('accord.users').set({ status }).where('id', '=', user.id).execute();
    if (status === 'disabled') {
      await trx.updateTable('accord.sessions').set({ revoked_at: sql`now()` }).where('user_id', '=', user.id).where('revoked_at', 'is', null).execute();
    }
    await audit({ tenantId: scope.tenantId, action: status === 'disabled' ? 'user.disabled' : 'user.enabled', target: { type: 'user', id: user.id }, outcome: 'success' });
  });
}

/** Deletes a user, their grants and sessions. */
export async function deleteTenantUser(db: Db, actor: AuthContext, source: AuditSource, scope: TenantScope, email: string): Promise<void> {
  await unitOfWork(db, source, async ({ trx, audit }) => {
    const user = await tenantUser(trx, scope, email);
    await requireStanding(trx, actor, scope, { user: user.id });
    await trx.deleteFrom('accord.users').where('id', '=', user.id).execute();
    await audit({ tenantId: scope.tenantId, action: 'user.deleted', target: { type: 'user', id: user.id }, outcome: 'success', details: { email: user.email } });
  });
}

/**
 * Grants a role to a tenant user, optionally limited to one stage. The granter must hold every
 * permission of the role on that scope: nobody can hand out (or, by granting themselves, gain)
 * more than they have. Granting a grant the user already holds changes nothing and records
 * nothing; returns whether this call granted it.
 */
export async function grantTenantRole(
  db: Db,
  granter: AuthContext,
  source: AuditSource,
  scope: TenantScope,
  input: { email: string; role: string; stage?: { id: string; name: string } | undefined },
): Promise<boolean> {
  if (input.role === 'platform-operator') throw new AccordError('IAM_GRANT_ESCALATION', { message: 'platform-operator is granted platform-wide only, not on a tenant.' });
  return unitOfWork(db, source, async ({ trx, audit }) => {
    await requireStanding(trx, granter, scope, { role: input.role, stage: input.stage?.name });
    const user = await tenantUser(trx, scope, input.email);
    const granted = await grantRole(trx, { userId: user.id, role: input.role, tenantId: scope.tenantId, stageId: input.stage?.id ?? null, grantedBy: granter.kind === 'user' ? granter.principalId : null });
    if (!granted) return false;
    await audit({
      tenantId: scope.tenantId,
      action: 'role.granted',
      target: { type: 'user', id: user.id },
      outcome: 'success',
      details: { role: input.role, stage: input.stage?.name ?? null },
    });
    return true;
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
  await unitOfWork(db, source, async ({ trx, audit }) => {
    await requireStanding(trx, revoker, scope, { role: input.role, stage: input.stage?.name });
    const user = await tenantUser(trx, scope, input.email);
    let q = trx.deleteFrom('accord.role_grants').where('user_id', '=', user.id).where('role', '=', input.role).where('tenant_id', '=', scope.tenantId);
    q = input.stage ? q.where('stage_id', '=', input.stage.id) : q.where('stage_id', 'is', null);
    const res = await q.executeTakeFirst();
    if (Number(res.numDeletedRows) === 0) throw new AccordError('IAM_GRANT_NOT_FOUND', { details: { email: user.email, role: input.role } });
    await audit({
      tenantId: scope.tenantId,
      action: 'role.revoked',
      target: { type: 'user', id: user.id },
      outcome: 'success',
      details: { role: input.role, stage: input.stage?.name ?? null },
    });
  });
}
