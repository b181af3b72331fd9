import { type Static, Type } from '@sinclair/typebox';
import { AccordError } from '../../errors/index.ts';
import { access, auditSource, parts, type RouteDefinition } from '../../http/index.ts';
import { getTenant, listStages } from '../../tenancy/index.ts';
import { clearSessionCookies } from '../sessions/cookies.ts';
import { type Audience, login, logout } from './login.ts';
import { caller, completeMfa, MfaIn, presentedRefresh, SignInOut, signInReply } from './routes.ts';
import type { IamServices } from '../services.ts';
import { refreshSession, sessionPolicy } from '../sessions/sessions.ts';

const StageParams = Type.Object({ tenant: Type.String({ maxLength: 63 }), stage: Type.String({ maxLength: 63 }) });
const Mode = Type.Optional(Type.Union([Type.Literal('bearer'), Type.Literal('cookie')]));

/**
 * End-user sign-in to one stage's apps: `/t/{tenant}/{stage}/auth/...`. The tenant's users sign
 * in with that stage's session policy; the tokens they get open only that stage's app routes,
 * never the control plane. Unknown tenants and stages answer like a wrong password would not:
 * they are public names in app URLs, so a plain 404 gives nothing away.
 */
export function endUserRoutes(iam: IamServices): RouteDefinition[] {
  const { db } = iam;
  const stageOf = async (tenant: string, stage: string): Promise<Audience & { kind: 'end-user' }> => {
    const t = await getTenant(db, tenant);
    const s = (await listStages(db, t.id)).find((x) => x.name === stage);
    if (!s) throw new AccordError('TENANCY_STAGE_NOT_FOUND', { details: { tenant, stage } });
    return { kind: 'end-user', tenantId: t.id, stageId: s.id };
  };
  return [
    {
      method: 'POST',
      url: '/t/:tenant/:stage/auth/login',
      access: access.public,
      schema: {
        summary: "End-user sign-in to a stage's apps (the stage's session policy applies)",
        tags: ['end-user'],
        params: StageParams,
        body: Type.Object({ email: Type.String({ format: 'email', maxLength: 254 }), password: Type.String({ minLength: 1, maxLength: 1024 }), mode: Mode }, { additionalProperties: false }),
        response: { 200: SignInOut },
      },
      handler: async (req, reply) => {
        const { params, body } = parts<{ tenant: string; stage: string }, { email: string; password: string; mode?: 'bearer' | 'cookie' }>(req);
        const audience = await stageOf(params.tenant, params.stage);
        return signInReply(reply, await login(iam.signIn, auditSource(req.meta), body, audience), body.mode);
      },
    },
    {
      method: 'POST',
      url: '/t/:tenant/:stage/auth/mfa',
      access: access.public,
      schema: {
        summary: 'Complete an end-user sign-in with a second factor',
        tags: ['end-user'],
        params: StageParams,
        body: MfaIn,
        response: { 200: SignInOut },
      },
      handler: async (req, reply) => {
        const { params, body } = parts<{ tenant: string; stage: string }, Parameters<typeof completeMfa>[2]>(req);
        const audience = await stageOf(params.tenant, params.stage);
        return signInReply(reply, await completeMfa(iam, auditSource(req.meta), body, { kind: 'end-user', stageId: audience.stageId }), body.mode);
      },
    },
    {
      method: 'POST',
      url: '/t/:tenant/:stage/auth/refresh',
      access: access.public,
      schema: {
        summary: 'Rotate an end-user refresh token (reuse revokes the session)',
        tags: ['end-user'],
        params: StageParams,
        response: { 200: SignInOut },
      },
      handler: async (req, reply) => {
        const { params } = parts<{ tenant: string; stage: string }>(req);
        const audience = await stageOf(params.tenant, params.stage);
        const presented = presentedRefresh(req);
        const { session, user } = await refreshSession(
          db,
          iam.issuer,
          auditSource(req.meta),
          {
            refreshToken: presented.token,
            policy: (trx) => sessionPolicy(trx, iam.defaults, { tenantId: audience.tenantId, stageId: audience.stageId }),
            ...(presented.csrf === undefined ? {} : { csrf: presented.csrf }),
          },
          { kind: 'end-user', stageId: audience.stageId },
        );
        return signInReply(reply, { status: 'signed-in', session, user }, presented.csrf === undefined ? 'bearer' : 'cookie');
      },
    },
    {
      method: 'POST',
      url: '/t/:tenant/:stage/auth/logout',
      access: access.endUser(),
      status: 204,
      schema: { summary: 'End the end-user session', tags: ['end-user'], params: StageParams },
      handler: async (req, reply) => {
        const auth = caller(req);
        if (auth.sessionId) await logout(db, auditSource(req.meta), auth.sessionId, auth.tenantId);
        if (auth.via === 'cookie') clearSessionCookies(reply);
        return reply.code(204).send();
      },
    },
    {
      method: 'GET',
      url: '/t/:tenant/:stage/auth/me',
      access: access.endUser(),
      schema: {
        summary: 'The signed-in end user and their app roles on this stage',
        tags: ['end-user'],
        params: StageParams,
        response: { 200: Type.Object({ userId: Type.String(), email: Type.String(), appRoles: Type.Array(Type.Object({ app: Type.String(), role: Type.String() })) }) },
      },
      handler: async (req) => {
        const auth = caller(req);
        const roles = await db
          .selectFrom('accord.app_role_grants')
          .select(['app', 'role'])
          .where('user_id', '=', auth.principalId)
          .where('stage_id', '=', auth.stageId as string)
          .orderBy('app')
          .orderBy('role')
          .execute();
        return { userId: auth.principalId, email: auth.label, appRoles: roles } satisfies Static<typeof EndUserMe>;
      },
    },
  ];
}

const EndUserMe = Type.Object({ userId: Type.String(), email: Type.String(), appRoles: Type.Array(Type.Object({ app: Type.String(), role: Type.String() })) });
