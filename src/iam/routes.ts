import { Type } from '@sinclair/typebox';
import type { Config } from '../config/index.ts';
import type { Db } from '../db/index.ts';
import { AccordError } from '../errors/index.ts';
import { access, auditSource, parts, type RouteDefinition } from '../http/index.ts';
import { completeSetup } from './bootstrap.ts';
import { lockoutPolicyFromConfig } from './lockout.ts';
import { login, logout } from './login.ts';

const Email = Type.String({ format: 'email', maxLength: 254 });
const Password = Type.String({ minLength: 1, maxLength: 1024 });

const SessionOut = Type.Object({
  token: Type.String(),
  expiresAt: Type.String({ format: 'date-time' }),
  user: Type.Object({ id: Type.String(), email: Type.String(), tenant: Type.Union([Type.String(), Type.Null()]) }),
});

/** Setup, sign-in and sign-out of console users. */
export function iamRoutes(deps: { db: Db; config: Config }): RouteDefinition[] {
  const lockout = lockoutPolicyFromConfig(deps.config);
  const policy = {
    idleSeconds: deps.config.sessionIdleTimeoutSeconds,
    absoluteSeconds: deps.config.sessionAbsoluteTimeoutSeconds,
  };
  return [
    {
      method: 'POST',
      url: '/api/v1/setup',
      access: access.public,
      status: 201,
      schema: {
        summary: 'Create the first platform operator with the one-time setup token',
        tags: ['iam'],
        body: Type.Object({ token: Type.String({ minLength: 1, maxLength: 200 }), email: Email, password: Password }, { additionalProperties: false }),
        response: { 201: Type.Object({ userId: Type.String(), email: Type.String() }) },
      },
      handler: async (req) => {
        const { body } = parts<unknown, { token: string; email: string; password: string }>(req);
        return completeSetup(deps.db, auditSource(req.meta), body);
      },
    },
    {
      method: 'POST',
      url: '/api/v1/auth/login',
      access: access.public,
      schema: {
        summary: 'Sign in with email and password; returns a bearer session token',
        tags: ['iam'],
        body: Type.Object({ email: Email, password: Password, tenant: Type.Optional(Type.String({ maxLength: 63 })) }, { additionalProperties: false }),
        response: { 200: SessionOut },
      },
      handler: async (req) => {
        const { body } = parts<unknown, { email: string; password: string; tenant?: string }>(req);
        const s = await login(deps.db, auditSource(req.meta), policy, body, lockout);
        return { ...s, expiresAt: s.expiresAt.toISOString() };
      },
    },
    {
      method: 'POST',
      url: '/api/v1/auth/logout',
      access: access.authenticated,
      status: 204,
      schema: { summary: 'End the current session', tags: ['iam'] },
      handler: async (req, reply) => {
        const auth = req.meta.auth;
        if (!auth) throw new AccordError('IAM_UNAUTHENTICATED');
        await logout(deps.db, auditSource(req.meta), auth.sessionId, auth.tenantId);
        return reply.code(204).send();
      },
    },
    {
      method: 'GET',
      url: '/api/v1/auth/session',
      access: access.authenticated,
      schema: {
        summary: 'Who am I: the current user and their grants',
        tags: ['iam'],
        response: {
          200: Type.Object({
            userId: Type.String(),
            email: Type.String(),
            grants: Type.Array(
              Type.Object({ role: Type.String(), tenant: Type.Union([Type.String(), Type.Null()]), stage: Type.Union([Type.String(), Type.Null()]) }),
            ),
          }),
        },
      },
      handler: async (req) => {
        const auth = req.meta.auth;
        if (!auth) throw new AccordError('IAM_UNAUTHENTICATED');
        return {
          userId: auth.userId,
          email: auth.email,
          grants: auth.grants.map((g) => ({ role: g.role, tenant: g.tenantName, stage: g.stageName })),
        };
      },
    },
  ];
}
