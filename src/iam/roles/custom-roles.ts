import type { AuditSource } from '../../audit-chain/index.ts';
import type { Db, DbOrTrx } from '../../db/index.ts';
import { AccordError } from '../../errors/index.ts';
import type { AuthContext } from '../../http/index.ts';
import { unitOfWork } from '../../kernel/index.ts';
import { builtInRoles, isPermission, isReservedRoleName, permissions as catalog, platformOnlyPermissions } from '../permissions.ts';

/** The tenant a role belongs to. */
export interface RoleScope {
  readonly tenantId: string;
  readonly tenantName: string;
}

/** A role as the tenant's admins see it: built-in (fixed) or one of the tenant's own. */
export interface RoleView {
  readonly name: string;
  readonly description: string;
  readonly permissions: readonly string[];
  readonly builtIn: boolean;
}

export const ROLE_NAME = '^[a-z][a-z0-9-]{1,62}$';
export const MAX_ROLE_PERMISSIONS = 50;

const isUniqueViolation = (err: unknown): boolean => (err as { code?: string })?.code === '23505';

/**
 * The permissions of `wanted` the actor does not hold on the whole tenant. A role defined here
 * applies on every stage it is granted on, so a grant limited to one stage does not count, not
 * even for tenant:read and stage:read (which such a grant lets its holder use tenant-wide only to
 * see the tenant: can() answers yes for them, yet the holder has them on no other stage).
 */
export function missingOnTenant(actor: AuthContext, tenantName: string, wanted: readonly string[]): string[] {
  return wanted.filter(
    (p) => !actor.grants.some((g) => g.permissions.includes(p) && (g.tenantId === null || (g.tenantName === tenantName && g.stageId === null))),
  );
}

/** Throws IAM_PERMISSION_UNKNOWN for names outside the catalog or only meaningful platform-wide. */
export function assertTenantPermissions(perms: readonly string[]): void {
  const bad = perms.filter((p) => !isPermission(p) || platformOnlyPermissions.includes(p));
  if (bad.length > 0) {
    throw new AccordError('IAM_PERMISSION_UNKNOWN', { message: `Not in the catalog, or platform-wide only: ${bad.join(', ')}.`, details: { permissions: bad } });
  }
}

function assertHolds(actor: AuthContext, scope: RoleScope, role: string, perms: readonly string[]): void {
  const missing = missingOnTenant(actor, scope.tenantName, perms);
  if (missing.length > 0) {
    throw new AccordError('IAM_GRANT_ESCALATION', { message: `You do not hold these permissions on the whole tenant: ${missing.join(', ')}.`, details: { role, missing } });
  }
}

// The catalog's order, so the same set always reads the same way (and compares in audit diffs).
const ordered = (perms: readonly string[]): string[] => {
  const set = new Set(perms);
  return Object.keys(catalog).filter((p) => set.has(p));
};

/** The roles usable on a tenant: built-in ones (except platform-operator, never granted on a tenant) and its custom ones. */
export async function listTenantRoles(db: DbOrTrx, tenantId: string): Promise<RoleView[]> {
  const custom = await db.selectFrom('accord.custom_roles').select(['name', 'description', 'permissions']).where('tenant_id', '=', tenantId).orderBy('name').execute();
  return [
    ...Object.entries(builtInRoles)
      .filter(([name]) => name !== 'platform-operator')
      .map(([name, r]) => ({ name, description: r.description, permissions: [...r.permissions], builtIn: true })),
    ...custom.map((c) => ({ name: c.name, description: c.description, permissions: c.permissions, builtIn: false })),
  ];
}

/**
 * Defines a custom role on a tenant. Its permissions must come from the catalog (not the
 * platform-only ones), and the creator must hold every one of them on the whole tenant.
 */
export async function createCustomRole(
  db: Db,
  actor: AuthContext,
  source: AuditSource,
  scope: RoleScope,
  input: { name: string; description?: string | undefined; permissions: readonly string[] },
): Promise<RoleView> {
  if (isReservedRoleName(input.name)) throw new AccordError('IAM_ROLE_NAME_RESERVED', { details: { role: input.name } });
  if (Object.hasOwn(builtInRoles, input.name)) throw new AccordError('IAM_ROLE_EXISTS', { message: `${input.name} is a built-in role.`, details: { role: input.name } });
  assertTenantPermissions(input.permissions);
  const permissions = ordered(input.permissions);
  assertHolds(actor, scope, input.name, permissions);
  try {
    return await unitOfWork(db, source, async ({ trx, audit }) => {
      // Grants naming a role that no longer exists carry nothing; a new role of that name would
      // silently hand its powers to them (a grant racing a deletion can leave one behind).
      const orphans = await trx
        .selectFrom('accord.role_grants')
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .where('tenant_id', '=', scope.tenantId)
        .where('role', '=', input.name)
        .executeTakeFirstOrThrow();
      if (Number(orphans.n) > 0) {
        throw new AccordError('IAM_ROLE_IN_USE', {
          message: `Grants of an earlier role named ${input.name} still exist; revoke them first.`,
          details: { role: input.name, grants: Number(orphans.n) },
        });
      }
      const description = input.description ?? '';
      const row = await trx
        .insertInto('accord.custom_roles')
        .values({ tenant_id: scope.tenantId, name: input.name, description, permissions })
        .returning('id')
        .executeTakeFirstOrThrow();
      await audit({
        tenantId: scope.tenantId,
        action: 'role.created',
        target: { type: 'role', id: row.id },
        outcome: 'success',
        details: { role: input.name, description, permissions },
      });
      return { name: input.name, description, permissions, builtIn: false };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw new AccordError('IAM_ROLE_EXISTS', { details: { role: input.name }, cause: err });
    throw err;
  }
}

async function lockedRole(db: DbOrTrx, scope: RoleScope, name: string) {
  const row = await db
    .selectFrom('accord.custom_roles')
    .select(['id', 'name', 'description', 'permissions'])
    .where('tenant_id', '=', scope.tenantId)
    .where('name', '=', name)
    .forUpdate()
    .executeTakeFirst();
  if (!row) throw new AccordError('IAM_ROLE_NOT_FOUND', { details: { role: name } });
  return row;
}

/**
 * Changes a custom role's description or permissions. A change reaches every holder at once, so
 * the editor must hold every permission the role has now (or it could strip powers it does not
 * have from others) and every permission it will have (or it could hand them out).
 */
export async function updateCustomRole(
  db: Db,
  actor: AuthContext,
  source: AuditSource,
  scope: RoleScope,
  name: string,
  input: { description?: string | undefined; permissions?: readonly string[] | undefined },
): Promise<RoleView> {
  if (input.permissions) assertTenantPermissions(input.permissions);
  return unitOfWork(db, source, async ({ trx, audit }) => {
    const before = await lockedRole(trx, scope, name);
    const permissions = input.permissions ? ordered(input.permissions) : before.permissions;
    assertHolds(actor, scope, name, [...new Set([...before.permissions, ...permissions])]);
    const description = input.description ?? before.description;
    await trx.updateTable('accord.custom_roles').set({ description, permissions, updated_at: new Date() }).where('id', '=', before.id).execute();
    await audit({
      tenantId: scope.tenantId,
      action: 'role.updated',
      target: { type: 'role', id: before.id },
      outcome: 'success',
      details: {
        role: name,
        before: { description: before.description, permissions: before.permissions },
        after: { description, permissions },
      },
    });
    return { name, description, permissions, builtIn: false };
  });
}

/**
 * Deletes a custom role nobody holds and no MFA policy names. The deleter must hold its
 * permissions, like any other change of it.
 */
export async function deleteCustomRole(db: Db, actor: AuthContext, source: AuditSource, scope: RoleScope, name: string): Promise<void> {
  await unitOfWork(db, source, async ({ trx, audit }) => {
    // The tenant row first: the MFA policy's role list changes under this lock too.
    const tenant = await trx.selectFrom('accord.tenants').select('mfa_required_roles').where('id', '=', scope.tenantId).forUpdate().executeTakeFirstOrThrow();
    const role = await lockedRole(trx, scope, name);
    assertHolds(actor, scope, name, role.permissions);
    const used = await trx
      .selectFrom('accord.role_grants')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('tenant_id', '=', scope.tenantId)
      .where('role', '=', name)
      .executeTakeFirstOrThrow();
    if (Number(used.n) > 0) {
      throw new AccordError('IAM_ROLE_IN_USE', { message: `The role is still granted ${used.n} time(s); revoke those grants first.`, details: { role: name, grants: Number(used.n) } });
    }
    if (tenant.mfa_required_roles.includes(name)) {
      throw new AccordError('IAM_ROLE_IN_USE', {
        message: "The tenant's MFA policy names this role; change the policy first.",
        details: { role: name, grants: 0, mfaRequiredRoles: tenant.mfa_required_roles },
      });
    }
    await trx.deleteFrom('accord.custom_roles').where('id', '=', role.id).execute();
    await audit({
      tenantId: scope.tenantId,
      action: 'role.deleted',
      target: { type: 'role', id: role.id },
      outcome: 'success',
      details: { role: name, permissions: role.permissions },
    });
  });
}
