import { Type } from '@sinclair/typebox';
import type { Keyring } from '../crypto/keyring/index.ts';
import type { Db } from '../db/index.ts';
import { access, type RouteDefinition, route } from '../http/index.ts';
import { createStage, createTenant, deleteStage, deleteTenant, listStages, listTenants } from './service.ts';

const TenantOut = Type.Object({
  id: Type.String(),
  name: Type.String(),
  displayName: Type.String(),
  region: Type.String(),
  createdAt: Type.String({ format: 'date-time' }),
});
const StageOut = Type.Object({
  id: Type.String(),
  name: Type.String(),
  position: Type.Integer(),
  schema: Type.String(),
  role: Type.String(),
  createdAt: Type.String({ format: 'date-time' }),
});
const TenantParams = Type.Object({ tenant: Type.String({ maxLength: 63 }) });
const scoped = { tenantParam: 'tenant' } as const;

/** Tenants and stages (PLAT-2). */
export function tenancyRoutes(deps: { db: Db; keyring: Keyring }): RouteDefinition[] {
  const { db, keyring } = deps;
  return [
    route({
      method: 'POST',
      url: '/api/v1/tenants',
      access: access.permission('tenant:create'),
      status: 201,
      schema: {
        summary: 'Create a tenant with the default stages',
        tags: ['tenancy'],
        body: Type.Object(
          {
            name: Type.String({ maxLength: 63 }),
            displayName: Type.Optional(Type.String({ maxLength: 100 })),
            region: Type.Optional(Type.String({ maxLength: 32 })),
          },
          { additionalProperties: false },
        ),
        response: { 201: Type.Composite([TenantOut, Type.Object({ stages: Type.Array(StageOut) })]) },
      },
      handler: async ({ body, source }) => createTenant(db, keyring, source, body),
    }),
    route({
      method: 'GET',
      url: '/api/v1/tenants',
      // Everyone signed in may list; the list holds only the tenants the caller has a grant on.
      access: access.authenticated,
      schema: { summary: 'List the tenants visible to the caller', tags: ['tenancy'], response: { 200: Type.Array(TenantOut) } },
      handler: async ({ auth }) => {
        const platformWide = auth.grants.some((g) => g.tenantId === null);
        if (platformWide) return listTenants(db);
        return listTenants(db, [...new Set(auth.grants.map((g) => g.tenantName).filter((n): n is string => n !== null))]);
      },
    }),
    route({
      method: 'GET',
      url: '/api/v1/tenants/:tenant',
      access: access.permission('tenant:read', scoped),
      schema: {
        summary: 'Show a tenant and its stages',
        tags: ['tenancy'],
        params: TenantParams,
        response: { 200: Type.Composite([TenantOut, Type.Object({ stages: Type.Array(StageOut) })]) },
      },
      handler: async ({ tenant }) => ({ ...tenant, stages: await listStages(db, tenant.id) }),
    }),
    route({
      method: 'DELETE',
      url: '/api/v1/tenants/:tenant',
      access: access.permission('tenant:delete', scoped),
      status: 204,
      schema: {
        summary: 'Delete a tenant, its stages, schemas, roles and users',
        tags: ['tenancy'],
        params: TenantParams,
        querystring: Type.Object({ confirm: Type.Optional(Type.String({ maxLength: 63 })) }, { additionalProperties: false }),
      },
      handler: async ({ tenant, query, source }) => deleteTenant(db, keyring, source, tenant.name, query.confirm),
    }),
    route({
      method: 'GET',
      url: '/api/v1/tenants/:tenant/stages',
      access: access.permission('stage:read', scoped),
      schema: { summary: "List a tenant's stages in order", tags: ['tenancy'], params: TenantParams, response: { 200: Type.Array(StageOut) } },
      handler: async ({ tenant }) => listStages(db, tenant.id),
    }),
    route({
      method: 'POST',
      url: '/api/v1/tenants/:tenant/stages',
      access: access.permission('stage:manage', scoped),
      status: 201,
      schema: {
        summary: 'Create a stage, by default last, or after a given stage',
        tags: ['tenancy'],
        params: TenantParams,
        body: Type.Object(
          { name: Type.String({ maxLength: 63 }), after: Type.Optional(Type.String({ maxLength: 63 })) },
          { additionalProperties: false },
        ),
        response: { 201: StageOut },
      },
      handler: async ({ tenant, body, source }) => createStage(db, keyring, source, tenant.name, body),
    }),
    route({
      method: 'DELETE',
      url: '/api/v1/tenants/:tenant/stages/:stage',
      access: access.permission('stage:manage', { tenantParam: 'tenant' }),
      status: 204,
      schema: {
        summary: "Delete a stage: its keys (crypto-shredding), schema, role and data",
        tags: ['tenancy'],
        params: Type.Object({ tenant: Type.String({ maxLength: 63 }), stage: Type.String({ maxLength: 63 }) }),
        querystring: Type.Object({ confirm: Type.Optional(Type.String({ maxLength: 63 })) }, { additionalProperties: false }),
      },
      handler: async ({ tenant, stage, query, source }) => deleteStage(db, keyring, source, tenant.name, stage.name, query.confirm),
    }),
  ];
}

