import type { AuditSource } from '../../audit-chain/index.ts';
import type { Db, DbOrTrx } from '../../db/index.ts';
import { AccordError } from '../../errors/index.ts';
import type { AuthContext, ScopeStage, ScopeTenant } from '../../http/index.ts';
import { unitOfWork } from '../../kernel/index.ts';
import { findUserByEmail, normaliseEmail } from '../users/users.ts';

/** A stage of a tenant, resolved from the path. */
export interface StageScope {
  readonly tenantId: string;
  readonly tenantName: string;
  readonly stageId: string;
  readonly stageName: string;
}

/** The scope of the tenant and stage a request path names, as the route kit resolved them. */
export const stageScopeOf = (tenant: ScopeTenant, stage: ScopeStage): StageScope => ({ tenantId: tenant.id, tenantName: tenant.name, stageId: stage.id, stageName: stage.name });

/** One app role held by a tenant user in one app on one stage. */
export interface AppRoleGrantView {
  readonly id: string;
  readonly user: string;
  readonly app: string;
  readonly role: string;
  readonly stage: string;
  readonly grantedAt: string;
  readonly grantedBy: string | null;
  readonly lastUsedAt: string | null;
}

export const APP_NAME = '^[a-z][a-z0-9-]{0,62}$';
// App roles are named by the app's manifest (Employee, Manager): its rule, not the app-name rule.
export const APP_ROLE_NAME = '^[A-Za-z][A-Za-z0-9_-]{0,62}$';

async function stageUser(db: DbOrTrx, scope: StageScope, email: string) {
  const user = await findUserByEmail(db, scope.tenantId, email);
  if (!user) throw new AccordError('IAM_USER_NOT_FOUND', { details: { email: normaliseEmail(email) } });
  return user;
}

/** The app-role grants of a stage, optionally of one app or one user. */
export async function listAppRoleGrants(db: DbOrTrx, scope: StageScope, filter: { app?: string | undefined; user?: string | undefined } = {}): Promise<AppRoleGrantView[]> {
  let q = db
    .selectFrom('accord.app_role_grants as a')
    .innerJoin('accord.users as u', 'u.id', 'a.user_id')
    .leftJoin('accord.users as by', 'by.id', 'a.granted_by')
    .select(['a.id', 'u.email', 'a.app', 'a.role', 'a.created_at', 'a.last_used_at', 'by.email as granted_by'])
    .where('a.stage_id', '=', scope.stageId);
  if (filter.app !== undefined) q = q.where('a.app', '=', filter.app);
  if (filter.user !== undefined) q = q.where('u.email', '=', normaliseEmail(filter.user));
  const rows = await q.orderBy('a.app').orderBy('a.role').orderBy('u.email').execute();
  return rows.map((r) => ({
    id: r.id,
    user: r.email,
    app: r.app,
    role: r.role,
    stage: scope.stageName,
    grantedAt: r.created_at.toISOString(),
    grantedBy: r.granted_by,
    lastUsedAt: r.last_used_at?.toISOString() ?? null,
  }));
}

/**
 * Grants an app role to a tenant user on one stage. App roles are defined by each app and mean
 * something only inside it; they carry no platform permission. Granting an existing grant again
 * changes nothing, records nothing (the trail holds what changed, and the grant's own event is
 * already in it) and answers the existing grant with `created: false`.
 */
export async function grantAppRole(
  db: Db,
  actor: AuthContext,
  source: AuditSource,
  scope: StageScope,
  input: { email: string; app: string; role: string },
): Promise<AppRoleGrantView & { created: boolean }> {
  return unitOfWork(db, source, async ({ trx, audit }) => {
    const user = await stageUser(trx, scope, input.email);
    const inserted = await trx
      .insertInto('accord.app_role_grants')
      .values({ tenant_id: scope.tenantId, stage_id: scope.stageId, app: input.app, role: input.role, user_id: user.id, granted_by: actor.kind === 'user' ? actor.principalId : null, last_used_at: null })
      .onConflict((oc) => oc.columns(['stage_id', 'app', 'role', 'user_id']).doNothing())
      .returning('id')
      .executeTakeFirst();
    if (inserted) {
      await audit({
        tenantId: scope.tenantId,
        action: 'app-role.granted',
        target: { type: 'user', id: user.id },
        outcome: 'success',
        details: { app: input.app, role: input.role, stage: scope.stageName },
      });
    }
    const [grant] = (await listAppRoleGrants(trx, scope, { app: input.app, user: user.email })).filter((g) => g.role === input.role);
    if (!grant) throw new Error('app-role grant vanished inside its own transaction');
    return { ...grant, created: inserted !== undefined };
  });
}

/** Revokes one app-role grant; IAM_GRANT_NOT_FOUND when there is none. */
export async function revokeAppRole(db: Db, source: AuditSource, scope: StageScope, input: { email: string; app: string; role: string }): Promise<void> {
  await unitOfWork(db, source, async ({ trx, audit }) => {
    const user = await stageUser(trx, scope, input.email);
    const gone = await trx
      .deleteFrom('accord.app_role_grants')
      .where('stage_id', '=', scope.stageId)
      .where('app', '=', input.app)
      .where('role', '=', input.role)
      .where('user_id', '=', user.id)
      .returning('id')
      .executeTakeFirst();
    if (!gone) throw new AccordError('IAM_GRANT_NOT_FOUND', { details: { email: user.email, app: input.app, role: input.role, stage: scope.stageName } });
    await audit({
      tenantId: scope.tenantId,
      action: 'app-role.revoked',
      target: { type: 'user', id: user.id },
      outcome: 'success',
      details: { app: input.app, role: input.role, stage: scope.stageName },
    });
  });
}
