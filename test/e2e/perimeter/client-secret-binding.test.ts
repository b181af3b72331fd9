// Issue 10, finding 10: an API client's access token dies with the secret it was obtained with.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { ephemeralSigner, systemSource } from '../../../src/audit-chain/index.ts';
import { loadConfig } from '../../../src/config/index.ts';
import { createUser, grantRole } from '../../../src/iam/index.ts';
import { buildApp } from '../../../src/server/index.ts';
import { createTenant } from '../../../src/tenancy/index.ts';
import { engines } from '../../harness/engines.ts';
import { sessionToken, testIamKey } from '../../harness/iam.ts';
import { testKeyring } from '../../harness/keys.ts';

const config = loadConfig({ env: {}, flags: { logLevel: 'silent' } });

for (const engine of engines()) {
  describe(`client tokens bound to their secret on ${engine.name}`, { concurrency: false }, () => {
    let app: FastifyInstance;
    let admin: string;
    after(async () => app?.close());
    const asAdmin = (method: 'POST' | 'GET', url: string, payload?: object) =>
      app.inject({ method, url, headers: { authorization: `Bearer ${admin}` }, ...(payload ? { payload } : {}) });
    const tokenFor = async (clientId: string, secret: string): Promise<string> => {
      const r = await app.inject({
        method: 'POST',
        url: '/oauth/token',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: secret }).toString(),
      });
      assert.equal(r.statusCode, 200, r.body);
      return (r.json() as { access_token: string }).access_token;
    };
    const readTenant = (token: string) => app.inject({ method: 'GET', url: '/api/v1/tenants/acme', headers: { authorization: `Bearer ${token}` } });

    test('rotating a secret without overlap ends the tokens issued under the old secret at once', async () => {
      const database = await engine.open();
      const keyring = await testKeyring();
      app = await buildApp({ config, database, logger: pino({ level: 'silent' }), signer: ephemeralSigner(), keyring, iamKey: testIamKey });
      const acme = await createTenant(database.db, keyring, systemSource, { name: 'acme' });
      await database.db.transaction().execute(async (trx) => {
        const id = await createUser(trx, { tenantId: acme.id, email: 'admin@acme.test', password: 'admin passphrase ok' });
        await grantRole(trx, { userId: id, role: 'tenant-admin', tenantId: acme.id, stageId: null });
        admin = await sessionToken(trx, id);
      });
      const created = await asAdmin('POST', '/api/v1/tenants/acme/clients', { name: 'deployer', grants: [{ role: 'developer' }] });
      assert.equal(created.statusCode, 201, created.body);
      const { clientId, clientSecret } = created.json() as { clientId: string; clientSecret: string };
      const oldToken = await tokenFor(clientId, clientSecret);
      assert.equal((await readTenant(oldToken)).statusCode, 200);

      const rotated = await asAdmin('POST', '/api/v1/tenants/acme/clients/deployer/rotate', { overlap: '0' });
      assert.equal(rotated.statusCode, 200, rotated.body);
      const refused = await readTenant(oldToken);
      assert.equal(refused.statusCode, 401);
      assert.equal((refused.json() as { code: string }).code, 'IAM_SESSION_ENDED');
      // The old secret obtains nothing any more; the new one works, and so do its tokens.
      const again = await app.inject({
        method: 'POST',
        url: '/oauth/token',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: `grant_type=client_credentials&client_id=${clientId}&client_secret=${clientSecret}`,
      });
      assert.equal((again.json() as { code: string }).code, 'IAM_CLIENT_INVALID');
      const newToken = await tokenFor(clientId, (rotated.json() as { clientSecret: string }).clientSecret);
      assert.equal((await readTenant(newToken)).statusCode, 200);
    });

    test('during an overlap the old secret and its tokens keep working', async () => {
      const created = await asAdmin('POST', '/api/v1/tenants/acme/clients', { name: 'builder', grants: [{ role: 'developer' }] });
      const { clientId, clientSecret } = created.json() as { clientId: string; clientSecret: string };
      const oldToken = await tokenFor(clientId, clientSecret);
      const rotated = await asAdmin('POST', '/api/v1/tenants/acme/clients/builder/rotate', { overlap: '1h' });
      assert.equal(rotated.statusCode, 200, rotated.body);
      assert.equal((await readTenant(oldToken)).statusCode, 200);
      assert.equal((await readTenant(await tokenFor(clientId, clientSecret))).statusCode, 200);
    });
  });
}
