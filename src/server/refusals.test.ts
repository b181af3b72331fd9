import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { FastifyRequest } from 'fastify';
import pino from 'pino';
import { Registry } from 'prom-client';
import { engines } from '../../test/harness/engines.ts';
import { RefusalAuditor } from './refusals.ts';

/** The parts of a request the auditor reads. */
function request(lines: string[]): FastifyRequest {
  const log = pino({ level: 'error' }, { write: (l: string) => lines.push(l) });
  return {
    id: 'req-1',
    ip: '192.0.2.7',
    url: '/api/v1/tenants/acme?x=1',
    method: 'GET',
    headers: {},
    routeOptions: { url: '/api/v1/tenants/:tenant' },
    meta: { requestId: 'req-1', sourceIp: '192.0.2.7', userAgent: 'test', auth: undefined },
    log,
  } as unknown as FastifyRequest;
}

for (const engine of engines()) {
  describe(`refusal audit on ${engine.name}`, () => {
    test('a refusal whose record the database rejects is still written, reduced, on the platform chain', async () => {
      const database = await engine.open();
      const auditor = new RefusalAuditor(database.db, new Registry());
      const lines: string[] = [];
      // jsonb refuses a lone surrogate: the full record cannot be stored.
      await auditor.write(request(lines), { action: 'access.denied', reason: 'IAM_UNAUTHENTICATED', details: { odd: '\ud800' } });
      const rows = await database.db.selectFrom('accord.audit_events').select(['action', 'reason', 'tenant_id', 'details']).execute();
      assert.equal(rows.length, 1);
      assert.equal(rows[0]?.action, 'access.denied');
      assert.equal(rows[0]?.tenant_id, null);
      assert.deepEqual(rows[0]?.details, { path: '/api/v1/tenants/acme', auditFallback: true });
      assert.equal(lines.length, 1, 'the failed first attempt is logged');
    });

    test('a refusal that cannot be written anywhere is logged as lost and counted', async () => {
      const database = await engine.open();
      const registry = new Registry();
      const auditor = new RefusalAuditor(database.db, registry);
      await database.close();
      const lines: string[] = [];
      await auditor.write(request(lines), { action: 'request.refused', reason: 'REQUEST_TEXT_INVALID' });
      assert.match(lines.at(-1) ?? '', /AUDIT RECORD LOST/);
      const metric = await registry.getSingleMetricAsString('accord_audit_write_failures_total');
      assert.match(metric, /accord_audit_write_failures_total\{action="request.refused"\} 1/);
    });
  });
}
