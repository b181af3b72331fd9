import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { ephemeralSigner } from '../audit-chain/index.ts';
import { loadConfig } from '../config/index.ts';
import { createUser, grantRole } from '../iam/index.ts';
import { engines } from '../../test/harness/engines.ts';
import { sessionToken, testIamKey } from '../../test/harness/iam.ts';
import { testKeyring } from '../../test/harness/keys.ts';
import { buildApp } from './app.ts';
import { createLogger } from './logger.ts';

// What helmet sets with the platform's options (src/server/security-headers.ts), written out so
// that a change in helmet or in the options shows up here.
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none';frame-ancestors 'none'",
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'origin-agent-cluster': '?1',
  'referrer-policy': 'no-referrer',
  'strict-transport-security': 'max-age=31536000; includeSubDomains',
  'x-content-type-options': 'nosniff',
  'x-dns-prefetch-control': 'off',
  'x-download-options': 'noopen',
  'x-frame-options': 'DENY',
  'x-permitted-cross-domain-policies': 'none',
  'x-xss-protection': '0',
};

for (const engine of engines()) {
  describe(`the HTTP server on ${engine.name}`, { concurrency: false }, () => {
    const apps: FastifyInstance[] = [];
    after(async () => {
      for (const app of apps) await app.close();
    });

    async function server(level: string) {
      const lines: string[] = [];
      const sink = new Writable({
        write(chunk, _enc, cb) {
          lines.push(...String(chunk).split('\n').filter(Boolean));
          cb();
        },
      });
      const { db } = await engine.open();
      const app = await buildApp({
        config: loadConfig({ env: {}, flags: { logLevel: level } }),
        database: { engine: engine.name, db, location: 'test', close: async () => {} },
        logger: createLogger(level, sink),
        signer: ephemeralSigner(),
        keyring: await testKeyring(),
        iamKey: testIamKey,
      });
      apps.push(app);
      const token = await db.transaction().execute(async (trx) => {
        const userId = await createUser(trx, { tenantId: null, email: 'ops@example.test', password: 'operator passphrase 1' });
        await grantRole(trx, { userId, role: 'platform-operator', tenantId: null, stageId: null });
        return sessionToken(trx, userId);
      });
      return { app, lines, token, logs: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
    }

    test('every answer carries the security headers, its request id and no-store: success, refusal, not found, invalid input', async () => {
      const { app, token } = await server('warn');
      const answers = [
        await app.inject({ method: 'GET', url: '/api/v1/tenants', headers: { authorization: `Bearer ${token}` } }),
        await app.inject({ method: 'GET', url: '/api/v1/tenants' }),
        await app.inject({ method: 'GET', url: '/api/v1/tenants/nowhere', headers: { authorization: `Bearer ${token}` } }),
        await app.inject({ method: 'GET', url: '/no/such/route' }),
        await app.inject({ method: 'POST', url: '/api/v1/tenants', headers: { authorization: `Bearer ${token}` }, payload: { name: 42 } }),
        await app.inject({ method: 'GET', url: '/healthz' }),
      ];
      assert.deepEqual(
        answers.map((a) => a.statusCode),
        [200, 401, 404, 404, 400, 200],
      );
      for (const a of answers) {
        for (const [name, value] of Object.entries(SECURITY_HEADERS)) assert.equal(a.headers[name], value, `${a.statusCode}: ${name}`);
        assert.match(String(a.headers['x-request-id']), /^[0-9a-f-]{36}$/);
        assert.equal(a.headers['cache-control'], 'no-store');
      }
    });

    test('each request is logged once, when it is answered, with method, path without query values, client, status and time', async () => {
      const { app, logs, token } = await server('info');
      const ok = await app.inject({ method: 'GET', url: '/api/v1/tenants?token=s3cret-value', headers: { authorization: `Bearer ${token}`, 'x-request-id': 'trace-1' } });
      assert.equal(ok.statusCode, 200);
      await app.inject({ method: 'GET', url: '/api/v1/tenants', headers: { 'x-request-id': 'trace-2' } });
      const mine = (id: string) => logs().filter((l) => l.reqId === id);
      const [line, ...others] = mine('trace-1');
      assert.deepEqual(others, [], 'one line for the request');
      assert.equal(line?.msg, 'request completed');
      assert.deepEqual(line?.req, { method: 'GET', url: '/api/v1/tenants?token=[redacted]', host: 'localhost:80', remoteAddress: '127.0.0.1' });
      assert.deepEqual(line?.res, { statusCode: 200 });
      assert.equal(typeof line?.responseTime, 'number');
      assert.deepEqual(
        mine('trace-2').map((l) => [l.msg, (l.res as { statusCode?: number } | undefined)?.statusCode]),
        [
          ['request refused', undefined],
          ['request completed', 401],
        ],
      );
      assert.ok(!JSON.stringify(logs()).includes('s3cret-value'), 'no query value in the logs');
      assert.ok(!JSON.stringify(logs()).includes(token), 'no token in the logs');
    });

    test('at debug level the arrival of a request is logged too', async () => {
      const { app, logs } = await server('debug');
      await app.inject({ method: 'GET', url: '/healthz', headers: { 'x-request-id': 'trace-3' } });
      assert.deepEqual(
        logs()
          .filter((l) => l.reqId === 'trace-3')
          .map((l) => l.msg),
        ['incoming request', 'request completed'],
      );
    });
  });
}
