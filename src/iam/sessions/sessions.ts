import { sql } from 'kysely';
import { jsonArrayFrom } from 'kysely/helpers/postgres';
import type { AuditSource } from '../../audit-chain/index.ts';
import type { Db, DbOrTrx, Trx } from '../../db/index.ts';
import { AccordError } from '../../errors/index.ts';
import type { AuthContext, RequestMeta } from '../../http/index.ts';
import { unitOfWork } from '../../kernel/index.ts';
import type { IamKey } from '../iam-key.ts';
import { asUser } from './acting-as.ts';
import type { PrincipalCache } from './principal-cache.ts';
import { type AccessClaims, csrfMatches, csrfToken, hashToken, isWellFormedToken, newToken, signAccessToken, verifyAccessToken } from './tokens.ts';
import { grantRowsQuery, grantsOf, toGrantView } from '../users/users.ts';

export interface SessionPolicy {
  readonly idleSeconds: number;
  readonly absoluteSeconds: number;
}

/** How sessions are issued: the IAM key signs access tokens that live `accessTtlSeconds`. */
export interface TokenIssuer {
  readonly key: IamKey;
  readonly accessTtlSeconds: number;
}

/** What a sign-in hands back. The refresh token is shown once and stored hashed. */
export interface IssuedSession {
  readonly sessionId: string;
  readonly accessToken: string;
  readonly accessExpiresAt: Date;
  readonly refreshToken: string;
  /** When the session ends at the latest (absolute timeout). */
  readonly sessionExpiresAt: Date;
  /** For browser sessions: the value to send as x-csrf-token with cookie-authenticated changes. */
  readonly csrfToken: string;
  readonly enrolmentOnly: boolean;
}

// Sliding the idle deadline on every request would turn reads into writes; a minute of slack is
// invisible against timeouts measured in hours.
const TOUCH_EVERY_MS = 60_000;
// An enrolment-only session exists to enrol a factor, nothing else: it does not outlive this.
const ENROLMENT_SECONDS = 15 * 60;

/** The session policy for a console user of a tenant (or the platform) or an end user of a stage. */
export async function sessionPolicy(db: DbOrTrx, defaults: SessionPolicy, scope: { tenantId: string | null; stageId?: string | null }): Promise<SessionPolicy> {
  let row: { session_idle_seconds: number | null; session_absolute_seconds: number | null } | undefined;
  if (scope.stageId) {
    row = await db.selectFrom('accord.stages').select(['session_idle_seconds', 'session_absolute_seconds']).where('id', '=', scope.stageId).executeTakeFirst();
  } else if (scope.tenantId) {
    row = await db.selectFrom('accord.tenants').select(['session_idle_seconds', 'session_absolute_seconds']).where('id', '=', scope.tenantId).executeTakeFirst();
  }
  return { idleSeconds: row?.session_idle_seconds ?? defaults.idleSeconds, absoluteSeconds: row?.session_absolute_seconds ?? defaults.absoluteSeconds };
}

function accessToken(issuer: TokenIssuer, typ: 'user' | 'end-user', userId: string, sessionId: string, absolute: Date, now: Date) {
  const iat = Math.floor(now.getTime() / 1000);
  // Never beyond the session's own end: an access token cannot outlive its session.
  const exp = Math.min(iat + issuer.accessTtlSeconds, Math.floor(absolute.getTime() / 1000));
  return { token: signAccessToken(issuer.key, { typ, sub: userId, sid: sessionId, iat, exp }), expiresAt: new Date(exp * 1000) };
}

/**
 * Opens a session (a new id every sign-in) and returns its first access and refresh tokens.
 * The caller audits. Enrolment-only sessions are short and may only enrol an MFA factor.
 */
export async function openSession(
  trx: Trx,
  issuer: TokenIssuer,
  input: {
    userId: string;
    kind?: 'console' | 'end-user';
    stageId?: string | null;
    enrolmentOnly?: boolean;
    methods?: readonly string[];
    policy: SessionPolicy;
    source: { ip: string | null; userAgent: string | null };
  },
  now = new Date(),
): Promise<IssuedSession> {
  const enrolmentOnly = input.enrolmentOnly ?? false;
  const absoluteSeconds = enrolmentOnly ? Math.min(ENROLMENT_SECONDS, input.policy.absoluteSeconds) : input.policy.absoluteSeconds;
  const absolute = new Date(now.getTime() + absoluteSeconds * 1000);
  const idle = new Date(Math.min(now.getTime() + input.policy.idleSeconds * 1000, absolute.getTime()));
  const row = await trx
    .insertInto('accord.sessions')
    .values({
      user_id: input.userId,
      kind: input.kind ?? 'console',
      stage_id: input.stageId ?? null,
      enrolment_only: enrolmentOnly,
      auth_methods: [...(input.methods ?? ['password'])],
      last_seen_at: now,
      idle_expires_at: idle,
      absolute_expires_at: absolute,
      source_ip: input.source.ip,
      user_agent: input.source.userAgent,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  const refresh = newToken('acr');
  await trx.insertInto('accord.refresh_tokens').values({ session_id: row.id, token_hash: refresh.hash }).execute();
  const access = accessToken(issuer, input.kind === 'end-user' ? 'end-user' : 'user', input.userId, row.id, absolute, now);
  return {
    sessionId: row.id,
    accessToken: access.token,
    accessExpiresAt: access.expiresAt,
    refreshToken: refresh.token,
    sessionExpiresAt: absolute,
    csrfToken: csrfToken(issuer.key, row.id),
    enrolmentOnly,
  };
}

/**
 * Exchanges a refresh token for a new access and refresh token (rotation). A refresh token that
 * was already exchanged is reuse, the sign of a stolen token: the whole session is revoked and
 * audited, so neither the thief nor the victim can go on with it. `kind` restricts which
 * sessions this endpoint serves (console or one stage's end users).
 */
export async function refreshSession(
  db: Db,
  issuer: TokenIssuer,
  source: AuditSource,
  input: {
    refreshToken: string;
    /** The session policy that applies; reads through `trx` (PGlite has one connection). */
    policy: (trx: DbOrTrx, s: { userId: string; tenantId: string | null; stageId: string | null }) => Promise<SessionPolicy>;
    /** Cookie-borne refresh tokens: the CSRF header value, checked against the session. */
    csrf?: string;
  },
  expect: { kind: 'console' } | { kind: 'end-user'; stageId: string },
  now = new Date(),
): Promise<{ session: IssuedSession; user: { id: string; email: string; tenantId: string | null; tenant: string | null } }> {
  if (!isWellFormedToken(input.refreshToken, 'acr')) throw new AccordError('IAM_TOKEN_INVALID');
  return unitOfWork(db, source, async (w) => {
    const { trx } = w;
    const row = await trx
      .selectFrom('accord.refresh_tokens as r')
      .innerJoin('accord.sessions as s', 's.id', 'r.session_id')
      .innerJoin('accord.users as u', 'u.id', 's.user_id')
      .leftJoin('accord.tenants as t', 't.id', 'u.tenant_id')
      .select(['r.id as refresh_id', 'r.used_at', 's.id', 's.kind', 's.stage_id', 's.user_id', 's.revoked_at', 's.idle_expires_at', 's.absolute_expires_at', 's.enrolment_only', 'u.email', 'u.tenant_id', 'u.status', 't.name as tenant_name'])
      .where('r.token_hash', '=', hashToken(input.refreshToken))
      .forUpdate('r')
      .executeTakeFirst();
    if (!row || row.kind !== expect.kind || (expect.kind === 'end-user' && row.stage_id !== expect.stageId)) {
      throw new AccordError('IAM_TOKEN_INVALID');
    }
    if (input.csrf !== undefined && !csrfMatches(issuer.key, row.id, input.csrf)) throw new AccordError('IAM_CSRF');
    // The refresh token has shown whose session this is: that user is the actor from here on.
    const holder = w.as(asUser(source, { id: row.user_id, email: row.email }));
    if (row.used_at !== null) {
      // A committed refusal: the revocation stays although the request fails.
      if (row.revoked_at === null) {
        await trx.updateTable('accord.sessions').set({ revoked_at: now, revoked_reason: 'refresh-reuse' }).where('id', '=', row.id).execute();
      }
      return holder.refuse(new AccordError('IAM_REFRESH_REUSED'), {
        tenantId: row.tenant_id,
        action: 'auth.refresh',
        target: { type: 'session', id: row.id },
        outcome: 'denied',
        reason: 'IAM_REFRESH_REUSED',
        details: { sessionRevoked: true },
      });
    }
    if (row.revoked_at !== null || row.idle_expires_at <= now || row.absolute_expires_at <= now || row.status !== 'active' || row.enrolment_only) {
      throw new AccordError('IAM_SESSION_ENDED');
    }
    await trx.updateTable('accord.refresh_tokens').set({ used_at: now }).where('id', '=', row.refresh_id).execute();
    const refresh = newToken('acr');
    await trx.insertInto('accord.refresh_tokens').values({ session_id: row.id, token_hash: refresh.hash }).execute();
    const policy = await input.policy(trx, { userId: row.user_id, tenantId: row.tenant_id, stageId: row.stage_id });
    const idle = new Date(Math.min(now.getTime() + policy.idleSeconds * 1000, row.absolute_expires_at.getTime()));
    await trx.updateTable('accord.sessions').set({ last_seen_at: now, idle_expires_at: idle }).where('id', '=', row.id).execute();
    await holder.audit({ tenantId: row.tenant_id, action: 'auth.refresh', target: { type: 'session', id: row.id }, outcome: 'success' });
    const access = accessToken(issuer, row.kind === 'end-user' ? 'end-user' : 'user', row.user_id, row.id, row.absolute_expires_at, now);
    return {
      session: {
        sessionId: row.id,
        accessToken: access.token,
        accessExpiresAt: access.expiresAt,
        refreshToken: refresh.token,
        sessionExpiresAt: row.absolute_expires_at,
        csrfToken: csrfToken(issuer.key, row.id),
        enrolmentOnly: false,
      },
      user: { id: row.user_id, email: row.email, tenantId: row.tenant_id, tenant: row.tenant_name },
    };
  });
}

export type Authentication = { auth: AuthContext } | { error: NonNullable<RequestMeta['authError']> };

/**
 * Resolves an access token to the caller: the principal cache, when it remembers this very
 * token; else MAC and expiry first (no database work for forged or stale tokens), then the live
 * session and user, or the live API client, with current grants. Revoking a session, disabling a
 * user or revoking a client takes effect on the next request (through this node; see
 * PrincipalCache for others).
 */
export async function authenticate(
  db: Db,
  issuer: TokenIssuer,
  token: string,
  via: 'bearer' | 'cookie',
  idle: (tenantId: string | null, stageId: string | null) => Promise<number>,
  now = new Date(),
  cache?: PrincipalCache,
): Promise<Authentication> {
  // Keyed by the token itself: a token this node verified moments ago is not verified again (its
  // MAC cost more than the rest of a cached authentication, issue 9); an entry never outlives the
  // token's expiry, after which the token is verified, and refused, again.
  const hit = cache?.get(token, now.getTime());
  if (hit) return { auth: { ...hit, via } };
  const v = verifyAccessToken(issuer.key, token, now.getTime());
  if (!v.ok) return { error: v.reason === 'expired' ? 'IAM_TOKEN_EXPIRED' : 'IAM_TOKEN_INVALID' };
  const c = v.claims;
  const found = await loadPrincipal(db, c, idle, now);
  if ('error' in found) return found;
  cache?.set(token, found.auth, now.getTime(), Math.min(found.deadline, c.exp * 1000));
  return { auth: { ...found.auth, via } };
}

/** The database half of {@link authenticate}: the live principal behind verified claims. */
async function loadPrincipal(
  db: Db,
  c: AccessClaims,
  idle: (tenantId: string | null, stageId: string | null) => Promise<number>,
  now: Date,
): Promise<{ auth: Omit<AuthContext, 'via'>; deadline: number } | { error: NonNullable<RequestMeta['authError']> }> {
  if (c.typ === 'client') {
    // The secret the token was obtained with must still be live: rotating without overlap (or
    // revoking) ends the tokens issued under the old secret at once.
    const client = await db
      .selectFrom('accord.api_clients as k')
      .innerJoin('accord.api_client_secrets as cs', 'cs.client_id', 'k.id')
      .select(['k.id', 'k.name', 'k.tenant_id', 'k.expires_at', 'cs.expires_at as secret_expires_at'])
      .where('k.id', '=', c.sub)
      .where('k.revoked_at', 'is', null)
      .where('k.expires_at', '>', now)
      .where('cs.id', '=', c.sv ?? '')
      .where('cs.revoked_at', 'is', null)
      .where('cs.expires_at', '>', now)
      .executeTakeFirst();
    if (!client) return { error: 'IAM_SESSION_ENDED' };
    return {
      auth: {
        kind: 'client',
        principalId: client.id,
        label: client.name,
        tenantId: client.tenant_id,
        sessionId: null,
        stageId: null,
        enrolmentOnly: false,
        grants: await grantsOf(db, { clientId: client.id }),
      },
      deadline: Math.min(client.expires_at.getTime(), client.secret_expires_at.getTime()),
    };
  }
  if (c.sid === null) return { error: 'IAM_TOKEN_INVALID' };
  const row = await db
    .selectFrom('accord.sessions as s')
    .innerJoin('accord.users as u', 'u.id', 's.user_id')
    .leftJoin('accord.stages as st', 'st.id', 's.stage_id')
    .leftJoin('accord.tenants as t', 't.id', 'st.tenant_id')
    .select(['s.id', 's.user_id', 's.kind', 's.stage_id', 's.enrolment_only', 's.last_seen_at', 's.idle_expires_at', 's.absolute_expires_at', 'u.email', 'u.tenant_id', 'st.name as stage_name', 't.name as tenant_name'])
    // The grants come along in the same round trip (this runs on every uncached request).
    .select(() => jsonArrayFrom(grantRowsQuery(db).where((eb) => eb('g.user_id', '=', sql.ref<string>('s.user_id')))).as('grants'))
    .where('s.id', '=', c.sid)
    .where('s.user_id', '=', c.sub)
    .where('s.revoked_at', 'is', null)
    .where('s.idle_expires_at', '>', now)
    .where('s.absolute_expires_at', '>', now)
    .where('u.status', '=', 'active')
    .executeTakeFirst();
  if (!row || (row.kind === 'end-user') !== (c.typ === 'end-user')) return { error: 'IAM_SESSION_ENDED' };
  let idleUntil = row.idle_expires_at;
  if (now.getTime() - row.last_seen_at.getTime() > TOUCH_EVERY_MS) {
    const idleSeconds = await idle(row.tenant_id, row.stage_id);
    idleUntil = new Date(Math.min(now.getTime() + idleSeconds * 1000, row.absolute_expires_at.getTime()));
    await db.updateTable('accord.sessions').set({ last_seen_at: now, idle_expires_at: idleUntil }).where('id', '=', row.id).execute();
  }
  return {
    auth: {
      kind: row.kind === 'end-user' ? 'end-user' : 'user',
      principalId: row.user_id,
      label: row.email,
      tenantId: row.tenant_id,
      sessionId: row.id,
      stageId: row.stage_id,
      ...(row.kind === 'end-user' && row.stage_name && row.tenant_name ? { endUser: { tenant: row.tenant_name, stage: row.stage_name } } : {}),
      enrolmentOnly: row.enrolment_only,
      // End users act inside apps with app roles; control-plane grants do not apply to them.
      grants: row.kind === 'end-user' ? [] : row.grants.map(toGrantView),
    },
    deadline: Math.min(idleUntil.getTime(), row.absolute_expires_at.getTime()),
  };
}

/** Revokes one session (and so all its tokens); returns whether it was live. */
export async function revokeSession(trx: Trx, sessionId: string, reason = 'logout'): Promise<boolean> {
  const res = await trx
    .updateTable('accord.sessions')
    .set({ revoked_at: sql`now()`, revoked_reason: reason })
    .where('id', '=', sessionId)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return res.numUpdatedRows > 0n;
}

/** Revokes every live session of a user (password change, disabling); returns how many. */
export async function revokeUserSessions(trx: Trx, userId: string, reason: string, except?: string): Promise<number> {
  let q = trx.updateTable('accord.sessions').set({ revoked_at: sql`now()`, revoked_reason: reason }).where('user_id', '=', userId).where('revoked_at', 'is', null);
  if (except) q = q.where('id', '!=', except);
  const res = await q.executeTakeFirst();
  return Number(res.numUpdatedRows);
}

/** A session as its owner (or a tenant admin) sees it: never any token. */
export interface SessionView {
  readonly id: string;
  readonly kind: 'console' | 'end-user';
  readonly stage: string | null;
  readonly createdAt: string;
  readonly lastSeenAt: string;
  readonly idleExpiresAt: string;
  readonly absoluteExpiresAt: string;
  readonly sourceIp: string | null;
  readonly userAgent: string | null;
  readonly authMethods: readonly string[];
}

/** A user's live sessions, newest first. */
export async function listSessions(db: DbOrTrx, userId: string, now = new Date()): Promise<SessionView[]> {
  const rows = await db
    .selectFrom('accord.sessions as s')
    .leftJoin('accord.stages as st', 'st.id', 's.stage_id')
    .select(['s.id', 's.kind', 'st.name as stage', 's.created_at', 's.last_seen_at', 's.idle_expires_at', 's.absolute_expires_at', 's.source_ip', 's.user_agent', 's.auth_methods'])
    .where('s.user_id', '=', userId)
    .where('s.revoked_at', 'is', null)
    .where('s.idle_expires_at', '>', now)
    .where('s.absolute_expires_at', '>', now)
    .orderBy('s.created_at', 'desc')
    .execute();
  return rows.map((r) => ({
    id: r.id,
    kind: r.kind,
    stage: r.stage,
    createdAt: r.created_at.toISOString(),
    lastSeenAt: r.last_seen_at.toISOString(),
    idleExpiresAt: r.idle_expires_at.toISOString(),
    absoluteExpiresAt: r.absolute_expires_at.toISOString(),
    sourceIp: r.source_ip,
    userAgent: r.user_agent,
    authMethods: r.auth_methods,
  }));
}
