import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { engines } from '../../../test/harness/engines.ts';
import { testSignIn } from '../../../test/harness/iam.ts';
import { systemSource } from '../../audit-chain/index.ts';
import { isAccordError } from '../../errors/index.ts';
import { completeSetup, ensureBootstrap, hasOperator, login } from '../index.ts';


for (const engine of engines()) {
  describe(`bootstrap on ${engine.name}`, () => {
    test('the bootstrap settings create the first operator without a setup token, once', async () => {
      const { db } = await engine.open();
      const state = await ensureBootstrap(db, { email: 'Ops@Example.test', password: 'a long bootstrap passphrase' });
      assert.deepEqual(state, { state: 'created-operator', email: 'ops@example.test' });
      assert.equal(await hasOperator(db), true);
      assert.equal((await db.selectFrom('accord.setup_tokens').select('id').execute()).length, 0);
      assert.deepEqual(await ensureBootstrap(db, { email: 'ops@example.test', password: 'a long bootstrap passphrase' }), { state: 'ready' });
      const session = await login(testSignIn(db), systemSource, { email: 'ops@example.test', password: 'a long bootstrap passphrase' });
      assert.equal(session.status, 'signed-in');
      assert.match(session.status === 'signed-in' ? session.session.accessToken : '', /^aca_/);
    });

    test('a weak bootstrap password is refused and creates nothing', async () => {
      const { db } = await engine.open();
      await assert.rejects(ensureBootstrap(db, { email: 'ops@example.test', password: 'short' }), (e) => isAccordError(e, 'IAM_PASSWORD_POLICY'));
      assert.equal(await hasOperator(db), false);
    });

    test('a pending setup token is not replaced on restart, and an expired one is', async () => {
      const { db } = await engine.open();
      const t0 = new Date('2026-01-01T00:00:00Z');
      const first = await ensureBootstrap(db, {}, t0);
      assert.equal(first.state, 'token-issued');
      const again = await ensureBootstrap(db, {}, new Date(t0.getTime() + 30 * 60_000));
      assert.equal(again.state, 'token-pending');
      const later = await ensureBootstrap(db, {}, new Date(t0.getTime() + 61 * 60_000));
      assert.equal(later.state, 'token-issued');
      // The expired first token no longer works; the new one does.
      const token1 = first.state === 'token-issued' ? first.token : '';
      const token2 = later.state === 'token-issued' ? later.token : '';
      const now = new Date(t0.getTime() + 62 * 60_000);
      await assert.rejects(
        completeSetup(db, systemSource, { token: token1, email: 'ops@example.test', password: 'a long bootstrap passphrase' }, now),
        (e) => isAccordError(e, 'IAM_SETUP_TOKEN_INVALID'),
      );
      await completeSetup(db, systemSource, { token: token2, email: 'ops@example.test', password: 'a long bootstrap passphrase' }, now);
      assert.equal(await hasOperator(db), true);
    });
  });
}
