import type { AuditSource } from '../../audit-chain/index.ts';
import type { Db, DbOrTrx } from '../../db/index.ts';
import { AccordError } from '../../errors/index.ts';
import type { AuthContext } from '../../http/index.ts';
import { unitOfWork } from '../../kernel/index.ts';
import { mfaFactors } from '../mfa/factors.ts';

/** A user's own account as they see it. */
export interface ProfileView {
  readonly id: string;
  readonly email: string;
  readonly displayName: string;
  /** The tenant whose directory holds the user; null for the platform directory. */
  readonly tenant: string | null;
  readonly status: string;
  readonly createdAt: string;
  readonly passwordChangedAt: string | null;
  /** The MFA factors the user can sign in with (totp, webauthn, recovery). */
  readonly mfa: readonly string[];
}

/** The calling user's id; API clients have no profile (IAM_WRONG_AUDIENCE). */
export function selfId(auth: AuthContext): string {
  if (auth.kind !== 'user') throw new AccordError('IAM_WRONG_AUDIENCE', { message: 'Only users have a profile and a password; API clients do not.' });
  return auth.principalId;
}

/** A user's profile. */
export async function profileOf(db: DbOrTrx, userId: string): Promise<ProfileView> {
  const row = await db
    .selectFrom('accord.users as u')
    .leftJoin('accord.tenants as t', 't.id', 'u.tenant_id')
    .select(['u.id', 'u.email', 'u.display_name', 't.name as tenant', 'u.status', 'u.created_at', 'u.password_changed_at'])
    .where('u.id', '=', userId)
    .executeTakeFirst();
  // The session was live a moment ago; a user deleted since is signed out.
  if (!row) throw new AccordError('IAM_SESSION_ENDED');
  return {
    id: row.id,
    email: row.email,
    displayName: row.display_name,
    tenant: row.tenant,
    status: row.status,
    createdAt: row.created_at.toISOString(),
    passwordChangedAt: row.password_changed_at?.toISOString() ?? null,
    mfa: await mfaFactors(db, row.id),
  };
}

/** Changes the caller's display name; audited as `user.profile.updated`. */
export async function updateProfile(db: Db, source: AuditSource, auth: AuthContext, input: { displayName: string }): Promise<ProfileView> {
  const userId = selfId(auth);
  return unitOfWork(db, source, async ({ trx, audit }) => {
    const before = await trx.selectFrom('accord.users').select(['display_name', 'tenant_id']).where('id', '=', userId).forUpdate().executeTakeFirst();
    if (!before) throw new AccordError('IAM_SESSION_ENDED');
    await trx.updateTable('accord.users').set({ display_name: input.displayName }).where('id', '=', userId).execute();
    await audit({
      tenantId: before.tenant_id,
      action: 'user.profile.updated',
      target: { type: 'user', id: userId },
      outcome: 'success',
      details: { displayName: { from: before.display_name, to: input.displayName } },
    });
    return profileOf(trx, userId);
  });
}
