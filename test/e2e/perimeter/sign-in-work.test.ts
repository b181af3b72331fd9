// Issue 10, finding 11: how much password-hashing a sign-in does must not tell how many accounts
// an email has. Counted, not timed: the number of argon2id verifications is the work that showed.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { ephemeralSigner, systemSource } from '../../../src/audit-chain/index.ts';
import { loadConfig } from '../../../src/config/index.ts';
import { passwordVerifications } from '../../../src/iam/account/passwords.ts';
import { createUser } from '../../../src/iam/index.ts';
import { buildApp } from '../../../src/server/index.ts';
import { createTenant } from '../../../src/tenancy/index.ts';
import { engines } from '../../harness/engines.ts';
import { testIamKey } from '../../harness/iam.ts';
import { testKeyring } from '../../harness/keys.ts';

const config = loadConfig({ env: {}, flags: { logLevel: 'silent' } });
const PASSWORD = 'the one real passphrase';

for (const engine of engines()) {
  describe(`sign-in work on ${engine.name}`, () => {
    let app: FastifyInstance;
    after(async () => app?.close());

    test('a console sign-in hashes as often for an email in two or three tenants as for one in a single tenant or none', async () => {
      const database = await engine.open();
      const keyring = await testKeyring();
      app = await buildApp({ config, database, logger: pino({ level: 'silent' }), signer: ephemeralSigner(), keyring, iamKey: testIamKey });
      const tenants = await Promise.all(['acme', 'globex', 'initech'].map((name) => createTenant(database.db, keyring, systemSource, { name })));
      await database.db.transaction().execute(async (trx) => {
        const [acme, globex, initech] = tenants.map((t) => t.id) as [string, string, string];
        await createUser(trx, { tenantId: acme, email: 'one@example.test', password: PASSWORD });
        for (const t of [acme, globex]) await createUser(trx, { tenantId: t, email: 'two@example.test', password: PASSWORD });
        for (const t of [acme, globex, initech]) await createUser(trx, { tenantId: t, email: 'three@example.test', password: PASSWORD });
      });
      // Each attempt from its own address, each email once: no lock gets in the way.
      const work = async (email: string, ip: string, extra: Record<string, string> = {}, password = 'a wrong passphrase here') => {
        const before = passwordVerifications();
        const res = await app.inject({ method: 'POST', url: '/api/v1/auth/login', remoteAddress: ip, payload: { email, password, ...extra } });
        return { checks: passwordVerifications() - before, code: (res.json() as { code?: string }).code ?? res.statusCode };
      };
      const unknown = await work('nobody@example.test', '10.50.0.1');
      const one = await work('one@example.test', '10.50.0.2');
      const two = await work('two@example.test', '10.50.0.3');
      const three = await work('three@example.test', '10.50.0.4');
      assert.deepEqual([unknown, one, two, three].map((w) => w.code), Array(4).fill('IAM_INVALID_CREDENTIALS'));
      assert.deepEqual([one.checks, two.checks, three.checks], [unknown.checks, unknown.checks, unknown.checks]);
      // The right password does the same work, whichever account it opens.
      const right = await work('one@example.test', '10.50.0.5', {}, PASSWORD);
      assert.equal(right.code, 200);
      assert.equal(right.checks, unknown.checks);
      // Naming the tenant, at most one account can match: one check, found or not.
      const named = await work('two@example.test', '10.50.0.6', { tenant: 'globex' });
      const namedUnknown = await work('nobody@example.test', '10.50.0.7', { tenant: 'globex' });
      assert.equal(named.checks, namedUnknown.checks);
    });
  });
}
