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
import { createUser, grantRole } from '../../../src/iam/index.ts';
import { buildApp } from '../../../src/server/index.ts';
import { createTenant } from '../../../src/tenancy/index.ts';
import { engines } from '../../harness/engines.ts';
import { sessionToken, testIamKey } from '../../harness/iam.ts';
import { testKeyring } from '../../harness/keys.ts';

const config = loadConfig({ env: {}, flags: { logLevel: 'silent' } });
// Names every JavaScript object answers to.
const PROTOTYPE_NAMES = ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf', 'isPrototypeOf', 'prototype'];

for (const engine of engines()) {
  describe(`hostile input on ${engine.name}`, { concurrency: false }, () => {
    let app: FastifyInstance;
    let database: Database;
    const tokens: Record<string, string> = {};
    const call = (method: string, url: string, who: string | undefined, payload?: unknown, headers: Record<string, string> = {}) =>
      app.inject({
        method: method as 'GET',
        url,
        headers: { ...(who ? { authorization: `Bearer ${tokens[who]}` } : {}), ...headers },
        ...(payload === undefined ? {} : typeof payload === 'string' ? { payload, headers: { 'content-type': 'application/json', ...(who ? { authorization: `Bearer ${tokens[who]}` } : {}), ...headers } } : { payload: payload as object }),
      });
    const codeOf = (r: LightMyRequestResponse) => (r.statusCode >= 400 ? (r.json() as { code: string }).code : r.statusCode);
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
      assert.doesNotMatch(r.body, /FST_ERR|at \/|node_modules/, `${what}: no framework internals`);
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
        await createUser(trx, { tenantId: acme.id, email: 'carol@acme.test', password: 'carol passphrase ok' });
      });
    });
    after(async () => app?.close());

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
