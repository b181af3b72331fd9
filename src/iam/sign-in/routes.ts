import type { IncomingHttpHeaders } from 'node:http';
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyReply } from 'fastify';
import type { AuditSource } from '../../audit-chain/index.ts';
import type { DbOrTrx } from '../../db/index.ts';
import { AccordError } from '../../errors/index.ts';
import { access, type RouteDefinition, route } from '../../http/index.ts';
import { unitOfWork } from '../../kernel/index.ts';
import { asUser } from '../sessions/acting-as.ts';
import { completeSetup } from './bootstrap.ts';
import { clearSessionCookies, CSRF_HEADER, REFRESH_COOKIE, readCookie, setSessionCookies } from '../sessions/cookies.ts';
import { checkLockout, lockedError, lockoutAuditEvent, lockoutSubjects, recordFailure } from './lockout.ts';
import { type Audience, completeSignIn, login, logout, type SignInResult, type UserRef } from './login.ts';
import { verifySecondFactor } from '../mfa/verify.ts';
import { presentedDevice, setDeviceCookie } from './device.ts';
import type { IamServices } from '../services.ts';
import { refreshSession, sessionPolicy } from '../sessions/sessions.ts';
import { csrfToken, hashToken } from '../sessions/tokens.ts';

const Email = Type.String({ format: 'email', maxLength: 254 });
const Password = Type.String({ minLength: 1, maxLength: 1024 });
const Mode = Type.Optional(Type.Union([Type.Literal('bearer'), Type.Literal('cookie')], { description: 'cookie: browser session in HttpOnly cookies plus a CSRF token' }));

export const SignInOut = Type.Object({
  status: Type.Union([Type.Literal('signed-in'), Type.Literal('mfa-required'), Type.Literal('mfa-enrolment-required')]),
  sessionId: Type.Optional(Type.String()),
  tokenType: Type.Optional(Type.Literal('Bearer')),
  accessToken: Type.Optional(Type.String()),
  expiresIn: Type.Optional(Type.Integer()),
  accessExpiresAt: Type.Optional(Type.String({ format: 'date-time' })),
  refreshToken: Type.Optional(Type.String()),
  sessionExpiresAt: Type.Optional(Type.String({ format: 'date-time' })),
  csrfToken: Type.Optional(Type.String()),
  mfaToken: Type.Optional(Type.String()),
  methods: Type.Optional(Type.Array(Type.String())),
  mfaExpiresAt: Type.Optional(Type.String({ format: 'date-time' })),
  user: Type.Object({ id: Type.String(), email: Type.String(), tenant: Type.Union([Type.String(), Type.Null()]) }),
  deviceToken: Type.Optional(Type.String({ description: 'Bearer mode: send it back in Accord-Device on later sign-ins (cookie mode sets it as a cookie).' })),
});

export const MfaIn = Type.Object(
  {
    mfaToken: Type.String({ minLength: 1, maxLength: 200 }),
    totp: Type.Optional(Type.String({ pattern: '^[0-9]{6}$' })),
    recoveryCode: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    webauthn: Type.Optional(Type.Object({}, { additionalProperties: true })),
    mode: Mode,
  },
  { additionalProperties: false },
);

/**
 * The answer to a sign-in step. Bearer mode returns the tokens; cookie mode sets them as
 * HttpOnly cookies and returns only the CSRF token the page must echo on changes.
 */
export function signInReply(reply: FastifyReply, result: SignInResult, mode: 'bearer' | 'cookie' = 'bearer', now = Date.now()): Static<typeof SignInOut> {
  const user = { id: result.user.id, email: result.user.email, tenant: result.user.tenant };
  if (result.status === 'mfa-required') {
    return { status: result.status, mfaToken: result.mfaToken, methods: [...result.methods], mfaExpiresAt: result.expiresAt.toISOString(), user };
  }
  const s = result.session;
  const common = {
    status: result.status,
    sessionId: s.sessionId,
    tokenType: 'Bearer' as const,
    expiresIn: Math.max(0, Math.round((s.accessExpiresAt.getTime() - now) / 1000)),
    accessExpiresAt: s.accessExpiresAt.toISOString(),
    sessionExpiresAt: s.sessionExpiresAt.toISOString(),
    user,
  };
  if (mode === 'cookie') {
    setSessionCookies(reply, s, now);
    if (result.deviceToken) setDeviceCookie(reply, result.deviceToken);
    return { ...common, csrfToken: s.csrfToken };
  }
  return { ...common, accessToken: s.accessToken, refreshToken: s.refreshToken, ...(result.deviceToken ? { deviceToken: result.deviceToken } : {}) };
}

/**
 * Second step of a sign-in: the MFA challenge token and one factor, in one unit of work. A wrong
 * factor counts as a failed sign-in for the account's lockout (a committed refusal: the counters
 * and the audit records stay); the challenge is single-use once it succeeds.
 */
export async function completeMfa(
  iam: IamServices,
  source: AuditSource,
  input: Static<typeof MfaIn>,
  where: { kind: 'console' } | { kind: 'end-user'; stageId: string },
  now = new Date(),
): Promise<SignInResult> {
  return unitOfWork(iam.db, source, async (w) => {
    const { trx } = w;
    const row = await trx
      .selectFrom('accord.user_tokens as t')
      .innerJoin('accord.users as u', 'u.id', 't.user_id')
      .leftJoin('accord.tenants as tn', 'tn.id', 'u.tenant_id')
      .select(['t.id', 't.data', 't.expires_at', 't.used_at', 'u.id as user_id', 'u.email', 'u.tenant_id', 'u.status', 'tn.name as tenant_name'])
      .where('t.token_hash', '=', hashToken(input.mfaToken))
      .where('t.purpose', '=', 'mfa-challenge')
      .forUpdate('t')
      .executeTakeFirst();
    if (!row || row.used_at !== null || row.expires_at <= now || row.status !== 'active') throw new AccordError('IAM_MFA_CHALLENGE_INVALID');
    // A challenge completes where its sign-in began: the console, or that one stage.
    const audience = ((row.data as { audience?: Audience }).audience ?? { kind: 'console' }) as Audience;
    if (audience.kind !== where.kind || (audience.kind === 'end-user' && where.kind === 'end-user' && audience.stageId !== where.stageId)) {
      throw new AccordError('IAM_MFA_CHALLENGE_INVALID');
    }
    const user: UserRef = { id: row.user_id, email: row.email, tenantId: row.tenant_id, tenant: row.tenant_name };
    const subjects = lockoutSubjects({ tenantId: null, email: user.email, ip: source.sourceIp });
    const lock = await checkLockout(trx, subjects, now);
    if (lock.locked) throw lockedError(lock.retryAfterSeconds);
    const factor = await verifySecondFactor(w, iam.key, iam.webauthn, user.id, input, row.data, now);
    if (!factor.ok) {
      const failure = await recordFailure(trx, subjects, iam.signIn.lockout, now);
      return w.as(asUser(source, user)).refuse(
        new AccordError('IAM_MFA_INVALID'),
        { tenantId: user.tenantId, action: 'auth.mfa', target: { type: 'user', id: user.id }, outcome: 'failure', reason: factor.reason },
        ...failure.locks.map((l) => lockoutAuditEvent(l, null)),
      );
    }
    await trx.updateTable('accord.user_tokens').set({ used_at: now }).where('id', '=', row.id).execute();
    return completeSignIn(w, iam.signIn, user, ['password', factor.method], audience, now);
  });
}

/**
 * A refresh route's body: optional, because browsers send the refresh token as a cookie and
 * nothing else (declared as `optionalBody`: the route kit checks it when present).
 */
export const RefreshIn = Type.Object({ refreshToken: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })) }, { additionalProperties: false });

/** The refresh token from the body (API clients) or the cookie (browsers, with the CSRF header). */
export function presentedRefresh(body: Static<typeof RefreshIn> | undefined, headers: IncomingHttpHeaders): { token: string; csrf?: string } {
  const token = body?.refreshToken;
  if (token) return { token };
  const fromCookie = readCookie({ headers }, REFRESH_COOKIE);
  if (!fromCookie) throw new AccordError('IAM_TOKEN_INVALID', { message: 'No refresh token given (body refreshToken or the session cookie).' });
  const csrf = headers[CSRF_HEADER];
  return { token: fromCookie, csrf: typeof csrf === 'string' ? csrf : '' };
}

/** Setup, sign-in (password, MFA), token refresh and sign-out of console users. */
export function iamRoutes(iam: IamServices): RouteDefinition[] {
  const { db } = iam;
  const consolePolicy = (trx: DbOrTrx, s: { tenantId: string | null }) => sessionPolicy(trx, iam.defaults, { tenantId: s.tenantId });
  return [
    route({
      method: 'POST',
      url: '/api/v1/setup',
      access: access.public,
      status: 201,
      schema: {
        summary: 'Create the first platform operator with the one-time setup token',
        tags: ['iam'],
        body: Type.Object({ token: Type.String({ minLength: 1, maxLength: 200 }), email: Email, password: Password }, { additionalProperties: false }),
        response: { 201: Type.Object({ userId: Type.String(), email: Type.String() }) },
      },
      handler: async ({ body, source }) => completeSetup(db, source, body),
    }),
    route({
      method: 'POST',
      url: '/api/v1/auth/login',
      access: access.public,
      schema: {
        summary: 'Sign in with email and password: a session (access + refresh token), or an MFA challenge',
        tags: ['iam'],
        body: Type.Object({ email: Email, password: Password, tenant: Type.Optional(Type.String({ maxLength: 63 })), mode: Mode }, { additionalProperties: false }),
        response: { 200: SignInOut },
      },
      handler: async ({ body, source, reply, headers }) => signInReply(reply, await login(iam.signIn, source, { ...body, device: presentedDevice({ headers }) }), body.mode),
    }),
    route({
      method: 'POST',
      url: '/api/v1/auth/mfa',
      access: access.public,
      schema: {
        summary: 'Complete a sign-in with a second factor: TOTP code, recovery code or passkey assertion',
        tags: ['iam'],
        body: MfaIn,
        response: { 200: SignInOut },
      },
      handler: async ({ body, source, reply }) => signInReply(reply, await completeMfa(iam, source, body, { kind: 'console' }), body.mode),
    }),
    route({
      method: 'POST',
      url: '/api/v1/auth/refresh',
      access: access.public,
      schema: {
        summary: 'Exchange a refresh token ({"refreshToken"} or the session cookie) for new tokens (rotation; a reused refresh token revokes the session)',
        tags: ['iam'],
        optionalBody: RefreshIn,
        response: { 200: SignInOut },
      },
      handler: async ({ body, headers, source, reply }) => {
        const presented = presentedRefresh(body, headers);
        const { session, user } = await refreshSession(
          db,
          iam.issuer,
          source,
          { refreshToken: presented.token, policy: consolePolicy, ...(presented.csrf === undefined ? {} : { csrf: presented.csrf }) },
          { kind: 'console' },
        );
        return signInReply(reply, { status: 'signed-in', session, user }, presented.csrf === undefined ? 'bearer' : 'cookie');
      },
    }),
    route({
      method: 'POST',
      url: '/api/v1/auth/logout',
      access: access.enrolment,
      status: 204,
      schema: { summary: 'End the current session (all its tokens)', tags: ['iam'] },
      handler: async ({ auth, source, reply }) => {
        if (!auth.sessionId) throw new AccordError('IAM_WRONG_AUDIENCE', { message: 'API clients have no session to end.' });
        await logout(db, source, auth.sessionId, auth.tenantId);
        if (auth.via === 'cookie') clearSessionCookies(reply);
      },
    }),
    route({
      method: 'GET',
      url: '/api/v1/auth/session',
      access: access.enrolment,
      schema: {
        summary: 'Who am I: the current principal, session and grants',
        tags: ['iam'],
        response: {
          200: Type.Object({
            kind: Type.String(),
            userId: Type.String(),
            email: Type.String(),
            sessionId: Type.Union([Type.String(), Type.Null()]),
            enrolmentOnly: Type.Boolean(),
            csrfToken: Type.Optional(Type.String()),
            grants: Type.Array(
              Type.Object({ role: Type.String(), tenant: Type.Union([Type.String(), Type.Null()]), stage: Type.Union([Type.String(), Type.Null()]), permissions: Type.Array(Type.String()) }),
            ),
          }),
        },
      },
      handler: async ({ auth }) => ({
        kind: auth.kind,
        userId: auth.principalId,
        email: auth.label,
        sessionId: auth.sessionId,
        enrolmentOnly: auth.enrolmentOnly,
        ...(auth.via === 'cookie' && auth.sessionId ? { csrfToken: csrfToken(iam.key, auth.sessionId) } : {}),
        grants: auth.grants.map((g) => ({ role: g.role, tenant: g.tenantName, stage: g.stageName, permissions: [...g.permissions] })),
      }),
    }),
  ];
}
