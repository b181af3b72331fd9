import { randomBytes } from 'node:crypto';
import { type Static, Type } from '@sinclair/typebox';
import type { AuditSource } from '../../audit-chain/index.ts';
import { AccordError } from '../../errors/index.ts';
import type { FastifyReply } from 'fastify';
import { access, type RouteDefinition, route, type ScopeTenant } from '../../http/index.ts';
import { refuse, unitOfWork } from '../../kernel/index.ts';
import type { IamServices } from '../services.ts';
import { readCookie } from '../sessions/cookies.ts';
import type { Audience, SignInResult } from '../sign-in/login.ts';
import { SignInOut, signInReply } from '../sign-in/routes.ts';
import { scopeOf } from '../users/standing.ts';
import { consumeFlow, FLOW_COOKIE, flowCookie, peekFlow, rememberAssertion, saveFlow } from './flows.ts';
import { ldapLogin, ldapTest } from './ldap.ts';
import { describeError, oidcCallback, oidcStart, oidcTest } from './oidc.ts';
import { addMapping, addProvider, getProvider, listProviders, type Provider, providerFor, removeMapping, removeProvider, setBuiltinSignIn } from './providers.ts';
import { samlCallback, samlMetadata, samlStart, samlTest } from './saml.ts';
import { type FederatedIdentity, federatedSignIn, federationFailed, federationFailure, FederationRefusal, resyncProvider } from './provisioning.ts';

const Name = Type.String({ pattern: '^[a-z][a-z0-9-]{0,62}$' });
const TenantParams = Type.Object({ tenant: Type.String({ maxLength: 63 }) });
const IdpParams = Type.Object({ tenant: Type.String({ maxLength: 63 }), idp: Type.String({ maxLength: 63 }) });
const StageIdpParams = Type.Object({ tenant: Type.String({ maxLength: 63 }), stage: Type.String({ maxLength: 63 }), idp: Type.String({ maxLength: 63 }) });
const Mode = Type.Optional(Type.Union([Type.Literal('bearer'), Type.Literal('cookie')]));
const StartQuery = Type.Object({ mode: Mode }, { additionalProperties: false });
const CallbackQuery = Type.Object(
  {
    code: Type.Optional(Type.String({ maxLength: 4096 })),
    state: Type.Optional(Type.String({ maxLength: 4096 })),
    iss: Type.Optional(Type.String({ maxLength: 2048 })),
    error: Type.Optional(Type.String({ maxLength: 256 })),
    error_description: Type.Optional(Type.String({ maxLength: 2048 })),
    session_state: Type.Optional(Type.String({ maxLength: 2048 })),
  },
  { additionalProperties: false },
);
const PasswordIn = Type.Object({ username: Type.String({ minLength: 1, maxLength: 256 }), password: Type.String({ minLength: 1, maxLength: 1024 }), mode: Mode }, { additionalProperties: false });

const Mapping = Type.Object({ id: Type.String(), group: Type.String(), kind: Type.String(), role: Type.String(), stage: Type.Union([Type.String(), Type.Null()]), app: Type.Union([Type.String(), Type.Null()]) });
const ProviderOut = Type.Object({
  name: Type.String(),
  kind: Type.String(),
  enabled: Type.Boolean(),
  console: Type.Boolean(),
  stages: Type.Array(Type.String()),
  settings: Type.Record(Type.String(), Type.Unknown()),
  secretSet: Type.Boolean(),
  createdAt: Type.String(),
  mappings: Type.Array(Mapping),
});
const TestOut = Type.Object({ ok: Type.Boolean(), checks: Type.Array(Type.Object({ name: Type.String(), ok: Type.Boolean(), detail: Type.String() })) });

/** The callback URL of a provider: one per provider, whichever audience the flow is for. */
export const oidcRedirectUri = (origin: string, tenant: string, idp: string) => `${origin}/api/v1/federation/${tenant}/${idp}/oidc/callback`;

/** A refused federated sign-in: the precise reason to the audit trail, the generic error to the user. */
function refused(iam: IamServices, source: AuditSource, p: Pick<Provider, 'name' | 'kind' | 'tenantId'>, reason: string): Promise<never> {
  const [code, ...rest] = reason.split(': ');
  return refuse(iam.db, source, federationFailed(), federationFailure(p, code as string, rest.length > 0 ? { cause: rest.join(': ').slice(0, 500) } : {}));
}

/**
 * The common end of the sign-in routes: the identity the protocol produced, provisioned and
 * signed in within one unit of work; a refusal there rolls back and is recorded on its own.
 */
async function finish(iam: IamServices, source: AuditSource, p: Provider, identity: FederatedIdentity, audience: Audience): Promise<SignInResult> {
  try {
    return await unitOfWork(iam.db, source, (w) => federatedSignIn(w, iam.signIn, p, identity, audience));
  } catch (err) {
    if (err instanceof FederationRefusal) return refused(iam, source, p, `${err.reason}`);
    throw err;
  }
}

/** Starts a browser flow (OIDC) for an audience: the redirect to the provider, the flow cookie. */
async function start(iam: IamServices, ctx: { reply: FastifyReply; source: AuditSource }, tenant: ScopeTenant, idpName: string, audience: Audience, mode: 'bearer' | 'cookie' | undefined) {
  const p = await providerFor(iam.db, tenant, idpName, audience);
  if (p.kind === 'ldap') throw new AccordError('IAM_IDP_NOT_FOUND', { message: 'An LDAP provider signs in with POST (username and password), not a redirect.', details: { name: idpName } });
  let s: { url: string; state: string; nonce: string; codeVerifier: string };
  try {
    if (p.kind === 'saml') {
      // The flow's state travels as RelayState; the AuthnRequest id is kept where OIDC keeps its nonce.
      const state = randomBytes(32).toString('base64url');
      const r = await samlStart(p, iam.publicOrigin, state);
      s = { url: r.url, state, nonce: r.requestId, codeVerifier: '' };
    } else s = await oidcStart(iam.key, p, oidcRedirectUri(iam.publicOrigin, tenant.name, p.name));
  } catch (err) {
    return refused(iam, ctx.source, p, `provider-unreachable: ${describeError(err)}`);
  }
  await unitOfWork(iam.db, ctx.source, async ({ trx, audit }) => {
    await saveFlow(trx, { idpId: p.id, state: s.state, nonce: s.nonce, codeVerifier: s.codeVerifier, audience, mode: mode ?? 'cookie' });
    await audit({ tenantId: p.tenantId, action: 'auth.federated.started', target: { type: 'identity-provider', id: p.id }, outcome: 'success', details: { idp: p.name, kind: p.kind, audience: audience.kind } });
  });
  ctx.reply.header('set-cookie', flowCookie(s.state));
  return ctx.reply.redirect(s.url, 302);
}

async function passwordSignIn(iam: IamServices, source: AuditSource, tenant: ScopeTenant, idpName: string, audience: Audience, body: Static<typeof PasswordIn>) {
  const p = await providerFor(iam.db, tenant, idpName, audience);
  if (p.kind !== 'ldap') throw new AccordError('IAM_IDP_NOT_FOUND', { message: 'Only LDAP providers take a username and password here.', details: { name: idpName } });
  let identity: FederatedIdentity;
  try {
    identity = await ldapLogin(iam.key, p, body.username, body.password);
  } catch (err) {
    if (err instanceof FederationRefusal) return refused(iam, source, p, err.reason);
    throw err;
  }
  return finish(iam, source, p, identity, audience);
}

/** Identity-provider administration and the federated sign-in routes (console and end users). */
export function federationRoutes(iam: IamServices): RouteDefinition[] {
  const { db } = iam;
  return [
    route({
      method: 'GET',
      url: '/api/v1/tenants/:tenant/idps',
      access: access.permission('tenant:read', { tenantParam: 'tenant' }),
      schema: { summary: "The tenant's identity providers (never their secrets) and group mappings", tags: ['federation'], params: TenantParams, response: { 200: Type.Object({ providers: Type.Array(ProviderOut) }) } },
      handler: async ({ tenant }) => ({ providers: await listProviders(db, scopeOf(tenant)) }),
    }),
    route({
      method: 'POST',
      url: '/api/v1/tenants/:tenant/idps',
      access: access.permission('idp:manage', { tenantParam: 'tenant' }),
      status: 201,
      schema: {
        summary: 'Add an identity provider (OIDC, SAML or LDAP), attached to the console and/or stages',
        tags: ['federation'],
        params: TenantParams,
        body: Type.Object(
          {
            name: Name,
            kind: Type.Union([Type.Literal('oidc'), Type.Literal('saml'), Type.Literal('ldap')]),
            settings: Type.Record(Type.String(), Type.Unknown()),
            secret: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
            console: Type.Optional(Type.Boolean()),
            stages: Type.Optional(Type.Array(Type.String({ maxLength: 63 }), { maxItems: 50 })),
          },
          { additionalProperties: false },
        ),
        response: { 201: ProviderOut },
      },
      handler: async ({ tenant, body, source }) => addProvider(db, iam.key, source, scopeOf(tenant), body),
    }),
    route({
      method: 'DELETE',
      url: '/api/v1/tenants/:tenant/idps/:idp',
      access: access.permission('idp:manage', { tenantParam: 'tenant' }),
      status: 204,
      schema: { summary: 'Remove an identity provider, its mappings and the grants they made', tags: ['federation'], params: IdpParams },
      handler: async ({ tenant, params, source }) => removeProvider(db, source, scopeOf(tenant), params.idp),
    }),
    route({
      method: 'POST',
      url: '/api/v1/tenants/:tenant/idps/:idp/test',
      access: access.permission('idp:manage', { tenantParam: 'tenant' }),
      schema: { summary: 'Check that an identity provider answers and is configured right (discovery, keys, TLS, bind)', tags: ['federation'], params: IdpParams, response: { 200: TestOut } },
      handler: async ({ tenant, params, source }) => {
        const p = await getProvider(db, tenant, params.idp);
        const result = p.kind === 'oidc' ? await oidcTest(iam.key, p) : p.kind === 'ldap' ? await ldapTest(iam.key, p) : await samlTest(p);
        await unitOfWork(db, source, ({ audit }) =>
          audit({ tenantId: p.tenantId, action: 'idp.tested', target: { type: 'identity-provider', id: p.id }, outcome: result.ok ? 'success' : 'failure', details: { idp: p.name, checks: result.checks } }),
        );
        return result;
      },
    }),
    route({
      method: 'POST',
      url: '/api/v1/tenants/:tenant/idps/:idp/mappings',
      access: access.permission('idp:manage', { tenantParam: 'tenant' }),
      status: 201,
      schema: {
        summary: 'Map an IdP group to a role (tenant-wide or one stage) or to an app role on a stage',
        tags: ['federation'],
        params: IdpParams,
        body: Type.Object(
          {
            group: Type.String({ minLength: 1, maxLength: 256 }),
            role: Type.Optional(Type.String({ minLength: 1, maxLength: 63 })),
            stage: Type.Optional(Type.String({ maxLength: 63 })),
            app: Type.Optional(Type.String({ maxLength: 63 })),
            appRole: Type.Optional(Type.String({ maxLength: 63 })),
          },
          { additionalProperties: false },
        ),
        response: { 201: Mapping },
      },
      handler: async ({ tenant, params, body, auth, source }) => addMapping(db, auth, source, scopeOf(tenant), params.idp, body),
    }),
    route({
      method: 'DELETE',
      url: '/api/v1/tenants/:tenant/idps/:idp/mappings/:mapping',
      access: access.permission('idp:manage', { tenantParam: 'tenant' }),
      status: 204,
      schema: { summary: 'Remove a group mapping (its grants go at the next sign-in or re-sync)', tags: ['federation'], params: Type.Object({ tenant: Type.String({ maxLength: 63 }), idp: Type.String({ maxLength: 63 }), mapping: Type.String({ format: 'uuid' }) }) },
      handler: async ({ tenant, params, auth, source }) => removeMapping(db, auth, source, scopeOf(tenant), params.idp, params.mapping),
    }),
    route({
      method: 'POST',
      url: '/api/v1/tenants/:tenant/idps/:idp/resync',
      access: access.permission('idp:manage', { tenantParam: 'tenant' }),
      schema: {
        summary: "Re-apply the provider's group mappings now to the groups last seen for its users (or one user)",
        tags: ['federation'],
        params: IdpParams,
        optionalBody: Type.Object({ user: Type.Optional(Type.String({ format: 'email', maxLength: 254 })) }, { additionalProperties: false }),
        response: { 200: Type.Object({ users: Type.Array(Type.Object({ email: Type.String(), roles: Type.Array(Type.String()), added: Type.Array(Type.String()), removed: Type.Array(Type.String()) })) }) },
      },
      handler: async ({ tenant, params, body, source }) =>
        unitOfWork(db, source, async ({ trx, audit }) => {
          const p = await getProvider(trx, tenant, params.idp);
          const out = await resyncProvider(trx, p, body?.user);
          for (const u of out) {
            if (u.sync.added.length + u.sync.removed.length === 0) continue;
            await audit({ tenantId: p.tenantId, action: 'idp.resynced', target: { type: 'user', id: u.userId }, outcome: 'success', details: { idp: p.name, roles: u.sync.roles, added: u.sync.added, removed: u.sync.removed } });
          }
          return { users: out.map((u) => ({ email: u.email, roles: [...u.sync.roles], added: [...u.sync.added], removed: [...u.sync.removed] })) };
        }),
    }),
    route({
      method: 'PUT',
      url: '/api/v1/tenants/:tenant/builtin-sign-in',
      access: access.permission('tenant:manage', { tenantParam: 'tenant' }),
      status: 204,
      schema: {
        summary: "Turn password sign-in off (or on) for the tenant's console users or one stage's end users",
        tags: ['federation'],
        params: TenantParams,
        body: Type.Object({ enabled: Type.Boolean(), stage: Type.Optional(Type.String({ maxLength: 63 })) }, { additionalProperties: false }),
      },
      handler: async ({ tenant, body, source }) => {
        let stage: { id: string; name: string } | undefined;
        if (body.stage) {
          const row = await db.selectFrom('accord.stages').select(['id', 'name']).where('tenant_id', '=', tenant.id).where('name', '=', body.stage).executeTakeFirst();
          if (!row) throw new AccordError('TENANCY_STAGE_NOT_FOUND', { details: { tenant: tenant.name, stage: body.stage } });
          stage = row;
        }
        await setBuiltinSignIn(db, source, scopeOf(tenant), { stage, disabled: !body.enabled });
      },
    }),

    // Sign-in: console users of the tenant.
    route({
      method: 'GET',
      url: '/api/v1/federation/:tenant/:idp/login',
      access: access.public,
      schema: { summary: "Console sign-in through a tenant's identity provider: redirects to it", tags: ['federation'], params: IdpParams, querystring: StartQuery },
      handler: async (ctx) => start(iam, ctx, ctx.tenant, ctx.params.idp, { kind: 'console' }, ctx.query.mode),
    }),
    route({
      method: 'POST',
      url: '/api/v1/federation/:tenant/:idp/login',
      access: access.public,
      schema: { summary: 'Console sign-in with a directory (LDAP) username and password', tags: ['federation'], params: IdpParams, body: PasswordIn, response: { 200: SignInOut } },
      handler: async ({ tenant, params, body, source, reply }) => signInReply(reply, await passwordSignIn(iam, source, tenant, params.idp, { kind: 'console' }, body), body.mode),
    }),
    // Sign-in: end users of one stage.
    route({
      method: 'GET',
      url: '/t/:tenant/:stage/auth/idp/:idp/login',
      access: access.public,
      schema: { summary: "End-user sign-in to a stage's apps through an identity provider: redirects to it", tags: ['end-user'], params: StageIdpParams, querystring: StartQuery },
      handler: async (ctx) => start(iam, ctx, ctx.tenant, ctx.params.idp, { kind: 'end-user', tenantId: ctx.tenant.id, stageId: ctx.stage.id }, ctx.query.mode),
    }),
    route({
      method: 'POST',
      url: '/t/:tenant/:stage/auth/idp/:idp/login',
      access: access.public,
      schema: { summary: 'End-user sign-in with a directory (LDAP) username and password', tags: ['end-user'], params: StageIdpParams, body: PasswordIn, response: { 200: SignInOut } },
      handler: async ({ tenant, stage, params, body, source, reply }) =>
        signInReply(reply, await passwordSignIn(iam, source, tenant, params.idp, { kind: 'end-user', tenantId: tenant.id, stageId: stage.id }, body), body.mode),
    }),
    route({
      method: 'GET',
      url: '/api/v1/federation/:tenant/:idp/oidc/callback',
      access: access.public,
      schema: { summary: 'OpenID Connect redirect URI: completes the sign-in the flow was started for', tags: ['federation'], params: IdpParams, querystring: CallbackQuery, response: { 200: SignInOut } },
      handler: async ({ tenant, params, query, headers, source, reply }) => {
        const p = await getProvider(db, tenant, params.idp);
        if (p.kind !== 'oidc') throw new AccordError('IAM_IDP_NOT_FOUND', { details: { name: params.idp } });
        let flow: Awaited<ReturnType<typeof consumeFlow>>;
        try {
          flow = await unitOfWork(db, source, ({ trx }) => consumeFlow(trx, p.id, query.state, readCookie({ headers }, FLOW_COOKIE)));
        } catch (err) {
          if (err instanceof FederationRefusal) return refused(iam, source, p, err.reason);
          throw err;
        }
        if (query.error) return refused(iam, source, p, `provider-error: ${query.error}${query.error_description ? ` (${query.error_description})` : ''}`);
        // Still enabled and attached where the flow leads?
        try {
          await providerFor(db, tenant, p.name, flow.audience);
        } catch {
          return refused(iam, source, p, 'provider-not-attached');
        }
        const current = new URL(reply.request.url, iam.publicOrigin);
        const callbackUrl = new URL(oidcRedirectUri(iam.publicOrigin, tenant.name, p.name));
        callbackUrl.search = current.search;
        let identity: FederatedIdentity;
        try {
          identity = await oidcCallback(iam.key, p, callbackUrl, { state: query.state as string, nonce: flow.nonce, codeVerifier: flow.codeVerifier });
        } catch (err) {
          if (err instanceof FederationRefusal) return refused(iam, source, p, err.reason);
          throw err;
        }
        const result = await finish(iam, source, p, identity, flow.audience);
        // The flow cookie has done its job (cookie mode replaces it with the session cookies).
        if (flow.mode === 'bearer') reply.header('set-cookie', flowCookie('', 0));
        return signInReply(reply, result, flow.mode);
      },
    }),
    route({
      method: 'GET',
      url: '/api/v1/federation/:tenant/:idp/saml/metadata',
      access: access.public,
      schema: { summary: "SAML service-provider metadata of a tenant's SAML provider (entity id, ACS, signed assertions wanted)", tags: ['federation'], params: IdpParams },
      handler: async ({ tenant, params, reply }) => {
        const p = await getProvider(db, tenant, params.idp);
        if (p.kind !== 'saml') throw new AccordError('IAM_IDP_NOT_FOUND', { details: { name: params.idp } });
        return reply.type('application/samlmetadata+xml').send(samlMetadata(p, iam.publicOrigin));
      },
    }),
    route({
      method: 'POST',
      url: SAML_ACS_ROUTE,
      access: access.public,
      schema: {
        summary: 'SAML assertion consumer service (HTTP-POST binding): completes the sign-in the flow was started for',
        tags: ['federation'],
        params: IdpParams,
        body: Type.Object({ SAMLResponse: Type.String({ minLength: 1, maxLength: 200_000 }), RelayState: Type.Optional(Type.String({ maxLength: 400 })) }, { additionalProperties: false }),
        response: { 200: SignInOut },
      },
      handler: async ({ tenant, params, body, headers, source, reply }) => {
        const p = await getProvider(db, tenant, params.idp);
        if (p.kind !== 'saml') throw new AccordError('IAM_IDP_NOT_FOUND', { details: { name: params.idp } });
        let flow: Awaited<ReturnType<typeof consumeFlow>>;
        let identity: FederatedIdentity;
        try {
          // Check the response against the request it claims to answer, then spend the assertion
          // id (a replay is refused even where the flow is gone), then the browser-bound flow.
          const { requestId } = await peekFlow(db, p.id, body.RelayState);
          const assertion = await samlCallback(p, iam.publicOrigin, body.SAMLResponse, requestId);
          await unitOfWork(db, source, ({ trx }) => rememberAssertion(trx, p.id, assertion.assertionId, assertion.expiresAt));
          flow = await unitOfWork(db, source, ({ trx }) => consumeFlow(trx, p.id, body.RelayState, readCookie({ headers }, FLOW_COOKIE)));
          identity = assertion.identity;
        } catch (err) {
          if (err instanceof FederationRefusal) return refused(iam, source, p, err.reason);
          throw err;
        }
        try {
          await providerFor(db, tenant, p.name, flow.audience);
        } catch {
          return refused(iam, source, p, 'provider-not-attached');
        }
        const result = await finish(iam, source, p, identity, flow.audience);
        if (flow.mode === 'bearer') reply.header('set-cookie', flowCookie('', 0));
        return signInReply(reply, result, flow.mode);
      },
    }),
  ];
}

/** The ACS route's URL pattern: the one place besides OAuth2 where a form-encoded body is accepted. */
export const SAML_ACS_ROUTE = '/api/v1/federation/:tenant/:idp/saml/acs';
