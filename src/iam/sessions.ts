import { sql } from 'kysely';
import type { Db, Trx } from '../db/index.ts';
import type { AuthContext } from '../http/index.ts';
import { hashToken, newToken } from './tokens.ts';
import { grantsOf } from './users.ts';

export interface SessionPolicy {
  readonly idleSeconds: number;
  readonly absoluteSeconds: number;
}

// Sliding the idle deadline on every request would turn reads into writes; a minute of slack is
// invisible against timeouts measured in hours.
const TOUCH_EVERY_MS = 60_000;

/** Opens a session and returns its bearer token (shown once, stored hashed). */
export async function createSession(
  trx: Trx,
  userId: string,
  policy: SessionPolicy,
  source: { ip: string | null; userAgent: string | null },
  now = new Date(),
): Promise<{ id: string; token: string; expiresAt: Date }> {
  const { token, hash } = newToken('acs');
  const absolute = new Date(now.getTime() + policy.absoluteSeconds * 1000);
  const idle = new Date(Math.min(now.getTime() + policy.idleSeconds * 1000, absolute.getTime()));
  const row = await trx
    .insertInto('accord.sessions')
    .values({
      user_id: userId,
      token_hash: hash,
      last_seen_at: now,
      idle_expires_at: idle,
      absolute_expires_at: absolute,
      source_ip: source.ip,
      user_agent: source.userAgent,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return { id: row.id, token, expiresAt: idle };
}

/**
 * Resolves a bearer token to its live session and user, or undefined. Expired, revoked and
 * disabled-user sessions all resolve to nothing: callers cannot tell which (fail closed).
 */
export async function authenticateToken(
  db: Db,
  token: string,
  policy: SessionPolicy,
  now = new Date(),
): Promise<AuthContext | undefined> {
  if (!token.startsWith('acs_') || token.length > 200) return undefined;
  const row = await db
    .selectFrom('accord.sessions as s')
    .innerJoin('accord.users as u', 'u.id', 's.user_id')
    .select(['s.id', 's.user_id', 's.last_seen_at', 's.absolute_expires_at', 'u.email', 'u.tenant_id'])
    .where('s.token_hash', '=', hashToken(token))
    .where('s.revoked_at', 'is', null)
    .where('s.idle_expires_at', '>', now)
    .where('s.absolute_expires_at', '>', now)
    .where('u.status', '=', 'active')
    .executeTakeFirst();
  if (!row) return undefined;
  if (now.getTime() - row.last_seen_at.getTime() > TOUCH_EVERY_MS) {
    const idle = new Date(Math.min(now.getTime() + policy.idleSeconds * 1000, row.absolute_expires_at.getTime()));
    await db
      .updateTable('accord.sessions')
      .set({ last_seen_at: now, idle_expires_at: idle })
      .where('id', '=', row.id)
      .execute();
  }
  return {
    kind: 'user',
    userId: row.user_id,
    email: row.email,
    tenantId: row.tenant_id,
    sessionId: row.id,
    grants: await grantsOf(db, row.user_id),
  };
}

/** Revokes one session; returns whether it was live. */
export async function revokeSession(trx: Trx, sessionId: string): Promise<boolean> {
  const res = await trx
    .updateTable('accord.sessions')
    .set({ revoked_at: sql`now()` })
    .where('id', '=', sessionId)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return res.numUpdatedRows > 0n;
}
