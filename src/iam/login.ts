import { type AuditSource, record } from '../audit/index.ts';
import type { Db } from '../db/index.ts';
import { AccordError } from '../errors/index.ts';
import { verifyPassword } from './passwords.ts';
import { createSession, revokeSession, type SessionPolicy } from './sessions.ts';
import { findUserByEmail } from './users.ts';

/**
 * Console sign-in with email and password (platform directory). Unknown email, wrong password
 * and disabled account give the same error after the same work. Every attempt is audited.
 */
export async function login(
  db: Db,
  source: AuditSource,
  policy: SessionPolicy,
  input: { email: string; password: string },
): Promise<{ token: string; expiresAt: Date; user: { id: string; email: string } }> {
  const user = await findUserByEmail(db, null, input.email);
  const ok = await verifyPassword(user?.password_hash, input.password);
  if (!user || !ok || user.status !== 'active') {
    const reason = !user ? 'unknown-user' : !ok ? 'bad-password' : 'disabled';
    await db.transaction().execute((trx) =>
      record(trx, { ...source, actor: { type: 'anonymous', id: null, label: input.email.toLowerCase(), roles: [] } }, {
        tenantId: null,
        action: 'auth.login',
        ...(user ? { target: { type: 'user', id: user.id } } : {}),
        outcome: 'failure',
        reason,
      }),
    );
    throw new AccordError('IAM_INVALID_CREDENTIALS');
  }
  return db.transaction().execute(async (trx) => {
    const session = await createSession(trx, user.id, policy, { ip: source.sourceIp, userAgent: source.userAgent });
    await record(trx, { ...source, actor: { type: 'user', id: user.id, label: user.email, roles: [] } }, {
      tenantId: null,
      action: 'auth.login',
      target: { type: 'session', id: session.id },
      outcome: 'success',
    });
    return { token: session.token, expiresAt: session.expiresAt, user: { id: user.id, email: user.email } };
  });
}

/** Ends the caller's session. */
export async function logout(db: Db, source: AuditSource, sessionId: string): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await revokeSession(trx, sessionId);
    await record(trx, source, {
      tenantId: null,
      action: 'auth.logout',
      target: { type: 'session', id: sessionId },
      outcome: 'success',
    });
  });
}
