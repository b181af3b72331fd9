import type { AuditSource } from '../../audit-chain/index.ts';
import type { Db } from '../../db/index.ts';
import { AccordError } from '../../errors/index.ts';
import { refuse, unitOfWork, type Work } from '../../kernel/index.ts';
import { asUser } from '../sessions/acting-as.ts';
import { issueDeviceToken, verifyDeviceToken } from './device.ts';
import { accountSubject, type LockoutPolicy, lockedError, lockoutAuditEvent, lockoutSubjects, type Reservation, recordSuccess, releaseReservation, reserveAttempt } from './lockout.ts';
import { mfaFactors, mfaRequired } from '../mfa/factors.ts';
import { verifyPassword } from '../account/passwords.ts';
import { builtinSignInDisabled } from '../federation/providers.ts';
import { type IssuedSession, openSession, revokeSession, type SessionPolicy, sessionPolicy, type TokenIssuer } from '../sessions/sessions.ts';
import { newToken } from '../sessions/tokens.ts';

/** Everything sign-in needs, assembled once from the configuration. */
export interface SignInDeps {
  readonly db: Db;
  readonly issuer: TokenIssuer;
  /** Platform default session policy (tenants and stages may override it). */
  readonly defaults: SessionPolicy;
  readonly lockout: LockoutPolicy;
  /** Whether platform-directory users (operators) must use MFA. */
  readonly platformRequireMfa: boolean;
}

export interface UserRef {
  readonly id: string;
  readonly email: string;
  readonly tenantId: string | null;
  readonly tenant: string | null;
}

/** Where a sign-in leads: the console, or the apps of one stage (end users). */
export type Audience = { readonly kind: 'console' } | { readonly kind: 'end-user'; readonly tenantId: string; readonly stageId: string };

/** `deviceToken`: the device cookie's value for this device and account (see device.ts). */
export type SignInResult =
  | { readonly status: 'signed-in'; readonly session: IssuedSession; readonly user: UserRef; readonly deviceToken?: string }
  | { readonly status: 'mfa-required'; readonly mfaToken: string; readonly methods: readonly string[]; readonly expiresAt: Date; readonly user: UserRef }
  | { readonly status: 'mfa-enrolment-required'; readonly session: IssuedSession; readonly user: UserRef; readonly deviceToken?: string };

const MFA_CHALLENGE_SECONDS = 5 * 60;
/**
 * The accounts a console sign-in without a tenant considers (the platform directory's first). An
 * email in more directories than this must name its tenant. Every such sign-in checks the
 * password this many times (dummy checks fill in), so the work does not tell how many accounts
 * an email has; a sign-in naming its tenant, or an end user's, checks once.
 */
export const MAX_SIGN_IN_ACCOUNTS = 3;

/** Accounts that may own an email: the platform directory's first, then tenant directories'. */
async function candidates(db: Db, email: string, tenant: string | undefined, audience: Audience) {
  const lower = email.trim().toLowerCase();
  let q = db
    .selectFrom('accord.users as u')
    .leftJoin('accord.tenants as t', 't.id', 'u.tenant_id')
    .select(['u.id', 'u.email', 'u.tenant_id', 'u.password_hash', 'u.status', 't.name as tenant_name'])
    .where('u.email', '=', lower);
  if (audience.kind === 'end-user') q = q.where('u.tenant_id', '=', audience.tenantId);
  else if (tenant !== undefined) q = q.where('t.name', '=', tenant);
  // Platform directory first: a null tenant_id sorts first under DESC (NULLS FIRST by default).
  return q.orderBy('u.tenant_id', 'desc').limit(MAX_SIGN_IN_ACCOUNTS).execute();
}

/**
 * Sign-in with email and password, for console users (platform operators and tenant users) and,
 * with an end-user audience, for a tenant's users on one stage. The password is checked against
 * every account with that email (up to MAX_SIGN_IN_ACCOUNTS), always the same number of times for
 * the kind of sign-in, so a wrong password, an unknown email, a disabled account and an email in
 * several tenants give the same error after the same work. A user with an MFA factor gets a
 * challenge instead of a session; a user who must use MFA and has none gets an enrolment-only
 * session. Every attempt is audited: on the account's tenant chain when it is known, else the
 * platform's.
 *
 * The attempt is reserved (counted) before any password is checked (`reserveAttempt`), so
 * concurrent guesses cannot outrun the lock. `input.device` is a device token from an earlier
 * successful sign-in: valid for this account, the attempt is counted under the device, not the
 * account, and the account's lock does not stop it.
 */
export async function login(
  deps: SignInDeps,
  source: AuditSource,
  input: { email: string; password: string; tenant?: string | undefined; device?: string | undefined },
  audience: Audience = { kind: 'console' },
  now = new Date(),
): Promise<SignInResult> {
  const { db } = deps;
  // One counter per email across directories: choosing another tenant must not buy more tries.
  const device = verifyDeviceToken(deps.issuer.key, input.device, accountSubject(null, input.email), now);
  const subjects = lockoutSubjects({ tenantId: null, email: input.email, ip: source.sourceIp, device: device?.deviceId });
  const anonymous = { ...source, actor: { type: 'anonymous' as const, id: null, label: input.email.toLowerCase(), roles: [] } };
  // Reserved in its own committed unit: the next concurrent attempt waits on the same rows and
  // sees this one counted (and any lock it set) before it may check a password.
  const reservation = await unitOfWork(db, anonymous, async (w) => {
    const r = await reserveAttempt(w.trx, subjects, deps.lockout, now);
    if (!r.admitted) {
      // Refused without checking the password (a right one is refused too), and not counted, so
      // retrying during a short lock does not escalate it.
      return w.refuse(lockedError(r.lock.retryAfterSeconds), {
        tenantId: null,
        action: 'auth.login',
        outcome: 'denied',
        reason: 'IAM_LOCKED',
        details: { scope: r.lock.scope, ...(device ? { device: true } : {}) },
      });
    }
    for (const l of r.locks) await w.audit(lockoutAuditEvent(l, null));
    return r;
  });
  const accounts = await candidates(db, input.email, input.tenant, audience);
  const matches: typeof accounts = [];
  const checks = audience.kind === 'console' && input.tenant === undefined ? MAX_SIGN_IN_ACCOUNTS : 1;
  for (let i = 0; i < checks; i++) {
    const a = accounts[i];
    // No account here: the same argon2id work against a dummy hash.
    if ((await verifyPassword(a?.password_hash, input.password)) && a) matches.push(a);
  }
  const active = matches.filter((m) => m.status === 'active');
  if (active.length > 1) throw new AccordError('IAM_TENANT_REQUIRED');
  let found = active[0];
  // Password sign-in turned off where an identity provider signs users in (issue 13): the same
  // answer as a wrong password, after the same work; the audit says why.
  const builtinOff = found !== undefined && (await builtinSignInDisabled(db, found.tenant_id, audience.kind === 'end-user' ? audience.stageId : null));
  if (builtinOff) found = undefined;
  if (!found) {
    const known = matches[0] ?? accounts[0];
    const reason = builtinOff ? 'builtin-sign-in-disabled' : accounts.length === 0 ? 'unknown-user' : matches.length === 0 ? 'bad-password' : 'disabled';
    // Already counted by the reservation (and its locks audited there).
    return refuse(db, anonymous, new AccordError('IAM_INVALID_CREDENTIALS'), {
      tenantId: accounts.length === 1 ? (known?.tenant_id ?? null) : null,
      action: 'auth.login',
      ...(known && accounts.length === 1 ? { target: { type: 'user', id: known.id } } : {}),
      outcome: 'failure',
      reason,
    });
  }
  const user: UserRef = { id: found.id, email: found.email, tenantId: found.tenant_id, tenant: found.tenant_name };
  const factors = await mfaFactors(db, user.id);
  if (factors.length > 0) {
    // The password was right, but the sign-in is not done: earlier failures are not cleared until
    // the second factor passes, and that factor's failures count against the same lock.
    const challenge = newToken('acm');
    const expiresAt = new Date(now.getTime() + MFA_CHALLENGE_SECONDS * 1000);
    await unitOfWork(db, asUser(source, user), async ({ trx, audit }) => {
      // The password was right: its reservation is taken back; the factor counts on its own.
      await releaseReservation(trx, subjects, reservation);
      await trx
        .insertInto('accord.user_tokens')
        .values({ user_id: user.id, purpose: 'mfa-challenge', token_hash: challenge.hash, expires_at: expiresAt, data: JSON.stringify({ audience }) })
        .execute();
      await audit({ tenantId: user.tenantId, action: 'auth.mfa.challenged', target: { type: 'user', id: user.id }, outcome: 'success', details: { methods: factors } });
    });
    return { status: 'mfa-required', mfaToken: challenge.token, methods: factors, expiresAt, user };
  }
  // A device token of another account with the same email (another directory) proves nothing here.
  const deviceId = device && device.userId === user.id ? device.deviceId : undefined;
  return unitOfWork(db, source, (w) => completeSignIn(w, deps, user, ['password'], audience, now, { reservation, deviceId }));
}

/**
 * The last step of every sign-in (password alone, or password and a second factor), inside the
 * sign-in's unit of work: clears the failure counters, opens the session and audits it as the
 * user. When MFA is required of this user and they have no factor yet, the session can only
 * enrol one.
 */
export async function completeSignIn(
  w: Work,
  deps: SignInDeps,
  user: UserRef,
  methods: readonly string[],
  audience: Audience,
  now = new Date(),
  attempt: { readonly reservation?: Reservation; readonly deviceId?: string | undefined } = {},
): Promise<SignInResult> {
  const { trx, source } = w;
  const subjects = lockoutSubjects({ tenantId: null, email: user.email, ip: source.sourceIp, device: attempt.deviceId });
  await recordSuccess(trx, subjects, now, attempt.reservation);
  // The device proved itself (again): its token is (re)issued for this account.
  const device = issueDeviceToken(deps.issuer.key, { deviceId: attempt.deviceId, account: subjects.account, userId: user.id }, now);
  const enrolmentOnly = audience.kind === 'console' && methods.length === 1 && (await mfaRequired(trx, user.id, user.tenantId, deps.platformRequireMfa));
  const policy = await sessionPolicy(trx, deps.defaults, audience.kind === 'end-user' ? { tenantId: audience.tenantId, stageId: audience.stageId } : { tenantId: user.tenantId });
  const session = await openSession(
    trx,
    deps.issuer,
    {
      userId: user.id,
      kind: audience.kind,
      stageId: audience.kind === 'end-user' ? audience.stageId : null,
      enrolmentOnly,
      methods,
      policy,
      source: { ip: source.sourceIp, userAgent: source.userAgent },
    },
    now,
  );
  await w.as(asUser(source, user)).audit({
    tenantId: user.tenantId,
    action: 'auth.login',
    target: { type: 'session', id: session.sessionId },
    outcome: 'success',
    details: { methods, audience: audience.kind, ...(enrolmentOnly ? { enrolmentOnly: true } : {}) },
  });
  return enrolmentOnly ? { status: 'mfa-enrolment-required', session, user, deviceToken: device.token } : { status: 'signed-in', session, user, deviceToken: device.token };
}

/** Ends the caller's session. */
export async function logout(db: Db, source: AuditSource, sessionId: string, tenantId: string | null = null): Promise<void> {
  await unitOfWork(db, source, async ({ trx, audit }) => {
    await revokeSession(trx, sessionId, 'logout');
    await audit({
      tenantId,
      action: 'auth.logout',
      target: { type: 'session', id: sessionId },
      outcome: 'success',
    });
  });
}
