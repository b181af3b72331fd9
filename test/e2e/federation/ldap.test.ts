// LDAP / Active Directory sign-in against a real OpenLDAP (Debian's slapd, started by the
// harness with the memberOf overlay) over LDAPS and StartTLS: search-then-bind with a service
// account and bind-as-user, login by uid or by email (UPN style), direct and nested groups
// mapped to roles and re-synced at every sign-in, refusals with the reason in the audit only.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { ephemeralSigner, systemSource } from '../../../src/audit-chain/index.ts';
import { loadConfig } from '../../../src/config/index.ts';
import type { Database, Db } from '../../../src/db/index.ts';
import { createUser, grantRole } from '../../../src/iam/index.ts';
import { buildApp, createLogger } from '../../../src/server/index.ts';
import { createTenant } from '../../../src/tenancy/index.ts';
import { engines } from '../../harness/engines.ts';
import { sessionToken, testIamKey } from '../../harness/iam.ts';
import { testKeyring } from '../../harness/keys.ts';
import { SERVICE_DN, startTestDirectory, SUFFIX, type TestDirectory } from '../../harness/slapd.ts';

const config = loadConfig({ env: {}, flags: { logLevel: 'silent' } });
const CAROL = `uid=carol,ou=people,${SUFFIX}`;

let ldap: TestDirectory;
before(async () => {
  ldap = await startTestDirectory({
    users: { carol: { password: 'carol secret pw', mail: 'carol@corp.test', cn: 'Carol Danvers' }, dave: { password: 'dave secret pw', mail: 'dave@corp.test', cn: 'Dave' } },
    groups: { developers: [CAROL], 'expense-users': [CAROL], engineering: [`cn=developers,ou=groups,${SUFFIX}`] },
  });
});
after(async () => ldap?.stop());

for (const engine of engines()) {
  describe(`LDAP federation on ${engine.name}`, { concurrency: false }, () => {
    let app: FastifyInstance;
    let database: Database;
    let db: Db;
    let admin: string;
    after(async () => app?.close());

    const call = (method: string, url: string, token?: string, payload?: unknown) =>
      app.inject({ method: method as 'GET', url, ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}), ...(payload === undefined ? {} : { payload: payload as object }) });
    const code = (r: LightMyRequestResponse) => (r.statusCode >= 400 ? r.json().code : r.statusCode);
    const lastFederated = () => db.selectFrom('accord.audit_events').select(['outcome', 'reason', 'details']).where('action', '=', 'auth.federated.login').orderBy('ins', 'desc').executeTakeFirstOrThrow();
    const directory = {
      url: '',
      bindDn: SERVICE_DN,
      userBase: `ou=people,${SUFFIX}`,
      groupBase: `ou=groups,${SUFFIX}`,
      nestedGroups: true,
    };

    before(async () => {
      // The directory is shared by both engines' suites: undo what the other suite changed there.
      await ldap.modify(`dn: cn=developers,ou=groups,${SUFFIX}\nchangetype: modify\nreplace: member\nmember: ${CAROL}\n`);
      database = await engine.open();
      db = database.db;
      const keyring = await testKeyring();
      app = await buildApp({ config, database, logger: createLogger('silent'), signer: ephemeralSigner(), keyring, iamKey: testIamKey, publicUrl: 'https://accord.test' });
      const acme = await createTenant(db, keyring, systemSource, { name: 'acme' });
      await db.transaction().execute(async (trx) => {
        const a = await createUser(trx, { tenantId: acme.id, email: 'admin@acme.test', password: 'orchard lemon tree' });
        await grantRole(trx, { userId: a, role: 'tenant-admin', tenantId: acme.id, stageId: null });
        admin = await sessionToken(trx, a);
      });
      directory.url = ldap.ldapsUrl;
    });

    test('plain LDAP is refused unless StartTLS is used; a search-then-bind provider needs its bind password', async () => {
      const plain = await call('POST', '/api/v1/tenants/acme/idps', admin, { name: 'plain', kind: 'ldap', settings: { ...directory, url: ldap.ldapUrl }, secret: ldap.servicePassword });
      assert.equal(code(plain), 'IAM_IDP_INVALID');
      assert.match(plain.json().details.reason, /startTls/);
      assert.equal(code(await call('POST', '/api/v1/tenants/acme/idps', admin, { name: 'nopw', kind: 'ldap', settings: directory })), 'IAM_IDP_INVALID');
    });

    test('an LDAPS provider with a service account is added and passes idp test; broken ones fail with the reason', async () => {
      const r = await call('POST', '/api/v1/tenants/acme/idps', admin, { name: 'directory', kind: 'ldap', settings: { ...directory, caCertificate: ldap.caPem }, secret: ldap.servicePassword, console: true, stages: ['production'] });
      assert.equal(r.statusCode, 201, r.body);
      assert.doesNotMatch(r.body, new RegExp(ldap.servicePassword));
      const ok = (await call('POST', '/api/v1/tenants/acme/idps/directory/test', admin)).json();
      assert.equal(ok.ok, true, JSON.stringify(ok));
      assert.deepEqual(ok.checks.map((c: { name: string }) => c.name), ['connection', 'service-bind', 'user-base']);
      await call('POST', '/api/v1/tenants/acme/idps', admin, { name: 'untrusted', kind: 'ldap', settings: directory, secret: ldap.servicePassword });
      const untrusted = (await call('POST', '/api/v1/tenants/acme/idps/untrusted/test', admin)).json();
      assert.equal(untrusted.ok, false);
      assert.match(untrusted.checks[0].detail, /certificate/i);
      await call('POST', '/api/v1/tenants/acme/idps', admin, { name: 'badpw', kind: 'ldap', settings: { ...directory, caCertificate: ldap.caPem }, secret: 'wrong' });
      const badpw = (await call('POST', '/api/v1/tenants/acme/idps/badpw/test', admin)).json();
      assert.equal(badpw.ok, false);
      assert.equal(badpw.checks[1].detail, 'invalid credentials');
      for (const n of ['untrusted', 'badpw']) await call('DELETE', `/api/v1/tenants/acme/idps/${n}`, admin);
      for (const m of [
        { group: 'expense-users', app: 'expenses', appRole: 'Employee', stage: 'production' },
        { group: 'engineering', role: 'developer' },
      ]) assert.equal((await call('POST', '/api/v1/tenants/acme/idps/directory/mappings', admin, m)).statusCode, 201);
    });

    test('a directory user signs in to production with uid and password and gets the app role Employee', async () => {
      const r = await call('POST', '/t/acme/production/auth/idp/directory/login', undefined, { username: 'carol', password: 'carol secret pw', mode: 'bearer' });
      assert.equal(r.statusCode, 200, r.body);
      const me = await call('GET', '/t/acme/production/auth/me', r.json().accessToken);
      assert.deepEqual(me.json().appRoles, [{ app: 'expenses', role: 'Employee' }]);
      const last = await lastFederated();
      assert.deepEqual((last.details.groups as string[]).sort(), ['developers', 'engineering', 'expense-users']);
      const fed = await db.selectFrom('accord.federated_identities').select('subject').executeTakeFirstOrThrow();
      assert.match(fed.subject, /^[0-9a-f-]{36}$/, 'entryUUID, not the DN');
    });

    test('signing in to the console by email (UPN style) gives the developer role through a nested group', async () => {
      const r = await call('POST', '/api/v1/federation/acme/directory/login', undefined, { username: 'carol@corp.test', password: 'carol secret pw', mode: 'bearer' });
      assert.equal(r.statusCode, 200, r.body);
      const s = await call('GET', '/api/v1/auth/session', r.json().accessToken);
      assert.deepEqual(s.json().grants.map((g: { role: string }) => g.role), ['developer']);
    });

    test('out of the nested group at the directory, the role is gone at the next sign-in', async () => {
      await ldap.modify(`dn: cn=developers,ou=groups,${SUFFIX}\nchangetype: modify\ndelete: member\nmember: ${CAROL}\n-\nadd: member\nmember: uid=dave,ou=people,${SUFFIX}\n`);
      const r = await call('POST', '/api/v1/federation/acme/directory/login', undefined, { username: 'carol', password: 'carol secret pw', mode: 'bearer' });
      const s = await call('GET', '/api/v1/auth/session', r.json().accessToken);
      assert.deepEqual(s.json().grants, []);
      assert.deepEqual((await lastFederated()).details.removed, ['developer']);
    });

    test('wrong passwords, unknown users and filter metacharacters get the same generic answer; the audit tells them apart', async () => {
      const cases: [string, string, string][] = [
        ['carol', 'not her password', 'bad-credentials'],
        ['nobody', 'whatever pw', 'unknown-user'],
        ['*', 'carol secret pw', 'unknown-user'],
        ['carol)(uid=*', 'carol secret pw', 'unknown-user'],
      ];
      for (const [username, password, reason] of cases) {
        const r = await call('POST', '/t/acme/production/auth/idp/directory/login', undefined, { username, password });
        assert.equal(code(r), 'IAM_FEDERATION_FAILED', username);
        assert.equal(r.json().detail, 'Sign-in with the identity provider failed. Try again or contact your administrator.');
        assert.equal((await lastFederated()).reason, reason, username);
      }
      assert.equal(code(await call('POST', '/t/acme/production/auth/idp/directory/login', undefined, { username: 'carol', password: '' })), 'REQUEST_INVALID');
    });

    test('bind as the user over StartTLS with a DN template works too', async () => {
      const r = await call('POST', '/api/v1/tenants/acme/idps', admin, {
        name: 'starttls',
        kind: 'ldap',
        settings: { url: ldap.ldapUrl, startTls: true, caCertificate: ldap.caPem, userDnTemplate: `uid={login},ou=people,${SUFFIX}` },
        stages: ['production'],
      });
      assert.equal(r.statusCode, 201, r.body);
      assert.equal((await call('POST', '/api/v1/tenants/acme/idps/starttls/test', admin)).json().checks[0].detail.startsWith('StartTLS'), true);
      const ok = await call('POST', '/t/acme/production/auth/idp/starttls/login', undefined, { username: 'dave', password: 'dave secret pw', mode: 'bearer' });
      assert.equal(ok.statusCode, 200, ok.body);
      const bad = await call('POST', '/t/acme/production/auth/idp/starttls/login', undefined, { username: 'dave,ou=people', password: 'dave secret pw' });
      assert.equal(code(bad), 'IAM_FEDERATION_FAILED');
    });
  });
}
