import { type Static, Type } from '@sinclair/typebox';
import { access, type RouteDefinition, route, type ScopeStage, type ScopeTenant } from '../../http/index.ts';
import { clearSessionCookies } from '../sessions/cookies.ts';
import { presentedDevice } from './device.ts';
import { type Audience, login, logout } from './login.ts';
import { completeMfa, MfaIn, presentedRefresh, RefreshIn, SignInOut, signInReply } from './routes.ts';
import type { IamServices } from '../services.ts';
import { refreshSession, sessionPolicy } from '../sessions/sessions.ts';

const StageParams = Type.Object({ tenant: Type.String({ maxLength: 63 }), stage: Type.String({ maxLength: 63 }) });
const Mode = Type.Optional(Type.Union([Type.Literal('bearer'), Type.Literal('cookie')]));

/** The sign-in audience of the stage the path names (the route kit has looked both up). */
const stageAudience = (tenant: ScopeTenant, stage: ScopeStage): Audience & { kind: 'end-user' } => ({ kind: 'end-user', tenantId: tenant.id, stageId: stage.id });

/**
 * End-user sign-in to one stage's apps: `/t/{tenant}/{stage}/auth/...`. The tenant's users sign
 * in with that stage's session policy; the tokens they get open only that stage's app routes,
 * never the control plane. Unknown tenants and stages answer like a wrong password would not:
 * they are public names in app URLs, so a plain 404 gives nothing away.
 */
export function endUserRoutes(iam: IamServices): RouteDefinition[] {
  const { db } = iam;
  return [
    route({
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
      handler: async ({ tenant, stage, body, source, reply, headers }) =>
        signInReply(reply, await login(iam.signIn, source, { ...body, device: presentedDevice({ headers }) }, stageAudience(tenant, stage)), body.mode),
    }),
    route({
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
      handler: async ({ stage, body, source, reply }) => signInReply(reply, await completeMfa(iam, source, body, { kind: 'end-user', stageId: stage.id }), body.mode),
    }),
    route({
      method: 'POST',
      url: '/t/:tenant/:stage/auth/refresh',
      access: access.public,
      schema: {
        summary: 'Rotate an end-user refresh token (reuse revokes the session)',
        tags: ['end-user'],
        params: StageParams,
        optionalBody: RefreshIn,
        response: { 200: SignInOut },
      },
      handler: async ({ tenant, stage, body, headers, source, reply }) => {
        const presented = presentedRefresh(body, headers);
        const { session, user } = await refreshSession(
          db,
          iam.issuer,
          source,
          {
            refreshToken: presented.token,
            policy: (trx) => sessionPolicy(trx, iam.defaults, { tenantId: tenant.id, stageId: stage.id }),
            ...(presented.csrf === undefined ? {} : { csrf: presented.csrf }),
          },
          { kind: 'end-user', stageId: stage.id },
        );
        return signInReply(reply, { status: 'signed-in', session, user }, presented.csrf === undefined ? 'bearer' : 'cookie');
      },
    }),
    route({
      method: 'POST',
      url: '/t/:tenant/:stage/auth/logout',
      access: access.endUser(),
      status: 204,
      schema: { summary: 'End the end-user session', tags: ['end-user'], params: StageParams },
      handler: async ({ auth, source, reply }) => {
        if (auth.sessionId) await logout(db, source, auth.sessionId, auth.tenantId);
        if (auth.via === 'cookie') clearSessionCookies(reply);
      },
    }),
    route({
      method: 'GET',
      url: '/t/:tenant/:stage/auth/me',
      access: access.endUser(),
      schema: {
        summary: 'The signed-in end user and their app roles on this stage',
        tags: ['end-user'],
        params: StageParams,
        response: { 200: Type.Object({ userId: Type.String(), email: Type.String(), appRoles: Type.Array(Type.Object({ app: Type.String(), role: Type.String() })) }) },
      },
      // The authorizer admitted only a session of the path's stage: its stage is ctx.stage.
      handler: async ({ auth, stage }) => {
        const roles = await db
          .selectFrom('accord.app_role_grants')
          .select(['app', 'role'])
          .where('user_id', '=', auth.principalId)
          .where('stage_id', '=', stage.id)
          .orderBy('app')
          .orderBy('role')
          .execute();
        return { userId: auth.principalId, email: auth.label, appRoles: roles } satisfies Static<typeof EndUserMe>;
      },
    }),
  ];
}

const EndUserMe = Type.Object({ userId: Type.String(), email: Type.String(), appRoles: Type.Array(Type.Object({ app: Type.String(), role: Type.String() })) });
