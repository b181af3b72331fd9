import type { AuditSource } from '../../audit-chain/index.ts';
import type { Db } from '../../db/index.ts';
import { AccordError } from '../../errors/index.ts';
import type { AuthContext } from '../../http/index.ts';
import { unitOfWork } from '../../kernel/index.ts';
import { assertOutranks, type TenantScope } from '../users/admin.ts';
import { normaliseEmail } from '../users/users.ts';
import { issueUserToken, redeemPasswordToken } from './user-tokens.ts';

/** How long an invitation can be accepted. */
export const INVITE_TTL_SECONDS = 7 * 24 * 60 * 60;

const isUniqueViolation = (err: unknown): boolean => (err as { code?: string })?.code === '23505';

/** What the inviting admin gets: the token, shown once, to hand to the person out of band. */
export interface Invitation {
  readonly email: string;
  readonly inviteToken: string;
  readonly expiresAt: string;
}

/**
 * Invites a person into a tenant's directory: the user is created `invited`, without a password
 * (so they cannot sign in), with a one-time token to choose one. Inviting an email that is
 * already invited replaces the pending invitation (the earlier token stops working); that needs
 * standing over the user like disabling them does, or a lesser admin could take over an invited
 * account someone else had granted more power. An existing active or disabled user is
 * IAM_USER_EXISTS.
 */
export async function inviteUser(
  db: Db,
  actor: AuthContext,
  source: AuditSource,
  scope: TenantScope,
  input: { email: string; displayName?: string | undefined },
  now = new Date(),
): Promise<Invitation> {
  const email = normaliseEmail(input.email);
  try {
    return await unitOfWork(db, source, async ({ trx, audit }) => {
      const existing = await trx
        .selectFrom('accord.users')
        .select(['id', 'status'])
        .where('tenant_id', '=', scope.tenantId)
        .where('email', '=', email)
        .forUpdate()
        .executeTakeFirst();
      let userId: string;
      if (existing) {
        if (existing.status !== 'invited') throw new AccordError('IAM_USER_EXISTS', { details: { email } });
        await assertOutranks(trx, actor, scope, existing.id);
        if (input.displayName !== undefined) await trx.updateTable('accord.users').set({ display_name: input.displayName }).where('id', '=', existing.id).execute();
        userId = existing.id;
      } else {
        const row = await trx
          .insertInto('accord.users')
          .values({ tenant_id: scope.tenantId, email, display_name: input.displayName ?? '', password_hash: null, status: 'invited' })
          .returning('id')
          .executeTakeFirstOrThrow();
        userId = row.id;
      }
      const issued = await issueUserToken(trx, userId, 'invite', INVITE_TTL_SECONDS, now);
      await audit({
        tenantId: scope.tenantId,
        action: 'user.invited',
        target: { type: 'user', id: userId },
        outcome: 'success',
        details: { email, expiresAt: issued.expiresAt.toISOString(), reissued: existing !== undefined },
      });
      return { email, inviteToken: issued.token, expiresAt: issued.expiresAt.toISOString() };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw new AccordError('IAM_USER_EXISTS', { details: { email }, cause: err });
    throw err;
  }
}

/** The account an accepted invitation activated. */
export interface AcceptedInvitation {
  readonly userId: string;
  readonly email: string;
  readonly tenant: string | null;
}

/**
 * Accepts an invitation: checks the password policy, sets the password and activates the user.
 * The token works once (a conditional update decides between concurrent uses); a wrong, expired
 * or used token, or one whose user is no longer `invited` (disabled meanwhile), is IAM_TOKEN_USED
 * and audited without the token. A password the policy refuses changes nothing, so the token can
 * be used again with a better one.
 */
export async function acceptInvitation(db: Db, source: AuditSource, input: { token: string; password: string }, now = new Date()): Promise<AcceptedInvitation> {
  const { found } = await redeemPasswordToken(
    db,
    source,
    {
      action: 'user.invitation.accepted',
      purpose: 'invite',
      statuses: ['invited'],
      status: 'active',
      token: input.token,
      password: input.password,
      alsoDo: async (_w, f) => ({ result: undefined, details: { email: f.email } }),
    },
    now,
  );
  return { userId: found.userId, email: found.email, tenant: found.tenant };
}
