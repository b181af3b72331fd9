import type { Trx } from '../../db/index.ts';
import type { IamKey } from '../iam-key.ts';

/** What a client sends to pass the second step of a sign-in: one of these. */
export interface SecondFactorInput {
  readonly totp?: string | undefined;
  readonly recoveryCode?: string | undefined;
  /** A WebAuthn authentication response (JSON as browsers produce it). */
  readonly webauthn?: unknown;
}

export type SecondFactorResult = { readonly ok: true; readonly method: 'totp' | 'recovery' | 'webauthn' } | { readonly ok: false; readonly reason: string };

/**
 * Checks a second factor for a user inside the sign-in transaction (consuming it: a TOTP step,
 * a recovery code, a passkey counter). `challenge` is the data stored with the MFA challenge
 * (a WebAuthn challenge lives there).
 */
export async function verifySecondFactor(
  _trx: Trx,
  _key: IamKey,
  _rp: { rpId: string; origin: string },
  _userId: string,
  _input: SecondFactorInput,
  _challenge: Record<string, unknown>,
  _now: Date,
): Promise<SecondFactorResult> {
  return { ok: false, reason: 'not-implemented' };
}
