import { Type } from '@sinclair/typebox';
import { access, type RouteDefinition, route } from '../../http/index.ts';
import type { IamServices } from '../services.ts';
import { scopeOf } from '../users/standing.ts';
import { issueClientToken, parseTokenRequest } from './oauth.ts';
import { CLIENT_LIMITS, CLIENT_NAME_PATTERN, createClient, getClient, listClients, revokeClient, rotateClientSecret } from './service.ts';

const Name = Type.String({ pattern: CLIENT_NAME_PATTERN, maxLength: 63 });
const Duration = Type.String({ minLength: 1, maxLength: 20, description: 'a duration: 90d, 12h, 30m, 2y, or seconds' });
const TenantParams = Type.Object({ tenant: Type.String({ maxLength: 63 }) });
const ClientParams = Type.Object({ tenant: Type.String({ maxLength: 63 }), name: Name });
const GrantOut = Type.Object({ role: Type.String(), stage: Type.Union([Type.String(), Type.Null()]) });
const Instant = Type.String({ format: 'date-time' });
const ClientOut = Type.Object({
  name: Type.String(),
  clientId: Type.String(),
  createdAt: Instant,
  expiresAt: Instant,
  revokedAt: Type.Union([Instant, Type.Null()]),
  lastUsedAt: Type.Union([Instant, Type.Null()]),
  grants: Type.Array(GrantOut),
  secrets: Type.Array(Type.Object({ id: Type.String(), createdAt: Instant, expiresAt: Instant, revoked: Type.Boolean() })),
});
const SecretOut = {
  name: Type.String(),
  clientId: Type.String(),
  clientSecret: Type.String({ description: 'shown once; only its SHA-256 is stored' }),
  expiresAt: Instant,
  grants: Type.Array(GrantOut),
};
const CreateIn = Type.Object(
  {
    name: Name,
    grants: Type.Array(Type.Object({ role: Type.String({ minLength: 1, maxLength: 64 }), stage: Type.Optional(Type.String({ maxLength: 63 })) }, { additionalProperties: false }), {
      minItems: 1,
      maxItems: CLIENT_LIMITS.maxGrants,
    }),
    expiresIn: Type.Optional(Duration),
  },
  { additionalProperties: false },
);
// Optional: a bare POST rotates with the defaults.
const RotateIn = Type.Object({ overlap: Type.Optional(Duration), expiresIn: Type.Optional(Duration) }, { additionalProperties: false });
const manage = access.permission('client:manage', { tenantParam: 'tenant' });

/** API clients of a tenant (management) and the OAuth2 token endpoint (client credentials). */
export function clientRoutes(iam: IamServices): RouteDefinition[] {
  const { db } = iam;
  return [
    route({
      method: 'POST',
      url: '/api/v1/tenants/:tenant/clients',
      access: manage,
      status: 201,
      schema: {
        summary: 'Create an API client with roles on the tenant or its stages; the secret is shown once',
        tags: ['iam'],
        params: TenantParams,
        body: CreateIn,
        response: { 201: Type.Object(SecretOut) },
      },
      handler: async ({ tenant, body, auth, source }) => createClient(db, auth, source, scopeOf(tenant), body),
    }),
    route({
      method: 'GET',
      url: '/api/v1/tenants/:tenant/clients',
      access: manage,
      schema: { summary: "The tenant's API clients (never a secret)", tags: ['iam'], params: TenantParams, response: { 200: Type.Array(ClientOut) } },
      handler: async ({ tenant }) => listClients(db, scopeOf(tenant)),
    }),
    route({
      method: 'GET',
      url: '/api/v1/tenants/:tenant/clients/:name',
      access: manage,
      schema: { summary: 'One API client with its grants and secrets (never a secret itself)', tags: ['iam'], params: ClientParams, response: { 200: ClientOut } },
      handler: async ({ tenant, params }) => getClient(db, scopeOf(tenant), params.name),
    }),
    route({
      method: 'POST',
      url: '/api/v1/tenants/:tenant/clients/:name/rotate',
      access: manage,
      schema: {
        summary: 'Issue a new client secret (shown once); the old ones stay valid for the overlap (default 24h). Body optional: {"overlap"?, "expiresIn"?}',
        tags: ['iam'],
        params: ClientParams,
        optionalBody: RotateIn,
        response: {
          200: Type.Object({ ...SecretOut, previousSecrets: Type.Array(Type.Object({ id: Type.String(), expiresAt: Instant })) }),
        },
      },
      handler: async ({ tenant, params, body, auth, source }) => rotateClientSecret(db, auth, source, scopeOf(tenant), params.name, body ?? {}),
    }),
    route({
      method: 'DELETE',
      url: '/api/v1/tenants/:tenant/clients/:name',
      access: manage,
      status: 204,
      schema: { summary: 'Revoke an API client and all its secrets; its tokens stop working at once', tags: ['iam'], params: ClientParams },
      handler: async ({ tenant, params, auth, source }) => revokeClient(db, auth, source, scopeOf(tenant), params.name),
    }),
    route({
      method: 'POST',
      url: '/oauth/token',
      access: access.public,
      schema: {
        summary:
          'OAuth2 token endpoint, client credentials grant (RFC 6749 section 4.4): grant_type=client_credentials, client authenticated by HTTP Basic or client_id/client_secret in the body (form-encoded or JSON)',
        tags: ['iam'],
        response: { 200: Type.Object({ access_token: Type.String(), token_type: Type.Literal('Bearer'), expires_in: Type.Integer() }) },
        // HTTP Basic, or no header with the credentials in the body.
        security: [{ basic: [] }, {}],
      },
      // No body schema: RFC 6749 parameters (form or JSON) are checked by parseTokenRequest, whose
      // errors carry the OAuth2 `error` members clients look for; so the raw parsed body is read.
      handler: async ({ reply, headers, source }) => {
        const authorization = headers.authorization;
        const request = parseTokenRequest(reply.request.body, typeof authorization === 'string' ? authorization : undefined);
        // The caller is the client being authenticated, whatever session cookie rides along.
        return issueClientToken(db, iam.issuer, { ...source, actor: { type: 'anonymous', id: null, label: null, roles: [] } }, request);
      },
    }),
  ];
}
