import { type AuditSource, record } from '../audit/index.ts';
import type { Db } from '../db/index.ts';
import { AccordError } from '../errors/index.ts';
import { verifyPassword } from './passwords.ts';
import { checkLockout, defaultLockoutPolicy, type LockoutPolicy, lockoutAuditEvent, lockoutSubjects, recordFailure, recordSuccess } from './lockout.ts';
import { createSession, revokeSession, type SessionPolicy } from './sessions.ts';

/** Accounts that may own an email: the platform directory's first, then tenant directories'. */
async function candidates(db: Db, email: string, tenant: string | undefined) {
  const lower = email.trim().toLowerCase();
  let q = db
    .selectFrom('accord.users as u')
    .leftJoin('accord.tenants as t', 't.id', 'u.tenant_id')
    .select(['u.id', 'u.email', 'u.tenant_id', 'u.password_hash', 'u.status', 't.name as tenant_name'])
    .where('u.email', '=', lower);
  if (tenant !== undefined) q = q.where('t.name', '=', tenant);
  // Platform directory first: a null tenant_id sorts first under DESC (NULLS FIRST by default).
  return q.orderBy('u.tenant_id', 'desc').limit(5).execute();
}

/**
 * Console sign-in with email and password, for platform operators and tenant users alike. The
 * password is checked against every account with that email (at most a handful), so a wrong
 * password, an unknown email and a disabled account give the same error after comparable work.
 * Every attempt is audited: on the account's tenant chain when it is known, else the platform's.
 */
export async function login(
  db: Db,
  source: AuditSource,
  policy: SessionPolicy,
  input: { email: string; password: string; tenant?: string | undefined },
  lockout: LockoutPolicy = defaultLockoutPolicy,
  now = new Date(),
): Promise<{ token: string; expiresAt: Date; user: { id: string; email: string; tenant: string | null } }> {
  // One counter per email across directories: choosing another tenant must not buy more tries.
  const subjects = lockoutSubjects({ tenantId: null, email: input.email, ip: source.sourceIp });
  const anonymous = { ...source, actor: { type: 'anonymous' as const, id: null, label: input.email.toLowerCase(), roles: [] } };
  const lock = await checkLockout(db, subjects, now);
  if (lock.locked) {
    // Refused without checking the password (a right one is refused too), and not counted, so
    // retrying during a short lock does not escalate it.
    await db.transaction().execute((trx) =>
      record(trx, anonymous, { tenantId: null, action: 'auth.login', outcome: 'denied', reason: 'IAM_LOCKED', details: { scope: lock.scope } }),
    );
    throw new AccordError('IAM_LOCKED', {
      headers: { 'retry-after': String(lock.retryAfterSeconds) },
      details: { retryAfterSeconds: lock.retryAfterSeconds },
    });
  }
  const accounts = await candidates(db, input.email, input.tenant);
  const matches: typeof accounts = [];
  if (accounts.length === 0) await verifyPassword(undefined, input.password);
  for (const a of accounts) if (await verifyPassword(a.password_hash, input.password)) matches.push(a);
  const active = matches.filter((m) => m.status === 'active');
  if (active.length > 1) throw new AccordError('IAM_TENANT_REQUIRED');
  const user = active[0];
  if (!user) {
    const known = matches[0] ?? accounts[0];
    const reason = accounts.length === 0 ? 'unknown-user' : matches.length === 0 ? 'bad-password' : 'disabled';
    await db.transaction().execute(async (trx) => {
      // The lockout rows first: taking them before the audit chain's head keeps lock order fixed.
      const failure = await recordFailure(trx, subjects, lockout, now);
      await record(trx, anonymous, {
        tenantId: accounts.length === 1 ? (known?.tenant_id ?? null) : null,
        action: 'auth.login',
        ...(known && accounts.length === 1 ? { target: { type: 'user', id: known.id } } : {}),
        outcome: 'failure',
        reason,
      });
      for (const l of failure.locks) await record(trx, anonymous, lockoutAuditEvent(l, null));
    });
    throw new AccordError('IAM_INVALID_CREDENTIALS');
  }
  return db.transaction().execute(async (trx) => {
    await recordSuccess(trx, subjects, now);
    const session = await createSession(trx, user.id, policy, { ip: source.sourceIp, userAgent: source.userAgent });
    await record(trx, { ...source, actor: { type: 'user', id: user.id, label: user.email, roles: [] } }, {
      tenantId: user.tenant_id,
      action: 'auth.login',
      target: { type: 'session', id: session.id },
      outcome: 'success',
    });
    return { token: session.token, expiresAt: session.expiresAt, user: { id: user.id, email: user.email, tenant: user.tenant_name } };
  });
}

/** Ends the caller's session. */
export async function logout(db: Db, source: AuditSource, sessionId: string, tenantId: string | null = null): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await revokeSession(trx, sessionId);
    await record(trx, source, {
      tenantId,
      action: 'auth.logout',
      target: { type: 'session', id: sessionId },
      outcome: 'success',
    });
  });
}
