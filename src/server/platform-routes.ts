import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import type { Registry } from 'prom-client';
import { type Database, migrationsApplied } from '../db/index.ts';
import { AccordError } from '../errors/index.ts';
import { access, type RouteDefinition, route } from '../http/index.ts';
import { completeOpenApi } from './openapi.ts';

/** Health, readiness, metrics and the API description. */
export function platformRoutes(deps: {
  app: FastifyInstance;
  database: Database;
  metrics: Registry;
  kmsHealth: () => Promise<{ ok: boolean; detail: string }>;
}): RouteDefinition[] {
  // Once every migration is seen applied, it stays so for this process (migrations only go forward).
  let migrated = false;
  let openApi: ReturnType<typeof completeOpenApi> | undefined;
  return [
    route({
      method: 'GET',
      url: '/healthz',
      access: access.public,
      schema: { summary: 'Liveness: the process is up', tags: ['platform'], response: { 200: Type.Object({ status: Type.Literal('ok') }) } },
      handler: async () => ({ status: 'ok' as const }),
    }),
    route({
      method: 'GET',
      url: '/readyz',
      access: access.public,
      schema: {
        summary: 'Readiness: the database answers, the catalog is migrated and the KMS can serve',
        tags: ['platform'],
        response: { 200: Type.Object({ status: Type.Literal('ready'), engine: Type.String() }) },
      },
      handler: async () => {
        try {
          await sql`select 1`.execute(deps.database.db);
          migrated ||= await migrationsApplied(deps.database.db);
        } catch (cause) {
          throw new AccordError('DB_NOT_READY', { cause });
        }
        if (!migrated) throw new AccordError('DB_NOT_READY', { message: 'Catalog migrations are not applied yet.' });
        const kms = await deps.kmsHealth().catch(() => ({ ok: false, detail: 'health check failed' }));
        if (!kms.ok) throw new AccordError('CRYPTO_KMS_UNAVAILABLE', { message: `The key management service is not ready: ${kms.detail}` });
        return { status: 'ready' as const, engine: deps.database.engine };
      },
    }),
    route({
      method: 'GET',
      url: '/metrics',
      access: access.permission('metrics:read'),
      schema: { summary: 'Prometheus metrics (operators and security officers)', tags: ['platform'] },
      handler: async ({ reply }) => reply.type(deps.metrics.contentType).send(await deps.metrics.metrics()),
    }),
    route({
      method: 'GET',
      url: '/api/v1/openapi.json',
      access: access.public,
      schema: { summary: 'This API, as OpenAPI 3.1', tags: ['platform'] },
      handler: async () => {
        // Built once: the routes do not change after start.
        openApi ??= completeOpenApi(deps.app.swagger() as Parameters<typeof completeOpenApi>[0], (method, path) => {
          const declared = deps.app.declaredRoutes.find((r) => r.method === method && r.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}') === path);
          return declared?.access;
        });
        return openApi;
      },
    }),
  ];
}
