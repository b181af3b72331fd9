import { Type } from '@sinclair/typebox';
import { access, type RouteDefinition, route, type ScopeTenant } from '../../http/index.ts';
import type { IamServices } from '../services.ts';
import { AccordError } from '../../errors/index.ts';
import { CLIENT_NAME_PATTERN } from '../clients/service.ts';
import { APP_NAME, APP_ROLE_NAME, type AppRolePrincipal, grantAppRole, listAppRoleGrants, revokeAppRole, stageScopeOf } from './app-roles.ts';
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
  user: Type.Union([Type.String(), Type.Null()], { description: "The user's email; null for a grant to an API client." }),
  client: Type.Union([Type.String(), Type.Null()], { description: "The API client's name; null for a grant to a user." }),
  app: Type.String(),
  role: Type.String(),
  stage: Type.String(),
  grantedAt: Type.String({ format: 'date-time' }),
  grantedBy: Type.Union([Type.String(), Type.Null()]),
  lastUsedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});
// What granting answers: the grant, and whether this call created it (false: it existed already).
const AppRoleGranted = Type.Composite([AppRoleOut, Type.Object({ created: Type.Boolean() })]);
const ClientName = Type.String({ pattern: CLIENT_NAME_PATTERN, maxLength: 63 });
// Exactly one of user and client (checked by principalOf: JSON Schema's oneOf gives poor errors).
const AppRoleRef = Type.Object(
  { user: Type.Optional(Email), client: Type.Optional(ClientName), app: Type.String({ pattern: APP_NAME }), role: Type.String({ pattern: APP_ROLE_NAME }) },
  { additionalProperties: false },
);

function principalOf(ref: { user?: string | undefined; client?: string | undefined }): AppRolePrincipal {
  if ((ref.user === undefined) === (ref.client === undefined)) throw new AccordError('REQUEST_INVALID', { message: 'Name exactly one of user (an email) and client (an API client name).' });
  return ref.user !== undefined ? { email: ref.user } : { client: ref.client as string };
}

/** Custom roles of a tenant (IAM-4) and app-role grants per app and stage. */
export function roleRoutes(iam: IamServices): RouteDefinition[] {
  const { db } = iam;
  const roleScope = (tenant: ScopeTenant): RoleScope => ({ tenantId: tenant.id, tenantName: tenant.name });
  const manageRoles = access.permission('role:manage', { tenantParam: 'tenant' });
  const manageAppRoles = access.permission('user:manage', { tenantParam: 'tenant', stageParam: 'stage' });
  return [
    route({
      method: 'GET',
      url: '/api/v1/tenants/:tenant/roles',
      access: access.permission('tenant:read', { tenantParam: 'tenant' }),
      schema: { summary: 'The roles usable on the tenant: built-in and custom, with their permissions', tags: ['iam'], params: TenantParams, response: { 200: Type.Array(RoleOut) } },
      handler: async ({ tenant }) => listTenantRoles(db, tenant.id),
    }),
    route({
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
      handler: async ({ tenant, body, auth, source }) => createCustomRole(db, auth, source, roleScope(tenant), body),
    }),
    route({
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
      handler: async ({ tenant, params, body, auth, source }) => updateCustomRole(db, auth, source, roleScope(tenant), params.name, body),
    }),
    route({
      method: 'DELETE',
      url: '/api/v1/tenants/:tenant/roles/:name',
      access: manageRoles,
      status: 204,
      schema: { summary: 'Delete a custom role that nobody holds and no MFA policy names', tags: ['iam'], params: RoleParams },
      handler: async ({ tenant, params, auth, source }) => deleteCustomRole(db, auth, source, roleScope(tenant), params.name),
    }),
    route({
      method: 'POST',
      url: '/api/v1/tenants/:tenant/stages/:stage/app-roles',
      access: manageAppRoles,
      status: 201,
      schema: {
        summary: 'Grant an app role to a tenant user or API client on this stage (granting it again changes nothing and answers created: false)',
        tags: ['iam'],
        params: StageParams,
        body: AppRoleRef,
        response: { 201: AppRoleGranted },
      },
      handler: async ({ tenant, stage, body, auth, source }) => grantAppRole(db, auth, source, stageScopeOf(tenant, stage), { ...principalOf(body), app: body.app, role: body.role }),
    }),
    route({
      method: 'GET',
      url: '/api/v1/tenants/:tenant/stages/:stage/app-roles',
      access: manageAppRoles,
      schema: {
        summary: "The stage's app-role grants, optionally of one app, one user or one API client",
        tags: ['iam'],
        params: StageParams,
        querystring: Type.Object({ app: Type.Optional(Type.String({ pattern: APP_NAME })), user: Type.Optional(Email), client: Type.Optional(ClientName) }, { additionalProperties: false }),
        response: { 200: Type.Array(AppRoleOut) },
      },
      handler: async ({ tenant, stage, query }) => listAppRoleGrants(db, stageScopeOf(tenant, stage), query),
    }),
    route({
      method: 'DELETE',
      url: '/api/v1/tenants/:tenant/stages/:stage/app-roles',
      access: manageAppRoles,
      status: 204,
      schema: { summary: 'Revoke an app-role grant of a user or API client', tags: ['iam'], params: StageParams, querystring: AppRoleRef },
      handler: async ({ tenant, stage, query, source }) => revokeAppRole(db, source, stageScopeOf(tenant, stage), { ...principalOf(query), app: query.app, role: query.role }),
    }),
  ];
}
