// Who may move revisions between stages, over HTTP with real sessions: developers deploy to
// development and roll it back; release managers promote and roll back later stages; every
// deployment is audited with its actor.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { ephemeralSigner, systemSource } from '../../../src/audit-chain/index.ts';
import { loadConfig } from '../../../src/config/index.ts';
import type { Db } from '../../../src/db/index.ts';
import { createUser, grantRole } from '../../../src/iam/index.ts';
import { buildApp } from '../../../src/server/index.ts';
import { createTenant } from '../../../src/tenancy/index.ts';
import { engines } from '../../harness/engines.ts';
import { sessionToken, testIamKey } from '../../harness/iam.ts';
import { testKeyring } from '../../harness/keys.ts';

const config = loadConfig({ env: {}, flags: { logLevel: 'silent' } });
const MANIFEST = readFileSync(new URL('../../../examples/expenses/expenses.app.yaml', import.meta.url), 'utf8');
const ACTIONS = { 'actions/approve.ts': readFileSync(new URL('../../../examples/expenses/actions/approve.ts', import.meta.url), 'utf8') };
const BASE = '/api/v1/tenants/acme/apps/expenses/stages';

for (const engine of engines()) {
  describe(`lifecycle permissions on ${engine.name}`, { concurrency: false }, () => {
    let app: FastifyInstance;
    let db: Db;
    const tokens: Record<string, string> = {};
    const call = (who: string, method: 'POST' | 'GET', url: string, payload?: object) =>
      app.inject({ method, url, headers: { authorization: `Bearer ${tokens[who]}` }, ...(payload ? { payload } : {}) });
    after(async () => app?.close());

    before(async () => {
      const database = await engine.open();
      db = database.db;
      const keyring = await testKeyring();
      app = await buildApp({ config, database, logger: pino({ level: 'silent' }), signer: ephemeralSigner(), keyring, iamKey: testIamKey });
      const acme = await createTenant(db, keyring, systemSource, { name: 'acme' });
      const dev = acme.stages[0];
      await db.transaction().execute(async (trx) => {
        for (const [who, role, stageId] of [
          ['developer', 'developer', null],
          ['dev-only', 'developer', dev?.id ?? null],
          ['release', 'release-manager', null],
        ] as const) {
          const userId = await createUser(trx, { tenantId: acme.id, email: `${who}@acme.test`, password: 'lifecycle passphrase ok' });
          await grantRole(trx, { userId, role, tenantId: acme.id, stageId });
          tokens[who] = await sessionToken(trx, userId);
        }
      });
    });

    test('a developer limited to development deploys there; a deploy to another stage is refused', async () => {
      const r = await call('dev-only', 'POST', `${BASE}/development/deployments`, { manifest: MANIFEST, actions: ACTIONS });
      assert.equal(r.statusCode, 200, r.body);
      assert.equal(r.json().label, 'R1');
      assert.equal((await call('dev-only', 'POST', `${BASE}/test/deployments`, { manifest: MANIFEST, actions: ACTIONS })).json().code, 'IAM_FORBIDDEN');
      // With app:deploy on every stage, a manifest still only goes to the first one.
      assert.equal((await call('developer', 'POST', `${BASE}/test/deployments`, { manifest: MANIFEST, actions: ACTIONS })).json().code, 'APP_DEPLOY_FIRST_STAGE');
    });

    test('a developer cannot promote; a release manager promotes to test and production', async () => {
      assert.equal((await call('developer', 'POST', `${BASE}/test/promotions`)).json().code, 'IAM_FORBIDDEN');
      for (const stage of ['test', 'production']) {
        const r = await call('release', 'POST', `${BASE}/${stage}/promotions`);
        assert.equal(r.statusCode, 200, r.body);
        assert.equal(r.json().label, 'R1');
      }
    });

    test('rolling back a later stage needs app:promote; development needs only app:deploy', async () => {
      const again = await call('developer', 'POST', `${BASE}/development/deployments`, { manifest: MANIFEST.replace('version: 1.0.0', 'version: 1.0.1'), actions: ACTIONS });
      assert.equal(again.json().label, 'R2');
      assert.equal((await call('developer', 'POST', `${BASE}/development/rollbacks`, { revision: 'R1' })).statusCode, 200);
      assert.equal((await call('developer', 'POST', `${BASE}/production/rollbacks`, { revision: 'R1' })).json().code, 'IAM_FORBIDDEN');
      const r = await call('release', 'POST', `${BASE}/production/rollbacks`, { revision: 'R1' });
      assert.equal(r.statusCode, 200, r.body);
      assert.equal(r.json().changed, false, 'production already runs R1');
    });

    test('a manifest for another app than the path names is refused, and nothing is deployed', async () => {
      const r = await call('developer', 'POST', '/api/v1/tenants/acme/apps/other/stages/development/deployments', { manifest: MANIFEST, actions: ACTIONS });
      assert.equal(r.json().code, 'APP_NAME_MISMATCH');
      assert.equal((await db.selectFrom('accord.app_revisions').select('id').where('app', '=', 'other').execute()).length, 0);
    });

    test('every deployment, promotion and rollback is audited with the user who made it', async () => {
      const rows = await db.selectFrom('accord.audit_events').select(['action', 'actor_label']).where('action', 'like', 'app.%').orderBy('ins').execute();
      assert.deepEqual(
        rows.map((r) => [r.action, r.actor_label]),
        [
          ['app.deployed', 'dev-only@acme.test'],
          ['app.promoted', 'release@acme.test'],
          ['app.promoted', 'release@acme.test'],
          ['app.deployed', 'developer@acme.test'],
          ['app.rolled-back', 'developer@acme.test'],
        ],
      );
    });
  });
}
