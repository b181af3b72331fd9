// API clients end to end: creation with grants bounded by the creator's own, the OAuth2 client
// credentials grant at /oauth/token (HTTP Basic and body parameters), what the client's token
// may and may not do, failures, rotation with overlap, revocation, audit, and the CLI.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { Writable } from 'node:stream';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { sql } from 'kysely';
import pino from 'pino';
import { ephemeralSigner, systemSource } from '../../../src/audit-chain/index.ts';
import { loadConfig } from '../../../src/config/index.ts';
import type { Keyring } from '../../../src/crypto/keyring/index.ts';
import type { Database, Db } from '../../../src/db/index.ts';
import { createUser, grantRole } from '../../../src/iam/index.ts';
import { buildApp, createLogger } from '../../../src/server/index.ts';
import { createTenant } from '../../../src/tenancy/index.ts';
import { cli, fails, ok } from '../../harness/cli.ts';
import { engines } from '../../harness/engines.ts';
import { sessionToken, testIamKey } from '../../harness/iam.ts';
import { testKeyring } from '../../harness/keys.ts';
import { createCertificateAuthority, issueServerCertificate } from '../../harness/tls.ts';

const config = loadConfig({ env: {}, flags: { logLevel: 'silent' } });
const FORM = 'application/x-www-form-urlencoded';
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

interface Issued {
  name: string;
  clientId: string;
  clientSecret: string;
  expiresAt: string;
  grants: { role: string; stage: string | null }[];
}
interface ClientOut {
  name: string;
  clientId: string;
  createdAt: string;
  expiresAt: string;
  revokedAt: string | null;
  lastUsedAt: string | null;
  grants: { role: string; stage: string | null }[];
  secrets: { id: string; createdAt: string; expiresAt: string; revoked: boolean }[];
}

for (const engine of engines()) {
  describe(`API clients on ${engine.name}`, { concurrency: false }, () => {
    let app: FastifyInstance;
    let database: Database;
    let db: Db;
    let keyring: Keyring;
    let ops: string;
    let admin: string;
    let developer: string;
    let bot: Issued;
    // ci-bot's current secret after rotation.
    let ciSecret = '';
    const logLines: string[] = [];
    // Every secret handed out in this suite: none may appear in a log line or an audit record.
    const secrets: string[] = [];
    after(async () => app?.close());

    const call = (method: string, url: string, token?: string, payload?: unknown) =>
      app.inject({ method: method as 'GET', url, ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}), ...(payload === undefined ? {} : { payload: payload as object }) });
    const code = (r: LightMyRequestResponse) => (r.statusCode >= 400 ? r.json().code : r.statusCode);
    const form = (payload: string, headers: Record<string, string> = {}) => app.inject({ method: 'POST', url: '/oauth/token', headers: { 'content-type': FORM, ...headers }, payload });
    /** Client credentials by HTTP Basic; the access token, or the refused answer. */
    const tokenBasic = (c: { clientId: string; clientSecret: string }) => form('grant_type=client_credentials', { authorization: basic(c.clientId, c.clientSecret) });
    const accessToken = async (c: { clientId: string; clientSecret: string }): Promise<string> => {
      const r = await tokenBasic(c);
      assert.equal(r.statusCode, 200, r.body);
      return r.json().access_token as string;
    };
    const create = async (token: string, body: unknown): Promise<LightMyRequestResponse> => {
      const r = await call('POST', '/api/v1/tenants/acme/clients', token, body);
      if (r.statusCode === 201) secrets.push(r.json().clientSecret);
      return r;
    };
    const auditOf = async (tenant: string | null, action: string) => {
      const r = await call('GET', `${tenant ? `/api/v1/tenants/${tenant}` : '/api/v1'}/audit?action=${action}`, ops);
      assert.equal(r.statusCode, 200, r.body);
      return r.json().records as { actor: { type: string; id: string | null; label: string | null }; target: { type: string; id: string } | null; outcome: string; reason: string | null; details: Record<string, unknown> }[];
    };
    const clientRowId = async (name: string) => (await db.selectFrom('accord.api_clients').select('id').where('name', '=', name).executeTakeFirstOrThrow()).id;

    before(async () => {
      database = await engine.open();
      db = database.db;
      keyring = await testKeyring();
      // The production logger (with its redaction), at its most verbose, into memory.
      const logger = createLogger('trace', new Writable({
          write(chunk, _enc, done) {
            logLines.push(String(chunk));
            done();
          },
        }));
      app = await buildApp({ config, database, logger, signer: ephemeralSigner(), keyring, iamKey: testIamKey });
      const acme = await createTenant(db, keyring, systemSource, { name: 'acme' });
      await createTenant(db, keyring, systemSource, { name: 'globex' });
      await db.transaction().execute(async (trx) => {
        const o = await createUser(trx, { tenantId: null, email: 'ops@example.test', password: 'operator passphrase 1' });
        await grantRole(trx, { userId: o, role: 'platform-operator', tenantId: null, stageId: null });
        ops = await sessionToken(trx, o);
        const a = await createUser(trx, { tenantId: acme.id, email: 'admin@acme.test', password: 'orchard lemon tree' });
        await grantRole(trx, { userId: a, role: 'tenant-admin', tenantId: acme.id, stageId: null });
        admin = await sessionToken(trx, a);
        const d = await createUser(trx, { tenantId: acme.id, email: 'dev@acme.test', password: 'winter silver bells' });
        await grantRole(trx, { userId: d, role: 'developer', tenantId: acme.id, stageId: null });
        developer = await sessionToken(trx, d);
      });
    });

    test('a tenant admin creates a client whose secret is shown once and stored only as its SHA-256', async () => {
      const r = await create(admin, { name: 'ci-bot', grants: [{ role: 'developer', stage: 'development' }] });
      assert.equal(r.statusCode, 201, r.body);
      bot = r.json();
      assert.equal(bot.name, 'ci-bot');
      assert.match(bot.clientId, /^acl_[A-Za-z0-9_-]{22}$/);
      assert.match(bot.clientSecret, /^acs_[A-Za-z0-9_-]{43}$/);
      assert.deepEqual(bot.grants, [{ role: 'developer', stage: 'development' }]);
      const ninetyDays = Date.now() + 90 * 86400_000;
      assert.ok(Math.abs(Date.parse(bot.expiresAt) - ninetyDays) < 60_000, `default expiry 90 days, got ${bot.expiresAt}`);

      const stored = await db.selectFrom('accord.api_client_secrets as s').innerJoin('accord.api_clients as c', 'c.id', 's.client_id').select(['s.secret_hash', 'c.expires_at']).where('c.name', '=', 'ci-bot').execute();
      assert.equal(stored.length, 1);
      assert.deepEqual(stored[0]?.secret_hash, createHash('sha256').update(bot.clientSecret).digest());
      assert.equal(stored[0]?.expires_at.toISOString(), bot.expiresAt);

      const list = await call('GET', '/api/v1/tenants/acme/clients', admin);
      assert.equal(list.statusCode, 200);
      const show = await call('GET', '/api/v1/tenants/acme/clients/ci-bot', admin);
      assert.equal(show.statusCode, 200);
      for (const res of [list, show]) assert.ok(!res.body.includes(bot.clientSecret) && !res.body.includes('clientSecret'), 'no secret in list or show');
      const one = show.json() as ClientOut;
      assert.deepEqual(list.json(), [one]);
      assert.equal(one.clientId, bot.clientId);
      assert.deepEqual(one.grants, [{ role: 'developer', stage: 'development' }]);
      assert.equal(one.revokedAt, null);
      assert.equal(one.lastUsedAt, null);
      assert.equal(one.secrets.length, 1);
      assert.equal(one.secrets[0]?.revoked, false);
      assert.equal(one.secrets[0]?.expiresAt, bot.expiresAt);

      assert.equal(code(await create(admin, { name: 'ci-bot', grants: [{ role: 'auditor' }] })), 'IAM_CLIENT_EXISTS');
      assert.equal(code(await call('GET', '/api/v1/tenants/acme/clients/no-such-bot', admin)), 'IAM_CLIENT_NOT_FOUND');
      const created = await auditOf('acme', 'client.created');
      assert.equal(created.length, 1);
      assert.equal(created[0]?.actor.label, 'admin@acme.test');
      assert.deepEqual(created[0]?.details.grants, [{ role: 'developer', stage: 'development' }]);
    });

    test('creation is refused without client:manage, beyond the creator\'s own roles, and for bad input', async () => {
      assert.equal(code(await create(developer, { name: 'dev-bot', grants: [{ role: 'developer' }] })), 'IAM_FORBIDDEN');
      assert.equal(code(await call('GET', '/api/v1/tenants/acme/clients', developer)), 'IAM_FORBIDDEN');
      const esc = await create(admin, { name: 'sec-bot', grants: [{ role: 'security-officer' }] });
      assert.equal(code(esc), 'IAM_GRANT_ESCALATION');
      assert.ok(esc.json().details.missing.includes('security:read'));
      assert.equal(code(await create(admin, { name: 'op-bot', grants: [{ role: 'platform-operator' }] })), 'IAM_GRANT_ESCALATION');
      assert.equal(code(await create(admin, { name: 'x-bot', grants: [{ role: 'superuser' }] })), 'IAM_ROLE_UNKNOWN');
      assert.equal(code(await create(admin, { name: 'x-bot', grants: [{ role: 'developer', stage: 'nowhere' }] })), 'TENANCY_STAGE_NOT_FOUND');
      assert.equal(code(await call('POST', '/api/v1/tenants/globex/clients', admin, { name: 'x-bot', grants: [{ role: 'developer' }] })), 'TENANCY_TENANT_NOT_FOUND');
      for (const name of ['X-bot', '1bot', 'a', 'bot_1', 'a'.repeat(64)]) {
        assert.equal(code(await create(admin, { name, grants: [{ role: 'developer' }] })), 'REQUEST_INVALID', name);
      }
      assert.equal(code(await create(admin, { name: 'x-bot', grants: [] })), 'REQUEST_INVALID');
      assert.equal(code(await create(admin, { name: 'x-bot', grants: Array.from({ length: 21 }, () => ({ role: 'developer' })) })), 'REQUEST_INVALID');
      for (const expiresIn of ['ninety days', '90 d', '-1d', '59m', '3599', '731d', '3y', '']) {
        const r = await create(admin, { name: 'x-bot', grants: [{ role: 'developer' }], expiresIn });
        assert.equal(code(r), expiresIn === '' ? 'REQUEST_INVALID' : 'IAM_EXPIRY_INVALID', expiresIn);
      }
      assert.equal((await db.selectFrom('accord.api_clients').select('name').execute()).length, 1, 'nothing refused was created');
      // The bounds themselves are accepted.
      const hour = await create(admin, { name: 'short-bot', grants: [{ role: 'auditor' }], expiresIn: '1h' });
      assert.equal(hour.statusCode, 201, hour.body);
      assert.ok(Math.abs(Date.parse(hour.json().expiresAt) - (Date.now() + 3600_000)) < 60_000);
      const twoYears = await create(admin, { name: 'long-bot', grants: [{ role: 'auditor' }, { role: 'developer', stage: 'test' }], expiresIn: '2y' });
      assert.equal(twoYears.statusCode, 201, twoYears.body);
    });

    test('/oauth/token issues a client token with HTTP Basic, or with client_id and client_secret in a form or JSON body', async () => {
      const viaBasic = await tokenBasic(bot);
      assert.equal(viaBasic.statusCode, 200, viaBasic.body);
      const t = viaBasic.json();
      assert.deepEqual(Object.keys(t).sort(), ['access_token', 'expires_in', 'token_type']);
      assert.match(t.access_token, /^aca_/);
      assert.equal(t.token_type, 'Bearer');
      assert.equal(t.expires_in, config.accessTokenTtlSeconds);
      assert.equal(viaBasic.headers['cache-control'], 'no-store');
      const viaForm = await form(new URLSearchParams({ grant_type: 'client_credentials', client_id: bot.clientId, client_secret: bot.clientSecret }).toString());
      assert.equal(viaForm.statusCode, 200, viaForm.body);
      const viaJson = await call('POST', '/oauth/token', undefined, { grant_type: 'client_credentials', client_id: bot.clientId, client_secret: bot.clientSecret });
      assert.equal(viaJson.statusCode, 200, viaJson.body);
      // Naming the same client in the body next to HTTP Basic is allowed (RFC 6749 section 3.2.1).
      assert.equal((await form(`grant_type=client_credentials&client_id=${bot.clientId}`, { authorization: basic(bot.clientId, bot.clientSecret) })).statusCode, 200);
      const who = await call('GET', '/api/v1/auth/session', viaForm.json().access_token);
      assert.equal(who.json().kind, 'client');
      assert.equal(who.json().email, 'ci-bot');
      assert.equal(who.json().sessionId, null);
      const shown = (await call('GET', '/api/v1/tenants/acme/clients/ci-bot', admin)).json() as ClientOut;
      assert.ok(shown.lastUsedAt !== null && Date.now() - Date.parse(shown.lastUsedAt) < 60_000, 'last use recorded');
    });

    test('the client token has exactly its grants: development of acme, not production, not another tenant', async () => {
      const token = await accessToken(bot);
      assert.equal((await call('GET', '/api/v1/tenants/acme', token)).statusCode, 200);
      assert.equal((await call('GET', '/api/v1/tenants/acme/stages', token)).statusCode, 200);
      assert.equal((await call('GET', '/api/v1/tenants/acme/stages/development/policy', token)).statusCode, 200);
      assert.equal(code(await call('GET', '/api/v1/tenants/acme/stages/production/policy', token)), 'IAM_FORBIDDEN');
      assert.equal(code(await call('PATCH', '/api/v1/tenants/acme/stages/production/policy', token, { sessionIdleSeconds: 600 })), 'IAM_FORBIDDEN');
      assert.equal(code(await call('POST', '/api/v1/tenants/acme/keys/rotate', token, {})), 'IAM_FORBIDDEN');
      assert.equal(code(await call('PUT', '/api/v1/tenants/acme/stages/production/secrets/X', token, { value: 'v' })), 'IAM_FORBIDDEN');
      assert.equal(code(await call('POST', '/api/v1/tenants/acme/clients', token, { name: 'child-bot', grants: [{ role: 'developer' }] })), 'IAM_FORBIDDEN');
      assert.equal(code(await call('GET', '/api/v1/tenants/globex', token)), 'TENANCY_TENANT_NOT_FOUND');
      assert.equal(code(await call('GET', '/api/v1/tenants/globex/stages/development/policy', token)), 'TENANCY_TENANT_NOT_FOUND');
    });

    test('bad credentials are one 401 invalid_client answer, audited with the precise reason', async () => {
      const refused = async (r: LightMyRequestResponse, reason: string) => {
        assert.equal(r.statusCode, 401, reason);
        assert.equal(r.json().code, 'IAM_CLIENT_INVALID');
        assert.equal(r.headers['www-authenticate'], 'Basic realm="accord"');
        assert.equal(r.json().error, 'invalid_client');
        assert.equal(typeof r.json().error_description, 'string');
      };
      const wrong = `acs_${'A'.repeat(43)}`;
      await refused(await tokenBasic({ clientId: bot.clientId, clientSecret: wrong }), 'bad-secret');
      await refused(await form(`grant_type=client_credentials&client_id=${bot.clientId}&client_secret=${wrong}`), 'bad-secret (body)');
      await refused(await tokenBasic({ clientId: 'acl_AAAAAAAAAAAAAAAAAAAAAA', clientSecret: bot.clientSecret }), 'unknown-client');
      // Another tenant's client's secret does not open this client.
      const other = await create(admin, { name: 'other-bot', grants: [{ role: 'auditor' }] });
      await refused(await tokenBasic({ clientId: bot.clientId, clientSecret: other.json().clientSecret }), 'secret of another client');
      await refused(await form('grant_type=client_credentials'), 'no credentials');
      await refused(await form('grant_type=client_credentials', { authorization: 'Basic !!!' }), 'malformed Basic');
      await refused(await form('grant_type=client_credentials', { authorization: `Basic ${Buffer.from('no-colon').toString('base64')}` }), 'Basic without colon');

      // An expired secret (its expiry moved into the past) is refused.
      const exp = await create(admin, { name: 'exp-bot', grants: [{ role: 'auditor' }] });
      const expBot = exp.json() as Issued;
      assert.equal((await tokenBasic(expBot)).statusCode, 200);
      await db.updateTable('accord.api_client_secrets').set({ expires_at: sql<Date>`now() - interval '1 minute'` }).where('client_id', '=', await clientRowId('exp-bot')).execute();
      await refused(await tokenBasic(expBot), 'expired-secret');

      const tenantFailures = await auditOf('acme', 'client.token');
      const reasons = tenantFailures.filter((e) => e.outcome === 'failure').map((e) => e.reason);
      assert.deepEqual(reasons.sort(), ['bad-secret', 'bad-secret', 'bad-secret', 'expired-secret']);
      assert.ok(tenantFailures.every((e) => e.target?.id !== undefined && e.actor.type === 'anonymous'));
      const platformFailures = (await auditOf(null, 'client.token')).filter((e) => e.outcome === 'failure');
      assert.deepEqual(platformFailures.map((e) => e.reason), ['unknown-client']);
      assert.equal(platformFailures[0]?.details.clientId, 'acl_AAAAAAAAAAAAAAAAAAAAAA');
    });

    test('protocol errors: unsupported or missing grant_type, repeated parameters, two authentication methods', async () => {
      const auth = { authorization: basic(bot.clientId, bot.clientSecret) };
      const unsupported = await form('grant_type=password&username=a&password=b', auth);
      assert.equal(unsupported.statusCode, 400);
      assert.equal(unsupported.json().code, 'IAM_GRANT_TYPE_UNSUPPORTED');
      assert.equal(unsupported.json().error, 'unsupported_grant_type');
      const invalid = async (r: LightMyRequestResponse, what: string) => {
        assert.equal(r.statusCode, 400, `${what}: ${r.body}`);
        assert.equal(r.json().code, 'REQUEST_INVALID', what);
        assert.equal(r.json().error, 'invalid_request', what);
      };
      await invalid(await form('', auth), 'no grant_type');
      await invalid(await form('grant_type=client_credentials&grant_type=client_credentials', auth), 'repeated grant_type');
      await invalid(await form(`grant_type=client_credentials&client_id=${bot.clientId}&client_secret=${bot.clientSecret}&client_secret=${bot.clientSecret}`), 'repeated client_secret');
      await invalid(await form(`grant_type=client_credentials&client_secret=${bot.clientSecret}`, auth), 'Basic and body secret');
      await invalid(await form('grant_type=client_credentials&client_id=acl_BBBBBBBBBBBBBBBBBBBBBB', auth), 'body client_id differs from Basic');
      await invalid(await call('POST', '/oauth/token', undefined, { grant_type: 'client_credentials', client_id: 42, client_secret: bot.clientSecret }), 'non-string client_id');
      // A real secret in a URL: the request log keeps the path and parameter names, not the values.
      const viaGet = await app.inject({ method: 'GET', url: `/oauth/token?grant_type=client_credentials&client_id=${bot.clientId}&client_secret=${bot.clientSecret}` });
      assert.equal(viaGet.statusCode, 404, 'no GET with credentials in the URL');
    });

    test('rotation: the old secret works within the overlap and not after it, the new one works', async () => {
      const before = Date.now();
      const r = await call('POST', '/api/v1/tenants/acme/clients/ci-bot/rotate', admin, {});
      assert.equal(r.statusCode, 200, r.body);
      const rotated = r.json() as Issued & { previousSecrets: { id: string; expiresAt: string }[] };
      secrets.push(rotated.clientSecret);
      ciSecret = rotated.clientSecret;
      assert.equal(rotated.clientId, bot.clientId);
      assert.notEqual(rotated.clientSecret, bot.clientSecret);
      assert.equal(rotated.previousSecrets.length, 1);
      const oldExpiry = Date.parse(rotated.previousSecrets[0]?.expiresAt ?? '');
      assert.ok(oldExpiry > before && oldExpiry <= Date.now() + 86400_000, 'old secret ends within the default 24h overlap');
      assert.equal((await tokenBasic(bot)).statusCode, 200, 'old secret within the overlap');
      assert.equal((await tokenBasic(rotated)).statusCode, 200, 'new secret');
      const shown = (await call('GET', '/api/v1/tenants/acme/clients/ci-bot', admin)).json() as ClientOut;
      assert.equal(shown.secrets.length, 2);
      assert.equal(shown.expiresAt, rotated.expiresAt, 'the client lives as long as its newest secret');
      // The overlap ends (moved into the past): the old secret is refused, the new one still works.
      const oldId = rotated.previousSecrets[0]?.id ?? '';
      await db.updateTable('accord.api_client_secrets').set({ expires_at: sql<Date>`now() - interval '1 second'` }).where('id', '=', oldId).execute();
      assert.equal(code(await tokenBasic(bot)), 'IAM_CLIENT_INVALID');
      const ci = await accessToken(rotated);
      assert.equal((await call('GET', '/api/v1/tenants/acme/stages/development/policy', ci)).statusCode, 200);
      // Overlap bounds; a zero overlap ends the previous secrets at once.
      assert.equal(code(await call('POST', '/api/v1/tenants/acme/clients/ci-bot/rotate', admin, { overlap: '31d' })), 'IAM_EXPIRY_INVALID');
      assert.equal(code(await call('POST', '/api/v1/tenants/acme/clients/ci-bot/rotate', admin, { expiresIn: '10m' })), 'IAM_EXPIRY_INVALID');
      assert.equal(code(await call('POST', '/api/v1/tenants/acme/clients/ci-bot/rotate', admin, { overlap: '1h', extra: true })), 'REQUEST_INVALID');
      const notObject = await app.inject({ method: 'POST', url: '/api/v1/tenants/acme/clients/ci-bot/rotate', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, payload: '"24h"' });
      assert.equal(code(notObject), 'REQUEST_INVALID');
      const other = await call('POST', '/api/v1/tenants/acme/clients/other-bot/rotate', admin, { overlap: '0', expiresIn: '30d' });
      assert.equal(other.statusCode, 200, other.body);
      secrets.push(other.json().clientSecret);
      assert.ok(Math.abs(Date.parse(other.json().expiresAt) - (Date.now() + 30 * 86400_000)) < 60_000);
      // Without a body, the defaults apply (24h overlap, 90 days).
      const bare = await app.inject({ method: 'POST', url: '/api/v1/tenants/acme/clients/other-bot/rotate', headers: { authorization: `Bearer ${admin}` } });
      assert.equal(bare.statusCode, 200, bare.body);
      secrets.push(bare.json().clientSecret);
      assert.ok(Math.abs(Date.parse(bare.json().expiresAt) - (Date.now() + 90 * 86400_000)) < 60_000);
      const events = await auditOf('acme', 'client.secret.rotated');
      assert.equal(events.length, 3);
      assert.equal(code(await call('POST', '/api/v1/tenants/acme/clients/no-such-bot/rotate', admin, {})), 'IAM_CLIENT_NOT_FOUND');
      assert.equal(code(await call('POST', '/api/v1/tenants/acme/clients/ci-bot/rotate', developer, {})), 'IAM_FORBIDDEN');
    });

    test('only someone holding all of a client\'s roles may rotate or revoke it', async () => {
      const sec = await call('POST', '/api/v1/tenants/acme/clients', ops, { name: 'sec-bot', grants: [{ role: 'security-officer' }] });
      assert.equal(sec.statusCode, 201, sec.body);
      secrets.push(sec.json().clientSecret);
      assert.equal(code(await call('POST', '/api/v1/tenants/acme/clients/sec-bot/rotate', admin, {})), 'IAM_GRANT_ESCALATION');
      assert.equal(code(await call('DELETE', '/api/v1/tenants/acme/clients/sec-bot', admin)), 'IAM_GRANT_ESCALATION');
      const listed = (await call('GET', '/api/v1/tenants/acme/clients', admin)).json() as ClientOut[];
      assert.equal(listed.find((c) => c.name === 'sec-bot')?.secrets.length, 1, 'nothing rotated');
    });

    test('revocation ends an already-issued token at its next request and refuses new tokens', async () => {
      const current = (await call('GET', '/api/v1/tenants/acme/clients/ci-bot', admin)).json() as ClientOut;
      assert.ok(current.secrets.some((s) => !s.revoked));
      const creds = { clientId: bot.clientId, clientSecret: ciSecret };
      const token = await accessToken(creds);
      assert.equal((await call('GET', '/api/v1/tenants/acme', token)).statusCode, 200);
      assert.equal((await call('DELETE', '/api/v1/tenants/acme/clients/ci-bot', admin)).statusCode, 204);
      assert.equal(code(await call('GET', '/api/v1/tenants/acme', token)), 'IAM_SESSION_ENDED');
      assert.equal(code(await tokenBasic(creds)), 'IAM_CLIENT_INVALID');
      const shown = (await call('GET', '/api/v1/tenants/acme/clients/ci-bot', admin)).json() as ClientOut;
      assert.ok(shown.revokedAt !== null);
      assert.ok(shown.secrets.every((s) => s.revoked));
      assert.equal(code(await call('POST', '/api/v1/tenants/acme/clients/ci-bot/rotate', admin, {})), 'IAM_CLIENT_NOT_FOUND');
      // Revoking again changes nothing; an unknown client is 404.
      assert.equal((await call('DELETE', '/api/v1/tenants/acme/clients/ci-bot', admin)).statusCode, 204);
      assert.equal(code(await call('DELETE', '/api/v1/tenants/acme/clients/no-such-bot', admin)), 'IAM_CLIENT_NOT_FOUND');
      const revoked = await auditOf('acme', 'client.revoked');
      assert.equal(revoked.length, 1);
      const failures = (await auditOf('acme', 'client.token')).filter((e) => e.outcome === 'failure' && e.reason === 'revoked');
      assert.equal(failures.length, 1);
      // The name of a revoked client can be used again: a new client with a new id.
      const again = await create(admin, { name: 'ci-bot', grants: [{ role: 'developer', stage: 'development' }] });
      assert.equal(again.statusCode, 201, again.body);
      assert.notEqual(again.json().clientId, bot.clientId);
      assert.equal(code(await tokenBasic(creds)), 'IAM_CLIENT_INVALID', 'the old credentials stay dead');
      assert.equal((await tokenBasic(again.json())).statusCode, 200);
    });

    test('token issuance is audited on the tenant chain as the client, and no secret is in any audit record or log line', async () => {
      const issued = await auditOf('acme', 'client.token.issued');
      assert.ok(issued.length >= 8, `issued ${issued.length}`);
      const id = await clientRowId('exp-bot');
      const e = issued.find((x) => x.target?.id === id);
      assert.ok(e, 'issuance of exp-bot audited');
      assert.equal(e.actor.type, 'client');
      assert.equal(e.actor.label, 'exp-bot');
      assert.equal(e.outcome, 'success');
      const rows = await db.selectFrom('accord.audit_events').selectAll().execute();
      const trail = JSON.stringify(rows.map((r) => ({ ...r, hash: null, prev_hash: null })));
      assert.ok(secrets.length >= 8);
      const logs = logLines.join('');
      assert.ok(logs.includes('/oauth/token'), 'requests were logged');
      // Nor HTTP Basic credentials (the secret base64-encoded with the client id).
      assert.doesNotMatch(logs, /Basic [A-Za-z0-9+/=]{16,}/);
      for (const s of secrets) {
        assert.ok(!trail.includes(s), 'no secret in the audit trail');
        assert.ok(!logs.includes(s), 'no secret in the logs');
      }
    });

    test('the CLI creates, lists, shows, rotates and revokes clients', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'accord-clients-cli-'));
      const ca = await createCertificateAuthority(dir);
      const cert = await issueServerCertificate(ca, dir, { commonName: 'localhost', ipAddresses: ['127.0.0.1'] });
      const https = { key: await readFile(cert.keyFile, 'utf8'), cert: await readFile(cert.certFile, 'utf8') };
      const server = await buildApp({ config, database, logger: pino({ level: 'silent' }), signer: ephemeralSigner(), keyring, iamKey: testIamKey, https });
      try {
        await server.listen({ port: 0, host: '127.0.0.1' });
        const port = (server.server.address() as AddressInfo).port;
        const configDir = join(dir, 'config');
        const { saveProfile } = await import('../../../src/cli/profile.ts');
        const previous = process.env.ACCORD_CONFIG_DIR;
        process.env.ACCORD_CONFIG_DIR = configDir;
        try {
          saveProfile({ url: `https://localhost:${port}`, ca: await readFile(ca.certFile, 'utf8'), token: admin });
        } finally {
          if (previous === undefined) delete process.env.ACCORD_CONFIG_DIR;
          else process.env.ACCORD_CONFIG_DIR = previous;
        }
        const accord = (...args: string[]) => cli(args, { ACCORD_CONFIG_DIR: configDir });

        const made = ok<Issued>(await accord('client', 'create', 'cli-bot', '--tenant', 'acme', '--role', 'developer', '--stage', 'development', '--expires-in', '30d', '--json'));
        secrets.push(made.clientSecret);
        assert.match(made.clientSecret, /^acs_/);
        assert.deepEqual(made.grants, [{ role: 'developer', stage: 'development' }]);
        assert.equal((await tokenBasic(made)).statusCode, 200);
        const human = await accord('client', 'create', 'cli-bot-2', '--tenant', 'acme', '--role', 'auditor', '--role', 'developer@test');
        assert.equal(human.code, 0, human.stderr);
        const shownSecret = /acs_[A-Za-z0-9_-]{43}/.exec(human.stdout)?.[0];
        assert.ok(shownSecret, human.stdout);
        secrets.push(shownSecret);
        assert.match(human.stdout + human.stderr, /not (be )?shown again/i);

        const list = ok<ClientOut[]>(await accord('client', 'list', '--tenant', 'acme', '--json'));
        assert.ok(list.some((c) => c.name === 'cli-bot'));
        const show = await accord('client', 'show', 'cli-bot-2', '--tenant', 'acme', '--json');
        assert.deepEqual(ok<ClientOut>(show).grants, [{ role: 'auditor', stage: null }, { role: 'developer', stage: 'test' }]);
        assert.ok(!show.stdout.includes(shownSecret));
        const rotated = ok<Issued>(await accord('client', 'rotate', 'cli-bot', '--tenant', 'acme', '--overlap', '1h', '--expires-in', '7d', '--json'));
        secrets.push(rotated.clientSecret);
        assert.equal((await tokenBasic(rotated)).statusCode, 200);
        ok(await accord('client', 'revoke', 'cli-bot', '--tenant', 'acme', '--json'));
        assert.equal(code(await tokenBasic(rotated)), 'IAM_CLIENT_INVALID');
        fails(await accord('client', 'create', 'cli-bot-3', '--tenant', 'acme', '--role', 'developer', '--expires-in', 'soon', '--json'), 'IAM_EXPIRY_INVALID');
        fails(await accord('client', 'show', 'nobody', '--tenant', 'acme', '--json'), 'IAM_CLIENT_NOT_FOUND');
      } finally {
        await server.close();
        await rm(dir, { recursive: true, force: true });
      }
    });
  });
}
