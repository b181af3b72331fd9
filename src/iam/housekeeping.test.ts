import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { engines } from '../../test/harness/engines.ts';
import { testIssuer } from '../../test/harness/iam.ts';
import { pruneIdentity } from './housekeeping.ts';
import { defaultLockoutPolicy, lockoutSubjects, recordFailure } from './sign-in/lockout.ts';
import { openSession } from './sessions/sessions.ts';
import { createUser } from './users/users.ts';

const DAY = 86400_000;

for (const engine of engines()) {
  describe(`identity housekeeping on ${engine.name}`, () => {
    test('removes old failures, long-ended sessions and expired one-time tokens, and keeps live ones', async () => {
      const { db } = await engine.open();
      const now = new Date();
      const policy = { idleSeconds: 3600, absoluteSeconds: 3600 };
      const source = { ip: null, userAgent: null };
      const ids = await db.transaction().execute(async (trx) => {
        const userId = await createUser(trx, { tenantId: null, email: 'keep@x.test', password: 'a long enough password' });
        const live = await openSession(trx, testIssuer, { userId, policy, source }, now);
        const recent = await openSession(trx, testIssuer, { userId, policy, source }, now);
        const old = await openSession(trx, testIssuer, { userId, policy, source }, new Date(now.getTime() - 10 * DAY));
        await trx.updateTable('accord.sessions').set({ revoked_at: new Date(now.getTime() - DAY) }).where('id', '=', recent.sessionId).execute();
        await trx.insertInto('accord.user_tokens').values([
          { user_id: userId, purpose: 'invite', token_hash: Buffer.alloc(32, 1), expires_at: new Date(now.getTime() - 8 * DAY) },
          { user_id: userId, purpose: 'invite', token_hash: Buffer.alloc(32, 2), expires_at: new Date(now.getTime() + DAY) },
        ]).execute();
        const subjects = lockoutSubjects({ tenantId: null, email: 'keep@x.test', ip: '10.0.0.1' });
        await recordFailure(trx, subjects, defaultLockoutPolicy, new Date(now.getTime() - 2 * 3600_000));
        await recordFailure(trx, subjects, defaultLockoutPolicy, now);
        // Federated sign-in flows: one long expired, one still running.
        const t = await trx.insertInto('accord.tenants').values({ name: 'keep', display_name: 'keep', region: 'eu' }).returning('id').executeTakeFirstOrThrow();
        const idp = await trx.insertInto('accord.identity_providers').values({ tenant_id: t.id, name: 'corp', kind: 'oidc', settings: '{}' }).returning('id').executeTakeFirstOrThrow();
        const flow = (n: number, expires: Date) => ({ idp_id: idp.id, state_hash: Buffer.alloc(32, n), nonce: 'n', code_verifier: 'v', audience: '{"kind":"console"}', mode: 'bearer' as const, expires_at: expires });
        await trx.insertInto('accord.federation_flows').values([flow(1, new Date(now.getTime() - DAY)), flow(2, new Date(now.getTime() + 60_000))]).execute();
        return { live: live.sessionId, recent: recent.sessionId, old: old.sessionId };
      });
      const pruned = await pruneIdentity(db, defaultLockoutPolicy, now);
      assert.equal(pruned.sessions, 1);
      assert.equal(pruned.userTokens, 1);
      assert.equal(pruned.federation, 1);
      assert.equal((await db.selectFrom('accord.federation_flows').select('id').execute()).length, 1, 'the running flow stays');
      assert.ok(pruned.failures >= 2, 'the old failure, counted per account and per IP');
      const left = (await db.selectFrom('accord.sessions').select('id').execute()).map((r) => r.id).sort();
      assert.deepEqual(left, [ids.live, ids.recent].sort());
      assert.equal((await db.selectFrom('accord.refresh_tokens').select('id').execute()).length, 2, "the old session's refresh token went with it");
      assert.equal((await db.selectFrom('accord.auth_failures').select('id').execute()).length, 3, 'the recent failure stays, per account, per IP and per IPv4 /24');
    });
  });
}
