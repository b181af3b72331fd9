// Issue 10, findings 5, 6, 7, 9 and 12: what the security assessment sent, replayed on both
// engines. Each answer must be a problem+json refusal with a catalog code (never a 500), carry
// the security headers and a request id, and change nothing; refusals of anonymous callers are
// audited.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import pino from 'pino';
import { ephemeralSigner, systemSource } from '../../../src/audit-chain/index.ts';
import { loadConfig } from '../../../src/config/index.ts';
import type { Database } from '../../../src/db/index.ts';
import { createUser, grantRole, type IssuedSession, openSession } from '../../../src/iam/index.ts';
import { buildApp } from '../../../src/server/index.ts';
import { createTenant } from '../../../src/tenancy/index.ts';
import { engines } from '../../harness/engines.ts';
import { sessionToken, testIamKey, testIssuer } from '../../harness/iam.ts';
import { testKeyring } from '../../harness/keys.ts';

const config = loadConfig({ env: {}, flags: { logLevel: 'silent' } });
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
/** The same token with its last character swapped for one that decodes to the same bytes. */
const sibling = (token: string): string => token.slice(0, -1) + B64URL.charAt(B64URL.indexOf(token.slice(-1)) ^ 1);
/** Spellings lenient base64url decoding takes for the original. */
const variants = (token: string): string[] => [`${token}!!`, `${token}=`, `${token}%%%`, `${token}==`, sibling(token), `${token.slice(0, -1)}*${token.slice(-1)}`];
// Names every JavaScript object answers to.
const PROTOTYPE_NAMES = ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf', 'isPrototypeOf', 'prototype'];

for (const engine of engines()) {
  describe(`hostile input on ${engine.name}`, { concurrency: false }, () => {
    let app: FastifyInstance;
    let database: Database;
    const tokens: Record<string, string> = {};
    let carolSession: IssuedSession;
    /** A request; a string payload is sent as raw JSON text (for what JSON.stringify cannot spell). */
    const call = (method: string, url: string, who: string | undefined, payload?: unknown, headers: Record<string, string> = {}) =>
      app.inject({
        method: method as 'GET',
        url,
        headers: { ...(who ? { authorization: `Bearer ${tokens[who]}` } : {}), ...(typeof payload === 'string' ? { 'content-type': 'application/json' } : {}), ...headers },
        ...(payload === undefined ? {} : { payload: payload as object }),
      });
    /** A refusal as the platform must send it: problem+json, catalog code, request id, security headers. */
    const assertRefusal = (r: LightMyRequestResponse, status: number, code: string, what: string) => {
      assert.equal(r.statusCode, status, `${what}: ${r.body.slice(0, 300)}`);
      assert.match(String(r.headers['content-type']), /^application\/problem\+json/, what);
      const problem = r.json() as { code: string; requestId?: string };
      assert.equal(problem.code, code, what);
      assert.ok(problem.requestId, `${what}: a request id in the body`);
      assert.equal(r.headers['x-request-id'], problem.requestId, `${what}: the same id in x-request-id`);
      assert.match(String(r.headers['strict-transport-security']), /max-age=31536000/, `${what}: HSTS`);
      assert.match(String(r.headers['content-security-policy']), /frame-ancestors 'none'/, `${what}: CSP`);
      assert.equal(r.headers['x-frame-options'], 'DENY', `${what}: X-Frame-Options`);
      assert.equal(r.headers['cache-control'], 'no-store', `${what}: no-store`);
      assert.doesNotMatch(r.body, /FST_ERR|node_modules|\.ts:\d+/, `${what}: no framework internals`);
    };
    const platformRecords = async (action: string) =>
      ((await call('GET', `/api/v1/audit?action=${action}&limit=500`, 'operator')).json() as { records: { action: string; reason: string | null; details: Record<string, unknown>; actor: { type: string } }[] }).records;

    before(async () => {
      database = await engine.open();
      const keyring = await testKeyring();
      app = await buildApp({ config, database, logger: pino({ level: 'silent' }), signer: ephemeralSigner(), keyring, iamKey: testIamKey });
      const acme = await createTenant(database.db, keyring, systemSource, { name: 'acme' });
      await database.db.transaction().execute(async (trx) => {
        const op = await createUser(trx, { tenantId: null, email: 'op@platform.test', password: 'operator passphrase ok' });
        await grantRole(trx, { userId: op, role: 'platform-operator', tenantId: null, stageId: null });
        tokens.operator = await sessionToken(trx, op);
        const admin = await createUser(trx, { tenantId: acme.id, email: 'admin@acme.test', password: 'admin passphrase ok' });
        await grantRole(trx, { userId: admin, role: 'tenant-admin', tenantId: acme.id, stageId: null });
        tokens.admin = await sessionToken(trx, admin);
        const carol = await createUser(trx, { tenantId: acme.id, email: 'carol@acme.test', password: 'carol passphrase ok' });
        carolSession = await openSession(trx, testIssuer, { userId: carol, policy: { idleSeconds: 3600, absoluteSeconds: 3600 }, source: { ip: null, userAgent: null } });
      });
    });
    after(async () => app?.close());

    describe('finding 6: NUL bytes, lone surrogates, normalisation', () => {
      test('an anonymous request with %00 in the path is refused and the refusal is on the platform chain', async () => {
        const before = (await platformRecords('request.refused')).length;
        assertRefusal(await call('GET', '/api/v1/tenants/%00', undefined), 400, 'REQUEST_TEXT_INVALID', 'GET /api/v1/tenants/%00');
        assertRefusal(await call('GET', '/api/v1/tenants/ac%00me/users', undefined), 400, 'REQUEST_TEXT_INVALID', 'GET /api/v1/tenants/ac%00me/users');
        const records = await platformRecords('request.refused');
        assert.equal(records.length, before + 2, 'both refusals are audited');
        const [newest] = records;
        assert.equal(newest?.reason, 'REQUEST_TEXT_INVALID');
        assert.equal(newest?.actor.type, 'anonymous');
        assert.equal(newest?.details.path, '/api/v1/tenants/ac%00me/users');
        assert.deepEqual(newest?.details.input, { in: 'params', path: '/tenant', problem: 'nul' });
      });

      test('NUL and lone surrogates in bodies, queries and keys are REQUEST_TEXT_INVALID on public and protected routes, and change nothing', async () => {
        const cases: [string, string, string | undefined, unknown][] = [
          ['POST', '/api/v1/auth/login', undefined, { email: 'admin@acme.test', password: 'admin\u0000passphrase' }],
          ['POST', '/api/v1/auth/login', undefined, '{"email":"admin@acme.test","password":"\\ud800admin passphrase"}'],
          ['POST', '/api/v1/auth/login', undefined, { email: 'admin@acme.test', password: 'admin passphrase ok', tenant: 'ac\u0000me' }],
          ['POST', '/t/acme/development/auth/login', undefined, { email: 'carol@acme.test\u0000', password: 'carol passphrase ok' }],
          ['POST', '/api/v1/auth/refresh', undefined, { refreshToken: 'acr_\u0000' }],
          ['POST', '/api/v1/auth/password-reset', undefined, { token: 'acp_x', password: 'new\u0000 passphrase ok' }],
          ['POST', '/api/v1/tenants', 'operator', { name: 'globex', displayName: 'Globex\u0000Corp' }],
          ['POST', '/api/v1/tenants/acme/users', 'admin', { email: 'dan@acme.test', password: 'dan passphrase ok', displayName: 'Dan\u0000' }],
          ['POST', '/api/v1/tenants/acme/users', 'admin', '{"email":"dan@acme.test","password":"dan passphrase ok","displayName":"\\udc00Dan"}'],
          ['POST', '/api/v1/tenants/acme/roles', 'admin', { name: 'viewer', description: 'x\u0000', permissions: ['tenant:read'] }],
          ['POST', '/api/v1/tenants/acme/clients', 'admin', { name: 'robot', grants: [{ role: 'developer', stage: 'dev\u0000' }] }],
          ['POST', '/api/v1/tenants/acme/grants', 'admin', { user: 'carol@acme.test', role: 'developer\u0000' }],
          ['PUT', '/api/v1/tenants/acme/stages/development/secrets/smtp-password', 'admin', { value: 'se\u0000cret' }],
          ['GET', '/api/v1/tenants/acme/audit?action=auth.login%00', 'admin', undefined],
          ['GET', '/api/v1/tenants/acme/users/carol%40acme.test%00/sessions', 'admin', undefined],
          ['POST', '/api/v1/tenants/acme/users', 'admin', '{"email":"dan@acme.test","password":"dan passphrase ok","a\\u0000b":1}'],
          ['POST', '/oauth/token', undefined, undefined],
        ];
        for (const [method, url, who, payload] of cases) {
          const what = `${method} ${url} ${typeof payload === 'string' ? payload : JSON.stringify(payload)}`;
          if (url === '/oauth/token') {
            const r = await app.inject({ method: 'POST', url, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'grant_type=client_credentials&client_id=acl_%00&client_secret=x' });
            assertRefusal(r, 400, 'REQUEST_TEXT_INVALID', what);
            continue;
          }
          assertRefusal(await call(method, url, who, payload), 400, 'REQUEST_TEXT_INVALID', what);
        }
        const users = (await call('GET', '/api/v1/tenants/acme/users', 'admin')).json() as { email: string }[];
        assert.deepEqual(users.map((u) => u.email).sort(), ['admin@acme.test', 'carol@acme.test']);
        assert.equal((await call('GET', '/api/v1/tenants/globex', 'operator')).statusCode, 404);
      });

      test('text is stored in Unicode NFC, so canonically equal spellings are one value', async () => {
        // e + combining acute accent (NFD) arrives; the precomposed é (NFC) is stored.
        const created = await call('POST', '/api/v1/tenants/acme/users', 'admin', { email: 'rene@acme.test', password: 'an accented passphrase', displayName: 'Rene\u0301' });
        assert.equal(created.statusCode, 201, created.body);
        const users = (await call('GET', '/api/v1/tenants/acme/users', 'admin')).json() as { email: string; displayName: string }[];
        assert.equal(users.find((u) => u.email === 'rene@acme.test')?.displayName, 'Ren\u00e9');
      });
    });

    describe('finding 7: what the router refuses', () => {
      test('a bad percent-encoding, bytes that are not UTF-8 and an over-long path parameter get problem+json with headers and a request id, and are audited', async () => {
        const before = (await platformRecords('request.refused')).length;
        for (const [url, status, code] of [
          ['/api/v1/tenants/%zz', 400, 'REQUEST_URL_INVALID'],
          ['/api/v1/tenants/%C0%AF', 400, 'REQUEST_URL_INVALID'],
          ['/api/v1/tenants/%ED%A0%80/stages', 400, 'REQUEST_URL_INVALID'],
          [`/api/v1/tenants/${'a'.repeat(400)}`, 414, 'REQUEST_URL_TOO_LONG'],
        ] as const) {
          const r = await call('GET', url, undefined);
          assertRefusal(r, status, code, url.slice(0, 40));
          assert.ok(!r.body.includes(url.slice(16, 40)), `${url.slice(0, 40)}: the URL is not echoed`);
        }
        const records = await platformRecords('request.refused');
        assert.equal(records.length, before + 4);
        assert.deepEqual(
          records.slice(0, 4).map((r) => r.reason),
          ['REQUEST_URL_TOO_LONG', 'REQUEST_URL_INVALID', 'REQUEST_URL_INVALID', 'REQUEST_URL_INVALID'],
        );
      });

      test('an email of legitimate length is a path parameter like any other', async () => {
        const email = `${'x'.repeat(180)}@acme.test`;
        assertRefusal(await call('GET', `/api/v1/tenants/acme/users/${email}/sessions`, 'admin'), 404, 'IAM_USER_NOT_FOUND', 'a 190-character email in the path');
      });
    });

    describe('finding 9: one spelling per token', () => {
      test('an access token with characters appended or its last character swapped for a sibling is IAM_TOKEN_INVALID', async () => {
        const token = carolSession.accessToken;
        assert.equal((await app.inject({ method: 'GET', url: '/api/v1/auth/session', headers: { authorization: `Bearer ${token}` } })).statusCode, 200);
        for (const v of variants(token)) {
          assertRefusal(await app.inject({ method: 'GET', url: '/api/v1/auth/session', headers: { authorization: `Bearer ${v}` } }), 401, 'IAM_TOKEN_INVALID', `access token ${v.slice(-6)}`);
          assertRefusal(await app.inject({ method: 'GET', url: '/api/v1/auth/session', headers: { cookie: `__Host-accord-access=${encodeURIComponent(v)}` } }), 401, 'IAM_TOKEN_INVALID', `access cookie ${v.slice(-6)}`);
        }
        // The payload part is held to the same rule (it is what the MAC covers, and what is parsed).
        const dot = token.lastIndexOf('.');
        const payloadSibling = `${sibling(token.slice(0, dot))}${token.slice(dot)}`;
        assertRefusal(await app.inject({ method: 'GET', url: '/api/v1/auth/session', headers: { authorization: `Bearer ${payloadSibling}` } }), 401, 'IAM_TOKEN_INVALID', 'payload sibling');
      });

      test('a cookie-authenticated change with a non-canonical CSRF token is IAM_CSRF', async () => {
        const cookie = `__Host-accord-access=${carolSession.accessToken}`;
        for (const v of variants(carolSession.csrfToken)) {
          assertRefusal(await app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: { cookie, 'x-csrf-token': v } }), 403, 'IAM_CSRF', `csrf ${v.slice(-6)}`);
          const refresh = await app.inject({
            method: 'POST',
            url: '/api/v1/auth/refresh',
            headers: { cookie: `__Host-accord-refresh=${carolSession.refreshToken}`, 'x-csrf-token': v },
          });
          assertRefusal(refresh, 403, 'IAM_CSRF', `refresh csrf ${v.slice(-6)}`);
        }
        // Still signed in: none of the variants ended the session.
        assert.equal((await app.inject({ method: 'GET', url: '/api/v1/auth/session', headers: { cookie } })).statusCode, 200);
      });

      test('a refresh token is accepted in its one spelling only', async () => {
        for (const v of variants(carolSession.refreshToken)) {
          assertRefusal(await call('POST', '/api/v1/auth/refresh', undefined, { refreshToken: v }), 401, 'IAM_TOKEN_INVALID', `refresh ${v.slice(-6)}`);
        }
        const ok = await call('POST', '/api/v1/auth/refresh', undefined, { refreshToken: carolSession.refreshToken });
        assert.equal(ok.statusCode, 200, ok.body);
      });
    });

    describe('finding 5: names of prototype members', () => {
      test('granting, revoking, giving to an API client or naming in the MFA policy a prototype name is IAM_ROLE_UNKNOWN, never a 500', async () => {
        for (const role of PROTOTYPE_NAMES) {
          assertRefusal(await call('POST', '/api/v1/tenants/acme/grants', 'admin', { user: 'carol@acme.test', role }), 400, 'IAM_ROLE_UNKNOWN', `grant ${role}`);
          assertRefusal(await call('DELETE', `/api/v1/tenants/acme/grants?user=carol%40acme.test&role=${role}`, 'admin'), 400, 'IAM_ROLE_UNKNOWN', `revoke ${role}`);
          assertRefusal(await call('POST', '/api/v1/tenants/acme/clients', 'admin', { name: 'robot', grants: [{ role }] }), 400, 'IAM_ROLE_UNKNOWN', `client with ${role}`);
          assertRefusal(await call('PATCH', '/api/v1/tenants/acme/policy', 'admin', { mfaRequiredRoles: [role] }), 400, 'IAM_ROLE_UNKNOWN', `MFA policy naming ${role}`);
        }
        const users = (await call('GET', '/api/v1/tenants/acme/users', 'admin')).json() as { email: string; grants: unknown[] }[];
        assert.deepEqual(users.find((u) => u.email === 'carol@acme.test')?.grants, []);
        assert.deepEqual((await call('GET', '/api/v1/tenants/acme/clients', 'admin')).json(), []);
      });

      test('a custom role cannot be named after a prototype member', async () => {
        for (const name of ['constructor', 'tostring', 'valueof', 'hasownproperty', 'prototype']) {
          assertRefusal(await call('POST', '/api/v1/tenants/acme/roles', 'admin', { name, permissions: ['tenant:read'] }), 400, 'IAM_ROLE_NAME_RESERVED', `role named ${name}`);
        }
        const custom = ((await call('GET', '/api/v1/tenants/acme/roles', 'admin')).json() as { name: string; builtIn: boolean }[]).filter((r) => !r.builtIn);
        assert.deepEqual(custom, []);
      });
    });
  });
}
