import { Type } from '@sinclair/typebox';
import type { Db } from '../../db/index.ts';
import { AccordError } from '../../errors/index.ts';
import { access, type RouteDefinition, route } from '../../http/index.ts';
import { listStages } from '../../tenancy/index.ts';
import { builtInRoles, permissions } from '../permissions.ts';
import { createTenantUser, deleteTenantUser, grantTenantRole, listTenantUsers, revokeTenantRole, scopeOf, setUserStatus } from './admin.ts';

const TenantParams = Type.Object({ tenant: Type.String({ maxLength: 63 }) });
const UserParams = Type.Object({ tenant: Type.String({ maxLength: 63 }), email: Type.String({ maxLength: 254 }) });
const Email = Type.String({ format: 'email', maxLength: 254 });
const UserOut = Type.Object({
  id: Type.String(),
  email: Type.String(),
  displayName: Type.String(),
  status: Type.String(),
  grants: Type.Array(Type.Object({ role: Type.String(), stage: Type.Union([Type.String(), Type.Null()]) })),
});
const GrantIn = Type.Object(
  { user: Email, role: Type.String({ maxLength: 64 }), stage: Type.Optional(Type.String({ maxLength: 63 })) },
  { additionalProperties: false },
);
const manage = access.permission('user:manage', { tenantParam: 'tenant' });

/** Tenant users and their role grants (IAM-1, IAM-4). */
export function userRoutes(deps: { db: Db }): RouteDefinition[] {
  const { db } = deps;
  // A stage named in the body or query (the path names only the tenant), looked up here.
  const stageOf = async (tenantId: string, tenantName: string, stage: string | undefined) => {
    if (stage === undefined) return undefined;
    const s = (await listStages(db, tenantId)).find((x) => x.name === stage);
    if (!s) throw new AccordError('TENANCY_STAGE_NOT_FOUND', { details: { tenant: tenantName, stage } });
    return { id: s.id, name: s.name };
  };
  return [
    route({
      method: 'GET',
      url: '/api/v1/roles',
      access: access.authenticated,
      schema: {
        summary: 'The built-in roles and the permission catalog',
        tags: ['iam'],
        response: {
          200: Type.Object({
            permissions: Type.Array(Type.Object({ name: Type.String(), description: Type.String() })),
            roles: Type.Array(Type.Object({ name: Type.String(), description: Type.String(), permissions: Type.Array(Type.String()) })),
          }),
        },
      },
      handler: async () => ({
        permissions: Object.entries(permissions).map(([name, description]) => ({ name, description })),
        roles: Object.entries(builtInRoles).map(([name, r]) => ({ name, description: r.description, permissions: r.permissions })),
      }),
    }),
    route({
      method: 'POST',
      url: '/api/v1/tenants/:tenant/users',
      access: manage,
      status: 201,
      schema: {
        summary: "Create a user in the tenant's directory",
        tags: ['iam'],
        params: TenantParams,
        body: Type.Object(
          { email: Email, password: Type.String({ minLength: 1, maxLength: 1024 }), displayName: Type.Optional(Type.String({ maxLength: 100 })) },
          { additionalProperties: false },
        ),
        response: { 201: UserOut },
      },
      handler: async ({ tenant, body, source }) => createTenantUser(db, source, scopeOf(tenant), body),
    }),
    route({
      method: 'GET',
      url: '/api/v1/tenants/:tenant/users',
      access: manage,
      schema: { summary: "The tenant's users and their grants", tags: ['iam'], params: TenantParams, response: { 200: Type.Array(UserOut) } },
      handler: async ({ tenant }) => listTenantUsers(db, scopeOf(tenant)),
    }),
    route({
      method: 'PATCH',
      url: '/api/v1/tenants/:tenant/users/:email',
      access: manage,
      status: 204,
      schema: {
        summary: 'Disable (ending their sessions) or re-enable a user',
        tags: ['iam'],
        params: UserParams,
        body: Type.Object({ status: Type.Union([Type.Literal('active'), Type.Literal('disabled')]) }, { additionalProperties: false }),
      },
      handler: async ({ tenant, params, body, auth, source }) => setUserStatus(db, auth, source, scopeOf(tenant), params.email, body.status),
    }),
    route({
      method: 'DELETE',
      url: '/api/v1/tenants/:tenant/users/:email',
      access: manage,
      status: 204,
      schema: { summary: 'Delete a user with their grants and sessions', tags: ['iam'], params: UserParams },
      handler: async ({ tenant, params, auth, source }) => deleteTenantUser(db, auth, source, scopeOf(tenant), params.email),
    }),
    route({
      method: 'POST',
      url: '/api/v1/tenants/:tenant/grants',
      access: manage,
      status: 204,
      schema: { summary: 'Grant a role to a user, optionally on one stage only', tags: ['iam'], params: TenantParams, body: GrantIn },
      handler: async ({ tenant, body, auth, source }) => {
        await grantTenantRole(db, auth, source, scopeOf(tenant), { email: body.user, role: body.role, stage: await stageOf(tenant.id, tenant.name, body.stage) });
      },
    }),
    route({
      method: 'DELETE',
      url: '/api/v1/tenants/:tenant/grants',
      access: manage,
      status: 204,
      schema: {
        summary: 'Revoke a grant',
        tags: ['iam'],
        params: TenantParams,
        querystring: Type.Object({ user: Email, role: Type.String({ maxLength: 64 }), stage: Type.Optional(Type.String({ maxLength: 63 })) }, { additionalProperties: false }),
      },
      handler: async ({ tenant, query, auth, source }) =>
        revokeTenantRole(db, auth, source, scopeOf(tenant), { email: query.user, role: query.role, stage: await stageOf(tenant.id, tenant.name, query.stage) }),
    }),
  ];
}
