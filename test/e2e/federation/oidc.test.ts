// OpenID Connect end to end, against a real OpenID provider (oidc-provider on loopback, HTTPS):
// the browser part driven for real (redirects, the IdP's login form, the callback), JIT
// provisioning, group → role and app-role mappings re-synced at every sign-in, the ID-token
// checks against a provider whose token response is tampered with, state binding and replay,
// `idp test` on misconfigured providers, and password sign-in turned off.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { ephemeralSigner, systemSource } from '../../../src/audit-chain/index.ts';
import { loadConfig } from '../../../src/config/index.ts';
import type { Database, Db } from '../../../src/db/index.ts';
import { createUser, grantRole } from '../../../src/iam/index.ts';
import { buildApp, createLogger } from '../../../src/server/index.ts';
import { createTenant } from '../../../src/tenancy/index.ts';
import { Browser, type Page } from '../../harness/browser.ts';
import { engines } from '../../harness/engines.ts';
import { sessionToken, testIamKey } from '../../harness/iam.ts';
import { testKeyring } from '../../harness/keys.ts';
import { startTestOp, type Tamper, type TestOp } from '../../harness/oidc-provider.ts';

const config = loadConfig({ env: {}, flags: { logLevel: 'silent' } });
const ORIGIN = 'https://accord.test';
const CALLBACK = `${ORIGIN}/api/v1/federation/acme/corp/oidc/callback`;

let op: TestOp;
before(async () => {
  op = await startTestOp({
    redirectUris: [CALLBACK],
    users: {
      alice: { password: 'alice in wonderland', email: 'alice@corp.test', name: 'Alice Liddell', groups: ['expense-users', 'developers'] },
      mallory: { password: 'mallory password', email: 'local@acme.test', name: 'Mallory', groups: [] },
    },
  });
});
after(async () => op?.stop());

for (const engine of engines()) {
  describe(`OIDC federation on ${engine.name}`, { concurrency: false }, () => {
    let app: FastifyInstance;
    let database: Database;
    let db: Db;
    let admin: string;
    after(async () => app?.close());

    const call = (method: string, url: string, token?: string, payload?: unknown) =>
      app.inject({ method: method as 'GET', url, ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}), ...(payload === undefined ? {} : { payload: payload as object }) });
    const code = (r: LightMyRequestResponse) => (r.statusCode >= 400 ? r.json().code : r.statusCode);
    const browser = () => new Browser({ app, origin: ORIGIN, ca: [op.caPem] });
    const audits = (action: string) =>
      db.selectFrom('accord.audit_events').select(['outcome', 'reason', 'details', 'actor_label', 'tenant_id']).where('action', '=', action).orderBy('ins').execute();
    /** Signs in through the IdP: start, the IdP's form (when it asks), back to the callback. */
    const signIn = async (b: Browser, startPath: string, login?: { user: string; password: string }): Promise<Page> => {
      let page = await b.go(`${ORIGIN}${startPath}`);
      if (page.body.includes('<form')) {
        assert.ok(login, `the IdP asked for a login: ${page.url}`);
        page = await b.submit(page, { login: login.user, password: login.password });
      }
      return page;
    };
    const tokenOf = (page: Page) => {
      assert.equal(page.status, 200, page.body);
      return JSON.parse(page.body).accessToken as string;
    };

    before(async () => {
      // The peer is shared by both engines' suites: undo what the other suite changed at the IdP.
      (op.users.get('alice') as { groups: string[] }).groups = ['expense-users', 'developers'];
      database = await engine.open();
      db = database.db;
      const keyring = await testKeyring();
      app = await buildApp({ config, database, logger: createLogger('silent'), signer: ephemeralSigner(), keyring, iamKey: testIamKey, publicUrl: ORIGIN });
      const acme = await createTenant(db, keyring, systemSource, { name: 'acme' });
      await createTenant(db, keyring, systemSource, { name: 'globex' });
      await db.transaction().execute(async (trx) => {
        const a = await createUser(trx, { tenantId: acme.id, email: 'admin@acme.test', password: 'orchard lemon tree' });
        await grantRole(trx, { userId: a, role: 'tenant-admin', tenantId: acme.id, stageId: null });
        admin = await sessionToken(trx, a);
        await createUser(trx, { tenantId: acme.id, email: 'local@acme.test', password: 'a local password 1' });
      });
    });

    test('a tenant admin adds an OIDC provider; its client secret is stored sealed and never shown', async () => {
      const r = await call('POST', '/api/v1/tenants/acme/idps', admin, {
        name: 'corp',
        kind: 'oidc',
        settings: { issuer: op.issuer, clientId: op.clientId, userinfo: true, scopes: ['openid', 'email', 'profile', 'groups'], caCertificate: op.caPem },
        secret: op.clientSecret,
        console: true,
        stages: ['production'],
      });
      assert.equal(r.statusCode, 201, r.body);
      assert.equal(r.json().secretSet, true);
      assert.deepEqual(r.json().stages, ['production']);
      assert.match(r.json().settings.caCertificate, /^sha256:/);
      assert.doesNotMatch(r.body, new RegExp(op.clientSecret));
      const row = await db.selectFrom('accord.identity_providers').select(['sealed_secret', 'settings']).where('name', '=', 'corp').executeTakeFirstOrThrow();
      assert.ok(row.sealed_secret && !row.sealed_secret.includes(Buffer.from(op.clientSecret)));
      assert.doesNotMatch(JSON.stringify(row.settings), new RegExp(op.clientSecret));
      const audit = JSON.stringify(await audits('idp.added'));
      assert.doesNotMatch(audit, new RegExp(op.clientSecret));
    });

    test('settings that cannot work are refused before anything is stored', async () => {
      const bad = async (settings: Record<string, unknown>, secret?: string) => {
        const r = await call('POST', '/api/v1/tenants/acme/idps', admin, { name: 'broken', kind: 'oidc', settings, ...(secret ? { secret } : {}) });
        assert.equal(code(r), 'IAM_IDP_INVALID', r.body);
        return r.json().details.reason as string;
      };
      assert.match(await bad({ issuer: 'http://idp.example.test', clientId: 'x' }, 's'), /https/);
      assert.match(await bad({ issuer: op.issuer, clientId: 'x', algorithm: 'none' }, 's'), /algorithm/);
      assert.match(await bad({ issuer: op.issuer, clientId: 'x', caCertificate: 'not a pem' }, 's'), /caCertificate/);
      assert.match(await bad({ issuer: op.issuer, clientId: 'x' }), /secret/);
      assert.equal(await db.selectFrom('accord.identity_providers').select('id').where('name', '=', 'broken').executeTakeFirst(), undefined);
    });

    test('idp test passes for the working provider and names the reason for broken ones', async () => {
      const ok = await call('POST', '/api/v1/tenants/acme/idps/corp/test', admin);
      assert.equal(ok.statusCode, 200, ok.body);
      assert.equal(ok.json().ok, true, ok.body);
      assert.deepEqual(ok.json().checks.map((c: { name: string }) => c.name), ['discovery', 'algorithm', 'pkce', 'jwks']);
      // The provider's certificate is not trusted without its CA.
      await call('POST', '/api/v1/tenants/acme/idps', admin, { name: 'no-ca', kind: 'oidc', settings: { issuer: op.issuer, clientId: op.clientId }, secret: 'x' });
      const noCa = (await call('POST', '/api/v1/tenants/acme/idps/no-ca/test', admin)).json();
      assert.equal(noCa.ok, false);
      assert.match(noCa.checks[0].detail, /certificate/i);
      // Nobody listens there.
      await call('POST', '/api/v1/tenants/acme/idps', admin, { name: 'gone', kind: 'oidc', settings: { issuer: 'https://127.0.0.1:1', clientId: 'x' }, secret: 'x' });
      const gone = (await call('POST', '/api/v1/tenants/acme/idps/gone/test', admin)).json();
      assert.equal(gone.ok, false);
      assert.equal(gone.checks[0].name, 'discovery');
      // An algorithm the provider does not offer.
      await call('POST', '/api/v1/tenants/acme/idps', admin, { name: 'wrong-alg', kind: 'oidc', settings: { issuer: op.issuer, clientId: op.clientId, algorithm: 'ES512', caCertificate: op.caPem }, secret: 'x' });
      const alg = (await call('POST', '/api/v1/tenants/acme/idps/wrong-alg/test', admin)).json();
      assert.equal(alg.ok, false);
      assert.match(alg.checks.find((c: { name: string }) => c.name === 'algorithm').detail, /not offered/);
      for (const n of ['no-ca', 'gone', 'wrong-alg']) assert.equal((await call('DELETE', `/api/v1/tenants/acme/idps/${n}`, admin)).statusCode, 204);
      const tested = await audits('idp.tested');
      assert.deepEqual(tested.map((t) => t.outcome), ['success', 'failure', 'failure', 'failure']);
    });

    test('groups are mapped to an app role on production and to a platform role; unknown roles are refused', async () => {
      const app1 = await call('POST', '/api/v1/tenants/acme/idps/corp/mappings', admin, { group: 'expense-users', app: 'expenses', appRole: 'Employee', stage: 'production' });
      assert.equal(app1.statusCode, 201, app1.body);
      const dev = await call('POST', '/api/v1/tenants/acme/idps/corp/mappings', admin, { group: 'developers', role: 'developer' });
      assert.equal(dev.statusCode, 201, dev.body);
      assert.equal(code(await call('POST', '/api/v1/tenants/acme/idps/corp/mappings', admin, { group: 'x', role: 'wizard' })), 'IAM_IDP_MAPPING_INVALID');
      assert.equal(code(await call('POST', '/api/v1/tenants/acme/idps/corp/mappings', admin, { group: 'x', app: 'expenses', appRole: 'Employee' })), 'IAM_IDP_MAPPING_INVALID');
      assert.equal(code(await call('POST', '/api/v1/tenants/acme/idps/corp/mappings', admin, { group: 'x', role: 'platform-operator' })), 'IAM_GRANT_ESCALATION');
    });

    let aliceEndUser = '';
    test('a user who exists only in the IdP signs in to the production stage and gets the app role Employee of expenses', async () => {
      assert.equal(await db.selectFrom('accord.users').select('id').where('email', '=', 'alice@corp.test').executeTakeFirst(), undefined);
      const b = browser();
      const page = await signIn(b, '/t/acme/production/auth/idp/corp/login?mode=bearer', { user: 'alice', password: 'alice in wonderland' });
      aliceEndUser = tokenOf(page);
      const me = await call('GET', '/t/acme/production/auth/me', aliceEndUser);
      assert.equal(me.statusCode, 200, me.body);
      assert.equal(me.json().email, 'alice@corp.test');
      assert.deepEqual(me.json().appRoles, [{ app: 'expenses', role: 'Employee' }]);
      // The end-user token opens that stage only, never the console.
      assert.equal(code(await call('GET', '/api/v1/tenants/acme/stages', aliceEndUser)), 'IAM_WRONG_AUDIENCE');
      const user = await db.selectFrom('accord.users').select(['password_hash', 'display_name']).where('email', '=', 'alice@corp.test').executeTakeFirstOrThrow();
      assert.equal(user.password_hash, null);
      assert.equal(user.display_name, 'Alice Liddell');
      const [provisioned] = await audits('user.provisioned');
      assert.equal(provisioned?.details.idp, 'corp');
      const logins = (await audits('auth.federated.login')).filter((a) => a.outcome === 'success');
      assert.equal(logins.length, 1);
      assert.deepEqual(logins[0]?.details.roles, ['app:expenses/Employee@production', 'developer']);
      assert.equal(typeof logins[0]?.details.subject, 'string');
    });

    let aliceConsole = '';
    test('the same user signs in to the console (the IdP session is reused) and holds the developer role from a group', async () => {
      const b = browser();
      const page = await signIn(b, '/api/v1/federation/acme/corp/login?mode=bearer', { user: 'alice', password: 'alice in wonderland' });
      aliceConsole = tokenOf(page);
      const s = await call('GET', '/api/v1/auth/session', aliceConsole);
      assert.deepEqual(s.json().grants.map((g: { role: string; tenant: string }) => `${g.role}@${g.tenant}`), ['developer@acme']);
      assert.equal((await call('GET', '/api/v1/tenants/acme/stages', aliceConsole)).statusCode, 200);
      // A developer cannot manage identity providers.
      assert.equal(code(await call('GET', '/api/v1/tenants/globex/stages', aliceConsole)), 'TENANCY_TENANT_NOT_FOUND');
    });

    test('removed from a group at the IdP, the user loses the role at the next sign-in; hand-made grants stay', async () => {
      (op.users.get('alice') as { groups: string[] }).groups = ['expense-users'];
      const acme = await db.selectFrom('accord.tenants').select('id').where('name', '=', 'acme').executeTakeFirstOrThrow();
      const alice = await db.selectFrom('accord.users').select('id').where('email', '=', 'alice@corp.test').executeTakeFirstOrThrow();
      await db.transaction().execute((trx) => grantRole(trx, { userId: alice.id, role: 'auditor', tenantId: acme.id, stageId: null }));
      const page = await signIn(browser(), '/api/v1/federation/acme/corp/login?mode=bearer', { user: 'alice', password: 'alice in wonderland' });
      const token = tokenOf(page);
      const s = await call('GET', '/api/v1/auth/session', token);
      assert.deepEqual(s.json().grants.map((g: { role: string }) => g.role).sort(), ['auditor']);
      const last = (await audits('auth.federated.login')).filter((a) => a.outcome === 'success').at(-1);
      assert.deepEqual(last?.details.removed, ['developer']);
    });

    test('an admin forces a re-sync after changing a mapping: the role arrives without a new sign-in', async () => {
      const m = await call('POST', '/api/v1/tenants/acme/idps/corp/mappings', admin, { group: 'expense-users', role: 'auditor', stage: 'production' });
      assert.equal(m.statusCode, 201, m.body);
      const r = await call('POST', '/api/v1/tenants/acme/idps/corp/resync', admin, { user: 'alice@corp.test' });
      assert.equal(r.statusCode, 200, r.body);
      assert.deepEqual(r.json().users[0].added, ['auditor@production']);
      assert.equal((await call('DELETE', `/api/v1/tenants/acme/idps/corp/mappings/${m.json().id}`, admin)).statusCode, 204);
      const again = await call('POST', '/api/v1/tenants/acme/idps/corp/resync', admin);
      assert.deepEqual(again.json().users[0].removed, ['auditor@production']);
    });

    const rejected: [Tamper, RegExp][] = [
      ['bad-signature', /signature/i],
      ['wrong-audience', /aud/],
      ['expired', /exp/],
      ['nonce', /nonce/],
      ['alg-none', /alg/],
    ];
    for (const [tamper, cause] of rejected) {
      test(`an ID token with ${tamper} is refused with a generic error; the audit names the reason`, async () => {
        op.tamperNext(tamper);
        const before = await db.selectFrom('accord.sessions').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
        const page = await signIn(browser(), '/t/acme/production/auth/idp/corp/login?mode=bearer', { user: 'alice', password: 'alice in wonderland' });
        assert.equal(page.status, 401, page.body);
        const problem = JSON.parse(page.body);
        assert.equal(problem.code, 'IAM_FEDERATION_FAILED');
        assert.doesNotMatch(page.body, cause);
        const last = (await audits('auth.federated.login')).at(-1);
        assert.equal(last?.outcome, 'failure');
        assert.equal(last?.reason, 'token-rejected');
        assert.match(String(last?.details.cause), cause);
        const afterCount = await db.selectFrom('accord.sessions').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
        assert.equal(Number(afterCount.n), Number(before.n));
      });
    }

    test('a callback is single use and bound to the browser that started the flow', async () => {
      const b = browser();
      const toCallback = (u: string) => u.startsWith(CALLBACK);
      let page = await b.go(`${ORIGIN}/t/acme/production/auth/idp/corp/login?mode=bearer`, 'GET', undefined, toCallback);
      if (page.body.includes('<form')) page = await b.submit(page, { login: 'alice', password: 'alice in wonderland' }, toCallback);
      const callback = new URL(page.headers.location as string, page.url).href;
      assert.ok(toCallback(callback), callback);
      // Another browser (a login-CSRF victim) presenting this callback is refused.
      assert.equal((await browser().send('GET', callback)).status, 401);
      assert.equal((await audits('auth.federated.login')).at(-1)?.reason, 'state-not-bound-to-browser');
      // The state was not spent by that: the right browser completes...
      assert.equal((await b.send('GET', callback)).status, 200);
      // ...once.
      assert.equal((await b.send('GET', callback)).status, 401);
      assert.equal((await audits('auth.federated.login')).at(-1)?.reason, 'state-replayed');
    });

    test('a first sign-in never takes over a local account with a password that has the same email', async () => {
      const page = await signIn(browser(), '/t/acme/production/auth/idp/corp/login?mode=bearer', { user: 'mallory', password: 'mallory password' });
      assert.equal(page.status, 401);
      assert.equal((await audits('auth.federated.login')).at(-1)?.reason, 'email belongs to a local account with a password');
    });

    test('a provider not attached to a stage cannot sign in there', async () => {
      const r = await call('GET', '/t/acme/development/auth/idp/corp/login');
      assert.equal(code(r), 'IAM_IDP_NOT_FOUND');
    });

    test('password sign-in is turned off once the provider works; the answer is that of a wrong password', async () => {
      // globex has no provider: refused, nothing changes.
      const ops = await db.transaction().execute(async (trx) => {
        const o = await createUser(trx, { tenantId: null, email: 'ops@example.test', password: 'operator passphrase 1' });
        await grantRole(trx, { userId: o, role: 'platform-operator', tenantId: null, stageId: null });
        return sessionToken(trx, o);
      });
      assert.equal(code(await call('PUT', '/api/v1/tenants/globex/builtin-sign-in', ops, { enabled: false })), 'IAM_BUILTIN_SIGN_IN_DISABLED');
      assert.equal(code(await call('PUT', '/api/v1/tenants/acme/builtin-sign-in', admin, { enabled: false, stage: 'development' })), 'IAM_BUILTIN_SIGN_IN_DISABLED');
      const before = await call('POST', '/api/v1/auth/login', undefined, { email: 'local@acme.test', password: 'a local password 1', tenant: 'acme' });
      assert.equal(before.statusCode, 200, before.body);
      assert.equal((await call('PUT', '/api/v1/tenants/acme/builtin-sign-in', admin, { enabled: false })).statusCode, 204);
      const off = await call('POST', '/api/v1/auth/login', undefined, { email: 'local@acme.test', password: 'a local password 1', tenant: 'acme' });
      assert.equal(code(off), 'IAM_INVALID_CREDENTIALS');
      assert.equal((await audits('auth.login')).at(-1)?.reason, 'builtin-sign-in-disabled');
      // End users of production still sign in with passwords until that stage is switched too.
      const endUser = await call('POST', '/t/acme/production/auth/login', undefined, { email: 'local@acme.test', password: 'a local password 1' });
      assert.equal(endUser.statusCode, 200, endUser.body);
      assert.equal((await call('PUT', '/api/v1/tenants/acme/builtin-sign-in', admin, { enabled: false, stage: 'production' })).statusCode, 204);
      assert.equal(code(await call('POST', '/t/acme/production/auth/login', undefined, { email: 'local@acme.test', password: 'a local password 1' })), 'IAM_INVALID_CREDENTIALS');
      assert.equal((await call('PUT', '/api/v1/tenants/acme/builtin-sign-in', admin, { enabled: true })).statusCode, 204);
      assert.equal((await call('POST', '/api/v1/auth/login', undefined, { email: 'local@acme.test', password: 'a local password 1', tenant: 'acme' })).statusCode, 200);
    });
  });
}
