import { randomBytes } from 'node:crypto';
import type { DbOrTrx, Trx } from '../../db/index.ts';
import type { IamKey } from '../iam-key.ts';
import { base32Encode } from './totp.ts';

/** How many recovery codes a user holds after enrolment or regeneration. */
export const RECOVERY_CODE_COUNT = 10;
// 80 bits: 16 base32 characters, shown as four groups of four.
const CODE_BYTES = 10;

/** ABCD-EFGH-JKLM-NPQR from the 16 characters of a normalised code. */
export function formatRecoveryCode(normalised: string): string {
  return normalised.match(/.{4}/g)?.join('-') ?? normalised;
}

/**
 * The canonical form of what a user typed: upper case, without dashes or spaces; undefined when
 * it cannot be a recovery code (so it is refused without a lookup).
 */
export function normaliseRecoveryCode(input: string): string | undefined {
  const s = input.replace(/[\s-]/g, '').toUpperCase();
  return /^[A-Z2-7]{16}$/.test(s) ? s : undefined;
}

/** Ten fresh codes of 80 random bits each, formatted for display. */
export function newRecoveryCodes(): string[] {
  return Array.from({ length: RECOVERY_CODE_COUNT }, () => formatRecoveryCode(base32Encode(randomBytes(CODE_BYTES))));
}

/**
 * The codes handed out with a TOTP enrolment, derived from the new TOTP secret under the IAM key.
 * They are shown at enrolment but only stored (replacing the user's earlier codes) when the TOTP
 * is confirmed, and deriving them again from the sealed secret at that moment means nothing has to
 * be kept for them in between. Unpredictable without both the IAM key and the secret.
 */
export function enrolmentRecoveryCodes(key: IamKey, userId: string, totpSecret: Buffer): string[] {
  return Array.from({ length: RECOVERY_CODE_COUNT }, (_, i) => {
    const mac = key.mac('recovery-code', Buffer.concat([Buffer.from(`accord/recovery-set/${userId}/${i}/`, 'utf8'), totpSecret]));
    return formatRecoveryCode(base32Encode(mac.subarray(0, CODE_BYTES)));
  });
}

/** The stored form of one code: a MAC under the IAM key's recovery-code subkey, bound to the user. */
function codeHash(key: IamKey, userId: string, normalised: string): Buffer {
  return key.mac('recovery-code', `${userId}:${normalised}`);
}

/** Replaces all of a user's recovery codes (used or not) with `codes`. */
export async function replaceRecoveryCodes(trx: Trx, key: IamKey, userId: string, codes: readonly string[]): Promise<void> {
  await trx.deleteFrom('accord.mfa_recovery_codes').where('user_id', '=', userId).execute();
  const rows = codes.map((c) => {
    const n = normaliseRecoveryCode(c);
    if (!n) throw new Error('replaceRecoveryCodes: a code is not in recovery-code form');
    return { user_id: userId, code_hash: codeHash(key, userId, n) };
  });
  if (rows.length > 0) await trx.insertInto('accord.mfa_recovery_codes').values(rows).execute();
}

/** Deletes a user's recovery codes (when their last real factor goes). */
export async function deleteRecoveryCodes(trx: Trx, userId: string): Promise<void> {
  await trx.deleteFrom('accord.mfa_recovery_codes').where('user_id', '=', userId).execute();
}

/**
 * Spends one recovery code. The lookup is by MAC (no string comparison of secrets) and the
 * spending is one conditional UPDATE, so two concurrent uses of a code cannot both succeed.
 */
export async function useRecoveryCode(trx: Trx, key: IamKey, userId: string, input: string, now: Date): Promise<boolean> {
  const normalised = normaliseRecoveryCode(input);
  if (!normalised) return false;
  const res = await trx
    .updateTable('accord.mfa_recovery_codes')
    .set({ used_at: now })
    .where('user_id', '=', userId)
    .where('code_hash', '=', codeHash(key, userId, normalised))
    .where('used_at', 'is', null)
    .executeTakeFirst();
  return res.numUpdatedRows > 0n;
}

/** How many unused recovery codes a user has. */
export async function recoveryCodesLeft(db: DbOrTrx, userId: string): Promise<number> {
  const r = await db
    .selectFrom('accord.mfa_recovery_codes')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('user_id', '=', userId)
    .where('used_at', 'is', null)
    .executeTakeFirstOrThrow();
  return Number(r.n);
}
