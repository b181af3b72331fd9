// Issue 14: the in-process WAF on a real server, on both engines: block and detect modes, the
// per-stage settings and exclusions (audited), the security events and what they never hold.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
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

const config = loadConfig({ env: {}, flags: { logLevel: 'silent' } });
const SQLI = "1' UNION SELECT password FROM users WHERE '1'='1";
const STAGE = '/api/v1/tenants/acme/stages/development';

for (const engine of engines()) {
  describe(`web application firewall on ${engine.name}`, { concurrency: false }, () => {
    let app: FastifyInstance;
    let database: Database;
    const tokens: Record<string, string> = {};
    const call = (method: string, url: string, who: string | undefined, payload?: object) =>
      app.inject({ method: method as 'GET', url, headers: who ? { authorization: `Bearer ${tokens[who]}` } : {}, ...(payload ? { payload } : {}) });
    const events = async () => (await call('GET', `${STAGE}/waf/events`, 'officer')).json() as Array<Record<string, unknown>>;

    before(async () => {
      database = await engine.open();
      const keyring = await testKeyring();
      app = await buildApp({ config, database, logger: pino({ level: 'silent' }), signer: ephemeralSigner(), keyring, iamKey: testIamKey });
      const acme = await createTenant(database.db, keyring, systemSource, { name: 'acme' });
      await database.db.transaction().execute(async (trx) => {
        const admin = await createUser(trx, { tenantId: acme.id, email: 'admin@acme.test', password: 'admin passphrase ok' });
        await grantRole(trx, { userId: admin, role: 'tenant-admin', tenantId: acme.id, stageId: null });
        tokens.admin = await sessionToken(trx, admin);
        const officer = await createUser(trx, { tenantId: acme.id, email: 'officer@acme.test', password: 'officer passphrase ok' });
        await grantRole(trx, { userId: officer, role: 'security-officer', tenantId: acme.id, stageId: null });
        tokens.officer = await sessionToken(trx, officer);
        const op = await createUser(trx, { tenantId: null, email: 'op@platform.test', password: 'operator passphrase ok' });
        await grantRole(trx, { userId: op, role: 'platform-operator', tenantId: null, stageId: null });
        tokens.operator = await sessionToken(trx, op);
      });
    });
    after(async () => app?.close());

    test('a stage starts in detect mode at paranoia level 1 with threshold 5, and its admin turns blocking on', async () => {
      const r = await call('GET', `${STAGE}/waf`, 'admin');
      assert.equal(r.statusCode, 200);
      assert.deepEqual(r.json(), { mode: 'detect', paranoiaLevel: 1, threshold: 5 });
      const on = await call('PATCH', `${STAGE}/waf`, 'admin', { mode: 'block' });
      assert.equal(on.statusCode, 200, on.body);
      assert.equal((on.json() as { mode: string }).mode, 'block');
    });

    test('an SQL injection in a query value is refused with WAF_BLOCKED and a reference the security event carries', async () => {
      const r = await call('GET', `${STAGE}/policy?filter=${encodeURIComponent(SQLI)}`, 'admin');
      assert.equal(r.statusCode, 403);
      assert.match(String(r.headers['content-type']), /^application\/problem\+json/);
      const problem = r.json() as { code: string; details: { reference: string } };
      assert.equal(problem.code, 'WAF_BLOCKED');
      assert.doesNotMatch(r.body, /942|UNION|sql/i, 'the caller is not told which rule fired');
      const found = await call('GET', `${STAGE}/waf/events?reference=${problem.details.reference}`, 'officer');
      const [event] = found.json() as Array<{ blocked: boolean; ruleIds: number[]; fields: string[]; categories: Record<string, number>; matches: Array<{ excerpt: string }> }>;
      assert.ok(event, 'the event is found by its reference');
      assert.equal(event.blocked, true);
      assert.ok(event.ruleIds.some((id) => id >= 942000 && id < 943000), `an SQLi rule fired: ${event.ruleIds}`);
      assert.ok(event.fields.includes('ARGS:filter'));
      assert.ok((event.categories.sql_injection_score ?? 0) >= 5);
      for (const m of event.matches) assert.ok(m.excerpt.length <= 40 && m.excerpt.length < SQLI.length, 'a bounded excerpt');
      assert.ok(!JSON.stringify(event).includes(SQLI), 'the event never holds the full value');
    });

    test('the block is on the tenant audit chain in the same unit as the event', async () => {
      const rows = await database.db.selectFrom('accord.audit_events').select(['action', 'outcome', 'tenant_id', 'target_id']).where('action', '=', 'waf.blocked').execute();
      const ev = await database.db.selectFrom('accord.waf_events').select(['id', 'tenant_id']).where('blocked', '=', true).execute();
      assert.ok(rows.length >= 1 && rows.every((x) => x.outcome === 'denied'));
      assert.ok(rows.every((x) => ev.some((e) => e.id === x.target_id && e.tenant_id === x.tenant_id)), 'each record names its event, on the tenant chain');
    });

    test('a password is never scanned for SQL words: a login with an SQL-looking password is an ordinary failed login', async () => {
      const r = await call('POST', '/api/v1/auth/login', undefined, { email: 'admin@acme.test', password: "x' OR 1=1 -- union select" });
      assert.notEqual(r.statusCode, 403, r.body);
      assert.notEqual((r.json() as { code?: string }).code, 'WAF_BLOCKED');
      // The control plane runs in detect mode by default: the proof is that nothing was detected.
      const detected = await database.db.selectFrom('accord.waf_events').select('id').where('route', '=', '/api/v1/auth/login').execute();
      assert.deepEqual(detected, [], 'the password was not scanned');
    });

    test('benign text with ordinary punctuation passes in block mode', async () => {
      const r = await call('GET', `${STAGE}/policy?q=${encodeURIComponent("O'Brien & Sons, 12 Select Avenue: the union agreed (exec summary)")}`, 'admin');
      assert.equal(r.statusCode, 200, r.body);
    });

    test('changing the mode is audited; in detect mode the attack passes and is recorded', async () => {
      const r = await call('PATCH', `${STAGE}/waf`, 'admin', { mode: 'detect' });
      assert.equal(r.statusCode, 200, r.body);
      assert.equal((r.json() as { mode: string }).mode, 'detect');
      const audited = await database.db.selectFrom('accord.audit_events').select('action').where('action', '=', 'waf.settings.changed').execute();
      assert.equal(audited.length, 2, 'block, then detect');
      const before = (await events()).length;
      const pass = await call('GET', `${STAGE}/policy?filter=${encodeURIComponent(SQLI)}`, 'admin');
      assert.equal(pass.statusCode, 200, pass.body);
      const after = await events();
      assert.equal(after.length, before + 1);
      assert.equal(after[0]?.blocked, false);
      assert.equal(after[0]?.mode, 'detect');
    });

    test('in off mode nothing is inspected or recorded', async () => {
      await call('PATCH', `${STAGE}/waf`, 'admin', { mode: 'off' });
      const before = (await events()).length;
      assert.equal((await call('GET', `${STAGE}/policy?filter=${encodeURIComponent(SQLI)}`, 'admin')).statusCode, 200);
      assert.equal((await events()).length, before);
    });

    test('a threshold above the score lets the request through; back at 5 it blocks', async () => {
      await call('PATCH', `${STAGE}/waf`, 'admin', { mode: 'block', threshold: 1000 });
      assert.equal((await call('GET', `${STAGE}/policy?filter=${encodeURIComponent(SQLI)}`, 'admin')).statusCode, 200);
      await call('PATCH', `${STAGE}/waf`, 'admin', { threshold: 5 });
      assert.equal((await call('GET', `${STAGE}/policy?filter=${encodeURIComponent(SQLI)}`, 'admin')).statusCode, 403);
    });

    test('out-of-range settings are refused with WAF_SETTINGS_INVALID and change nothing', async () => {
      const r = await call('PATCH', `${STAGE}/waf`, 'admin', { paranoiaLevel: 7 });
      assert.equal(r.statusCode, 400);
      assert.equal((r.json() as { code: string }).code, 'WAF_SETTINGS_INVALID');
      assert.equal(((await call('GET', `${STAGE}/waf`, 'admin')).json() as { paranoiaLevel: number }).paranoiaLevel, 1);
    });

    test('an exclusion of the firing rules on one field lets it through until it expires', async () => {
      const blocked = await call('GET', `${STAGE}/policy?note=${encodeURIComponent(SQLI)}`, 'admin');
      const ref = (blocked.json() as { details: { reference: string } }).details.reference;
      const [event] = (await call('GET', `${STAGE}/waf/events?reference=${ref}`, 'officer')).json() as Array<{ ruleIds: number[] }>;
      const expiresAt = new Date(Date.now() + 24 * 3600 * 1000).toISOString();
      const ids: string[] = [];
      for (const ruleId of event?.ruleIds ?? []) {
        const r = await call('POST', `${STAGE}/waf/exclusions`, 'admin', { ruleId, field: 'ARGS:note', justification: 'release notes quote SQL', expiresAt });
        assert.equal(r.statusCode, 201, r.body);
        ids.push((r.json() as { id: string }).id);
      }
      assert.equal((await call('GET', `${STAGE}/policy?note=${encodeURIComponent(SQLI)}`, 'admin')).statusCode, 200, 'excluded on that field');
      assert.equal((await call('GET', `${STAGE}/policy?other=${encodeURIComponent(SQLI)}`, 'admin')).statusCode, 403, 'not on another field');
      // Time passes: the exclusions expire.
      await database.db.updateTable('accord.waf_exclusions').set({ expires_at: new Date(Date.now() - 1000) }).execute();
      app.waf.settings.invalidate();
      assert.equal((await call('GET', `${STAGE}/policy?note=${encodeURIComponent(SQLI)}`, 'admin')).statusCode, 403, 'expired exclusions no longer apply');
      const listed = (await call('GET', `${STAGE}/waf/exclusions`, 'admin')).json() as Array<{ active: boolean }>;
      assert.ok(listed.length === ids.length && listed.every((x) => !x.active));
    });

    test('an exclusion with a past expiry or an unknown rule is refused', async () => {
      const past = await call('POST', `${STAGE}/waf/exclusions`, 'admin', { ruleId: 942100, field: '*', justification: 'x', expiresAt: new Date(Date.now() - 60_000).toISOString() });
      assert.equal((past.json() as { code: string }).code, 'WAF_SETTINGS_INVALID');
      const unknown = await call('POST', `${STAGE}/waf/exclusions`, 'admin', { ruleId: 1, field: '*', justification: 'x', expiresAt: new Date(Date.now() + 60_000).toISOString() });
      assert.equal((unknown.json() as { code: string }).code, 'WAF_SETTINGS_INVALID');
    });

    test('a bearer token or a cookie is never copied into an event', async () => {
      const r = await app.inject({
        method: 'GET',
        url: `${STAGE}/policy?filter=${encodeURIComponent(SQLI)}`,
        headers: { authorization: `Bearer ${tokens.admin}`, cookie: `sid=${'s3cr3t'.repeat(8)}; theme=dark` },
      });
      assert.equal(r.statusCode, 403);
      const all = JSON.stringify(await events());
      assert.ok(!all.includes(tokens.admin as string));
      assert.ok(!all.includes('s3cr3t'.repeat(8)));
    });

    test('the detections are counted in the metrics', async () => {
      const m = await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${tokens.operator}` } });
      assert.equal(m.statusCode, 200);
      assert.match(m.body, /accord_waf_detections_total\{outcome="blocked",category="942"\} [1-9]/);
      assert.match(m.body, /accord_waf_detections_total\{outcome="detected",category="942"\} [1-9]/);
    });
  });
}
