import { sql } from 'kysely';
import { type AuditSource, systemSource } from '../../audit-chain/index.ts';
import type { Db } from '../../db/index.ts';
import { AccordError } from '../../errors/index.ts';
import { unitOfWork } from '../../kernel/index.ts';
import { checkPasswordPolicy } from '../account/passwords.ts';
import { hashToken, newToken } from '../sessions/tokens.ts';
import { createUser, findUserByEmail, grantRole, hasOperator } from '../users/users.ts';

const SETUP_TOKEN_TTL_MS = 60 * 60 * 1000;

/** What start-up should tell the operator about the installation's setup state. */
export type BootstrapState =
  | { readonly state: 'ready' }
  | { readonly state: 'created-operator'; readonly email: string }
  | { readonly state: 'token-issued'; readonly token: string; readonly expiresAt: Date }
  | { readonly state: 'token-pending'; readonly expiresAt: Date };

/**
 * Runs at start. An installation with an operator is ready. Without one: create it from the
 * bootstrap settings when given, otherwise issue a one-time setup token (1 h, stored hashed).
 * A still-valid token is not replaced on restart, so it cannot be printed again: it is
 * shown once, like every secret.
 */
export async function ensureBootstrap(
  db: Db,
  opts: { email?: string | undefined; password?: string | undefined },
  now = new Date(),
): Promise<BootstrapState> {
  return unitOfWork(db, systemSource, async ({ trx, audit }) => {
    // One node at a time decides, so two nodes starting together issue one token.
    await sql`select pg_advisory_xact_lock(hashtext('accord.bootstrap'))`.execute(trx);
    if (await hasOperator(trx)) return { state: 'ready' as const };
    if (opts.email !== undefined && opts.password !== undefined) {
      checkPasswordPolicy(opts.password, opts.email);
      const userId = await createUser(trx, { tenantId: null, email: opts.email, password: opts.password });
      await grantRole(trx, { userId, role: 'platform-operator', tenantId: null, stageId: null });
      await audit({
        tenantId: null,
        action: 'platform.bootstrap',
        target: { type: 'user', id: userId },
        outcome: 'success',
        details: { method: 'configuration', email: opts.email.toLowerCase() },
      });
      return { state: 'created-operator' as const, email: opts.email.toLowerCase() };
    }
    const pending = await trx
      .selectFrom('accord.setup_tokens')
      .select('expires_at')
      .where('used_at', 'is', null)
      .where('expires_at', '>', now)
      .orderBy('expires_at', 'desc')
      .executeTakeFirst();
    if (pending) return { state: 'token-pending' as const, expiresAt: pending.expires_at };
    const { token, hash } = newToken('ast');
    const expiresAt = new Date(now.getTime() + SETUP_TOKEN_TTL_MS);
    await trx.insertInto('accord.setup_tokens').values({ token_hash: hash, expires_at: expiresAt }).execute();
    await audit({
      tenantId: null,
      action: 'platform.setup_token.issued',
      outcome: 'success',
      details: { expiresAt: expiresAt.toISOString() },
    });
    return { state: 'token-issued' as const, token, expiresAt };
  });
}

/**
 * Consumes a setup token to create the first operator. The token is spent by a conditional
 * update, so two concurrent attempts cannot both succeed; a failure is audited (a committed
 * refusal) and changes nothing else.
 */
export async function completeSetup(
  db: Db,
  source: AuditSource,
  input: { token: string; email: string; password: string },
  now = new Date(),
): Promise<{ userId: string; email: string }> {
  checkPasswordPolicy(input.password, input.email);
  return unitOfWork(db, source, async ({ trx, audit, refuse }) => {
    const failed = (code: 'IAM_SETUP_DONE' | 'IAM_SETUP_TOKEN_INVALID') =>
      refuse(new AccordError(code), { tenantId: null, action: 'platform.bootstrap', outcome: 'failure', reason: code });
    await sql`select pg_advisory_xact_lock(hashtext('accord.bootstrap'))`.execute(trx);
    if (await hasOperator(trx)) return failed('IAM_SETUP_DONE');
    const spent = await trx
      .updateTable('accord.setup_tokens')
      .set({ used_at: now })
      .where('token_hash', '=', hashToken(input.token))
      .where('used_at', 'is', null)
      .where('expires_at', '>', now)
      .returning('id')
      .executeTakeFirst();
    if (!spent) return failed('IAM_SETUP_TOKEN_INVALID');
    if (await findUserByEmail(trx, null, input.email)) return failed('IAM_SETUP_DONE');
    const userId = await createUser(trx, { tenantId: null, email: input.email, password: input.password });
    await grantRole(trx, { userId, role: 'platform-operator', tenantId: null, stageId: null });
    await audit({
      tenantId: null,
      action: 'platform.bootstrap',
      target: { type: 'user', id: userId },
      outcome: 'success',
      details: { method: 'setup-token', email: input.email.toLowerCase() },
    });
    return { userId, email: input.email.toLowerCase() };
  });
}
