import type { DbOrTrx } from '../../db/index.ts';

/**
 * The MFA factors a user can sign in with: a confirmed TOTP authenticator, passkeys, and
 * recovery codes (which only count next to another factor: they are its backup, not a factor
 * one enrols by itself).
 */
export async function mfaFactors(db: DbOrTrx, userId: string): Promise<string[]> {
  const [totp, passkey, recovery] = await Promise.all([
    db.selectFrom('accord.mfa_totp').select('user_id').where('user_id', '=', userId).where('confirmed_at', 'is not', null).executeTakeFirst(),
    db.selectFrom('accord.webauthn_credentials').select('id').where('user_id', '=', userId).limit(1).executeTakeFirst(),
    db.selectFrom('accord.mfa_recovery_codes').select('id').where('user_id', '=', userId).where('used_at', 'is', null).limit(1).executeTakeFirst(),
  ]);
  const factors: string[] = [];
  if (totp) factors.push('totp');
  if (passkey) factors.push('webauthn');
  if (factors.length > 0 && recovery) factors.push('recovery');
  return factors;
}

/**
 * Whether this user must use MFA: their tenant requires it of everyone, or of a role they hold
 * there; platform-directory users when the installation requires it of operators.
 */
export async function mfaRequired(db: DbOrTrx, userId: string, tenantId: string | null, platformRequireMfa: boolean): Promise<boolean> {
  if (tenantId === null) return platformRequireMfa;
  const t = await db.selectFrom('accord.tenants').select(['require_mfa', 'mfa_required_roles']).where('id', '=', tenantId).executeTakeFirst();
  if (!t) return false;
  if (t.require_mfa) return true;
  if (t.mfa_required_roles.length === 0) return false;
  const held = await db.selectFrom('accord.role_grants').select('role').where('user_id', '=', userId).where('role', 'in', t.mfa_required_roles).limit(1).executeTakeFirst();
  return held !== undefined;
}
