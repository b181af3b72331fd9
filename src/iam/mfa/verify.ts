import type { Trx } from '../../db/index.ts';
import type { Work } from '../../kernel/index.ts';
import type { IamKey } from '../iam-key.ts';
import { asUser } from '../sessions/acting-as.ts';
import { recoveryCodesLeft, useRecoveryCode } from './recovery.ts';
import { useTotp } from './totp-factor.ts';
import { verifyAssertion } from './webauthn.ts';

/** What a client sends to pass the second step of a sign-in: one of these. */
export interface SecondFactorInput {
  readonly totp?: string | undefined;
  readonly recoveryCode?: string | undefined;
  /** A WebAuthn authentication response (JSON as browsers produce it). */
  readonly webauthn?: unknown;
}

export type SecondFactorResult = { readonly ok: true; readonly method: 'totp' | 'recovery' | 'webauthn' } | { readonly ok: false; readonly reason: string };

/** Where the sign-in step keeps the passkey challenge it handed out (in the MFA challenge's data). */
export const WEBAUTHN_CHALLENGE_KEY = 'webauthnChallenge';

/** Whether the user has a real factor (confirmed TOTP or a passkey): recovery codes only back one up. */
async function hasRealFactor(trx: Trx, userId: string): Promise<boolean> {
  const [totp, passkey] = await Promise.all([
    trx.selectFrom('accord.mfa_totp').select('user_id').where('user_id', '=', userId).where('confirmed_at', 'is not', null).executeTakeFirst(),
    trx.selectFrom('accord.webauthn_credentials').select('id').where('user_id', '=', userId).limit(1).executeTakeFirst(),
  ]);
  return totp !== undefined || passkey !== undefined;
}

/**
 * Checks a second factor for a user inside the sign-in's unit of work (consuming it: a TOTP step,
 * a recovery code, a passkey counter). `challenge` is the data stored with the MFA challenge
 * (a WebAuthn challenge lives there). Exactly one factor must be given. Never throws for wrong
 * input: the answer says why it failed, as a short code for the audit trail
 * ('bad-totp', 'replayed-totp', 'bad-recovery-code', 'bad-passkey', 'no-factor', 'one-factor').
 * A recovery code that signs in is audited as mfa.recovery.used, by the user, with the unit's
 * request id and address.
 */
export async function verifySecondFactor(
  w: Work,
  key: IamKey,
  rp: { rpId: string; origin: string },
  userId: string,
  input: SecondFactorInput,
  challenge: Record<string, unknown>,
  now: Date,
): Promise<SecondFactorResult> {
  const { trx } = w;
  const given = [input.totp, input.recoveryCode, input.webauthn].filter((v) => v !== undefined && v !== null && v !== '');
  if (given.length !== 1) return { ok: false, reason: 'one-factor' };
  if (typeof input.totp === 'string') {
    const r = await useTotp(trx, key, userId, input.totp, now);
    return r === 'ok' ? { ok: true, method: 'totp' } : { ok: false, reason: r };
  }
  if (typeof input.recoveryCode === 'string') {
    if (!(await hasRealFactor(trx, userId))) return { ok: false, reason: 'no-factor' };
    if (!(await useRecoveryCode(trx, key, userId, input.recoveryCode, now))) return { ok: false, reason: 'bad-recovery-code' };
    const user = await trx.selectFrom('accord.users').select(['email', 'tenant_id']).where('id', '=', userId).executeTakeFirstOrThrow();
    await w.as(asUser(w.source, { id: userId, email: user.email })).audit({
      tenantId: user.tenant_id,
      action: 'mfa.recovery.used',
      target: { type: 'user', id: userId },
      outcome: 'success',
      details: { remaining: await recoveryCodesLeft(trx, userId) },
    });
    return { ok: true, method: 'recovery' };
  }
  if (input.webauthn !== undefined) {
    const expected = challenge[WEBAUTHN_CHALLENGE_KEY];
    const r = await verifyAssertion(trx, rp, userId, input.webauthn, typeof expected === 'string' ? expected : undefined, now);
    return r === 'ok' ? { ok: true, method: 'webauthn' } : { ok: false, reason: r };
  }
  return { ok: false, reason: 'one-factor' };
}
