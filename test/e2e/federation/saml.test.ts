// SAML 2.0 end to end, against a real SAML IdP (samlify on loopback, HTTPS): the browser part
// driven for real (the HTTP-Redirect AuthnRequest, the IdP's login form, the HTTP-POST binding
// back to the ACS), JIT provisioning, group → role and app-role mappings re-synced at every
// sign-in, and the assertion checks against responses the IdP tampers with (unsigned, wrapped,
// expired, another audience) and against a replayed response.
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
import { type SamlTamper, startTestSamlIdp, type TestSamlIdp } from '../../harness/saml-idp.ts';

const config = loadConfig({ env: {}, flags: { logLevel: 'silent' } });
const ORIGIN = 'https://accord.test';
const ACS = `${ORIGIN}/api/v1/federation/acme/corp/saml/acs`;

let idp: TestSamlIdp;
before(async () => {
  idp = await startTestSamlIdp({
    users: { alice: { password: 'alice in wonderland', email: 'alice@corp.test', name: 'Alice Liddell', groups: ['expense-users', 'developers'] } },
  });
});
after(async () => idp?.stop());

for (const engine of engines()) {
  describe(`SAML federation on ${engine.name}`, { concurrency: false }, () => {
    let app: FastifyInstance;
    let database: Database;
    let db: Db;
    let admin: string;
    after(async () => app?.close());

    const call = (method: string, url: string, token?: string, payload?: unknown) =>
      app.inject({ method: method as 'GET', url, ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}), ...(payload === undefined ? {} : { payload: payload as object }) });
    const code = (r: LightMyRequestResponse) => (r.statusCode >= 400 ? r.json().code : r.statusCode);
    const browser = () => new Browser({ app, origin: ORIGIN, ca: [idp.caPem] });
    const audits = (action: string) => db.selectFrom('accord.audit_events').select(['outcome', 'reason', 'details']).where('action', '=', action).orderBy('ins').execute();
    const toAcs = (u: string) => u.startsWith(ACS);
    /** Start → the IdP's login form → the auto-post form the IdP answers with (not yet posted). */
    const toPostForm = async (b: Browser, startPath: string): Promise<Page> => {
      const form = await b.go(`${ORIGIN}${startPath}`);
      assert.match(form.body, /name="password"/, form.body.slice(0, 300));
      const post = await b.submit(form, { login: 'alice', password: 'alice in wonderland' });
      assert.match(post.body, /name="SAMLResponse"/, post.body.slice(0, 300));
      return post;
    };
    const signIn = async (b: Browser, startPath: string): Promise<Page> => b.submit(await toPostForm(b, startPath), {});
    const tokenOf = (page: Page) => {
      assert.equal(page.status, 200, page.body);
      return JSON.parse(page.body).accessToken as string;
    };

    before(async () => {
      (idp.users.get('alice') as { groups: string[] }).groups = ['expense-users', 'developers'];
      database = await engine.open();
      db = database.db;
      const keyring = await testKeyring();
      app = await buildApp({ config, database, logger: createLogger('silent'), signer: ephemeralSigner(), keyring, iamKey: testIamKey, publicUrl: ORIGIN });
      const acme = await createTenant(db, keyring, systemSource, { name: 'acme' });
      await db.transaction().execute(async (trx) => {
        const a = await createUser(trx, { tenantId: acme.id, email: 'admin@acme.test', password: 'orchard lemon tree' });
        await grantRole(trx, { userId: a, role: 'tenant-admin', tenantId: acme.id, stageId: null });
        admin = await sessionToken(trx, a);
      });
    });

    test('a tenant admin adds a SAML provider and gives the IdP the SP metadata the platform serves', async () => {
      const r = await call('POST', '/api/v1/tenants/acme/idps', admin, {
        name: 'corp',
        kind: 'saml',
        settings: { entryPoint: idp.ssoUrl, idpIssuer: idp.entityId, idpCertificate: idp.signingCertPem },
        console: true,
        stages: ['production'],
      });
      assert.equal(r.statusCode, 201, r.body);
      assert.match(r.json().settings.idpCertificate, /^sha256:/);
      const meta = await call('GET', '/api/v1/federation/acme/corp/saml/metadata');
      assert.equal(meta.statusCode, 200, meta.body);
      assert.match(meta.body, /entityID="https:\/\/accord\.test\/api\/v1\/federation\/acme\/corp\/saml\/metadata"/);
      assert.match(meta.body, /WantAssertionsSigned="true"/);
      assert.ok(meta.body.includes(`Location="${ACS}"`), meta.body);
      idp.registerSp(meta.body);
      const t = await call('POST', '/api/v1/tenants/acme/idps/corp/test', admin);
      assert.equal(t.json().ok, true, t.body);
      assert.deepEqual(t.json().checks.map((c: { name: string }) => c.name), ['certificate', 'sso-url', 'idp-initiated']);
      for (const m of [
        { group: 'expense-users', app: 'expenses', appRole: 'Employee', stage: 'production' },
        { group: 'developers', role: 'developer' },
      ]) assert.equal((await call('POST', '/api/v1/tenants/acme/idps/corp/mappings', admin, m)).statusCode, 201);
    });

    test('settings with an unusable certificate are refused before anything is stored', async () => {
      const r = await call('POST', '/api/v1/tenants/acme/idps', admin, { name: 'broken', kind: 'saml', settings: { entryPoint: idp.ssoUrl, idpIssuer: idp.entityId, idpCertificate: 'not a pem' } });
      assert.equal(code(r), 'IAM_IDP_INVALID');
      assert.match(r.json().details.reason, /idpCertificate/);
      assert.equal(await db.selectFrom('accord.identity_providers').select('id').where('name', '=', 'broken').executeTakeFirst(), undefined);
    });

    test('a user who exists only in the IdP signs in to the production stage and gets the app role Employee of expenses', async () => {
      assert.equal(await db.selectFrom('accord.users').select('id').where('email', '=', 'alice@corp.test').executeTakeFirst(), undefined);
      const token = tokenOf(await signIn(browser(), '/t/acme/production/auth/idp/corp/login?mode=bearer'));
      const me = await call('GET', '/t/acme/production/auth/me', token);
      assert.equal(me.statusCode, 200, me.body);
      assert.equal(me.json().email, 'alice@corp.test');
      assert.deepEqual(me.json().appRoles, [{ app: 'expenses', role: 'Employee' }]);
      assert.equal(code(await call('GET', '/api/v1/tenants/acme/stages', token)), 'IAM_WRONG_AUDIENCE');
      const user = await db.selectFrom('accord.users').select(['password_hash', 'display_name']).where('email', '=', 'alice@corp.test').executeTakeFirstOrThrow();
      assert.equal(user.password_hash, null);
      assert.equal(user.display_name, 'Alice Liddell');
      const logins = (await audits('auth.federated.login')).filter((a) => a.outcome === 'success');
      assert.equal(logins.length, 1);
      assert.equal(logins[0]?.details.kind, 'saml');
      assert.equal(logins[0]?.details.subject, 'id-alice');
      assert.deepEqual(logins[0]?.details.roles, ['app:expenses/Employee@production', 'developer']);
      assert.equal((await db.selectFrom('accord.saml_assertion_ids').select('assertion_id').execute()).length, 1);
    });

    test('the same user signs in to the console and holds the developer role from a group', async () => {
      const token = tokenOf(await signIn(browser(), '/api/v1/federation/acme/corp/login?mode=bearer'));
      const s = await call('GET', '/api/v1/auth/session', token);
      assert.deepEqual(s.json().grants.map((g: { role: string; tenant: string }) => `${g.role}@${g.tenant}`), ['developer@acme']);
      assert.equal((await call('GET', '/api/v1/tenants/acme/stages', token)).statusCode, 200);
    });

    test('removed from a group at the IdP, the user loses the role at the next sign-in', async () => {
      (idp.users.get('alice') as { groups: string[] }).groups = ['expense-users'];
      const token = tokenOf(await signIn(browser(), '/api/v1/federation/acme/corp/login?mode=bearer'));
      const s = await call('GET', '/api/v1/auth/session', token);
      assert.deepEqual(s.json().grants, []);
      const last = (await audits('auth.federated.login')).filter((a) => a.outcome === 'success').at(-1);
      assert.deepEqual(last?.details.removed, ['developer']);
    });

    const rejected: [SamlTamper, RegExp][] = [
      ['unsigned', /invalid signature/i],
      ['wrapped', /multiple assertions/i],
      ['expired', /no valid subject confirmation/i],
      ['wrong-audience', /audience mismatch/i],
    ];
    for (const [tamper, cause] of rejected) {
      test(`an assertion ${tamper === 'wrong-audience' ? 'for another audience' : tamper === 'wrapped' ? 'with a forged one wrapped around the signed one' : `that is ${tamper}`} is refused with a generic error; the audit names the reason`, async () => {
        idp.tamperNext(tamper);
        const sessions = async () => Number((await db.selectFrom('accord.sessions').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
        const before = await sessions();
        const page = await signIn(browser(), '/t/acme/production/auth/idp/corp/login?mode=bearer');
        assert.equal(page.status, 401, page.body);
        assert.equal(JSON.parse(page.body).code, 'IAM_FEDERATION_FAILED');
        assert.doesNotMatch(page.body, cause);
        const last = (await audits('auth.federated.login')).at(-1);
        assert.equal(last?.outcome, 'failure');
        assert.equal(last?.reason, 'assertion-invalid');
        assert.match(String(last?.details.cause), cause);
        assert.equal(await sessions(), before);
        assert.equal(await db.selectFrom('accord.users').select('id').where('email', '=', 'mallory@corp.test').executeTakeFirst(), undefined);
      });
    }

    test('a replayed response is refused by the assertion-id cache, even from the browser that started the flow', async () => {
      const b = browser();
      const post = await toPostForm(b, '/t/acme/production/auth/idp/corp/login?mode=bearer');
      assert.equal((await b.submit(post, {}, toAcs)).status, 200);
      const again = await b.submit(post, {}, toAcs);
      assert.equal(again.status, 401);
      assert.equal(JSON.parse(again.body).code, 'IAM_FEDERATION_FAILED');
      assert.equal((await audits('auth.federated.login')).at(-1)?.reason, 'assertion-replayed');
    });

    test("a response posted from another browser than the one that started the flow is refused (login CSRF)", async () => {
      const post = await toPostForm(browser(), '/t/acme/production/auth/idp/corp/login?mode=bearer');
      const r = await browser().submit(post, {}, toAcs);
      assert.equal(r.status, 401);
      assert.equal(JSON.parse(r.body).code, 'IAM_FEDERATION_FAILED');
      assert.equal((await audits('auth.federated.login')).at(-1)?.reason, 'state-not-bound-to-browser');
    });

    test('a response nobody asked for (IdP-initiated, no RelayState) is refused while that is off', async () => {
      const post = await toPostForm(browser(), '/t/acme/production/auth/idp/corp/login?mode=bearer');
      const response = /name="SAMLResponse" value="([^"]+)"/.exec(post.body)?.[1] as string;
      const r = await app.inject({ method: 'POST', url: '/api/v1/federation/acme/corp/saml/acs', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams({ SAMLResponse: response }).toString() });
      assert.equal(code(r), 'IAM_FEDERATION_FAILED');
      assert.match(String((await audits('auth.federated.login')).at(-1)?.reason), /^state-missing/);
    });
  });
}
