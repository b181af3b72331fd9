import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Validator } from '@seriousme/openapi-schema-validator';
import openapiTS, { astToString } from 'openapi-typescript';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { ephemeralSigner } from '../../../src/audit-chain/index.ts';
import { loadConfig } from '../../../src/config/index.ts';
import { migrate, openDatabase } from '../../../src/db/index.ts';
import { buildApp } from '../../../src/server/index.ts';
import { testIamKey } from '../../harness/iam.ts';
import { testKeyring } from '../../harness/keys.ts';

const root = fileURLToPath(new URL('../../../', import.meta.url));
// Answers that are not JSON documents (Prometheus text, JSON lines / CEF files) or are free-form
// by nature (the OpenAPI document itself), or redirects (federated sign-in starts): their success
// needs no response schema.
const NOT_JSON = new Set(['getMetrics', 'getAuditExport', 'getTenantsByTenantAuditExport', 'getOpenapiJson', 'getFederationByTenantByIdpLogin', 'getTByTenantByStageAuthIdpByIdpLogin', 'getFederationByTenantByIdpSamlMetadata']);

describe('the OpenAPI document', () => {
  let app: FastifyInstance;
  let doc: { paths: Record<string, Record<string, { operationId?: string; security?: unknown[]; responses?: Record<string, { content?: Record<string, { schema?: unknown }> }> }>> };
  after(async () => app?.close());

  test('is a valid OpenAPI 3.1 document', async () => {
    const database = await openDatabase({ dataDir: '', inMemory: true });
    await migrate(database.db);
    app = await buildApp({ config: loadConfig({ env: {}, flags: { logLevel: 'silent' } }), database, logger: pino({ level: 'silent' }), signer: ephemeralSigner(), keyring: await testKeyring(), iamKey: testIamKey });
    const res = await app.inject({ method: 'GET', url: '/api/v1/openapi.json' });
    assert.equal(res.statusCode, 200);
    doc = res.json();
    const result = await new Validator().validate(doc as Parameters<Validator['validate']>[0]);
    assert.equal(result.valid, true, JSON.stringify(result.errors, null, 2)?.slice(0, 4000));
  });

  test('every operation has a unique operationId, a success schema and its problem+json errors', () => {
    const ids = new Set<string>();
    const problems: string[] = [];
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const where = `${method.toUpperCase()} ${path}`;
        if (!op.operationId) problems.push(`${where}: no operationId`);
        else if (ids.has(op.operationId)) problems.push(`${where}: duplicate operationId ${op.operationId}`);
        else ids.add(op.operationId);
        const responses = op.responses ?? {};
        const success = Object.entries(responses).filter(([s]) => s.startsWith('2'));
        const noContent = success.some(([s]) => s === '204');
        const schema = success.some(([, r]) => r.content?.['application/json']?.schema !== undefined);
        if (!noContent && !schema && !NOT_JSON.has(op.operationId ?? '')) problems.push(`${where}: no response schema`);
        if (!responses['400']?.content?.['application/problem+json']) problems.push(`${where}: no problem+json 400`);
      }
    }
    assert.deepEqual(problems, []);
  });

  test('names HTTP Basic on /oauth/token and a bearer token on protected routes', () => {
    assert.deepEqual(doc.paths['/oauth/token']?.post?.security, [{ basic: [] }, {}]);
    assert.deepEqual(doc.paths['/api/v1/tenants/{tenant}']?.get?.security, [{ bearer: [] }]);
    assert.deepEqual(doc.paths['/healthz']?.get?.security, []);
  });

  test('generates a TypeScript client that compiles', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'accord-openapi-'));
    try {
      const types = astToString(await openapiTS(doc as never));
      await writeFile(join(dir, 'api.d.ts'), types);
      // A use of the generated types, as a client author would write it.
      await writeFile(
        join(dir, 'use.ts'),
        `import type { paths } from './api.d.ts';\ntype Tenant = paths['/api/v1/tenants/{tenant}']['get']['responses']['200']['content']['application/json'];\nexport const name = (t: Tenant): string => t.name;\n`,
      );
      execFileSync(join(root, 'node_modules/.bin/tsc'), ['--noEmit', '--strict', '--allowImportingTsExtensions', '--module', 'nodenext', '--target', 'es2022', join(dir, 'use.ts')], { stdio: 'pipe' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
