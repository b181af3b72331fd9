// Issue 10, findings 1, 2 and 12b: the sign-in lockout under real concurrency, the device cookie
// that a stranger's lock does not stop, unlocking (API and the operator CLI), and the IPv4 /24.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { ephemeralSigner, systemSource } from '../../../src/audit-chain/index.ts';
import { loadConfig } from '../../../src/config/index.ts';
import { passwordVerifications } from '../../../src/iam/account/passwords.ts';
import { createUser, DEVICE_HEADER, grantRole } from '../../../src/iam/index.ts';
import { buildApp } from '../../../src/server/index.ts';
import { createTenant } from '../../../src/tenancy/index.ts';
import { engines } from '../../harness/engines.ts';
import { sessionToken, testIamKey } from '../../harness/iam.ts';
import { testKeyring } from '../../harness/keys.ts';

const config = loadConfig({ env: {}, flags: { logLevel: 'silent' } });
const PASSWORD = 'the one real passphrase';

for (const engine of engines()) {
  describe(`sign-in lockout on ${engine.name}`, () => {
    let app: FastifyInstance;
    let operatorToken: string;
    after(async () => app?.close());

    const login = (email: string, password: string, ip: string, headers: Record<string, string> = {}) =>
      app.inject({ method: 'POST', url: '/api/v1/auth/login', remoteAddress: ip, headers, payload: { email, password, tenant: 'acme' } });

    test('setup: a server, a tenant with users, an operator', async () => {
      const database = await engine.open();
      const keyring = await testKeyring();
      app = await buildApp({ config, database, logger: pino({ level: 'silent' }), signer: ephemeralSigner(), keyring, iamKey: testIamKey });
      const acme = await createTenant(database.db, keyring, systemSource, { name: 'acme' });
      operatorToken = await database.db.transaction().execute(async (trx) => {
        for (const e of ['burst@acme.test', 'owner@acme.test', 'spray1@acme.test', 'spray2@acme.test', 'spray3@acme.test', 'spray4@acme.test']) {
          await createUser(trx, { tenantId: acme.id, email: e, password: PASSWORD });
        }
        const op = await createUser(trx, { tenantId: null, email: 'ops@example.test', password: PASSWORD });
        await grantRole(trx, { userId: op, role: 'platform-operator', tenantId: null, stageId: null });
        return sessionToken(trx, op);
      });
    });

    test('40 concurrent wrong guesses against a limit of 3 check exactly 3 passwords; the other 37 are refused as locked', async () => {
      const before = passwordVerifications();
      const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => login('burst@acme.test', `wrong guess number ${i}`, `10.1.${i}.1`)));
      const checks = passwordVerifications() - before;
      const codes = answers.map((a) => (a.json() as { code: string }).code);
      assert.equal(checks, 3, 'one password check per admitted attempt (a named tenant: one account)');
      assert.equal(codes.filter((c) => c === 'IAM_INVALID_CREDENTIALS').length, 3);
      assert.equal(codes.filter((c) => c === 'IAM_LOCKED').length, 37);
      for (const a of answers.filter((x) => x.statusCode === 429)) assert.match(String(a.headers['retry-after']), /^[1-9][0-9]*$/);
      // Even the right password is refused now: the lock holds whatever comes next.
      assert.equal((await login('burst@acme.test', PASSWORD, '10.1.99.1')).statusCode, 429);
    });

    test("a stranger's lock does not stop a device that signed in before, and an administrator can lift it", async () => {
      const first = await login('owner@acme.test', PASSWORD, '192.0.2.10');
      assert.equal(first.statusCode, 200);
      const device = (first.json() as { deviceToken?: string }).deviceToken;
      assert.ok(device?.startsWith('dv1.'), 'bearer sign-ins get a device token');
      // The cookie form: HttpOnly, Secure, SameSite=Strict, host-bound.
      const cookieMode = await app.inject({ method: 'POST', url: '/api/v1/auth/login', remoteAddress: '192.0.2.10', payload: { email: 'owner@acme.test', password: PASSWORD, tenant: 'acme', mode: 'cookie' } });
      const setCookie = [cookieMode.headers['set-cookie']].flat().map(String);
      assert.ok(setCookie.some((c) => /^__Host-accord-device=dv1\.[^;]+; Path=\/; Max-Age=\d+; HttpOnly; Secure; SameSite=Strict$/.test(c)), setCookie.join('\n'));

      // A stranger locks the account from elsewhere.
      for (let i = 0; i < 3; i++) await login('owner@acme.test', 'a stranger guessing', '198.51.100.7');
      assert.equal((await login('owner@acme.test', PASSWORD, '192.0.2.10')).statusCode, 429, 'without the device token the owner is locked out too');
      // The owner's device is counted apart: the account's lock does not apply to it.
      const withDevice = await login('owner@acme.test', PASSWORD, '192.0.2.10', { [DEVICE_HEADER]: device as string });
      assert.equal(withDevice.statusCode, 200);
      // The device token is bound to its account: for another email it is just ignored.
      for (let i = 0; i < 3; i++) await login('spray1@acme.test', 'a stranger guessing', '198.51.100.8');
      assert.equal((await login('spray1@acme.test', PASSWORD, '192.0.2.10', { [DEVICE_HEADER]: device as string })).statusCode, 429);
      // An altered token proves nothing.
      const altered = `${(device as string).slice(0, -2)}${(device as string).endsWith('AA') ? 'AB' : 'AA'}`;
      assert.equal((await login('owner@acme.test', PASSWORD, '192.0.2.10', { [DEVICE_HEADER]: altered })).statusCode, 429);

      // A tenant administrator's (here an operator's) unlock ends the lock, audited.
      const unlock = await app.inject({ method: 'POST', url: '/api/v1/tenants/acme/users/owner@acme.test/unlock', headers: { authorization: `Bearer ${operatorToken}` } });
      assert.equal(unlock.statusCode, 200);
      assert.equal((unlock.json() as { wasLocked: boolean }).wasLocked, true);
      assert.equal((await login('owner@acme.test', PASSWORD, '192.0.2.10')).statusCode, 200);
      const audit = await app.inject({ method: 'GET', url: '/api/v1/tenants/acme/audit?action=auth.unlock', headers: { authorization: `Bearer ${operatorToken}` } });
      assert.equal(audit.statusCode, 200, audit.body);
      assert.match(audit.body, /auth\.unlock/);
      // The platform-wide unlock takes any email; an anonymous caller cannot unlock.
      const anon = await app.inject({ method: 'POST', url: '/api/v1/platform/unlock', payload: { email: 'spray1@acme.test' } });
      assert.equal(anon.statusCode, 401);
      const platform = await app.inject({ method: 'POST', url: '/api/v1/platform/unlock', headers: { authorization: `Bearer ${operatorToken}` }, payload: { email: 'spray1@acme.test' } });
      assert.deepEqual(platform.json(), { email: 'spray1@acme.test', wasLocked: true, failures: 3 });
      // A tenant's unlock needs the user to be in that tenant.
      const elsewhere = await app.inject({ method: 'POST', url: '/api/v1/tenants/acme/users/ops@example.test/unlock', headers: { authorization: `Bearer ${operatorToken}` } });
      assert.equal((elsewhere.json() as { code: string }).code, 'IAM_USER_NOT_FOUND');
    });

    test('a spray over the addresses of one IPv4 /24 locks the /24, while each address stays under its own threshold', async () => {
      // Address threshold 20, /24 threshold 60: 4 addresses × 15 failures over 4 accounts... and
      // accounts locked at 3 each, so spread over many emails (unknown ones count the same).
      const codes: string[] = [];
      for (let i = 0; i < 60; i++) {
        const r = await login(`nobody-${i}@acme.test`, 'spraying one password', `203.0.113.${1 + (i % 4)}`);
        codes.push((r.json() as { code: string }).code);
      }
      assert.deepEqual(new Set(codes), new Set(['IAM_INVALID_CREDENTIALS']), 'no address reached its own threshold of 20');
      const next = await login('spray2@acme.test', PASSWORD, '203.0.113.200');
      assert.equal(next.statusCode, 429, 'another address of the /24 is locked with it, right password or not');
      assert.equal((await login('spray2@acme.test', PASSWORD, '203.0.114.1')).statusCode, 200, 'the next /24 is not');
    });
  });
}
