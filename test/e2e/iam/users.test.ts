import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import pino from 'pino';
import { ephemeralSigner } from '../../../src/audit-chain/index.ts';
import { loadConfig } from '../../../src/config/index.ts';
import { ensureBootstrap } from '../../../src/iam/index.ts';
import { buildApp } from '../../../src/server/index.ts';
import { engines } from '../../harness/engines.ts';
import { testKeyring } from '../../harness/keys.ts';

const config = loadConfig({ env: {}, flags: { logLevel: 'silent' } });
const OPS = { email: 'ops@example.test', password: 'operator passphrase 1' };

for (const engine of engines()) {
  describe(`tenant users and grants on ${engine.name}`, { concurrency: false }, () => {
    let app: FastifyInstance;
    let ops: string;
    after(async () => app?.close());
    const call = (method: string, url: string, token?: string, payload?: unknown) =>
      app.inject({ method: method as 'GET', url, ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}), ...(payload === undefined ? {} : { payload: payload as object }) });
    const code = (r: LightMyRequestResponse) => (r.statusCode >= 400 ? r.json().code : r.statusCode);
    const login = async (email: string, password: string, tenant?: string) => {
      const r = await call('POST', '/api/v1/auth/login', undefined, { email, password, ...(tenant ? { tenant } : {}) });
      return r.statusCode === 200 ? (r.json().accessToken as string) : (r.json().code as string);
    };

    test('an operator creates users in a tenant directory; bad input changes nothing', async () => {
      const database = await engine.open();
      app = await buildApp({ config, database, logger: pino({ level: 'silent' }), signer: ephemeralSigner(), keyring: await testKeyring() });
      await ensureBootstrap(database.db, OPS);
      ops = await login(OPS.email, OPS.password);
      for (const name of ['acme', 'globex']) assert.equal((await call('POST', '/api/v1/tenants', ops, { name })).statusCode, 201);
      const alice = await call('POST', '/api/v1/tenants/acme/users', ops, { email: 'Alice@acme.test', password: 'wonderland rabbit hole' });
      assert.equal(alice.statusCode, 201, alice.body);
      assert.equal(alice.json().email, 'alice@acme.test');
      assert.equal(code(await call('POST', '/api/v1/tenants/acme/users', ops, { email: 'alice@acme.test', password: 'another passphrase' })), 'IAM_USER_EXISTS');
      assert.equal(code(await call('POST', '/api/v1/tenants/acme/users', ops, { email: 'bob@acme.test', password: 'short' })), 'IAM_PASSWORD_POLICY');
      assert.equal(code(await call('POST', '/api/v1/tenants/acme/users', ops, { email: 'bob@', password: 'teapot kettle steam' })), 'REQUEST_INVALID');
      assert.equal(code(await call('POST', '/api/v1/tenants/acme/users', ops, { email: 'bob@acme.test', password: 'bob@acme.test-and-more' })), 'IAM_PASSWORD_POLICY');
      const list = await call('GET', '/api/v1/tenants/acme/users', ops);
      assert.deepEqual(list.json().map((u: { email: string }) => u.email), ['alice@acme.test']);
    });

    test('a developer on development sees the tenant but cannot administer it, nor see another tenant', async () => {
      assert.equal((await call('POST', '/api/v1/tenants/acme/grants', ops, { user: 'alice@acme.test', role: 'developer', stage: 'development' })).statusCode, 204);
      const alice = await login('alice@acme.test', 'wonderland rabbit hole');
      assert.match(alice, /^aca_/);
      assert.equal((await call('GET', '/api/v1/tenants/acme', alice)).statusCode, 200);
      assert.equal((await call('GET', '/api/v1/tenants/acme/stages', alice)).statusCode, 200);
      assert.equal(code(await call('POST', '/api/v1/tenants/acme/stages', alice, { name: 'qa' })), 'IAM_FORBIDDEN');
      assert.equal(code(await call('POST', '/api/v1/tenants/acme/keys/rotate', alice, {})), 'IAM_FORBIDDEN');
      assert.equal(code(await call('PUT', '/api/v1/tenants/acme/stages/production/secrets/X', alice, { value: 'v' })), 'IAM_FORBIDDEN');
      assert.equal(code(await call('GET', '/api/v1/tenants/globex', alice)), 'TENANCY_TENANT_NOT_FOUND');
      assert.equal(code(await call('POST', '/api/v1/tenants/acme/grants', alice, { user: 'alice@acme.test', role: 'tenant-admin' })), 'IAM_FORBIDDEN');
      const session = await call('GET', '/api/v1/auth/session', alice);
      assert.deepEqual(session.json().grants, [{ role: 'developer', tenant: 'acme', stage: 'development', permissions: ['tenant:read', 'stage:read', 'app:deploy'] }]);
    });

    test('grants are checked: unknown roles and stages, platform roles, and no escalation beyond the granter', async () => {
      assert.equal(code(await call('POST', '/api/v1/tenants/acme/grants', ops, { user: 'alice@acme.test', role: 'superuser' })), 'IAM_ROLE_UNKNOWN');
      assert.equal(code(await call('POST', '/api/v1/tenants/acme/grants', ops, { user: 'alice@acme.test', role: 'developer', stage: 'nowhere' })), 'TENANCY_STAGE_NOT_FOUND');
      assert.equal(code(await call('POST', '/api/v1/tenants/acme/grants', ops, { user: 'alice@acme.test', role: 'platform-operator' })), 'IAM_GRANT_ESCALATION');
      assert.equal(code(await call('POST', '/api/v1/tenants/acme/grants', ops, { user: 'nobody@acme.test', role: 'developer' })), 'IAM_USER_NOT_FOUND');
      // A tenant admin may grant within the tenant...
      await call('POST', '/api/v1/tenants/acme/users', ops, { email: 'admin@acme.test', password: 'orchard lemon tree' });
      await call('POST', '/api/v1/tenants/acme/users', ops, { email: 'carol@acme.test', password: 'winter silver bells' });
      assert.equal((await call('POST', '/api/v1/tenants/acme/grants', ops, { user: 'admin@acme.test', role: 'tenant-admin' })).statusCode, 204);
      const admin = await login('admin@acme.test', 'orchard lemon tree');
      assert.equal((await call('POST', '/api/v1/tenants/acme/grants', admin, { user: 'carol@acme.test', role: 'release-manager', stage: 'production' })).statusCode, 204);
      // ...but not roles carrying permissions it lacks (security-officer reads security events).
      const esc = await call('POST', '/api/v1/tenants/acme/grants', admin, { user: 'carol@acme.test', role: 'security-officer' });
      assert.equal(code(esc), 'IAM_GRANT_ESCALATION');
      assert.ok(esc.json().details.missing.includes('security:read'));
      // ...and nothing in another tenant.
      assert.equal(code(await call('POST', '/api/v1/tenants/globex/grants', admin, { user: 'carol@acme.test', role: 'developer' })), 'TENANCY_TENANT_NOT_FOUND');
      const users = (await call('GET', '/api/v1/tenants/acme/users', admin)).json() as { email: string; grants: unknown[] }[];
      assert.deepEqual(users.find((u) => u.email === 'carol@acme.test')?.grants, [{ role: 'release-manager', stage: 'production' }]);
      // ...and cannot disable or delete someone holding powers it lacks.
      await call('POST', '/api/v1/tenants/acme/users', ops, { email: 'sec@acme.test', password: 'harbour light keeper' });
      await call('POST', '/api/v1/tenants/acme/grants', ops, { user: 'sec@acme.test', role: 'security-officer' });
      assert.equal(code(await call('PATCH', '/api/v1/tenants/acme/users/sec@acme.test', admin, { status: 'disabled' })), 'IAM_GRANT_ESCALATION');
      assert.equal(code(await call('DELETE', '/api/v1/tenants/acme/users/sec@acme.test', admin)), 'IAM_GRANT_ESCALATION');
      assert.equal((await call('DELETE', '/api/v1/tenants/acme/grants?user=carol@acme.test&role=release-manager&stage=production', admin)).statusCode, 204);
      assert.equal(code(await call('DELETE', '/api/v1/tenants/acme/grants?user=carol@acme.test&role=release-manager&stage=production', admin)), 'IAM_GRANT_NOT_FOUND');
    });

    test('disabling a user ends their sessions and refuses new sign-ins', async () => {
      const alice = await login('alice@acme.test', 'wonderland rabbit hole');
      assert.equal((await call('PATCH', '/api/v1/tenants/acme/users/alice@acme.test', ops, { status: 'disabled' })).statusCode, 204);
      assert.equal(code(await call('GET', '/api/v1/tenants/acme', alice)), 'IAM_SESSION_ENDED');
      assert.equal(await login('alice@acme.test', 'wonderland rabbit hole'), 'IAM_INVALID_CREDENTIALS');
      assert.equal((await call('PATCH', '/api/v1/tenants/acme/users/alice@acme.test', ops, { status: 'active' })).statusCode, 204);
      assert.match(await login('alice@acme.test', 'wonderland rabbit hole'), /^aca_/);
    });

    test('an email in two tenants signs in to the one whose password matches, or asks which tenant', async () => {
      await call('POST', '/api/v1/tenants/globex/users', ops, { email: 'alice@acme.test', password: 'globex second passphrase' });
      await call('POST', '/api/v1/tenants/globex/grants', ops, { user: 'alice@acme.test', role: 'developer' });
      const g = await login('alice@acme.test', 'globex second passphrase');
      const who = await call('GET', '/api/v1/auth/session', g);
      assert.deepEqual(who.json().grants, [{ role: 'developer', tenant: 'globex', stage: null, permissions: ['tenant:read', 'stage:read', 'app:deploy'] }]);
      await call('POST', '/api/v1/tenants/globex/users', ops, { email: 'dup@x.test', password: 'the same passphrase' });
      await call('POST', '/api/v1/tenants/acme/users', ops, { email: 'dup@x.test', password: 'the same passphrase' });
      assert.equal(await login('dup@x.test', 'the same passphrase'), 'IAM_TENANT_REQUIRED');
      assert.match(await login('dup@x.test', 'the same passphrase', 'acme'), /^aca_/);
    });

    test('repeated wrong passwords lock the account with Retry-After, and a right password is refused meanwhile', async () => {
      await call('POST', '/api/v1/tenants/acme/users', ops, { email: 'locky@acme.test', password: 'mountain river stone' });
      const attempt = (password: string) => call('POST', '/api/v1/auth/login', undefined, { email: 'locky@acme.test', password });
      for (let i = 0; i < 3; i++) assert.equal((await attempt('not the password!')).json().code, 'IAM_INVALID_CREDENTIALS');
      const locked = await attempt('mountain river stone');
      assert.equal(locked.statusCode, 429);
      assert.equal(locked.json().code, 'IAM_LOCKED');
      const retry = Number(locked.headers['retry-after']);
      assert.ok(retry > 0 && retry <= 30, `retry-after ${retry}`);
      const events = await call('GET', '/api/v1/audit?action=auth.lockout', ops);
      assert.ok(events.json().records.some((r: { details: { scope?: string } }) => r.details.scope === 'account'));
      // Another account from the same address is not affected.
      assert.match(await login('admin@acme.test', 'orchard lemon tree'), /^aca_/);
    });

    test('user and grant changes are audited on the tenant chain', async () => {
      const r = await call('GET', '/api/v1/tenants/acme/audit?action=role.*&limit=50', ops);
      const actions = r.json().records.map((x: { action: string }) => x.action);
      assert.ok(actions.includes('role.granted') && actions.includes('role.revoked'));
      const u = await call('GET', '/api/v1/tenants/acme/audit?action=user.*&limit=50', ops);
      const userActions = new Set(u.json().records.map((x: { action: string }) => x.action));
      for (const a of ['user.created', 'user.disabled', 'user.enabled']) assert.ok(userActions.has(a), a);
    });

    test('granting a role the user already holds changes nothing and records no second grant', async () => {
      assert.equal((await call('POST', '/api/v1/tenants/acme/users', ops, { email: 'regrant@acme.test', password: 'copper kettle whistle' })).statusCode, 201);
      const grants = async () =>
        ((await call('GET', '/api/v1/tenants/acme/audit?action=role.granted&limit=500', ops)).json().records as { details: { role: string; stage: string | null } }[]).filter(
          (r) => r.details.role === 'auditor',
        );
      const before = (await grants()).length;
      for (let i = 0; i < 2; i++) assert.equal((await call('POST', '/api/v1/tenants/acme/grants', ops, { user: 'regrant@acme.test', role: 'auditor' })).statusCode, 204);
      assert.equal((await grants()).length, before + 1, 'only the grant that was inserted is audited');
      const users = (await call('GET', '/api/v1/tenants/acme/users', ops)).json() as { email: string; grants: unknown[] }[];
      assert.deepEqual(users.find((u) => u.email === 'regrant@acme.test')?.grants, [{ role: 'auditor', stage: null }]);
    });
  });
}
