import { systemSource } from '../audit-chain/index.ts';
import type { Db } from '../db/index.ts';
import { unitOfWork } from '../kernel/index.ts';
import { pruneFlows } from './federation/index.ts';
import { type LockoutPolicy, pruneFailures } from './sign-in/lockout.ts';

/** How long ended sessions and spent one-time tokens are kept (for support questions), then deleted. */
export const KEEP_ENDED_MS = 7 * 86400_000;

/**
 * Deletes what identity no longer needs: sign-in failures older than the lockout window and ended
 * locks, sessions ended (revoked or past a deadline) more than 7 days ago with their refresh
 * tokens, one-time tokens (invitations, resets, MFA challenges) expired as long, federated
 * sign-in flows past their use and SAML assertion ids past their expiry. None of this
 * is evidence: the audit trail holds the sign-ins, revocations and lockouts themselves, so the
 * job's unit of work audits nothing.
 */
export async function pruneIdentity(db: Db, lockout: LockoutPolicy, now = new Date()) {
  const before = new Date(now.getTime() - KEEP_ENDED_MS);
  return unitOfWork(db, systemSource, async ({ trx }) => {
    const lock = await pruneFailures(trx, lockout, now);
    const sessions = await trx
      .deleteFrom('accord.sessions')
      .where((eb) => eb.or([eb('revoked_at', '<=', before), eb('absolute_expires_at', '<=', before), eb('idle_expires_at', '<=', before)]))
      .executeTakeFirst();
    const tokens = await trx.deleteFrom('accord.user_tokens').where('expires_at', '<=', before).executeTakeFirst();
    const federation = await pruneFlows(trx, now);
    return { ...lock, sessions: Number(sessions.numDeletedRows), userTokens: Number(tokens.numDeletedRows), federation };
  });
}
