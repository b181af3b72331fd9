import type { DbOrTrx, Trx } from '../../db/index.ts';
import type { GrantView } from '../../http/index.ts';
import { hashPassword } from '../account/passwords.ts';
import { builtInRole } from '../permissions.ts';

/** Emails are compared case-insensitively; stored lower-case (a CHECK enforces it). */
export const normaliseEmail = (email: string): string => email.trim().toLowerCase();

/** Finds a user of a directory (null tenant: the platform directory) by email. */
export function findUserByEmail(db: DbOrTrx, tenantId: string | null, email: string) {
  let q = db.selectFrom('accord.users').selectAll().where('email', '=', normaliseEmail(email));
  q = tenantId === null ? q.where('tenant_id', 'is', null) : q.where('tenant_id', '=', tenantId);
  return q.executeTakeFirst();
}

/** Creates a user with a password and returns its id. The caller audits. */
export async function createUser(
  trx: Trx,
  input: { tenantId: string | null; email: string; password: string; displayName?: string },
): Promise<string> {
  const row = await trx
    .insertInto('accord.users')
    .values({
      tenant_id: input.tenantId,
      email: normaliseEmail(input.email),
      display_name: input.displayName ?? '',
      password_hash: await hashPassword(input.password),
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

/**
 * Grants a role, optionally limited to a tenant and a stage. The caller audits; false when the
 * user held that grant already (nothing was written, so there is nothing to audit).
 */
export async function grantRole(
  trx: Trx,
  grant: { userId: string; role: string; tenantId: string | null; stageId: string | null; grantedBy?: string | null },
): Promise<boolean> {
  const inserted = await trx
    .insertInto('accord.role_grants')
    .values({ user_id: grant.userId, role: grant.role, tenant_id: grant.tenantId, stage_id: grant.stageId, granted_by: grant.grantedBy ?? null })
    .onConflict((oc) => oc.doNothing())
    .returning('id')
    .executeTakeFirst();
  return inserted !== undefined;
}

/**
 * The query behind every grant list the authorizer uses: names of tenant and stage, and the
 * permissions of a custom role looked up in the grant's tenant. Callers add the principal.
 */
export function grantRowsQuery(db: DbOrTrx) {
  return db
    .selectFrom('accord.role_grants as g')
    // Aliases prefixed with g: this also runs as a subquery inside queries that use s and t.
    .leftJoin('accord.tenants as gt', 'gt.id', 'g.tenant_id')
    .leftJoin('accord.stages as gs', 'gs.id', 'g.stage_id')
    .leftJoin('accord.custom_roles as gc', (j) => j.onRef('gc.tenant_id', '=', 'g.tenant_id').onRef('gc.name', '=', 'g.role'))
    .select(['g.id', 'g.role', 'g.tenant_id', 'gt.name as tenant_name', 'g.stage_id', 'gs.name as stage_name', 'gc.permissions as custom']);
}

type GrantRow = { id: string; role: string; tenant_id: string | null; tenant_name: string | null; stage_id: string | null; stage_name: string | null; custom: string[] | null };

/** A grant row as the authorizer sees it. A role that no longer exists carries nothing (fail closed). */
export function toGrantView(r: GrantRow): GrantView {
  return {
    id: r.id,
    role: r.role,
    permissions: builtInRole(r.role)?.permissions ?? r.custom ?? [],
    tenantId: r.tenant_id,
    tenantName: r.tenant_name,
    stageId: r.stage_id,
    stageName: r.stage_name,
  };
}

/** A principal's grants with tenant and stage names and the role's permissions resolved. */
export async function grantsOf(db: DbOrTrx, principal: { userId: string } | { clientId: string }): Promise<GrantView[]> {
  const q = grantRowsQuery(db);
  const rows = await ('userId' in principal ? q.where('g.user_id', '=', principal.userId) : q.where('g.client_id', '=', principal.clientId)).execute();
  return rows.map(toGrantView);
}

/** Whether any platform operator exists (the installation has been set up). */
export async function hasOperator(db: DbOrTrx): Promise<boolean> {
  const row = await db
    .selectFrom('accord.role_grants')
    .select('id')
    .where('role', '=', 'platform-operator')
    .where('tenant_id', 'is', null)
    .limit(1)
    .executeTakeFirst();
  return row !== undefined;
}
