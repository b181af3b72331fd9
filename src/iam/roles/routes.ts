import { Type } from '@sinclair/typebox';
import { AccordError } from '../../errors/index.ts';
import { access, auditSource, parts, type RouteDefinition } from '../../http/index.ts';
import { getTenant, listStages } from '../../tenancy/index.ts';
import { caller } from '../sign-in/routes.ts';
import type { IamServices } from '../services.ts';
import { APP_NAME, APP_ROLE_NAME, grantAppRole, listAppRoleGrants, revokeAppRole, type StageScope } from './app-roles.ts';
import { createCustomRole, deleteCustomRole, listTenantRoles, MAX_ROLE_PERMISSIONS, ROLE_NAME, type RoleScope, updateCustomRole } from './custom-roles.ts';

const TenantParams = Type.Object({ tenant: Type.String({ maxLength: 63 }) });
const RoleParams = Type.Object({ tenant: Type.String({ maxLength: 63 }), name: Type.String({ maxLength: 64 }) });
const StageParams = Type.Object({ tenant: Type.String({ maxLength: 63 }), stage: Type.String({ maxLength: 63 }) });
const Email = Type.String({ format: 'email', maxLength: 254 });
const Description = Type.String({ maxLength: 500 });
const Permissions = Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: MAX_ROLE_PERMISSIONS, uniqueItems: true });
const RoleOut = Type.Object({ name: Type.String(), description: Type.String(), permissions: Type.Array(Type.String()), builtIn: Type.Boolean() });
const AppRoleOut = Type.Object({
  id: Type.String(),
  user: Type.String(),
  app: Type.String(),
  role: Type.String(),
  stage: Type.String(),
  grantedAt: Type.String({ format: 'date-time' }),
  grantedBy: Type.Union([Type.String(), Type.Null()]),
  lastUsedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});
const AppRoleRef = Type.Object({ user: Email, app: Type.String({ pattern: APP_NAME }), role: Type.String({ pattern: APP_ROLE_NAME }) }, { additionalProperties: false });

/** Custom roles of a tenant (IAM-4) and app-role grants per app and stage. */
export function roleRoutes(iam: IamServices): RouteDefinition[] {
  const { db } = iam;
  const tenantScope = async (tenant: string): Promise<RoleScope> => {
    const t = await getTenant(db, tenant);
    return { tenantId: t.id, tenantName: t.name };
  };
  const stageScope = async (tenant: string, stage: string): Promise<StageScope> => {
    const t = await getTenant(db, tenant);
    const s = (await listStages(db, t.id)).find((x) => x.name === stage);
    if (!s) throw new AccordError('TENANCY_STAGE_NOT_FOUND', { details: { tenant, stage } });
    return { tenantId: t.id, tenantName: t.name, stageId: s.id, stageName: s.name };
  };
  const manageRoles = access.permission('role:manage', { tenantParam: 'tenant' });
  const manageAppRoles = access.permission('user:manage', { tenantParam: 'tenant', stageParam: 'stage' });
  return [
    {
      method: 'GET',
      url: '/api/v1/tenants/:tenant/roles',
      access: access.permission('tenant:read', { tenantParam: 'tenant' }),
      schema: { summary: 'The roles usable on the tenant: built-in and custom, with their permissions', tags: ['iam'], params: TenantParams, response: { 200: Type.Array(RoleOut) } },
      handler: async (req) => {
        const { params } = parts<{ tenant: string }>(req);
        return listTenantRoles(db, (await tenantScope(params.tenant)).tenantId);
      },
    },
    {
      method: 'POST',
      url: '/api/v1/tenants/:tenant/roles',
      access: manageRoles,
      status: 201,
      schema: {
        summary: 'Define a custom role from the permission catalog (only permissions the caller holds on the tenant)',
        tags: ['iam'],
        params: TenantParams,
        body: Type.Object({ name: Type.String({ pattern: ROLE_NAME }), description: Type.Optional(Description), permissions: Permissions }, { additionalProperties: false }),
        response: { 201: RoleOut },
      },
      handler: async (req) => {
        const { params, body } = parts<{ tenant: string }, { name: string; description?: string; permissions: string[] }>(req);
        return createCustomRole(db, caller(req), auditSource(req.meta), await tenantScope(params.tenant), body);
      },
    },
    {
      method: 'PATCH',
      url: '/api/v1/tenants/:tenant/roles/:name',
      access: manageRoles,
      schema: {
        summary: "Change a custom role's description or permissions (applies to every holder at once)",
        tags: ['iam'],
        params: RoleParams,
        body: Type.Object({ description: Type.Optional(Description), permissions: Type.Optional(Permissions) }, { additionalProperties: false, minProperties: 1 }),
        response: { 200: RoleOut },
      },
      handler: async (req) => {
        const { params, body } = parts<{ tenant: string; name: string }, { description?: string; permissions?: string[] }>(req);
        return updateCustomRole(db, caller(req), auditSource(req.meta), await tenantScope(params.tenant), params.name, body);
      },
    },
    {
      method: 'DELETE',
      url: '/api/v1/tenants/:tenant/roles/:name',
      access: manageRoles,
      status: 204,
      schema: { summary: 'Delete a custom role that nobody holds and no MFA policy names', tags: ['iam'], params: RoleParams },
      handler: async (req, reply) => {
        const { params } = parts<{ tenant: string; name: string }>(req);
        await deleteCustomRole(db, caller(req), auditSource(req.meta), await tenantScope(params.tenant), params.name);
        return reply.code(204).send();
      },
    },
    {
      method: 'POST',
      url: '/api/v1/tenants/:tenant/stages/:stage/app-roles',
      access: manageAppRoles,
      status: 201,
      schema: { summary: 'Grant an app role to a tenant user on this stage', tags: ['iam'], params: StageParams, body: AppRoleRef, response: { 201: AppRoleOut } },
      handler: async (req) => {
        const { params, body } = parts<{ tenant: string; stage: string }, { user: string; app: string; role: string }>(req);
        return grantAppRole(db, caller(req), auditSource(req.meta), await stageScope(params.tenant, params.stage), { email: body.user, app: body.app, role: body.role });
      },
    },
    {
      method: 'GET',
      url: '/api/v1/tenants/:tenant/stages/:stage/app-roles',
      access: manageAppRoles,
      schema: {
        summary: "The stage's app-role grants, optionally of one app or one user",
        tags: ['iam'],
        params: StageParams,
        querystring: Type.Object({ app: Type.Optional(Type.String({ pattern: APP_NAME })), user: Type.Optional(Email) }, { additionalProperties: false }),
        response: { 200: Type.Array(AppRoleOut) },
      },
      handler: async (req) => {
        const { params, query } = parts<{ tenant: string; stage: string }, unknown, { app?: string; user?: string }>(req);
        return listAppRoleGrants(db, await stageScope(params.tenant, params.stage), query);
      },
    },
    {
      method: 'DELETE',
      url: '/api/v1/tenants/:tenant/stages/:stage/app-roles',
      access: manageAppRoles,
      status: 204,
      schema: { summary: 'Revoke an app-role grant', tags: ['iam'], params: StageParams, querystring: AppRoleRef },
      handler: async (req, reply) => {
        const { params, query } = parts<{ tenant: string; stage: string }, unknown, { user: string; app: string; role: string }>(req);
        await revokeAppRole(db, auditSource(req.meta), await stageScope(params.tenant, params.stage), { email: query.user, app: query.app, role: query.role });
        return reply.code(204).send();
      },
    },
  ];
}
