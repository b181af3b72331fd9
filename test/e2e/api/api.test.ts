import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, describe, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { ephemeralSigner } from '../../../src/audit-chain/index.ts';
import { loadConfig } from '../../../src/config/index.ts';
import type { Db } from '../../../src/db/index.ts';
import { createUser, ensureBootstrap, grantRole } from '../../../src/iam/index.ts';
import { buildApp, createLogger } from '../../../src/server/index.ts';
import { sessionToken, testIamKey } from '../../harness/iam.ts';
import { testKeyring } from '../../harness/keys.ts';
import { engines } from '../../harness/engines.ts';

const OPS_PASSWORD = 'operator passphrase 1';
// Every route is called anonymously from one address below: more than the anonymous quota allows.
const config = loadConfig({ env: {}, flags: { logLevel: 'info', rateLimitIp: '100000/60' } });

function problem(res: LightMyRequestResponse, status: number, code: string): void {
  assert.equal(res.statusCode, status, res.body);
  assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
  const body = res.json();
  assert.equal(body.code, code);
  assert.equal(body.status, status);
  assert.equal(typeof body.detail, 'string');
  assert.ok(!JSON.stringify(body).includes('    at '), 'no stack trace');
}

for (const engine of engines()) {
  describe(`control-plane API on ${engine.name}`, { concurrency: false }, () => {
    let app: FastifyInstance;
    let db: Db;
    let opsToken: string;
    let adminToken: string;
    const logLines: string[] = [];
    const auth = (token: string) => ({ authorization: `Bearer ${token}` });

    after(async () => app?.close());

    test('the setup token creates the first operator once; wrong tokens and weak passwords are refused', async () => {
      db = (await engine.open()).db;
      const sink = new Writable({
        write(chunk, _enc, cb) {
          logLines.push(String(chunk));
          cb();
        },
      });
      app = await buildApp({ config, database: { engine: engine.name, db, location: 'test', close: async () => {} }, logger: createLogger('info', sink), signer: ephemeralSigner(), keyring: await testKeyring(), iamKey: testIamKey });
      const boot = await ensureBootstrap(db, {});
      assert.equal(boot.state, 'token-issued');
      const token = boot.state === 'token-issued' ? boot.token : '';
      const setup = (body: object) => app.inject({ method: 'POST', url: '/api/v1/setup', payload: body });
      problem(await setup({ token: `${token}x`, email: 'ops@example.test', password: OPS_PASSWORD }), 401, 'IAM_SETUP_TOKEN_INVALID');
      problem(await setup({ token, email: 'ops@example.test', password: 'short' }), 400, 'IAM_PASSWORD_POLICY');
      problem(await setup({ token, email: 'not-an-email', password: OPS_PASSWORD }), 400, 'REQUEST_INVALID');
      assert.equal((await db.selectFrom('accord.users').select('id').execute()).length, 0, 'refusals changed nothing');
      const ok = await setup({ token, email: 'Ops@Example.test', password: OPS_PASSWORD });
      assert.equal(ok.statusCode, 201, ok.body);
      assert.equal(ok.json().email, 'ops@example.test');
      problem(await setup({ token, email: 'other@example.test', password: OPS_PASSWORD }), 409, 'IAM_SETUP_DONE');
      assert.equal((await ensureBootstrap(db, {})).state, 'ready', 'no new token once set up');
      const failures = await db.selectFrom('accord.audit_events').select('reason').where('action', '=', 'platform.bootstrap').where('outcome', '=', 'failure').execute();
      assert.deepEqual(failures.map((f) => f.reason).sort(), ['IAM_SETUP_DONE', 'IAM_SETUP_TOKEN_INVALID']);
    });

    test('login gives the same answer for an unknown email and a wrong password, and audits both', async () => {
      const login = (email: string, password: string) => app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email, password } });
      const wrong = await login('ops@example.test', 'wrong password!!');
      const unknown = await login('nobody@example.test', 'wrong password!!');
      problem(wrong, 401, 'IAM_INVALID_CREDENTIALS');
      problem(unknown, 401, 'IAM_INVALID_CREDENTIALS');
      const strip = (r: LightMyRequestResponse) => ({ ...r.json(), requestId: undefined });
      assert.deepEqual(strip(wrong), strip(unknown));
      const ok = await login('OPS@example.test', OPS_PASSWORD);
      assert.equal(ok.statusCode, 200, ok.body);
      opsToken = ok.json().accessToken;
      assert.match(opsToken, /^aca_/);
      const events = await db.selectFrom('accord.audit_events').select(['outcome', 'reason']).where('action', '=', 'auth.login').orderBy('ins').execute();
      assert.deepEqual(events, [
        { outcome: 'failure', reason: 'bad-password' },
        { outcome: 'failure', reason: 'unknown-user' },
        { outcome: 'success', reason: null },
      ]);
    });

    test('every route declares its access, and every protected one refuses an anonymous caller with 401', async () => {
      assert.ok(app.declaredRoutes.length >= 10);
      const publicRoutes = app.declaredRoutes.filter((r) => r.access.kind === 'public').map((r) => `${r.method} ${r.url}`);
      assert.deepEqual(
        [...new Set(publicRoutes)].sort(),
        [
          'GET /api/v1/federation/:tenant/:idp/login',
          'GET /api/v1/federation/:tenant/:idp/oidc/callback',
          'GET /api/v1/federation/:tenant/:idp/saml/metadata',
          'GET /api/v1/openapi.json',
          'GET /healthz',
          'GET /readyz',
          'GET /t/:tenant/:stage/auth/idp/:idp/login',
          'HEAD /api/v1/federation/:tenant/:idp/login',
          'HEAD /api/v1/federation/:tenant/:idp/oidc/callback',
          'HEAD /api/v1/federation/:tenant/:idp/saml/metadata',
          'HEAD /api/v1/openapi.json',
          'HEAD /healthz',
          'HEAD /readyz',
          'HEAD /t/:tenant/:stage/auth/idp/:idp/login',
          'POST /api/v1/auth/invitation',
          'POST /api/v1/auth/login',
          'POST /api/v1/auth/mfa',
          'POST /api/v1/auth/mfa/webauthn/options',
          'POST /api/v1/auth/password-reset',
          'POST /api/v1/auth/refresh',
          'POST /api/v1/federation/:tenant/:idp/login',
          'POST /api/v1/federation/:tenant/:idp/saml/acs',
          'POST /api/v1/setup',
          'POST /oauth/token',
          'POST /t/:tenant/:stage/auth/idp/:idp/login',
          'POST /t/:tenant/:stage/auth/login',
          'POST /t/:tenant/:stage/auth/mfa',
          'POST /t/:tenant/:stage/auth/refresh',
        ],
      );
      for (const r of app.declaredRoutes.filter((x) => x.access.kind !== 'public')) {
        const url = r.url.replace(':tenant', 'acme');
        const res = await app.inject({ method: r.method as 'GET', url });
        assert.equal(res.statusCode, 401, `${r.method} ${r.url}`);
        if (r.method !== 'HEAD') problem(res, 401, 'IAM_UNAUTHENTICATED');
      }
      const garbage = await app.inject({ method: 'GET', url: '/api/v1/tenants', headers: auth('acs_forged-token') });
      problem(garbage, 401, 'IAM_TOKEN_INVALID');
      // A real token with one character of its signature changed: refused, not trusted.
      const forged = `${opsToken.slice(0, -2)}${opsToken.endsWith('AA') ? 'BB' : 'AA'}`;
      problem(await app.inject({ method: 'GET', url: '/api/v1/tenants', headers: auth(forged) }), 401, 'IAM_TOKEN_INVALID');
      // Anonymous denials are counted per source and reason and written as summaries (issue 10).
      await app.perimeter.flush();
      const summaries = await db.selectFrom('accord.audit_events').select('details').where('action', '=', 'access.denied.summary').execute();
      const counted = summaries.reduce((n, r) => n + (r.details as { count: number }).count, 0);
      assert.ok(counted >= app.declaredRoutes.filter((x) => x.access.kind !== 'public').length, 'every denial is counted');
    });

    test('an operator creates tenants and stages through the API', async () => {
      const create = await app.inject({ method: 'POST', url: '/api/v1/tenants', headers: auth(opsToken), payload: { name: 'acme', displayName: 'Acme Corp' } });
      assert.equal(create.statusCode, 201, create.body);
      assert.equal((await app.inject({ method: 'POST', url: '/api/v1/tenants', headers: auth(opsToken), payload: { name: 'globex' } })).statusCode, 201);
      const uat = await app.inject({ method: 'POST', url: '/api/v1/tenants/acme/stages', headers: auth(opsToken), payload: { name: 'uat', after: 'test' } });
      assert.equal(uat.statusCode, 201, uat.body);
      const list = await app.inject({ method: 'GET', url: '/api/v1/tenants/acme/stages', headers: auth(opsToken) });
      assert.deepEqual(
        list.json().map((s: { name: string }) => s.name),
        ['development', 'test', 'uat', 'production'],
      );
    });

    test('malformed requests get problem+json 4xx with a catalog code and change nothing', async () => {
      const post = (payload: string, type = 'application/json') =>
        app.inject({ method: 'POST', url: '/api/v1/tenants', headers: { ...auth(opsToken), 'content-type': type }, payload });
      problem(await post('{"name": 42}'), 400, 'REQUEST_INVALID');
      problem(await post('{"name": "initech", "owner": "x"}'), 400, 'REQUEST_INVALID');
      problem(await post('{"name": '), 400, 'REQUEST_INVALID');
      problem(await post('name=initech', 'application/x-www-form-urlencoded'), 415, 'REQUEST_UNSUPPORTED_MEDIA_TYPE');
      problem(await post(JSON.stringify({ name: 'acme' })), 409, 'TENANCY_TENANT_EXISTS');
      problem(await app.inject({ method: 'GET', url: '/api/v1/nothing-here', headers: auth(opsToken) }), 404, 'REQUEST_NOT_FOUND');
      problem(await app.inject({ method: 'DELETE', url: '/api/v1/tenants/acme', headers: auth(opsToken) }), 400, 'TENANCY_CONFIRMATION_REQUIRED');
      const names = (await db.selectFrom('accord.tenants').select('name').orderBy('name').execute()).map((t) => t.name);
      assert.deepEqual(names, ['acme', 'globex']);
    });

    test("a tenant's admin sees only that tenant; another tenant answers 404 exactly like a missing one", async () => {
      const acme = await db.selectFrom('accord.tenants').select('id').where('name', '=', 'acme').executeTakeFirstOrThrow();
      adminToken = await db.transaction().execute(async (trx) => {
        const userId = await createUser(trx, { tenantId: acme.id, email: 'admin@acme.test', password: 'acme admin passphrase' });
        await grantRole(trx, { userId, role: 'tenant-admin', tenantId: acme.id, stageId: null });
        return sessionToken(trx, userId);
      });
      const get = (url: string) => app.inject({ method: 'GET', url, headers: auth(adminToken) });
      assert.equal((await get('/api/v1/tenants/acme')).statusCode, 200);
      const foreign = await get('/api/v1/tenants/globex');
      const missing = await get('/api/v1/tenants/no-such-tenant');
      problem(foreign, 404, 'TENANCY_TENANT_NOT_FOUND');
      problem(missing, 404, 'TENANCY_TENANT_NOT_FOUND');
      assert.equal(foreign.json().detail, missing.json().detail);
      problem(await get('/api/v1/tenants/globex/stages'), 404, 'TENANCY_TENANT_NOT_FOUND');
      problem(
        await app.inject({ method: 'POST', url: '/api/v1/tenants/globex/stages', headers: auth(adminToken), payload: { name: 'qa' } }),
        404,
        'TENANCY_TENANT_NOT_FOUND',
      );
      const list = await get('/api/v1/tenants');
      assert.deepEqual(
        list.json().map((t: { name: string }) => t.name),
        ['acme'],
      );
      // Allowed on its own tenant, but not platform-wide or destructive powers.
      assert.equal(
        (await app.inject({ method: 'POST', url: '/api/v1/tenants/acme/stages', headers: auth(adminToken), payload: { name: 'qa' } })).statusCode,
        201,
      );
      problem(await app.inject({ method: 'POST', url: '/api/v1/tenants', headers: auth(adminToken), payload: { name: 'mine' } }), 403, 'IAM_FORBIDDEN');
      problem(await app.inject({ method: 'DELETE', url: '/api/v1/tenants/acme?confirm=acme', headers: auth(adminToken) }), 403, 'IAM_FORBIDDEN');
      problem(await get('/metrics'), 403, 'IAM_FORBIDDEN');
      // The audit trail: its own chain yes, another tenant's is as missing, the platform's is forbidden.
      const own = await get('/api/v1/tenants/acme/audit');
      assert.equal(own.statusCode, 200);
      assert.ok(own.json().records.every((r: { chain: string }) => r.chain === acme.id));
      problem(await get('/api/v1/tenants/globex/audit'), 404, 'TENANCY_TENANT_NOT_FOUND');
      problem(await get('/api/v1/tenants/globex/audit/export?format=cef'), 404, 'TENANCY_TENANT_NOT_FOUND');
      problem(await get('/api/v1/audit'), 403, 'IAM_FORBIDDEN');
      problem(await get('/api/v1/tenants/acme/audit?limit=0'), 400, 'AUDIT_QUERY_INVALID');
      const globexStages = await app.inject({ method: 'GET', url: '/api/v1/tenants/globex/stages', headers: auth(opsToken) });
      assert.equal(globexStages.json().length, 3, 'the foreign tenant was not changed');
    });

    test('operators read metrics; the OpenAPI document and health endpoints are public', async () => {
      const metrics = await app.inject({ method: 'GET', url: '/metrics', headers: auth(opsToken) });
      assert.equal(metrics.statusCode, 200);
      assert.match(metrics.body, /accord_http_requests_total\{route="\/api\/v1\/tenants",method="POST",status="201"\}/);
      const doc = await app.inject({ method: 'GET', url: '/api/v1/openapi.json' });
      assert.equal(doc.statusCode, 200);
      const paths = doc.json().paths;
      assert.ok(paths['/api/v1/tenants/{tenant}/stages'].post);
      assert.equal(paths['/api/v1/tenants'].post['x-permission'], 'tenant:create');
      assert.equal((await app.inject({ method: 'GET', url: '/readyz' })).json().status, 'ready');
    });

    test('logout ends the session: the same token is refused afterwards', async () => {
      const out = await app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: auth(opsToken) });
      assert.equal(out.statusCode, 204);
      problem(await app.inject({ method: 'GET', url: '/api/v1/auth/session', headers: auth(opsToken) }), 401, 'IAM_SESSION_ENDED');
    });

    test('no password or token ever reaches the logs or the audit trail', async () => {
      const audit = JSON.stringify(await db.selectFrom('accord.audit_events').selectAll().execute());
      const logs = logLines.join('');
      assert.ok(logs.length > 0, 'the logger captured lines');
      for (const secret of [OPS_PASSWORD, 'wrong password!!', 'acme admin passphrase', opsToken, adminToken]) {
        assert.ok(!logs.includes(secret), 'secret in logs');
        assert.ok(!audit.includes(secret), 'secret in audit');
      }
    });
  });
}
