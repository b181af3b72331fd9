import { Type } from '@sinclair/typebox';
import type { DbOrTrx } from '../../db/index.ts';
import { AccordError } from '../../errors/index.ts';
import { access, type RouteDefinition, route } from '../../http/index.ts';
import type { IamServices } from '../services.ts';
import { listSessions, revokeSession, revokeUserSessions } from './sessions.ts';
import { requireStanding } from '../users/standing.ts';
import { findUserByEmail, normaliseEmail } from '../users/users.ts';

const SessionOut = Type.Object({
  id: Type.String(),
  kind: Type.String(),
  stage: Type.Union([Type.String(), Type.Null()]),
  current: Type.Boolean(),
  createdAt: Type.String(),
  lastSeenAt: Type.String(),
  idleExpiresAt: Type.String(),
  absoluteExpiresAt: Type.String(),
  sourceIp: Type.Union([Type.String(), Type.Null()]),
  userAgent: Type.Union([Type.String(), Type.Null()]),
  authMethods: Type.Array(Type.String()),
});
const Uuid = Type.String({ format: 'uuid' });
const UserParams = Type.Object({ tenant: Type.String({ maxLength: 63 }), email: Type.String({ maxLength: 254 }) });

/** Listing and ending sessions: one's own, or (tenant admins) any user's of the tenant. */
export function sessionRoutes(iam: IamServices): RouteDefinition[] {
  const { db } = iam;
  const tenantUser = async (trx: DbOrTrx, tenantId: string, email: string) => {
    const u = await findUserByEmail(trx, tenantId, email);
    if (!u) throw new AccordError('IAM_USER_NOT_FOUND', { details: { email: normaliseEmail(email) } });
    return u;
  };
  return [
    route({
      method: 'GET',
      url: '/api/v1/auth/sessions',
      access: access.authenticated,
      schema: { summary: 'My live sessions', tags: ['iam'], response: { 200: Type.Array(SessionOut) } },
      handler: async ({ auth }) => {
        if (auth.kind !== 'user') throw new AccordError('IAM_WRONG_AUDIENCE', { message: 'API clients have no sessions.' });
        return (await listSessions(db, auth.principalId)).map((s) => ({ ...s, current: s.id === auth.sessionId }));
      },
    }),
    route({
      method: 'DELETE',
      url: '/api/v1/auth/sessions/:id',
      access: access.authenticated,
      status: 204,
      schema: { summary: 'End one of my sessions (e.g. a lost laptop)', tags: ['iam'], params: Type.Object({ id: Uuid }) },
      handler: async ({ auth, params, unit }) =>
        unit(async ({ trx, audit }) => {
          const own = await trx.selectFrom('accord.sessions').select('id').where('id', '=', params.id).where('user_id', '=', auth.principalId).where('revoked_at', 'is', null).executeTakeFirst();
          if (!own) throw new AccordError('IAM_SESSION_NOT_FOUND');
          await revokeSession(trx, params.id, 'revoked-by-owner');
          await audit({ tenantId: auth.tenantId, action: 'session.revoked', target: { type: 'session', id: params.id }, outcome: 'success', details: { by: 'owner' } });
        }),
    }),
    route({
      method: 'GET',
      url: '/api/v1/tenants/:tenant/users/:email/sessions',
      access: access.permission('user:manage', { tenantParam: 'tenant' }),
      schema: { summary: "A user's live sessions", tags: ['iam'], params: UserParams, response: { 200: Type.Array(SessionOut) } },
      handler: async ({ auth, tenant, params }) => {
        const user = await tenantUser(db, tenant.id, params.email);
        return (await listSessions(db, user.id)).map((s) => ({ ...s, current: s.id === auth.sessionId }));
      },
    }),
    route({
      method: 'DELETE',
      url: '/api/v1/tenants/:tenant/users/:email/sessions',
      access: access.permission('user:manage', { tenantParam: 'tenant' }),
      schema: {
        summary: "End a user's sessions: one (?id=) or all",
        tags: ['iam'],
        params: UserParams,
        querystring: Type.Object({ id: Type.Optional(Uuid) }, { additionalProperties: false }),
        response: { 200: Type.Object({ revoked: Type.Integer() }) },
      },
      handler: async ({ tenant, params, query, auth, unit }) => {
        const user = await tenantUser(db, tenant.id, params.email);
        return unit(async ({ trx, audit }) => {
          await requireStanding(trx, auth, { tenantId: tenant.id, tenantName: tenant.name }, { user: user.id });
          let revoked: number;
          if (query.id) {
            const s = await trx.selectFrom('accord.sessions').select('id').where('id', '=', query.id).where('user_id', '=', user.id).where('revoked_at', 'is', null).executeTakeFirst();
            if (!s) throw new AccordError('IAM_SESSION_NOT_FOUND');
            revoked = (await revokeSession(trx, s.id, 'revoked-by-admin')) ? 1 : 0;
          } else {
            revoked = await revokeUserSessions(trx, user.id, 'revoked-by-admin');
          }
          await audit({
            tenantId: tenant.id,
            action: 'session.revoked',
            target: query.id ? { type: 'session', id: query.id } : { type: 'user', id: user.id },
            outcome: 'success',
            details: { by: 'admin', user: user.email, revoked },
          });
          return { revoked };
        });
      },
    }),
  ];
}
