import type { AuditSource } from '../../audit-chain/index.ts';
import { AccordError } from '../../errors/index.ts';
import type { AuthContext } from '../../http/index.ts';
import { refuse, unitOfWork } from '../../kernel/index.ts';
import { checkLockout, lockedError, lockoutAuditEvent, lockoutSubjects, recordFailure } from '../sign-in/lockout.ts';
import type { SignInDeps } from '../sign-in/login.ts';
import { checkPasswordPolicy, hashPassword, verifyPassword } from './passwords.ts';
import { revokeUserSessions } from '../sessions/sessions.ts';
import { selfId } from './profile.ts';

const ACTION = 'user.password.changed';

/**
 * A signed-in user changes their own password. The current password is required (a stolen
 * access token alone must not be enough to take the account over for good), and a wrong one is a
 * failed sign-in for the lockout: the same counters, the same locks, so a token thief cannot use
 * this route to guess the password at leisure. The new password must meet the policy and differ
 * from the current one. Every other session of the user ends; the calling one stays.
 */
export async function changePassword(
  deps: Pick<SignInDeps, 'db' | 'lockout'>,
  source: AuditSource,
  auth: AuthContext,
  input: { currentPassword: string; newPassword: string },
  now = new Date(),
): Promise<{ passwordChangedAt: string; otherSessionsRevoked: number }> {
  const { db } = deps;
  const userId = selfId(auth);
  if (!auth.sessionId) throw new AccordError('IAM_WRONG_AUDIENCE');
  const user = await db.selectFrom('accord.users').select(['id', 'email', 'tenant_id', 'password_hash']).where('id', '=', userId).executeTakeFirst();
  if (!user) throw new AccordError('IAM_SESSION_ENDED');
  const target = { type: 'user', id: user.id };
  // The sign-in counters: one per email across directories, and the source address.
  const subjects = lockoutSubjects({ tenantId: null, email: user.email, ip: source.sourceIp });
  const lock = await checkLockout(db, subjects, now);
  if (lock.locked) {
    return refuse(db, source, lockedError(lock.retryAfterSeconds), { tenantId: user.tenant_id, action: ACTION, target, outcome: 'denied', reason: 'IAM_LOCKED', details: { scope: lock.scope } });
  }
  if (!(await verifyPassword(user.password_hash, input.currentPassword))) {
    return unitOfWork(db, source, async (w) => {
      // Lockout rows first, as in sign-in: one lock order everywhere.
      const failure = await recordFailure(w.trx, subjects, deps.lockout, now);
      return w.refuse(
        new AccordError('IAM_INVALID_CREDENTIALS', { message: 'The current password is wrong.' }),
        { tenantId: user.tenant_id, action: ACTION, target, outcome: 'failure', reason: 'IAM_INVALID_CREDENTIALS' },
        ...failure.locks.map((l) => lockoutAuditEvent(l, null)),
      );
    });
  }
  checkPasswordPolicy(input.newPassword, user.email);
  if (input.newPassword === input.currentPassword) {
    throw new AccordError('IAM_PASSWORD_POLICY', {
      message: 'The password does not meet the policy: must differ from the current password.',
      details: { rules: ['must differ from the current password'] },
    });
  }
  const passwordHash = await hashPassword(input.newPassword);
  return unitOfWork(db, source, async ({ trx, audit }) => {
    // Conditional on the hash just verified: a reset or another change in between wins, and this
    // one is refused rather than overwriting it.
    const res = await trx
      .updateTable('accord.users')
      .set({ password_hash: passwordHash, password_changed_at: now })
      .where('id', '=', user.id)
      .where('password_hash', '=', user.password_hash as string)
      .where('status', '=', 'active')
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) !== 1) throw new AccordError('IAM_INVALID_CREDENTIALS', { message: 'The password was changed meanwhile; sign in again.' });
    const otherSessionsRevoked = await revokeUserSessions(trx, user.id, 'password-changed', auth.sessionId ?? undefined);
    await audit({ tenantId: user.tenant_id, action: ACTION, target, outcome: 'success', details: { otherSessionsRevoked } });
    return { passwordChangedAt: now.toISOString(), otherSessionsRevoked };
  });
}
