import { Type } from '@sinclair/typebox';
import type { Db } from '../../db/index.ts';
import { AccordError } from '../../errors/index.ts';
import { access, auditSource, parts, type RouteDefinition } from '../../http/index.ts';
import { listStages } from '../../tenancy/index.ts';
import { builtInRoles, permissions } from '../permissions.ts';
import { createTenantUser, deleteTenantUser, grantTenantRole, listTenantUsers, revokeTenantRole, setUserStatus } from './admin.ts';
import { tenantScope } from './admin.ts';

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
  const scopeOf = (tenantName: string) => tenantScope(db, tenantName);
  const stageOf = async (tenantId: string, tenantName: string, stage: string | undefined) => {
    if (stage === undefined) return undefined;
    const s = (await listStages(db, tenantId)).find((x) => x.name === stage);
    if (!s) throw new AccordError('TENANCY_STAGE_NOT_FOUND', { details: { tenant: tenantName, stage } });
    return { id: s.id, name: s.name };
  };
  return [
    {
      method: 'GET',
      url: '/api/v1/roles',
      access: access.authenticated,
      schema: { summary: 'The built-in roles and the permission catalog', tags: ['iam'] },
      handler: async () => ({
        permissions: Object.entries(permissions).map(([name, description]) => ({ name, description })),
        roles: Object.entries(builtInRoles).map(([name, r]) => ({ name, description: r.description, permissions: r.permissions })),
      }),
    },
    {
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
      handler: async (req) => {
        const { params, body } = parts<{ tenant: string }, { email: string; password: string; displayName?: string }>(req);
        return createTenantUser(db, auditSource(req.meta), await scopeOf(params.tenant), body);
      },
    },
    {
      method: 'GET',
      url: '/api/v1/tenants/:tenant/users',
      access: manage,
      schema: { summary: "The tenant's users and their grants", tags: ['iam'], params: TenantParams, response: { 200: Type.Array(UserOut) } },
      handler: async (req) => {
        const { params } = parts<{ tenant: string }>(req);
        return listTenantUsers(db, await scopeOf(params.tenant));
      },
    },
    {
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
      handler: async (req, reply) => {
        const { params, body } = parts<{ tenant: string; email: string }, { status: 'active' | 'disabled' }>(req);
        const auth = req.meta.auth;
        if (!auth) throw new AccordError('IAM_UNAUTHENTICATED');
        await setUserStatus(db, auth, auditSource(req.meta), await scopeOf(params.tenant), params.email, body.status);
        return reply.code(204).send();
      },
    },
    {
      method: 'DELETE',
      url: '/api/v1/tenants/:tenant/users/:email',
      access: manage,
      status: 204,
      schema: { summary: 'Delete a user with their grants and sessions', tags: ['iam'], params: UserParams },
      handler: async (req, reply) => {
        const { params } = parts<{ tenant: string; email: string }>(req);
        const auth = req.meta.auth;
        if (!auth) throw new AccordError('IAM_UNAUTHENTICATED');
        await deleteTenantUser(db, auth, auditSource(req.meta), await scopeOf(params.tenant), params.email);
        return reply.code(204).send();
      },
    },
    {
      method: 'POST',
      url: '/api/v1/tenants/:tenant/grants',
      access: manage,
      status: 204,
      schema: { summary: 'Grant a role to a user, optionally on one stage only', tags: ['iam'], params: TenantParams, body: GrantIn },
      handler: async (req, reply) => {
        const { params, body } = parts<{ tenant: string }, { user: string; role: string; stage?: string }>(req);
        const scope = await scopeOf(params.tenant);
        const auth = req.meta.auth;
        if (!auth) throw new AccordError('IAM_UNAUTHENTICATED');
        await grantTenantRole(db, auth, auditSource(req.meta), scope, { email: body.user, role: body.role, stage: await stageOf(scope.tenantId, scope.tenantName, body.stage) });
        return reply.code(204).send();
      },
    },
    {
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
      handler: async (req, reply) => {
        const { params, query } = parts<{ tenant: string }, unknown, { user: string; role: string; stage?: string }>(req);
        const scope = await scopeOf(params.tenant);
        const auth = req.meta.auth;
        if (!auth) throw new AccordError('IAM_UNAUTHENTICATED');
        await revokeTenantRole(db, auth, auditSource(req.meta), scope, { email: query.user, role: query.role, stage: await stageOf(scope.tenantId, scope.tenantName, query.stage) });
        return reply.code(204).send();
      },
    },
  ];
}
