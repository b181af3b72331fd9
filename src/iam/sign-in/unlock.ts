import { Type } from '@sinclair/typebox';
import type { AuditSource } from '../../audit-chain/index.ts';
import type { Db } from '../../db/index.ts';
import { AccordError } from '../../errors/index.ts';
import { type AuthContext, access, type RouteDefinition, route } from '../../http/index.ts';
import { requireStanding, scopeOf, type TenantScope } from '../users/standing.ts';
import { unitOfWork } from '../../kernel/index.ts';
import { accountSubject, unlockAccount } from './lockout.ts';
import { normaliseEmail } from '../users/users.ts';

/** What an unlock did. */
export interface UnlockResult {
  readonly email: string;
  /** Whether a lock was in force. */
  readonly wasLocked: boolean;
  /** Failures forgotten. */
  readonly failures: number;
}

/**
 * Ends the sign-in lock of an email and forgets its failures, audited as `auth.unlock` in the
 * same transaction. The lock is kept per email across directories (choosing another tenant must
 * not buy more guesses), so a tenant's administrator may unlock only an email that has an
 * account in their tenant (`tenantId`); the platform (null) may unlock any.
 */
export async function unlockSignIn(
  db: Db,
  source: AuditSource,
  input: { email: string; tenantId: string | null; tenant?: { actor: AuthContext; scope: TenantScope } },
  now = new Date(),
): Promise<UnlockResult> {
  const email = normaliseEmail(input.email);
  return unitOfWork(db, source, async ({ trx, audit }) => {
    if (input.tenantId !== null) {
      const user = await trx.selectFrom('accord.users').select('id').where('tenant_id', '=', input.tenantId).where('email', '=', email).executeTakeFirst();
      if (!user) throw new AccordError('IAM_USER_NOT_FOUND', { details: { email } });
      // As for every action on another user: not on someone with powers the caller lacks (an
      // unlock hands the guessing back to whoever locked them).
      if (input.tenant) await requireStanding(trx, input.tenant.actor, input.tenant.scope, { user: user.id });
    }
    const subject = accountSubject(null, email);
    const r = await unlockAccount(trx, subject, now);
    await audit({ tenantId: input.tenantId, action: 'auth.unlock', target: { type: 'account', id: subject }, outcome: 'success', details: { ...r } });
    return { email, ...r };
  });
}

const Email = Type.String({ format: 'email', maxLength: 254 });
const UnlockOut = Type.Object({ email: Type.String(), wasLocked: Type.Boolean(), failures: Type.Integer() });

/** Unlock routes: a tenant's administrator for their users, an operator for any email. */
export function unlockRoutes(deps: { db: Db }): RouteDefinition[] {
  const { db } = deps;
  return [
    route({
      method: 'POST',
      url: '/api/v1/tenants/:tenant/users/:email/unlock',
      access: access.permission('user:manage', { tenantParam: 'tenant' }),
      schema: {
        summary: "End a user's sign-in lock and forget their failed attempts",
        tags: ['iam'],
        params: Type.Object({ tenant: Type.String({ maxLength: 63 }), email: Email }),
        response: { 200: UnlockOut },
      },
      handler: async ({ tenant, params, source, auth }) => unlockSignIn(db, source, { email: params.email, tenantId: tenant.id, tenant: { actor: auth, scope: scopeOf(tenant) } }),
    }),
    route({
      method: 'POST',
      url: '/api/v1/platform/unlock',
      access: access.permission('platform:manage'),
      schema: {
        summary: 'End the sign-in lock of any email (operators, platform directory included)',
        tags: ['iam'],
        body: Type.Object({ email: Email }, { additionalProperties: false }),
        response: { 200: UnlockOut },
      },
      handler: async ({ body, source }) => unlockSignIn(db, source, { email: body.email, tenantId: null }),
    }),
  ];
}
