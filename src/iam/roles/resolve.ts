import type { DbOrTrx } from '../../db/index.ts';
import { AccordError } from '../../errors/index.ts';
import { builtInRole } from '../permissions.ts';

/**
 * The permissions of a role as granted on a tenant: a built-in role, or one of the tenant's
 * custom roles. Unknown roles are an error here (granting), never an empty set.
 */
export async function rolePermissions(db: DbOrTrx, tenantId: string | null, role: string): Promise<readonly string[]> {
  const builtIn = builtInRole(role);
  if (builtIn) return builtIn.permissions;
  if (tenantId !== null) {
    const custom = await db.selectFrom('accord.custom_roles').select('permissions').where('tenant_id', '=', tenantId).where('name', '=', role).executeTakeFirst();
    if (custom) return custom.permissions;
  }
  throw new AccordError('IAM_ROLE_UNKNOWN', { details: { role } });
}
