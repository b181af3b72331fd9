import type { AuditEvent, AuditSource } from '../../audit-chain/index.ts';
import type { Db, DbOrTrx, Trx, UserStatus } from '../../db/index.ts';
import { AccordError } from '../../errors/index.ts';
import { refuse, unitOfWork, type Work } from '../../kernel/index.ts';
import { checkPasswordPolicy, hashPassword } from './passwords.ts';
import { hashToken, newToken } from '../sessions/tokens.ts';

/** The one-time tokens handed to a user out of band: an invitation, a password reset. */
export type UserTokenPurpose = 'invite' | 'password-reset';

const PREFIX: Record<UserTokenPurpose, string> = { invite: 'aci', 'password-reset': 'acp' };
// A real token is the prefix and 43 base64url characters; anything much longer is not one.
const MAX_TOKEN = 200;

/**
 * Issues a token for a user, stored as its SHA-256 only, and ends the user's earlier pending
 * tokens of the same purpose: only the newest one handed out works. Runs in the caller's
 * transaction (which audits).
 */
export async function issueUserToken(
  trx: Trx,
  userId: string,
  purpose: UserTokenPurpose,
  ttlSeconds: number,
  now: Date,
): Promise<{ token: string; expiresAt: Date; replaced: number }> {
  // Expired rather than deleted: the rows stay as evidence of what was issued when.
  const ended = await trx
    .updateTable('accord.user_tokens')
    .set({ expires_at: now })
    .where('user_id', '=', userId)
    .where('purpose', '=', purpose)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .executeTakeFirst();
  const issued = newToken(PREFIX[purpose]);
  const expiresAt = new Date(now.getTime() + ttlSeconds * 1000);
  await trx.insertInto('accord.user_tokens').values({ user_id: userId, purpose, token_hash: issued.hash, expires_at: expiresAt }).execute();
  return { token: issued.token, expiresAt, replaced: Number(ended.numUpdatedRows) };
}

/** A presented token's row with its user. */
export interface FoundToken {
  readonly id: string;
  readonly userId: string;
  readonly email: string;
  readonly tenantId: string | null;
  readonly tenant: string | null;
  readonly status: UserStatus;
}

/** Why a presented token was refused; kept for the audit trail, never told to the client. */
export type TokenRefusal = 'unknown' | 'expired' | 'used' | 'user-not-eligible';

/**
 * Looks a presented token up by its hash (no string comparison of secrets). Only a pending token
 * of this purpose whose user is in one of `statuses` is accepted. The row is not locked: the
 * caller consumes it with `consumeUserToken`, whose conditional update decides who wins a race.
 */
export async function findUserToken(
  db: DbOrTrx,
  token: string,
  purpose: UserTokenPurpose,
  statuses: readonly UserStatus[],
  now: Date,
): Promise<{ ok: true; found: FoundToken } | { ok: false; why: TokenRefusal; found?: FoundToken }> {
  if (!token.startsWith(`${PREFIX[purpose]}_`) || token.length > MAX_TOKEN) return { ok: false, why: 'unknown' };
  const row = await db
    .selectFrom('accord.user_tokens as t')
    .innerJoin('accord.users as u', 'u.id', 't.user_id')
    .leftJoin('accord.tenants as tn', 'tn.id', 'u.tenant_id')
    .select(['t.id', 't.used_at', 't.expires_at', 'u.id as user_id', 'u.email', 'u.tenant_id', 'u.status', 'tn.name as tenant_name'])
    .where('t.token_hash', '=', hashToken(token))
    .where('t.purpose', '=', purpose)
    .executeTakeFirst();
  if (!row) return { ok: false, why: 'unknown' };
  const found: FoundToken = { id: row.id, userId: row.user_id, email: row.email, tenantId: row.tenant_id, tenant: row.tenant_name, status: row.status };
  if (row.used_at !== null) return { ok: false, why: 'used', found };
  if (row.expires_at <= now) return { ok: false, why: 'expired', found };
  if (!statuses.includes(row.status)) return { ok: false, why: 'user-not-eligible', found };
  return { ok: true, found };
}

/**
 * Marks a token used if it still is pending: true for exactly one caller, however many present
 * the same token at once (the update is conditional and takes the row lock).
 */
export async function consumeUserToken(trx: Trx, tokenId: string, now: Date): Promise<boolean> {
  const res = await trx
    .updateTable('accord.user_tokens')
    .set({ used_at: now })
    .where('id', '=', tokenId)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

/**
 * The audit event of a refused token: on the user's tenant chain when the token was found, else
 * the platform's. Neither the token nor its hash is recorded.
 */
export function refusedTokenEvent(action: string, why: TokenRefusal, found?: FoundToken): AuditEvent {
  return {
    tenantId: found?.tenantId ?? null,
    action,
    ...(found ? { target: { type: 'user', id: found.userId } } : {}),
    outcome: 'failure',
    reason: 'IAM_TOKEN_USED',
    details: { refused: why },
  };
}

/** The audit actor once a token has proven who the caller is. */
export function tokenHolder(source: AuditSource, found: FoundToken): AuditSource {
  return { ...source, actor: { type: 'user', id: found.userId, label: found.email, roles: [] } };
}

/**
 * Redeems a token that sets a password (an invitation, a reset). The token is looked up, the
 * password checked and hashed (tens of milliseconds, outside the transaction); then one unit of
 * work spends the token (a conditional update decides between concurrent uses), sets the password
 * on a user still in one of `statuses`, runs `alsoDo` and audits the success. Any refusal is
 * IAM_TOKEN_USED, audited without the token (a committed refusal: a token spent on a user who is
 * no longer eligible stays spent); a password the policy refuses changes nothing, so the token can
 * be used again with a better one.
 */
export async function redeemPasswordToken<T>(
  db: Db,
  source: AuditSource,
  opts: {
    action: string;
    purpose: UserTokenPurpose;
    statuses: readonly UserStatus[];
    token: string;
    password: string;
    /** The status the user gets (invitations activate); absent: unchanged. */
    status?: UserStatus;
    /** More work in the same unit of work; its details go into the audit record. */
    alsoDo: (w: Work, found: FoundToken) => Promise<{ result: T; details: Record<string, unknown> }>;
  },
  now = new Date(),
): Promise<{ found: FoundToken; result: T }> {
  const lookup = await findUserToken(db, opts.token, opts.purpose, opts.statuses, now);
  if (!lookup.ok) return refuse(db, source, new AccordError('IAM_TOKEN_USED'), refusedTokenEvent(opts.action, lookup.why, lookup.found));
  const { found } = lookup;
  checkPasswordPolicy(opts.password, found.email);
  const passwordHash = await hashPassword(opts.password);
  return unitOfWork(db, source, async (w) => {
    const { trx } = w;
    if (!(await consumeUserToken(trx, found.id, now))) return w.refuse(new AccordError('IAM_TOKEN_USED'), refusedTokenEvent(opts.action, 'used', found));
    const res = await trx
      .updateTable('accord.users')
      .set({ password_hash: passwordHash, password_changed_at: now, ...(opts.status ? { status: opts.status } : {}) })
      .where('id', '=', found.userId)
      .where('status', 'in', [...opts.statuses])
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) !== 1) return w.refuse(new AccordError('IAM_TOKEN_USED'), refusedTokenEvent(opts.action, 'user-not-eligible', found));
    const done = await opts.alsoDo(w, found);
    await w.as(tokenHolder(source, found)).audit({ tenantId: found.tenantId, action: opts.action, target: { type: 'user', id: found.userId }, outcome: 'success', details: done.details });
    return { found, result: done.result };
  });
}
