import type { AuditSource } from '../../audit-chain/index.ts';
import type { Db } from '../../db/index.ts';
import { AccordError } from '../../errors/index.ts';
import type { AuthContext } from '../../http/index.ts';
import { unitOfWork } from '../../kernel/index.ts';
import { revokeUserSessions } from '../sessions/sessions.ts';
import { assertOutranks, type TenantScope } from '../users/admin.ts';
import { normaliseEmail } from '../users/users.ts';
import { issueUserToken, redeemPasswordToken } from './user-tokens.ts';

/** How long a password-reset token works. */
export const RESET_TTL_SECONDS = 30 * 60;

/** What the admin gets: the token, shown once, to hand to the user out of band. */
export interface ResetIssued {
  readonly email: string;
  readonly resetToken: string;
  readonly expiresAt: string;
}

/**
 * An admin starts a password reset for a tenant user: a one-time token valid 30 minutes; the
 * user's earlier pending reset tokens stop working. The admin needs standing over the user (every
 * permission of every role the user holds on the tenant), or a reset would be a way into a more
 * powerful account. A user who has not accepted their invitation yet is IAM_USER_INVITED.
 */
export async function issuePasswordReset(db: Db, actor: AuthContext, source: AuditSource, scope: TenantScope, email: string, now = new Date()): Promise<ResetIssued> {
  const normalised = normaliseEmail(email);
  return unitOfWork(db, source, async ({ trx, audit }) => {
    const user = await trx
      .selectFrom('accord.users')
      .select(['id', 'email', 'status'])
      .where('tenant_id', '=', scope.tenantId)
      .where('email', '=', normalised)
      .forUpdate()
      .executeTakeFirst();
    if (!user) throw new AccordError('IAM_USER_NOT_FOUND', { details: { email: normalised } });
    await assertOutranks(trx, actor, scope, user.id);
    if (user.status === 'invited') throw new AccordError('IAM_USER_INVITED', { details: { email: user.email } });
    const issued = await issueUserToken(trx, user.id, 'password-reset', RESET_TTL_SECONDS, now);
    await audit({
      tenantId: scope.tenantId,
      action: 'user.password.reset.issued',
      target: { type: 'user', id: user.id },
      outcome: 'success',
      details: { email: user.email, expiresAt: issued.expiresAt.toISOString(), replaced: issued.replaced },
    });
    return { email: user.email, resetToken: issued.token, expiresAt: issued.expiresAt.toISOString() };
  });
}

/** The account whose password a reset token set. */
export interface ResetDone {
  readonly userId: string;
  readonly email: string;
  readonly tenant: string | null;
  readonly sessionsRevoked: number;
}

/**
 * Sets a new password with a reset token: policy checked, single use, and every session of the
 * user ends (whoever may have known the old password is out). Nothing else changes: a disabled
 * user stays disabled, MFA factors and lockout counters stay as they are. A wrong, expired or
 * used token is IAM_TOKEN_USED, audited without the token.
 */
export async function resetPassword(db: Db, source: AuditSource, input: { token: string; password: string }, now = new Date()): Promise<ResetDone> {
  const { found, result: sessionsRevoked } = await redeemPasswordToken(
    db,
    source,
    {
      action: 'user.password.reset',
      purpose: 'password-reset',
      statuses: ['active', 'disabled'],
      token: input.token,
      password: input.password,
      alsoDo: async ({ trx }, f) => {
        const revoked = await revokeUserSessions(trx, f.userId, 'password-reset');
        return { result: revoked, details: { sessionsRevoked: revoked } };
      },
    },
    now,
  );
  return { userId: found.userId, email: found.email, tenant: found.tenant, sessionsRevoked };
}
