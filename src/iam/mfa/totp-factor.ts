import type { DbOrTrx, Trx } from '../../db/index.ts';
import { AccordError } from '../../errors/index.ts';
import type { IamKey } from '../iam-key.ts';
import { enrolmentRecoveryCodes, replaceRecoveryCodes } from './recovery.ts';
import { base32Encode, matchingSteps, newTotpSecret, otpauthUri } from './totp.ts';

/** The IAM-key AAD of a user's sealed TOTP secret: a secret copied to another user's row will not open. */
const aad = (userId: string) => `accord/mfa-totp/${userId}`;

/** What a TOTP enrolment hands the user, once: never stored in clear, never logged. */
export interface TotpEnrolment {
  /** The secret in base32, for typing into an app by hand. */
  readonly secret: string;
  readonly otpauthUri: string;
  /** Recovery codes that replace the user's earlier ones when the TOTP is confirmed. */
  readonly recoveryCodes: readonly string[];
}

export type TotpCheck = 'ok' | 'bad-totp' | 'replayed-totp' | 'no-factor';

/** A user's TOTP state: absent, enrolled (waiting for its first code) or confirmed. */
export async function totpState(db: DbOrTrx, userId: string): Promise<{ enrolled: boolean; confirmedAt: Date | null }> {
  const row = await db.selectFrom('accord.mfa_totp').select('confirmed_at').where('user_id', '=', userId).executeTakeFirst();
  return { enrolled: row !== undefined, confirmedAt: row?.confirmed_at ?? null };
}

/**
 * Starts a TOTP enrolment: a new 160-bit secret, sealed with the IAM key. An unconfirmed earlier
 * enrolment is replaced (the user scanned it into a lost phone, or never finished); a confirmed
 * one is IAM_MFA_ALREADY_ENROLLED (remove it first, which needs a code).
 */
export async function enrolTotp(trx: Trx, key: IamKey, user: { id: string; email: string }): Promise<TotpEnrolment> {
  const existing = await trx.selectFrom('accord.mfa_totp').select('confirmed_at').where('user_id', '=', user.id).forUpdate().executeTakeFirst();
  if (existing?.confirmed_at) throw new AccordError('IAM_MFA_ALREADY_ENROLLED', { details: { factor: 'totp' } });
  const secret = newTotpSecret();
  try {
    const sealed = key.seal('mfa-secret', secret, aad(user.id));
    await trx
      .insertInto('accord.mfa_totp')
      .values({ user_id: user.id, secret_sealed: sealed, confirmed_at: null, last_step: 0 })
      .onConflict((oc) =>
        oc
          .column('user_id')
          .doUpdateSet({ secret_sealed: sealed, last_step: 0 })
          // A concurrent confirmation wins: a confirmed secret is never overwritten here.
          .where('accord.mfa_totp.confirmed_at', 'is', null),
      )
      .execute();
    const after = await trx.selectFrom('accord.mfa_totp').select('confirmed_at').where('user_id', '=', user.id).executeTakeFirstOrThrow();
    if (after.confirmed_at) throw new AccordError('IAM_MFA_ALREADY_ENROLLED', { details: { factor: 'totp' } });
    return { secret: base32Encode(secret), otpauthUri: otpauthUri(secret, user.email), recoveryCodes: enrolmentRecoveryCodes(key, user.id, secret) };
  } finally {
    secret.fill(0);
  }
}

/**
 * Checks `code` against the user's TOTP secret and spends its time step. A step is accepted only
 * if it is later than the last accepted one, and the new step is written with a conditional
 * UPDATE, so a code cannot be used twice, not even by two requests racing each other.
 * `confirming` selects an unconfirmed enrolment instead of a confirmed one.
 */
async function spendStep(trx: Trx, key: IamKey, userId: string, code: string, now: Date, confirming: boolean): Promise<{ result: TotpCheck; step?: number; secret?: Buffer }> {
  let q = trx.selectFrom('accord.mfa_totp').select(['secret_sealed', 'last_step']).where('user_id', '=', userId);
  q = confirming ? q.where('confirmed_at', 'is', null) : q.where('confirmed_at', 'is not', null);
  const row = await q.executeTakeFirst();
  if (!row) return { result: 'no-factor' };
  const secret = key.open('mfa-secret', row.secret_sealed, aad(userId));
  const steps = matchingSteps(secret, code, now);
  if (steps.length === 0) {
    secret.fill(0);
    return { result: 'bad-totp' };
  }
  const last = Number(row.last_step);
  const step = steps.find((s) => s > last);
  if (step === undefined) {
    secret.fill(0);
    return { result: 'replayed-totp' };
  }
  let upd = trx.updateTable('accord.mfa_totp').set(confirming ? { last_step: step, confirmed_at: now } : { last_step: step }).where('user_id', '=', userId).where('last_step', '<', String(step));
  upd = confirming ? upd.where('confirmed_at', 'is', null) : upd.where('confirmed_at', 'is not', null);
  const res = await upd.executeTakeFirst();
  if (res.numUpdatedRows === 0n) {
    secret.fill(0);
    return { result: 'replayed-totp' };
  }
  return { result: 'ok', step, secret };
}

/** A sign-in (or a code-gated change) with the confirmed TOTP: the code's step is spent. */
export async function useTotp(trx: Trx, key: IamKey, userId: string, code: string, now: Date): Promise<TotpCheck> {
  const r = await spendStep(trx, key, userId, code, now, false);
  r.secret?.fill(0);
  return r.result;
}

/**
 * Confirms a pending enrolment with a first code from the app: the TOTP becomes a sign-in factor,
 * that code's step is spent, and the recovery codes shown at enrolment replace earlier ones.
 */
export async function confirmTotp(trx: Trx, key: IamKey, userId: string, code: string, now: Date): Promise<TotpCheck> {
  const r = await spendStep(trx, key, userId, code, now, true);
  if (r.result !== 'ok' || !r.secret) return r.result;
  try {
    await replaceRecoveryCodes(trx, key, userId, enrolmentRecoveryCodes(key, userId, r.secret));
  } finally {
    r.secret.fill(0);
  }
  return 'ok';
}

/** Removes a user's TOTP (confirmed or pending); whether there was one. */
export async function removeTotp(trx: Trx, userId: string): Promise<boolean> {
  const res = await trx.deleteFrom('accord.mfa_totp').where('user_id', '=', userId).executeTakeFirst();
  return res.numDeletedRows > 0n;
}
