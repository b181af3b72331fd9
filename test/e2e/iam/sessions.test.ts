// Sessions and tokens: short-lived signed access tokens, rotating refresh tokens with reuse
// detection, cookies with CSRF, per-tenant and per-stage session policy, listing and ending
// sessions, end-user sign-in per stage, and the principal cache's invalidation. Both engines.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import pino from 'pino';
import { ephemeralSigner, systemSource } from '../../../src/audit-chain/index.ts';
import { loadConfig } from '../../../src/config/index.ts';
import type { Db } from '../../../src/db/index.ts';
import { createUser, grantRole, IamKey, signAccessToken } from '../../../src/iam/index.ts';
import { buildApp } from '../../../src/server/index.ts';
import { createTenant, type Stage } from '../../../src/tenancy/index.ts';
import { engines } from '../../harness/engines.ts';
import { testIamKey } from '../../harness/iam.ts';
import { testKeyring } from '../../harness/keys.ts';

const OPS = { email: 'ops@sessions.test', password: 'operator passphrase here' };
const ALICE = { email: 'alice@acme.test', password: 'wonderland rabbit hole' };

for (const engine of engines()) {
  describe(`sessions and tokens on ${engine.name}`, { concurrency: false }, () => {
    let app: FastifyInstance;
    let db: Db;
    let acmeId: string;
    let stages: Stage[];
    let aliceId: string;
    after(async () => app?.close());

    const call = (method: string, url: string, opts: { token?: string; body?: unknown; headers?: Record<string, string> } = {}) =>
      app.inject({
        method: method as 'GET',
        url,
        headers: { ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}), ...(opts.headers ?? {}) },
        ...(opts.body === undefined ? {} : { payload: opts.body as object }),
      });
    const code = (r: LightMyRequestResponse) => (r.json() as { code?: string }).code;
    const login = async (who: { email: string; password: string }, extra: Record<string, unknown> = {}) => {
      const r = await call('POST', '/api/v1/auth/login', { body: { ...who, ...extra } });
      assert.equal(r.statusCode, 200, r.body);
      return r.json() as { status: string; accessToken: string; refreshToken: string; sessionId: string; sessionExpiresAt: string; csrfToken?: string };
    };
    let ops = '';

    test('setup: an operator, tenant acme with alice (developer on development)', async () => {
      const database = await engine.open();
      db = database.db;
      const keyring = await testKeyring();
      // The cache off: several tests change rows directly and expect the next request to see it.
      const config = loadConfig({ env: {}, flags: { logLevel: 'silent', authCacheMilliseconds: 0 } });
      app = await buildApp({ config, database, logger: pino({ level: 'silent' }), signer: ephemeralSigner(), keyring, iamKey: testIamKey });
      const acme = await createTenant(db, keyring, systemSource, { name: 'acme' });
      acmeId = acme.id;
      stages = acme.stages;
      await db.transaction().execute(async (trx) => {
        const opsId = await createUser(trx, { tenantId: null, email: OPS.email, password: OPS.password });
        await grantRole(trx, { userId: opsId, role: 'platform-operator', tenantId: null, stageId: null });
        aliceId = await createUser(trx, { tenantId: acme.id, email: ALICE.email, password: ALICE.password });
        await grantRole(trx, { userId: aliceId, role: 'developer', tenantId: acme.id, stageId: (stages.find((s) => s.name === 'development') as Stage).id });
      });
      ops = (await login(OPS)).accessToken;
      assert.match(ops, /^aca_/);
    });

    test('every sign-in opens a new session with a short access token and a refresh token', async () => {
      const a = await login(ALICE);
      const b = await login(ALICE);
      assert.notEqual(a.sessionId, b.sessionId);
      assert.match(a.refreshToken, /^acr_/);
      const payload = JSON.parse(Buffer.from(a.accessToken.slice(4, a.accessToken.lastIndexOf('.')), 'base64url').toString()) as { exp: number; iat: number };
      assert.ok(payload.exp - payload.iat <= 900, 'access tokens live at most 15 minutes');
      assert.equal((await call('GET', '/api/v1/auth/session', { token: a.accessToken })).json().sessionId, a.sessionId);
    });

    test('a refresh rotates both tokens; presenting a spent refresh token revokes the whole session', async () => {
      const s = await login(ALICE);
      const r1 = await call('POST', '/api/v1/auth/refresh', { body: { refreshToken: s.refreshToken } });
      assert.equal(r1.statusCode, 200, r1.body);
      const next = r1.json() as { accessToken: string; refreshToken: string; sessionId: string };
      assert.equal(next.sessionId, s.sessionId);
      assert.notEqual(next.refreshToken, s.refreshToken);
      assert.equal((await call('GET', '/api/v1/auth/session', { token: next.accessToken })).statusCode, 200);
      const reuse = await call('POST', '/api/v1/auth/refresh', { body: { refreshToken: s.refreshToken } });
      assert.equal(reuse.statusCode, 401);
      assert.equal(code(reuse), 'IAM_REFRESH_REUSED');
      assert.equal(code(await call('GET', '/api/v1/auth/session', { token: next.accessToken })), 'IAM_SESSION_ENDED');
      assert.equal(code(await call('POST', '/api/v1/auth/refresh', { body: { refreshToken: next.refreshToken } })), 'IAM_SESSION_ENDED');
      const row = await db.selectFrom('accord.sessions').select(['revoked_reason']).where('id', '=', s.sessionId).executeTakeFirstOrThrow();
      assert.equal(row.revoked_reason, 'refresh-reuse');
      const audit = await db.selectFrom('accord.audit_events').select(['outcome', 'reason']).where('action', '=', 'auth.refresh').where('target_id', '=', s.sessionId).execute();
      assert.deepEqual(audit.map((a) => a.outcome).sort(), ['denied', 'success']);
      assert.equal(code(await call('POST', '/api/v1/auth/refresh', { body: { refreshToken: 'acr_nonsense' } })), 'IAM_TOKEN_INVALID');
    });

    test('forged, foreign-key and expired access tokens are refused with distinct codes; forged and foreign ones are counted in the denial summaries', async () => {
      const s = await login(ALICE);
      const dot = s.accessToken.lastIndexOf('.');
      const payload = JSON.parse(Buffer.from(s.accessToken.slice(4, dot), 'base64url').toString()) as Record<string, unknown>;
      // The same claims, but saying another user: the MAC no longer matches.
      const forgedPayload = Buffer.from(JSON.stringify({ ...payload, sub: '00000000-0000-0000-0000-000000000000' })).toString('base64url');
      const forged = `aca_${forgedPayload}${s.accessToken.slice(dot)}`;
      assert.equal(code(await call('GET', '/api/v1/tenants/acme', { token: forged })), 'IAM_TOKEN_INVALID');
      const now = Math.floor(Date.now() / 1000);
      const other = signAccessToken(IamKey.ephemeral(), { typ: 'user', sub: aliceId, sid: s.sessionId, iat: now, exp: now + 60 });
      assert.equal(code(await call('GET', '/api/v1/tenants/acme', { token: other })), 'IAM_TOKEN_INVALID');
      const expired = signAccessToken(testIamKey, { typ: 'user', sub: aliceId, sid: s.sessionId, iat: now - 120, exp: now - 60 });
      assert.equal(code(await call('GET', '/api/v1/tenants/acme', { token: expired })), 'IAM_TOKEN_EXPIRED');
      // A bad token names nobody: its refusal is anonymous, counted per source and written as a
      // summary (issue 10), not one record each on the tenant's chain.
      await app.perimeter.flush();
      const denied = await db.selectFrom('accord.audit_events').select(['reason', 'details']).where('action', '=', 'access.denied.summary').where('reason', 'in', ['IAM_TOKEN_INVALID', 'IAM_TOKEN_EXPIRED']).execute();
      // Forged and foreign tokens are recorded; an expired one is the normal end of a token's life
      // (clients refresh and retry), so it is not.
      const count = (reason: string) => denied.filter((d) => d.reason === reason).reduce((n, d) => n + (d.details as { count: number }).count, 0);
      assert.ok(count('IAM_TOKEN_INVALID') >= 2);
      assert.equal(count('IAM_TOKEN_EXPIRED'), 0);
    });

    test('idle and absolute deadlines end a session', async () => {
      const s = await login(ALICE);
      await db.updateTable('accord.sessions').set({ idle_expires_at: new Date(Date.now() - 1000) }).where('id', '=', s.sessionId).execute();
      assert.equal(code(await call('GET', '/api/v1/auth/session', { token: s.accessToken })), 'IAM_SESSION_ENDED');
      assert.equal(code(await call('POST', '/api/v1/auth/refresh', { body: { refreshToken: s.refreshToken } })), 'IAM_SESSION_ENDED');
    });

    test("a tenant's session policy applies to its users' new sessions; invalid policies change nothing", async () => {
      const bad = await call('PATCH', '/api/v1/tenants/acme/policy', { token: ops, body: { sessionIdleSeconds: 7200, sessionAbsoluteSeconds: 3600 } });
      assert.equal(code(bad), 'IAM_POLICY_INVALID');
      assert.equal(code(await call('PATCH', '/api/v1/tenants/acme/policy', { token: ops, body: { sessionIdleSeconds: 10 } })), 'IAM_POLICY_INVALID');
      assert.equal(code(await call('PATCH', '/api/v1/tenants/acme/policy', { token: ops, body: { mfaRequiredRoles: ['no-such-role'] } })), 'IAM_ROLE_UNKNOWN');
      const unchanged = await call('GET', '/api/v1/tenants/acme/policy', { token: ops });
      assert.deepEqual(unchanged.json(), { requireMfa: false, mfaRequiredRoles: [], sessionIdleSeconds: 43200, sessionAbsoluteSeconds: 43200, sessionFromDefaults: true });
      const ok = await call('PATCH', '/api/v1/tenants/acme/policy', { token: ops, body: { sessionIdleSeconds: 1800, sessionAbsoluteSeconds: 3600 } });
      assert.equal(ok.statusCode, 200, ok.body);
      const s = await login(ALICE);
      const left = new Date(s.sessionExpiresAt).getTime() - Date.now();
      assert.ok(left > 3500_000 && left <= 3600_000, `absolute deadline about 1 h away, was ${left} ms`);
      const row = await db.selectFrom('accord.sessions').select(['idle_expires_at']).where('id', '=', s.sessionId).executeTakeFirstOrThrow();
      assert.ok(row.idle_expires_at.getTime() - Date.now() <= 1800_000);
      const audit = await db.selectFrom('accord.audit_events').select('details').where('action', '=', 'tenant.policy.changed').execute();
      assert.equal(audit.length, 1);
      await call('PATCH', '/api/v1/tenants/acme/policy', { token: ops, body: { sessionIdleSeconds: null, sessionAbsoluteSeconds: null } });
    });

    test('browser sessions use HttpOnly SameSite cookies, and changes need the CSRF header', async () => {
      const r = await call('POST', '/api/v1/auth/login', { body: { ...OPS, mode: 'cookie' } });
      assert.equal(r.statusCode, 200);
      const body = r.json() as { accessToken?: string; csrfToken: string };
      assert.equal(body.accessToken, undefined, 'no token in the body of a cookie sign-in');
      const cookies = [r.headers['set-cookie']].flat() as string[];
      // The access and refresh cookies, and the device cookie (issue 10, see docs/iam.md).
      assert.equal(cookies.length, 3);
      for (const c of cookies) {
        assert.match(c, /^__Host-accord-(access|refresh|device)=/);
        for (const attr of ['HttpOnly', 'Secure', 'SameSite=Strict', 'Path=/']) assert.ok(c.includes(attr), `${attr} in ${c}`);
      }
      const jar = cookies.map((c) => c.split(';')[0]).join('; ');
      assert.equal((await call('GET', '/api/v1/tenants/acme/policy', { headers: { cookie: jar } })).statusCode, 200);
      const change = { sessionIdleSeconds: 3600 };
      const noCsrf = await call('PATCH', '/api/v1/tenants/acme/policy', { headers: { cookie: jar }, body: change });
      assert.equal(noCsrf.statusCode, 403);
      assert.equal(code(noCsrf), 'IAM_CSRF');
      assert.equal(code(await call('PATCH', '/api/v1/tenants/acme/policy', { headers: { cookie: jar, 'x-csrf-token': 'AAAA' }, body: change })), 'IAM_CSRF');
      assert.equal((await call('GET', '/api/v1/tenants/acme/policy', { token: ops })).json().sessionFromDefaults, true, 'nothing changed');
      const withCsrf = await call('PATCH', '/api/v1/tenants/acme/policy', { headers: { cookie: jar, 'x-csrf-token': body.csrfToken }, body: { sessionIdleSeconds: null } });
      assert.equal(withCsrf.statusCode, 200, withCsrf.body);
      assert.equal(code(await call('POST', '/api/v1/auth/refresh', { headers: { cookie: jar } })), 'IAM_CSRF');
      const refreshed = await call('POST', '/api/v1/auth/refresh', { headers: { cookie: jar, 'x-csrf-token': body.csrfToken } });
      assert.equal(refreshed.statusCode, 200, refreshed.body);
      assert.equal(([refreshed.headers['set-cookie']].flat() as string[]).length, 2);
    });

    test('users list and end their own sessions; a tenant admin lists and ends a user’s', async () => {
      const a = await login(ALICE);
      const b = await login(ALICE);
      const mine = (await call('GET', '/api/v1/auth/sessions', { token: a.accessToken })).json() as { id: string; current: boolean }[];
      assert.ok(mine.some((s) => s.id === a.sessionId && s.current));
      assert.ok(mine.some((s) => s.id === b.sessionId && !s.current));
      assert.equal((await call('DELETE', `/api/v1/auth/sessions/${b.sessionId}`, { token: a.accessToken })).statusCode, 204);
      assert.equal(code(await call('GET', '/api/v1/auth/session', { token: b.accessToken })), 'IAM_SESSION_ENDED');
      const opsSession = (await call('GET', '/api/v1/auth/session', { token: ops })).json().sessionId as string;
      assert.equal(code(await call('DELETE', `/api/v1/auth/sessions/${opsSession}`, { token: a.accessToken })), 'IAM_SESSION_NOT_FOUND', "another user's session is not yours to end");
      const listed = await call('GET', `/api/v1/tenants/acme/users/${ALICE.email}/sessions`, { token: ops });
      assert.ok((listed.json() as { id: string }[]).some((s) => s.id === a.sessionId));
      assert.equal(code(await call('GET', `/api/v1/tenants/acme/users/${ALICE.email}/sessions`, { token: a.accessToken })), 'IAM_FORBIDDEN');
      const all = await call('DELETE', `/api/v1/tenants/acme/users/${ALICE.email}/sessions`, { token: ops });
      assert.ok((all.json() as { revoked: number }).revoked >= 1);
      assert.equal(code(await call('GET', '/api/v1/auth/session', { token: a.accessToken })), 'IAM_SESSION_ENDED');
    });

    test("end users sign in to one stage with that stage's policy; their tokens open nothing else", async () => {
      const dev = stages.find((s) => s.name === 'development') as Stage;
      assert.equal((await call('PATCH', '/api/v1/tenants/acme/stages/development/policy', { token: ops, body: { sessionAbsoluteSeconds: 7200, sessionIdleSeconds: 600 } })).statusCode, 200);
      await db.insertInto('accord.app_role_grants').values({ tenant_id: acmeId, stage_id: dev.id, app: 'orders', role: 'clerk', user_id: aliceId, granted_by: null }).execute();
      const r = await call('POST', '/t/acme/development/auth/login', { body: ALICE });
      assert.equal(r.statusCode, 200, r.body);
      const s = r.json() as { accessToken: string; refreshToken: string; sessionExpiresAt: string };
      const left = new Date(s.sessionExpiresAt).getTime() - Date.now();
      assert.ok(left > 7100_000 && left <= 7200_000, `the stage's 2 h absolute timeout, was ${left}`);
      const me = await call('GET', '/t/acme/development/auth/me', { token: s.accessToken });
      assert.deepEqual(me.json(), { userId: aliceId, email: ALICE.email, appRoles: [{ app: 'orders', role: 'clerk' }] });
      assert.equal(code(await call('GET', '/t/acme/production/auth/me', { token: s.accessToken })), 'IAM_WRONG_AUDIENCE');
      assert.equal(code(await call('GET', '/api/v1/tenants/acme', { token: s.accessToken })), 'IAM_WRONG_AUDIENCE');
      assert.equal(code(await call('GET', '/t/acme/development/auth/me', { token: ops })), 'IAM_WRONG_AUDIENCE');
      // Refresh tokens stay on their side too.
      assert.equal(code(await call('POST', '/api/v1/auth/refresh', { body: { refreshToken: s.refreshToken } })), 'IAM_TOKEN_INVALID');
      assert.equal(code(await call('POST', '/t/acme/production/auth/refresh', { body: { refreshToken: s.refreshToken } })), 'IAM_TOKEN_INVALID');
      const again = await call('POST', '/t/acme/development/auth/refresh', { body: { refreshToken: s.refreshToken } });
      assert.equal(again.statusCode, 200, again.body);
      assert.equal(code(await call('POST', '/t/acme/nowhere/auth/login', { body: ALICE })), 'TENANCY_STAGE_NOT_FOUND');
      assert.equal(code(await call('POST', '/t/acme/development/auth/login', { body: { ...ALICE, password: 'not the password at all' } })), 'IAM_INVALID_CREDENTIALS');
      const session = await db.selectFrom('accord.sessions').select(['kind', 'stage_id']).where('user_id', '=', aliceId).where('kind', '=', 'end-user').executeTakeFirstOrThrow();
      assert.equal(session.stage_id, dev.id);
    });
  });
}

describe('the principal cache', () => {
  test('a change made through the node applies to the very next request despite the cache', async () => {
    const [engine] = engines();
    const database = await (engine as ReturnType<typeof engines>[number]).open();
    const keyring = await testKeyring();
    const config = loadConfig({ env: {}, flags: { logLevel: 'silent', authCacheMilliseconds: 10_000 } });
    const app = await buildApp({ config, database, logger: pino({ level: 'silent' }), signer: ephemeralSigner(), keyring, iamKey: testIamKey });
    try {
      const acme = await createTenant(database.db, keyring, systemSource, { name: 'acme' });
      await database.db.transaction().execute(async (trx) => {
        const opsId = await createUser(trx, { tenantId: null, email: OPS.email, password: OPS.password });
        await grantRole(trx, { userId: opsId, role: 'platform-operator', tenantId: null, stageId: null });
        await createUser(trx, { tenantId: acme.id, email: ALICE.email, password: ALICE.password });
      });
      const signIn = async (who: typeof OPS) => (await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: who })).json().accessToken as string;
      const ops = await signIn(OPS);
      const alice = await signIn(ALICE);
      const get = (token: string) => app.inject({ method: 'GET', url: '/api/v1/auth/session', headers: { authorization: `Bearer ${token}` } });
      assert.equal((await get(alice)).statusCode, 200, 'cached now');
      const off = await app.inject({ method: 'PATCH', url: `/api/v1/tenants/acme/users/${ALICE.email}`, headers: { authorization: `Bearer ${ops}` }, payload: { status: 'disabled' } });
      assert.equal(off.statusCode, 204);
      assert.equal((await get(alice)).json().code, 'IAM_SESSION_ENDED');
      // A direct change in the database (as another node would make) is seen once the entry ages out.
      await database.db.updateTable('accord.users').set({ status: 'active' }).where('email', '=', ALICE.email).execute();
      const again = await signIn(ALICE);
      assert.equal((await get(again)).statusCode, 200);
      await database.db.updateTable('accord.sessions').set({ revoked_at: new Date() }).where('revoked_at', 'is', null).execute();
      assert.equal((await get(again)).statusCode, 200, 'within the cache window another node’s change is not seen yet');
    } finally {
      await app.close();
    }
  });
});

describe('client addresses behind a reverse proxy', () => {
  test('X-Forwarded-For is believed from a trusted proxy only, for audit records and lockout', async () => {
    const [engine] = engines();
    const database = await (engine as ReturnType<typeof engines>[number]).open();
    const config = loadConfig({ env: {}, flags: { logLevel: 'silent', trustedProxies: ['10.0.0.0/8'] } });
    const app = await buildApp({ config, database, logger: pino({ level: 'silent' }), signer: ephemeralSigner(), keyring: await testKeyring(), iamKey: testIamKey });
    try {
      const attempt = (remoteAddress: string, forwarded: string) =>
        app.inject({ method: 'POST', url: '/api/v1/auth/login', remoteAddress, headers: { 'x-forwarded-for': forwarded }, payload: { email: 'nobody@proxy.test', password: 'not a real password' } });
      assert.equal((await attempt('10.1.2.3', '198.51.100.7')).statusCode, 401);
      assert.equal((await attempt('192.0.2.50', '198.51.100.8')).statusCode, 401);
      const ips = (await database.db.selectFrom('accord.audit_events').select('source_ip').where('action', '=', 'auth.login').orderBy('ins').execute()).map((r) => r.source_ip);
      assert.deepEqual(ips, ['198.51.100.7', '192.0.2.50'], 'the proxy in 10/8 is believed; an address outside it is the client itself');
      const subjects = (await database.db.selectFrom('accord.auth_failures').select('subject').where('kind', '=', 'ip').execute()).map((r) => r.subject).sort();
      assert.deepEqual(subjects, ['192.0.2.50', '198.51.100.7']);
    } finally {
      await app.close();
    }
  });
});
