import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import pino from 'pino';
import { ephemeralSigner, systemSource } from '../../../src/audit-chain/index.ts';
import { loadConfig } from '../../../src/config/index.ts';
import { openDatabase } from '../../../src/db/index.ts';
import { access, registerRoutes, route } from '../../../src/http/index.ts';
import { createUser, grantRole } from '../../../src/iam/index.ts';
import { type DataPlane, openDataPlane } from '../../../src/kernel/index.ts';
import { buildApp } from '../../../src/server/index.ts';
import { createTenant } from '../../../src/tenancy/index.ts';
import { engines, newPostgresDatabaseUrl } from '../../harness/engines.ts';
import { sessionToken, testIamKey } from '../../harness/iam.ts';
import { testKeyring } from '../../harness/keys.ts';

// A route's stage session, end to end: the path's stage resolved by the kit, the caller from the
// access token, the transaction run as the stage's runtime role.
for (const engine of engines()) {
  describe(`a route's stage session on ${engine.name}`, () => {
    let app: FastifyInstance | undefined;
    let plane: DataPlane | undefined;
    after(async () => {
      await app?.close();
      await plane?.close();
    });

    test('runs as the runtime role of the stage the path names, with the caller in transaction-local settings', async () => {
      const url = engine.name === 'postgres' ? await newPostgresDatabaseUrl() : undefined;
      const database = await openDatabase({ dataDir: 'unused', inMemory: url === undefined, ...(url ? { databaseUrl: url } : {}) });
      const { migrate } = await import('../../../src/db/index.ts');
      await migrate(database.db);
      const keyring = await testKeyring();
      plane = await openDataPlane(database, { databaseUrl: url, kms: keyring.kms });
      app = await buildApp({ config: loadConfig({ env: {}, flags: { logLevel: 'silent' } }), database, logger: pino({ level: 'silent' }), signer: ephemeralSigner(), keyring, iamKey: testIamKey, dataPlane: plane });
      registerRoutes(app, app.routeKit, [
        route({
          method: 'GET',
          url: '/test/:tenant/:stage/whoami',
          access: access.permission('tenant:read', { tenantParam: 'tenant' }),
          schema: { summary: 'test' },
          handler: async (ctx) =>
            ctx.asStage(async (s) => {
              const r = await sql<Record<string, string>>`
                select current_user as "user", current_setting('search_path') as path,
                  current_setting('accord.user_id', true) as caller, current_setting('accord.request_id', true) as request`.execute(s.db);
              // The catalog stays out of reach (a refused statement would end the session, so ask).
              const c = await sql<{ catalog: boolean }>`select has_schema_privilege('accord', 'usage') and has_table_privilege('accord.users', 'select') as catalog`.execute(s.db);
              return { ...r.rows[0], catalog: c.rows[0]?.catalog };
            }),
        }),
      ]);
      const tenant = await createTenant(database.db, keyring, systemSource, { name: 'acme' });
      const production = tenant.stages.find((s) => s.name === 'production');
      assert.ok(production);
      const token = await database.db.transaction().execute(async (trx) => {
        const userId = await createUser(trx, { tenantId: tenant.id, email: 'dev@acme.test', password: 'correct horse battery staple' });
        await grantRole(trx, { userId, role: 'developer', tenantId: tenant.id, stageId: null });
        return { userId, token: await sessionToken(trx, userId) };
      });
      const res = await app.inject({ method: 'GET', url: '/test/acme/production/whoami', headers: { authorization: `Bearer ${token.token}`, 'x-request-id': 'req-stage-1' } });
      assert.equal(res.statusCode, 200, res.body);
      const body = res.json();
      assert.equal(body.user, production.role.replace('accord_st_', 'accord_rt_'));
      assert.match(body.path, new RegExp(production.schema));
      assert.equal(body.caller, token.userId);
      assert.equal(body.request, 'req-stage-1');
      assert.equal(body.catalog, false, 'the catalog is out of reach');
      const missing = await app.inject({ method: 'GET', url: '/test/acme/nostage/whoami', headers: { authorization: `Bearer ${token.token}` } });
      assert.equal(missing.json().code, 'TENANCY_STAGE_NOT_FOUND');
      await database.close();
    });
  });
}
