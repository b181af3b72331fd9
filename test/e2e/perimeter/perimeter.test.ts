// Issue 10, finding 3 and the perimeter capabilities: rate limits with RateLimit headers, anonymous
// refusals summarised instead of written one by one, IP allow/deny lists (control plane and per
// stage, effective at once on every node), request limits, CORS per stage, the surface report.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { ephemeralSigner, systemSource } from '../../../src/audit-chain/index.ts';
import { loadConfig } from '../../../src/config/index.ts';
import type { Database } from '../../../src/db/index.ts';
import { createUser, grantRole } from '../../../src/iam/index.ts';
import { buildApp } from '../../../src/server/index.ts';
import { createTenant } from '../../../src/tenancy/index.ts';
import { engines } from '../../harness/engines.ts';
import { sessionToken, testIamKey } from '../../harness/iam.ts';
import { testKeyring } from '../../harness/keys.ts';

const config = loadConfig({ env: {}, flags: { logLevel: 'silent', rateLimitIp: '20/60', perimeterRefreshMilliseconds: 0 } });
const code = (r: { json(): unknown }) => (r.json() as { code?: string }).code;

for (const engine of engines()) {
  describe(`the perimeter on ${engine.name}`, () => {
    let app: FastifyInstance;
    let other: FastifyInstance;
    let database: Database;
    let acmeId: string;
    let ops: Record<string, string>;
    let officer: Record<string, string>;
    after(async () => {
      await app?.close();
      await other?.close();
    });

    const events = async (where: { tenantId: string | null; action?: string }) => {
      let q = database.db.selectFrom('accord.audit_events').select(['action', 'reason', 'target_id', 'details']);
      q = where.tenantId === null ? q.where('tenant_id', 'is', null) : q.where('tenant_id', '=', where.tenantId);
      if (where.action) q = q.where('action', '=', where.action);
      return q.execute();
    };

    test('setup: two nodes on one database, a tenant, an operator and a security officer', async () => {
      database = await engine.open();
      const keyring = await testKeyring();
      const build = () => buildApp({ config, database, logger: pino({ level: 'silent' }), signer: ephemeralSigner(), keyring, iamKey: testIamKey });
      app = await build();
      other = await build();
      acmeId = (await createTenant(database.db, keyring, systemSource, { name: 'acme' })).id;
      const tokens = await database.db.transaction().execute(async (trx) => {
        const op = await createUser(trx, { tenantId: null, email: 'ops@example.test', password: 'operator passphrase' });
        await grantRole(trx, { userId: op, role: 'platform-operator', tenantId: null, stageId: null });
        const so = await createUser(trx, { tenantId: null, email: 'so@example.test', password: 'officer passphrase' });
        await grantRole(trx, { userId: so, role: 'security-officer', tenantId: null, stageId: null });
        await createUser(trx, { tenantId: acmeId, email: 'enduser@acme.test', password: 'end user passphrase' });
        return [await sessionToken(trx, op), await sessionToken(trx, so)];
      });
      ops = { authorization: `Bearer ${tokens[0]}` };
      officer = { authorization: `Bearer ${tokens[1]}` };
    });

    test("an anonymous flood gets 429 with Retry-After and RateLimit headers, and the tenant's chain does not grow by one record per 401", async () => {
      const before = (await events({ tenantId: acmeId })).length;
      const answers = [];
      for (let i = 0; i < 50; i++) answers.push(await app.inject({ method: 'GET', url: '/api/v1/tenants/acme/users', remoteAddress: '198.51.100.66' }));
      const codes = answers.map(code);
      assert.equal(codes.filter((c) => c === 'IAM_UNAUTHENTICATED').length, 20, 'the quota of 20 is a burst');
      assert.equal(codes.filter((c) => c === 'PERIMETER_RATE_LIMITED').length, 30);
      const limited = answers.at(-1);
      assert.equal(limited?.statusCode, 429);
      assert.match(String(limited?.headers['content-type']), /application\/problem\+json/);
      assert.match(String(limited?.headers['retry-after']), /^[1-9][0-9]*$/);
      assert.equal(limited?.headers['ratelimit-policy'], '"ip";q=20;w=60');
      assert.match(String(limited?.headers.ratelimit), /^"ip";r=0;t=\d+$/);
      assert.equal(answers[0]?.headers['ratelimit-policy'], '"ip";q=20;w=60', 'allowed answers carry the headers too');
      // The flood wrote nothing on the tenant's chain...
      assert.equal((await events({ tenantId: acmeId })).length, before);
      // ...and one summary per source and reason on the platform chain once the window is written.
      await app.perimeter.flush();
      const summaries = await events({ tenantId: null, action: 'access.denied.summary' });
      const mine = summaries.filter((s) => s.target_id === '198.51.100.66');
      assert.deepEqual(mine.map((s) => [s.reason, (s.details as { count: number }).count]).sort(), [
        ['IAM_UNAUTHENTICATED', 20],
        ['PERIMETER_RATE_LIMITED', 30],
      ]);
      // A signed-in operator behind the same address has a quota of their own.
      const op = await app.inject({ method: 'GET', url: '/api/v1/tenants', remoteAddress: '198.51.100.66', headers: ops });
      assert.equal(op.statusCode, 200);
      assert.equal(op.headers['ratelimit-policy'], '"user";q=600;w=60');
      // Another address is not affected, and IPv6 addresses of one /64 share a bucket.
      assert.equal(code(await app.inject({ method: 'GET', url: '/api/v1/tenants', remoteAddress: '198.51.100.67' })), 'IAM_UNAUTHENTICATED');
      for (let i = 0; i < 20; i++) await app.inject({ method: 'GET', url: '/api/v1/tenants', remoteAddress: `2001:db8:77:1::${i + 1}` });
      assert.equal(code(await app.inject({ method: 'GET', url: '/api/v1/tenants', remoteAddress: '2001:db8:77:1:ffff::9' })), 'PERIMETER_RATE_LIMITED');
      assert.equal(code(await app.inject({ method: 'GET', url: '/api/v1/tenants', remoteAddress: '2001:db8:77:2::1' })), 'IAM_UNAUTHENTICATED');
    });

    test("a stage's deny list refuses its data plane and sign-in from those addresses, on every node at once, audited", async () => {
      const signIn = (node: FastifyInstance, ip: string) =>
        node.inject({ method: 'POST', url: '/t/acme/development/auth/login', remoteAddress: ip, payload: { email: 'enduser@acme.test', password: 'end user passphrase' } });
      assert.equal((await signIn(other, '203.0.113.9')).statusCode, 200);
      const bad = await app.inject({ method: 'POST', url: '/api/v1/tenants/acme/stages/development/network/rules', remoteAddress: '10.0.0.1', headers: ops, payload: { action: 'deny', cidr: '203.0.113.0/33' } });
      assert.equal(code(bad), 'PERIMETER_RULE_INVALID');
      for (const cidr of ['203.0.113.0/24', '2001:DB8:BAD::/48']) {
        const added = await app.inject({ method: 'POST', url: '/api/v1/tenants/acme/stages/development/network/rules', remoteAddress: '10.0.0.1', headers: ops, payload: { action: 'deny', cidr } });
        assert.equal(added.statusCode, 201, added.body);
      }
      const dup = await app.inject({ method: 'POST', url: '/api/v1/tenants/acme/stages/development/network/rules', remoteAddress: '10.0.0.1', headers: ops, payload: { action: 'deny', cidr: '203.0.113.0/24' } });
      assert.equal(code(dup), 'PERIMETER_RULE_EXISTS');
      // The other node, which never saw the change, refuses at once (it reads the version counter).
      assert.equal(code(await signIn(other, '203.0.113.9')), 'PERIMETER_ADDRESS_DENIED');
      assert.equal(code(await signIn(other, '2001:db8:bad:7::1')), 'PERIMETER_ADDRESS_DENIED');
      assert.equal((await signIn(other, '203.0.114.9')).statusCode, 200);
      // Another stage and the control plane are not affected.
      assert.equal(code(await other.inject({ method: 'POST', url: '/t/acme/test/auth/login', remoteAddress: '203.0.113.9', payload: { email: 'enduser@acme.test', password: 'wrong one' } })), 'IAM_INVALID_CREDENTIALS');
      assert.equal((await other.inject({ method: 'GET', url: '/api/v1/tenants', remoteAddress: '203.0.113.9', headers: ops })).statusCode, 200);
      const listed = await app.inject({ method: 'GET', url: '/api/v1/tenants/acme/stages/development/network', remoteAddress: '10.0.0.1', headers: ops });
      assert.deepEqual((listed.json() as { rules: { cidr: string }[] }).rules.map((r) => r.cidr), ['203.0.113.0/24', '2001:db8:bad::/48']);
      const audited = await events({ tenantId: acmeId, action: 'network.rule.added' });
      assert.equal(audited.length, 2);
      // Removing the rule (by its CIDR) lifts the refusal on every node.
      const removed = await app.inject({ method: 'DELETE', url: `/api/v1/tenants/acme/stages/development/network/rules/${encodeURIComponent('203.0.113.0/24')}`, remoteAddress: '10.0.0.1', headers: ops });
      assert.equal(removed.statusCode, 200);
      assert.equal((await signIn(other, '203.0.113.9')).statusCode, 200);
      assert.equal((await events({ tenantId: acmeId, action: 'network.rule.removed' })).length, 1);
    });

    test("the control plane's allow list refuses every other address, and only an operator changes it", async () => {
      const officerTry = await app.inject({ method: 'POST', url: '/api/v1/network/rules', remoteAddress: '10.0.0.1', headers: officer, payload: { action: 'allow', cidr: '10.0.0.0/8' } });
      assert.equal(officerTry.statusCode, 403);
      const added = await app.inject({ method: 'POST', url: '/api/v1/network/rules', remoteAddress: '10.0.0.1', headers: ops, payload: { action: 'allow', cidr: '10.0.0.0/8', note: 'office' } });
      assert.equal(added.statusCode, 201, added.body);
      assert.equal(code(await other.inject({ method: 'GET', url: '/api/v1/tenants', remoteAddress: '192.0.2.44', headers: ops })), 'PERIMETER_ADDRESS_DENIED');
      assert.equal((await other.inject({ method: 'GET', url: '/api/v1/tenants', remoteAddress: '10.9.8.7', headers: ops })).statusCode, 200);
      assert.equal((await other.inject({ method: 'GET', url: '/api/v1/tenants', remoteAddress: '::ffff:10.9.8.7', headers: ops })).statusCode, 200, 'IPv4-mapped addresses match IPv4 rules');
      // The data plane follows its stage's lists, not the control plane's.
      assert.notEqual(code(await other.inject({ method: 'POST', url: '/t/acme/development/auth/login', remoteAddress: '192.0.2.44', payload: { email: 'enduser@acme.test', password: 'end user passphrase' } })), 'PERIMETER_ADDRESS_DENIED');
      assert.equal((await events({ tenantId: null, action: 'network.rule.added' })).length, 1);
      const removed = await app.inject({ method: 'DELETE', url: `/api/v1/network/rules/${(added.json() as { id: string }).id}`, remoteAddress: '10.0.0.1', headers: ops });
      assert.equal(removed.statusCode, 200);
      assert.equal((await other.inject({ method: 'GET', url: '/api/v1/tenants', remoteAddress: '192.0.2.44', headers: ops })).statusCode, 200);
    });

    test('request limits: too many or too large headers get 431, an over-long URL 414, a too deep or too wide JSON body 400', async () => {
      const many: Record<string, string> = { ...ops };
      for (let i = 0; i < 120; i++) many[`x-filler-${i}`] = 'x';
      assert.equal(code(await app.inject({ method: 'GET', url: '/api/v1/tenants', remoteAddress: '10.0.0.2', headers: many })), 'REQUEST_HEADERS_TOO_LARGE');
      assert.equal(code(await app.inject({ method: 'GET', url: '/api/v1/tenants', remoteAddress: '10.0.0.2', headers: { ...ops, 'x-big': 'y'.repeat(9000) } })), 'REQUEST_HEADERS_TOO_LARGE');
      assert.equal(code(await app.inject({ method: 'GET', url: `/api/v1/tenants?q=${'z'.repeat(5000)}`, remoteAddress: '10.0.0.2', headers: ops })), 'REQUEST_URL_TOO_LONG');
      let deep: unknown = 'leaf';
      for (let i = 0; i < 40; i++) deep = { d: deep };
      const tooDeep = await app.inject({ method: 'POST', url: '/api/v1/tenants', remoteAddress: '10.0.0.2', headers: ops, payload: { name: 'deep', extra: deep } });
      assert.equal(code(tooDeep), 'REQUEST_JSON_TOO_COMPLEX');
      const wide = Object.fromEntries(Array.from({ length: 10_001 }, (_, i) => [`k${i}`, i]));
      assert.equal(code(await app.inject({ method: 'POST', url: '/api/v1/tenants', remoteAddress: '10.0.0.2', headers: ops, payload: wide })), 'REQUEST_JSON_TOO_COMPLEX');
      // Nothing was created.
      assert.equal((await database.db.selectFrom('accord.tenants').select('name').where('name', '=', 'deep').execute()).length, 0);
    });

    test('CORS: no origin is allowed by default; an allow-listed origin gets its preflight and headers, others do not', async () => {
      const preflight = (origin: string) =>
        app.inject({ method: 'OPTIONS', url: '/t/acme/development/auth/login', remoteAddress: '10.0.0.3', headers: { origin, 'access-control-request-method': 'POST' } });
      assert.equal(code(await preflight('https://app.example.test')), 'PERIMETER_CORS_REFUSED');
      const bad = await app.inject({ method: 'PATCH', url: '/api/v1/tenants/acme/stages/development/network', remoteAddress: '10.0.0.1', headers: ops, payload: { corsOrigins: ['https://app.example.test/path'] } });
      assert.equal(code(bad), 'PERIMETER_SETTINGS_INVALID');
      const set = await app.inject({
        method: 'PATCH',
        url: '/api/v1/tenants/acme/stages/development/network',
        remoteAddress: '10.0.0.1',
        headers: ops,
        payload: { corsOrigins: ['https://app.example.test'], rateLimits: { ip: { limit: 500, windowSeconds: 60 } } },
      });
      assert.equal(set.statusCode, 200, set.body);
      const ok = await preflight('https://app.example.test');
      assert.equal(ok.statusCode, 204);
      assert.equal(ok.headers['access-control-allow-origin'], 'https://app.example.test');
      assert.match(String(ok.headers['access-control-allow-methods']), /POST/);
      assert.equal(code(await preflight('https://evil.example.test')), 'PERIMETER_CORS_REFUSED');
      const simple = await app.inject({ method: 'POST', url: '/t/acme/development/auth/login', remoteAddress: '10.0.0.3', headers: { origin: 'https://app.example.test' }, payload: { email: 'enduser@acme.test', password: 'end user passphrase' } });
      assert.equal(simple.headers['access-control-allow-origin'], 'https://app.example.test');
      assert.equal(simple.headers['ratelimit-policy'], '"ip";q=500;w=60', "the stage's own quota applies on its data plane");
      const foreign = await app.inject({ method: 'POST', url: '/t/acme/development/auth/login', remoteAddress: '10.0.0.3', headers: { origin: 'https://evil.example.test' }, payload: { email: 'enduser@acme.test', password: 'end user passphrase' } });
      assert.equal(foreign.headers['access-control-allow-origin'], undefined);
      // The control plane answers no origin at all.
      const control = await app.inject({ method: 'GET', url: '/api/v1/tenants', remoteAddress: '10.0.0.3', headers: { ...ops, origin: 'https://app.example.test' } });
      assert.equal(control.headers['access-control-allow-origin'], undefined);
      assert.equal((await events({ tenantId: acmeId, action: 'network.settings.changed' })).length, 1);
    });

    test('the attack-surface report lists anonymous routes, limits and lists per stage, and findings, for the security officer only', async () => {
      assert.equal((await app.inject({ method: 'GET', url: '/api/v1/security/surface', remoteAddress: '10.0.0.4' })).statusCode, 401);
      const r = await app.inject({ method: 'GET', url: '/api/v1/security/surface', remoteAddress: '10.0.0.4', headers: officer });
      assert.equal(r.statusCode, 200, r.body);
      const report = r.json() as {
        anonymousRoutes: { method: string; url: string; expected: boolean }[];
        controlPlane: { allow: string[]; rateLimits: Record<string, { limit: number }> };
        stages: { stage: string; deny: string[]; corsOrigins: string[]; rateLimits: Record<string, { limit: number }> }[];
        findings: { id: string; severity: string }[];
        endpoints: { url: string; tls: unknown }[];
      };
      assert.ok(report.anonymousRoutes.some((x) => x.method === 'POST' && x.url === '/api/v1/auth/login' && x.expected));
      assert.ok(report.anonymousRoutes.every((x) => app.declaredRoutes.some((d) => d.url === x.url && d.access.kind === 'public')));
      assert.equal(report.controlPlane.rateLimits.ip?.limit, 20);
      const dev = report.stages.find((s) => s.stage === 'acme/development');
      assert.deepEqual(dev?.deny, ['2001:db8:bad::/48']);
      assert.deepEqual(dev?.corsOrigins, ['https://app.example.test']);
      assert.equal(dev?.rateLimits.ip?.limit, 500);
      const ids = report.findings.map((f) => f.id);
      assert.ok(ids.includes('control-plane-open'), 'no allow list on the control plane is a finding');
      assert.ok(ids.includes('plain-http'), 'an in-process server without TLS is reported');
    });
  });
}
