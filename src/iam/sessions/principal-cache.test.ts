import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { engines } from '../../../test/harness/engines.ts';
import { sessionToken, testIssuer } from '../../../test/harness/iam.ts';
import { createUser } from '../users/users.ts';
import { PrincipalCache } from './principal-cache.ts';
import { authenticate } from './sessions.ts';

for (const engine of engines()) {
  describe(`the principal cache on ${engine.name}`, () => {
    test('a remembered token is still refused once it expires, and an altered copy of it is refused while it is remembered', async () => {
      const { db } = await engine.open();
      const token = await db.transaction().execute(async (trx) => sessionToken(trx, await createUser(trx, { tenantId: null, email: 'ops@example.test', password: 'operator passphrase 1' })));
      // A cache that would remember for a day: only the token's own expiry (900 s) may end the entry.
      const cache = new PrincipalCache({ ttlMs: 86_400_000 });
      const idle = async () => 3600;
      const t0 = new Date();
      const first = await authenticate(db, testIssuer, token, 'bearer', idle, t0, cache);
      assert.ok('auth' in first, JSON.stringify(first));
      // Remembered now: the database no longer answers for it.
      await db.deleteFrom('accord.sessions').execute();
      const second = await authenticate(db, testIssuer, token, 'cookie', idle, new Date(t0.getTime() + 1000), cache);
      assert.ok('auth' in second && second.auth.via === 'cookie', 'served from the cache, with this request’s channel');
      const altered = `${token.slice(0, -2)}${token.endsWith('AA') ? 'BB' : 'AA'}`;
      assert.deepEqual(await authenticate(db, testIssuer, altered, 'bearer', idle, new Date(t0.getTime() + 1000), cache), { error: 'IAM_TOKEN_INVALID' });
      const late = new Date(t0.getTime() + (testIssuer.accessTtlSeconds + 1) * 1000);
      assert.deepEqual(await authenticate(db, testIssuer, token, 'bearer', idle, late, cache), { error: 'IAM_TOKEN_EXPIRED' });
    });
  });
}
