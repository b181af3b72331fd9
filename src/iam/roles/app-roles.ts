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

/** One app role held by a tenant user or API client in one app on one stage. */
export interface AppRoleGrantView {
  readonly id: string;
  /** The user's email; null for a grant to an API client. */
  readonly user: string | null;
  /** The API client's name; null for a grant to a user. */
  readonly client: string | null;
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

/** Who an app-role grant is for: a tenant user by email, or an API client of the tenant by name. */
export type AppRolePrincipal = { readonly email: string; readonly client?: undefined } | { readonly client: string; readonly email?: undefined };

type Holder = { kind: 'user'; id: string; label: string } | { kind: 'client'; id: string; label: string };

async function holderOf(db: DbOrTrx, scope: StageScope, who: AppRolePrincipal): Promise<Holder> {
  if (who.client !== undefined) {
    // A revoked client keeps its row (its history); it cannot be given new grants.
    const c = await db.selectFrom('accord.api_clients').select(['id', 'name']).where('tenant_id', '=', scope.tenantId).where('name', '=', who.client).where('revoked_at', 'is', null).executeTakeFirst();
    if (!c) throw new AccordError('IAM_CLIENT_NOT_FOUND', { details: { name: who.client } });
    return { kind: 'client', id: c.id, label: c.name };
  }
  const user = await findUserByEmail(db, scope.tenantId, who.email);
  if (!user) throw new AccordError('IAM_USER_NOT_FOUND', { details: { email: normaliseEmail(who.email) } });
  return { kind: 'user', id: user.id, label: user.email };
}

/** The app-role grants of a stage, optionally of one app, one user or one API client. */
export async function listAppRoleGrants(db: DbOrTrx, scope: StageScope, filter: { app?: string | undefined; user?: string | undefined; client?: string | undefined } = {}): Promise<AppRoleGrantView[]> {
  let q = db
    .selectFrom('accord.app_role_grants as a')
    .leftJoin('accord.users as u', 'u.id', 'a.user_id')
    .leftJoin('accord.api_clients as c', 'c.id', 'a.client_id')
    .leftJoin('accord.users as by', 'by.id', 'a.granted_by')
    .select(['a.id', 'u.email', 'c.name as client', 'a.app', 'a.role', 'a.created_at', 'a.last_used_at', 'by.email as granted_by'])
    .where('a.stage_id', '=', scope.stageId);
  if (filter.app !== undefined) q = q.where('a.app', '=', filter.app);
  if (filter.user !== undefined) q = q.where('u.email', '=', normaliseEmail(filter.user));
  if (filter.client !== undefined) q = q.where('c.name', '=', filter.client);
  const rows = await q.orderBy('a.app').orderBy('a.role').orderBy('u.email').orderBy('c.name').execute();
  return rows.map((r) => ({
    id: r.id,
    user: r.email,
    client: r.client,
    app: r.app,
    role: r.role,
    stage: scope.stageName,
    grantedAt: r.created_at.toISOString(),
    grantedBy: r.granted_by,
    lastUsedAt: r.last_used_at?.toISOString() ?? null,
  }));
}

/**
 * Grants an app role to a tenant user or API client on one stage. App roles are defined by each
 * app and mean something only inside it; they carry no platform permission. Granting an existing
 * grant again changes nothing, records nothing (the trail holds what changed, and the grant's own
 * event is already in it) and answers the existing grant with `created: false`.
 */
export async function grantAppRole(
  db: Db,
  actor: AuthContext,
  source: AuditSource,
  scope: StageScope,
  input: AppRolePrincipal & { app: string; role: string },
): Promise<AppRoleGrantView & { created: boolean }> {
  return unitOfWork(db, source, async ({ trx, audit }) => {
    const holder = await holderOf(trx, scope, input);
    const base = { tenant_id: scope.tenantId, stage_id: scope.stageId, app: input.app, role: input.role, granted_by: actor.kind === 'user' ? actor.principalId : null, last_used_at: null };
    const inserted =
      holder.kind === 'user'
        ? await trx
            .insertInto('accord.app_role_grants')
            .values({ ...base, user_id: holder.id })
            .onConflict((oc) => oc.columns(['stage_id', 'app', 'role', 'user_id']).doNothing())
            .returning('id')
            .executeTakeFirst()
        : await trx
            .insertInto('accord.app_role_grants')
            .values({ ...base, user_id: null, client_id: holder.id })
            // The partial unique index of client grants (014-client-app-roles).
            .onConflict((oc) => oc.columns(['stage_id', 'app', 'role', 'client_id']).where('client_id', 'is not', null).doNothing())
            .returning('id')
            .executeTakeFirst();
    if (inserted) {
      await audit({
        tenantId: scope.tenantId,
        action: 'app-role.granted',
        target: { type: holder.kind, id: holder.id },
        outcome: 'success',
        details: { app: input.app, role: input.role, stage: scope.stageName },
      });
    }
    const filter = holder.kind === 'user' ? { user: holder.label } : { client: holder.label };
    const [grant] = (await listAppRoleGrants(trx, scope, { app: input.app, ...filter })).filter((g) => g.role === input.role);
    if (!grant) throw new Error('app-role grant vanished inside its own transaction');
    return { ...grant, created: inserted !== undefined };
  });
}

/** Revokes one app-role grant of a user or API client; IAM_GRANT_NOT_FOUND when there is none. */
export async function revokeAppRole(db: Db, source: AuditSource, scope: StageScope, input: AppRolePrincipal & { app: string; role: string }): Promise<void> {
  await unitOfWork(db, source, async ({ trx, audit }) => {
    const holder = await holderOf(trx, scope, input);
    const gone = await trx
      .deleteFrom('accord.app_role_grants')
      .where('stage_id', '=', scope.stageId)
      .where('app', '=', input.app)
      .where('role', '=', input.role)
      .where(holder.kind === 'user' ? 'user_id' : 'client_id', '=', holder.id)
      .returning('id')
      .executeTakeFirst();
    const who = holder.kind === 'user' ? { email: holder.label } : { client: holder.label };
    if (!gone) throw new AccordError('IAM_GRANT_NOT_FOUND', { details: { ...who, app: input.app, role: input.role, stage: scope.stageName } });
    await audit({
      tenantId: scope.tenantId,
      action: 'app-role.revoked',
      target: { type: holder.kind, id: holder.id },
      outcome: 'success',
      details: { app: input.app, role: input.role, stage: scope.stageName },
    });
  });
}
