// SCIM 2.0 end to end: an IdP (here the test, as a SCIM client holding a tenant API client's
// token) creates, filters, updates, deactivates and deletes users and groups; group membership
// changes are reflected in roles at once; a user it provisioned signs in through the real OpenID
// provider; deprovisioning kills every session at once and the next request is refused.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { ephemeralSigner, systemSource } from '../../../src/audit-chain/index.ts';
import { loadConfig } from '../../../src/config/index.ts';
import type { Database, Db } from '../../../src/db/index.ts';
import { createUser, grantRole } from '../../../src/iam/index.ts';
import { buildApp, createLogger } from '../../../src/server/index.ts';
import { createTenant } from '../../../src/tenancy/index.ts';
import { Browser } from '../../harness/browser.ts';
import { engines } from '../../harness/engines.ts';
import { sessionToken, testIamKey } from '../../harness/iam.ts';
import { testKeyring } from '../../harness/keys.ts';
import { startTestOp, type TestOp } from '../../harness/oidc-provider.ts';

const config = loadConfig({ env: {}, flags: { logLevel: 'silent' } });
const ORIGIN = 'https://accord.test';
const SCIM = '/scim/v2/acme/corp';
const SCIM_TYPE = 'application/scim+json';

let op: TestOp;
before(async () => {
  op = await startTestOp({
    redirectUris: [`${ORIGIN}/api/v1/federation/acme/corp/oidc/callback`],
    users: { bob: { password: 'bob builds things', email: 'bob@corp.test', name: 'Bob', groups: [] } },
  });
});
after(async () => op?.stop());

for (const engine of engines()) {
  describe(`SCIM provisioning on ${engine.name}`, { concurrency: false }, () => {
    let app: FastifyInstance;
    let database: Database;
    let db: Db;
    let admin: string;
    let adminId: string;
    let bot = '';
    let bobId = '';
    let groupId = '';
    after(async () => app?.close());

    const call = (method: string, url: string, token?: string, payload?: unknown, type = 'application/json') =>
      app.inject({
        method: method as 'GET',
        url,
        headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(payload === undefined ? {} : { 'content-type': type }) },
        ...(payload === undefined ? {} : { payload: JSON.stringify(payload) }),
      });
    const scim = (method: string, path: string, payload?: unknown) => call(method, `${SCIM}${path}`, bot, payload, SCIM_TYPE);
    const code = (r: LightMyRequestResponse) => (r.statusCode >= 400 ? r.json().code : r.statusCode);
    const appRoles = async (email: string) =>
      (await db.selectFrom('accord.app_role_grants as g').innerJoin('accord.users as u', 'u.id', 'g.user_id').innerJoin('accord.stages as s', 's.id', 'g.stage_id').select(['g.app', 'g.role', 's.name']).where('u.email', '=', email).execute()).map((r) => `${r.app}/${r.role}@${r.name}`);
    const roles = async (email: string) => (await db.selectFrom('accord.role_grants as g').innerJoin('accord.users as u', 'u.id', 'g.user_id').select('g.role').where('u.email', '=', email).execute()).map((r) => r.role).sort();
    const signIn = async (start: string) => {
      const b = new Browser({ app, origin: ORIGIN, ca: [op.caPem] });
      let page = await b.go(`${ORIGIN}${start}`);
      if (page.body.includes('<form')) page = await b.submit(page, { login: 'bob', password: 'bob builds things' });
      return page;
    };

    before(async () => {
      database = await engine.open();
      db = database.db;
      const keyring = await testKeyring();
      app = await buildApp({ config, database, logger: createLogger('silent'), signer: ephemeralSigner(), keyring, iamKey: testIamKey, publicUrl: ORIGIN });
      const acme = await createTenant(db, keyring, systemSource, { name: 'acme' });
      await db.transaction().execute(async (trx) => {
        adminId = await createUser(trx, { tenantId: acme.id, email: 'admin@acme.test', password: 'orchard lemon tree' });
        await grantRole(trx, { userId: adminId, role: 'tenant-admin', tenantId: acme.id, stageId: null });
        admin = await sessionToken(trx, adminId);
      });
      const idp = await call('POST', '/api/v1/tenants/acme/idps', admin, {
        name: 'corp',
        kind: 'oidc',
        settings: { issuer: op.issuer, clientId: op.clientId, userinfo: true, scopes: ['openid', 'email', 'profile', 'groups'], caCertificate: op.caPem },
        secret: op.clientSecret,
        console: true,
        stages: ['production'],
      });
      assert.equal(idp.statusCode, 201, idp.body);
      for (const m of [
        { group: 'Expense Users', app: 'expenses', appRole: 'Employee', stage: 'production' },
        { group: 'Release Managers', role: 'release-manager' },
      ]) {
        const r = await call('POST', '/api/v1/tenants/acme/idps/corp/mappings', admin, m);
        assert.equal(r.statusCode, 201, r.body);
      }
      const client = await call('POST', '/api/v1/tenants/acme/clients', admin, { name: 'scim-bot', grants: [{ role: 'scim-provisioner' }] });
      assert.equal(client.statusCode, 201, client.body);
      const basic = Buffer.from(`${client.json().clientId}:${client.json().clientSecret}`).toString('base64');
      const t = await app.inject({ method: 'POST', url: '/oauth/token', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${basic}` }, payload: 'grant_type=client_credentials' });
      assert.equal(t.statusCode, 200, t.body);
      bot = t.json().access_token;
    });

    test('the SCIM client creates a user who has no password and is linked to the provider', async () => {
      const r = await scim('POST', '/Users', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: 'Bob@Corp.test', externalId: 'bob', name: { formatted: 'Bob the Builder' }, active: true });
      assert.equal(r.statusCode, 201, r.body);
      assert.match(String(r.headers['content-type']), /application\/scim\+json/);
      const u = r.json();
      bobId = u.id;
      assert.equal(u.userName, 'bob@corp.test');
      assert.equal(u.active, true);
      assert.equal(u.meta.location, `${ORIGIN}${SCIM}/Users/${bobId}`);
      const row = await db.selectFrom('accord.users').select(['password_hash', 'external_id']).where('id', '=', bobId).executeTakeFirstOrThrow();
      assert.equal(row.password_hash, null);
      assert.equal(row.external_id, 'bob');
      assert.equal(code(await scim('POST', '/Users', { userName: 'bob@corp.test' })), 'IAM_USER_EXISTS');
      assert.equal(code(await scim('POST', '/Users', { userName: 'not an email' })), 'IAM_SCIM_INVALID');
    });

    test('users are found by filter; the tenant users the provider does not own are invisible and untouchable', async () => {
      const found = (await scim('GET', `/Users?filter=${encodeURIComponent('userName eq "BOB@corp.test"')}`)).json();
      assert.equal(found.totalResults, 1);
      assert.equal(found.Resources[0].id, bobId);
      const byExt = (await scim('GET', `/Users?filter=${encodeURIComponent('externalId eq "bob" and active eq true')}`)).json();
      assert.equal(byExt.totalResults, 1);
      const none = (await scim('GET', `/Users?filter=${encodeURIComponent('userName eq "admin@acme.test"')}`)).json();
      assert.equal(none.totalResults, 0);
      assert.equal(code(await scim('PATCH', `/Users/${adminId}`, { Operations: [{ op: 'replace', path: 'active', value: false }] })), 'IAM_USER_NOT_FOUND');
      assert.equal((await db.selectFrom('accord.users').select('status').where('id', '=', adminId).executeTakeFirstOrThrow()).status, 'active');
      for (const bad of ['userName eq bob', 'password eq "x"', 'userName gt "a"', 'userName eq "a" and', '(userName eq "a")']) {
        assert.equal(code(await scim('GET', `/Users?filter=${encodeURIComponent(bad)}`)), 'IAM_SCIM_INVALID', bad);
      }
    });

    test('PATCH and PUT update the user; unsupported paths are refused and change nothing', async () => {
      const r = await scim('PATCH', `/Users/${bobId}`, { schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], Operations: [{ op: 'Replace', value: { displayName: 'Robert' } }] });
      assert.equal(r.statusCode, 200, r.body);
      assert.equal(r.json().displayName, 'Robert');
      assert.equal(code(await scim('PATCH', `/Users/${bobId}`, { Operations: [{ op: 'replace', path: 'displayName', value: 'X' }, { op: 'replace', path: 'password', value: 'x' }] })), 'IAM_SCIM_INVALID');
      assert.equal((await scim('GET', `/Users/${bobId}`)).json().displayName, 'Robert');
      const put = await scim('PUT', `/Users/${bobId}`, { userName: 'bob@corp.test', externalId: 'bob', displayName: 'Bob', active: true });
      assert.equal(put.json().displayName, 'Bob');
    });

    test('group membership maps to roles at once: added to a group, the app role arrives; removed, it goes', async () => {
      const g = await scim('POST', '/Groups', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName: 'Expense Users', members: [{ value: bobId }] });
      assert.equal(g.statusCode, 201, g.body);
      groupId = g.json().id;
      assert.deepEqual(g.json().members.map((m: { value: string }) => m.value), [bobId]);
      assert.deepEqual(await appRoles('bob@corp.test'), ['expenses/Employee@production']);
      const rm = await scim('PATCH', `/Groups/${groupId}`, { Operations: [{ op: 'remove', path: `members[value eq "${bobId}"]` }] });
      assert.equal(rm.statusCode, 200, rm.body);
      assert.deepEqual(await appRoles('bob@corp.test'), []);
      await scim('PATCH', `/Groups/${groupId}`, { Operations: [{ op: 'add', path: 'members', value: [{ value: bobId }] }] });
      assert.deepEqual(await appRoles('bob@corp.test'), ['expenses/Employee@production']);
      const rel = await scim('POST', '/Groups', { displayName: 'Release Managers', members: [{ value: bobId }] });
      assert.equal(rel.statusCode, 201, rel.body);
      assert.deepEqual(await roles('bob@corp.test'), ['release-manager']);
      assert.equal((await scim('GET', `/Groups?filter=${encodeURIComponent('displayName eq "release managers"')}`)).json().totalResults, 1);
      assert.deepEqual((await scim('GET', `/Users/${bobId}`)).json().groups.map((x: { display: string }) => x.display), ['Expense Users', 'Release Managers']);
      assert.equal((await scim('DELETE', `/Groups/${rel.json().id}`)).statusCode, 204);
      assert.deepEqual(await roles('bob@corp.test'), []);
    });

    let endUser = '';
    let consoleToken = '';
    let refresh = '';
    test('the provisioned user signs in through the IdP to production and the console; SCIM groups count with the token', async () => {
      const page = await signIn('/t/acme/production/auth/idp/corp/login?mode=bearer');
      assert.equal(page.status, 200, page.body);
      endUser = JSON.parse(page.body).accessToken;
      refresh = JSON.parse(page.body).refreshToken;
      assert.equal(JSON.parse(page.body).user.id, bobId, 'linked by externalId = the OIDC subject');
      const me = await call('GET', '/t/acme/production/auth/me', endUser);
      assert.deepEqual(me.json().appRoles, [{ app: 'expenses', role: 'Employee' }]);
      const c = await signIn('/api/v1/federation/acme/corp/login?mode=bearer');
      consoleToken = JSON.parse(c.body).accessToken;
      assert.equal((await call('GET', '/api/v1/auth/session', consoleToken)).statusCode, 200);
    });

    test('deprovisioned by SCIM, every session of the user dies at once and the next request is refused', async () => {
      const r = await scim('PATCH', `/Users/${bobId}`, { Operations: [{ op: 'replace', path: 'active', value: 'False' }] });
      assert.equal(r.statusCode, 200, r.body);
      assert.equal(r.json().active, false);
      assert.equal(code(await call('GET', '/t/acme/production/auth/me', endUser)), 'IAM_SESSION_ENDED');
      assert.equal(code(await call('GET', '/api/v1/auth/session', consoleToken)), 'IAM_SESSION_ENDED');
      const again = await app.inject({ method: 'POST', url: '/t/acme/production/auth/refresh', payload: { refreshToken: refresh } });
      assert.equal(code(again), 'IAM_SESSION_ENDED');
      const open = await db.selectFrom('accord.sessions').select('revoked_reason').where('user_id', '=', bobId).execute();
      assert.ok(open.length >= 2 && open.every((s) => s.revoked_reason === 'deprovisioned'));
      // The IdP still knows bob, but the platform refuses him.
      const page = await signIn('/t/acme/production/auth/idp/corp/login?mode=bearer');
      assert.equal(page.status, 401);
      assert.equal(JSON.parse(page.body).code, 'IAM_FEDERATION_FAILED');
      const last = await db.selectFrom('accord.audit_events').select(['reason']).where('action', '=', 'auth.federated.login').orderBy('ins', 'desc').executeTakeFirstOrThrow();
      assert.equal(last.reason, 'user is disabled');
      const deact = await db.selectFrom('accord.audit_events').select(['details', 'actor_type']).where('action', '=', 'scim.user.deactivated').executeTakeFirstOrThrow();
      assert.equal(deact.actor_type, 'client');
      assert.ok(Number(deact.details.sessionsRevoked) >= 2);
    });

    test('reactivated, the user signs in again; deleted, the user and their grants are gone', async () => {
      await scim('PATCH', `/Users/${bobId}`, { Operations: [{ op: 'replace', path: 'active', value: true }] });
      assert.equal((await signIn('/t/acme/production/auth/idp/corp/login?mode=bearer')).status, 200);
      assert.equal((await scim('DELETE', `/Users/${bobId}`)).statusCode, 204);
      assert.equal(code(await scim('GET', `/Users/${bobId}`)), 'IAM_USER_NOT_FOUND');
      assert.deepEqual(await appRoles('bob@corp.test'), []);
      assert.equal((await scim('GET', `/Groups/${groupId}`)).json().members.length, 0);
    });

    test('only a caller holding scim:provision on the tenant reaches SCIM', async () => {
      const dev = await call('POST', '/api/v1/tenants/acme/clients', admin, { name: 'ci-bot', grants: [{ role: 'developer' }] });
      const basic = Buffer.from(`${dev.json().clientId}:${dev.json().clientSecret}`).toString('base64');
      const t = await app.inject({ method: 'POST', url: '/oauth/token', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${basic}` }, payload: 'grant_type=client_credentials' });
      assert.equal(code(await call('GET', `${SCIM}/Users`, t.json().access_token)), 'IAM_FORBIDDEN');
      assert.equal(code(await call('GET', `${SCIM}/Users`)), 'IAM_UNAUTHENTICATED');
      assert.equal(code(await call('GET', '/scim/v2/other/corp/Users', bot)), 'TENANCY_TENANT_NOT_FOUND');
    });
  });
}
