import { Type } from '@sinclair/typebox';
import type { FastifyReply } from 'fastify';
import { access, type RouteDefinition, route, type ScopeTenant } from '../../http/index.ts';
import { unitOfWork } from '../../kernel/index.ts';
import type { AuditSource } from '../../audit-chain/index.ts';
import type { Work } from '../../kernel/index.ts';
import type { IamServices } from '../services.ts';
import { getProvider, type Provider } from './providers.ts';
import * as scim from './scim.ts';

const Params = Type.Object({ tenant: Type.String({ maxLength: 63 }), idp: Type.String({ maxLength: 63 }) });
const IdParams = Type.Object({ tenant: Type.String({ maxLength: 63 }), idp: Type.String({ maxLength: 63 }), id: Type.String({ format: 'uuid' }) });
const ListQuery = Type.Object(
  {
    filter: Type.Optional(Type.String({ maxLength: 1000 })),
    startIndex: Type.Optional(Type.String({ pattern: '^[0-9]{1,9}$' })),
    count: Type.Optional(Type.String({ pattern: '^[0-9]{1,9}$' })),
    attributes: Type.Optional(Type.String({ maxLength: 1000 })),
    excludedAttributes: Type.Optional(Type.String({ maxLength: 1000 })),
  },
  { additionalProperties: false },
);
const Resource = Type.Record(Type.String(), Type.Unknown());
const SCIM = 'application/scim+json';
const scimAccess = access.permission('scim:provision', { tenantParam: 'tenant' });
const num = (s: string | undefined) => (s === undefined ? undefined : Number(s));

/**
 * SCIM 2.0 (RFC 7643/7644) for one provider of a tenant: `/scim/v2/{tenant}/{idp}/Users` and
 * `/Groups`, for an IdP acting as a tenant API client holding `scim:provision` (built-in role
 * `scim-provisioner`). The provider's users only: those it provisioned or that signed in
 * through it. Group memberships re-sync the members' grants through the provider's mappings;
 * deactivating or deleting a user revokes every session at once. Errors are the platform's
 * problem+json documents (with the SCIM status), not SCIM error resources.
 */
export function scimRoutes(iam: IamServices): RouteDefinition[] {
  const base = (tenant: ScopeTenant, idp: string) => `${iam.publicOrigin}/scim/v2/${tenant.name}/${idp}`;
  const inUnit = <T>(source: AuditSource, tenant: ScopeTenant, idp: string, fn: (w: Work, p: Provider) => Promise<T>) =>
    unitOfWork(iam.db, source, async (w) => fn(w, await getProvider(w.trx, tenant, idp)));
  const out = (reply: FastifyReply, body: unknown) => {
    reply.type(SCIM);
    return body;
  };
  const tags = ['scim'];
  return [
    route({
      method: 'GET',
      url: '/scim/v2/:tenant/:idp/ServiceProviderConfig',
      access: scimAccess,
      schema: { summary: 'SCIM service provider configuration', tags, params: Params, response: { 200: Resource } },
      handler: async ({ reply }) =>
        out(reply, {
          schemas: ['urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig'],
          patch: { supported: true },
          bulk: { supported: false, maxOperations: 0, maxPayloadSize: 0 },
          filter: { supported: true, maxResults: 500 },
          changePassword: { supported: false },
          sort: { supported: false },
          etag: { supported: false },
          authenticationSchemes: [{ type: 'oauthbearertoken', name: 'OAuth Bearer Token', description: 'An access token of a tenant API client (client credentials at /oauth/token)' }],
        }),
    }),
    route({
      method: 'GET',
      url: '/scim/v2/:tenant/:idp/Users',
      access: scimAccess,
      schema: { summary: "List or filter the provider's users", tags, params: Params, querystring: ListQuery, response: { 200: Resource } },
      handler: async ({ tenant, params, query, source, reply }) =>
        out(reply, await inUnit(source, tenant, params.idp, (w, p) => scim.listUsers(w.trx, p, base(tenant, params.idp), { filter: query.filter, startIndex: num(query.startIndex), count: num(query.count) }))),
    }),
    route({
      method: 'POST',
      url: '/scim/v2/:tenant/:idp/Users',
      access: scimAccess,
      status: 201,
      schema: { summary: 'Provision a user (no password: they sign in through the provider)', tags, params: Params, body: Resource, response: { 201: Resource } },
      handler: async ({ tenant, params, body, source, reply }) =>
        out(reply, await inUnit(source, tenant, params.idp, async (w, p) => scim.userResource(w.trx, p, base(tenant, params.idp), await scim.createUser(w, p, body)))),
    }),
    route({
      method: 'GET',
      url: '/scim/v2/:tenant/:idp/Users/:id',
      access: scimAccess,
      schema: { summary: 'One provisioned user', tags, params: IdParams, response: { 200: Resource } },
      handler: async ({ tenant, params, source, reply }) =>
        out(reply, await inUnit(source, tenant, params.idp, async (w, p) => scim.userResource(w.trx, p, base(tenant, params.idp), await scim.getUser(w.trx, p, params.id)))),
    }),
    route({
      method: 'PUT',
      url: '/scim/v2/:tenant/:idp/Users/:id',
      access: scimAccess,
      schema: { summary: 'Replace a user (active: false deprovisions)', tags, params: IdParams, body: Resource, response: { 200: Resource } },
      handler: async ({ tenant, params, body, source, reply }) =>
        out(reply, await inUnit(source, tenant, params.idp, async (w, p) => scim.userResource(w.trx, p, base(tenant, params.idp), await scim.replaceUser(w, p, params.id, body)))),
    }),
    route({
      method: 'PATCH',
      url: '/scim/v2/:tenant/:idp/Users/:id',
      access: scimAccess,
      schema: { summary: 'Change a user (active: false deprovisions: every session revoked)', tags, params: IdParams, body: Resource, response: { 200: Resource } },
      handler: async ({ tenant, params, body, source, reply }) =>
        out(reply, await inUnit(source, tenant, params.idp, async (w, p) => scim.userResource(w.trx, p, base(tenant, params.idp), await scim.patchUser(w, p, params.id, body)))),
    }),
    route({
      method: 'DELETE',
      url: '/scim/v2/:tenant/:idp/Users/:id',
      access: scimAccess,
      status: 204,
      schema: { summary: 'Delete a user, their grants and sessions', tags, params: IdParams },
      handler: async ({ tenant, params, source }) => inUnit(source, tenant, params.idp, (w, p) => scim.deleteUser(w, p, params.id)),
    }),
    route({
      method: 'GET',
      url: '/scim/v2/:tenant/:idp/Groups',
      access: scimAccess,
      schema: { summary: "List or filter the provider's groups", tags, params: Params, querystring: ListQuery, response: { 200: Resource } },
      handler: async ({ tenant, params, query, source, reply }) =>
        out(reply, await inUnit(source, tenant, params.idp, (w, p) => scim.listGroups(w.trx, p, base(tenant, params.idp), { filter: query.filter, startIndex: num(query.startIndex), count: num(query.count) }))),
    }),
    route({
      method: 'POST',
      url: '/scim/v2/:tenant/:idp/Groups',
      access: scimAccess,
      status: 201,
      schema: { summary: 'Create a group (its members get the roles its name maps to)', tags, params: Params, body: Resource, response: { 201: Resource } },
      handler: async ({ tenant, params, body, source, reply }) =>
        out(reply, await inUnit(source, tenant, params.idp, async (w, p) => scim.groupResource(w.trx, base(tenant, params.idp), await scim.createGroup(w, p, body)))),
    }),
    route({
      method: 'GET',
      url: '/scim/v2/:tenant/:idp/Groups/:id',
      access: scimAccess,
      schema: { summary: 'One group with its members', tags, params: IdParams, response: { 200: Resource } },
      handler: async ({ tenant, params, source, reply }) =>
        out(reply, await inUnit(source, tenant, params.idp, async (w, p) => scim.groupResource(w.trx, base(tenant, params.idp), await scim.getGroup(w.trx, p, params.id)))),
    }),
    route({
      method: 'PUT',
      url: '/scim/v2/:tenant/:idp/Groups/:id',
      access: scimAccess,
      schema: { summary: 'Replace a group (name and members)', tags, params: IdParams, body: Resource, response: { 200: Resource } },
      handler: async ({ tenant, params, body, source, reply }) =>
        out(reply, await inUnit(source, tenant, params.idp, async (w, p) => scim.groupResource(w.trx, base(tenant, params.idp), await scim.replaceGroup(w, p, params.id, body)))),
    }),
    route({
      method: 'PATCH',
      url: '/scim/v2/:tenant/:idp/Groups/:id',
      access: scimAccess,
      schema: { summary: "Add or remove members, rename; members' grants re-synced", tags, params: IdParams, body: Resource, response: { 200: Resource } },
      handler: async ({ tenant, params, body, source, reply }) =>
        out(reply, await inUnit(source, tenant, params.idp, async (w, p) => scim.groupResource(w.trx, base(tenant, params.idp), await scim.patchGroup(w, p, params.id, body)))),
    }),
    route({
      method: 'DELETE',
      url: '/scim/v2/:tenant/:idp/Groups/:id',
      access: scimAccess,
      status: 204,
      schema: { summary: "Delete a group; its members' grants re-synced", tags, params: IdParams },
      handler: async ({ tenant, params, source }) => inUnit(source, tenant, params.idp, (w, p) => scim.deleteGroup(w, p, params.id)),
    }),
  ];
}
