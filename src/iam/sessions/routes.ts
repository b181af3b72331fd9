import { Type } from '@sinclair/typebox';
import { record } from '../../audit-chain/index.ts';
import { AccordError } from '../../errors/index.ts';
import { access, auditSource, parts, type RouteDefinition } from '../../http/index.ts';
import { getTenant } from '../../tenancy/index.ts';
import { caller } from '../sign-in/routes.ts';
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
  const tenantUser = async (tenantName: string, email: string) => {
    const t = await getTenant(db, tenantName);
    const u = await findUserByEmail(db, t.id, email);
    if (!u) throw new AccordError('IAM_USER_NOT_FOUND', { details: { email: normaliseEmail(email) } });
    return { tenant: t, user: u };
  };
  return [
    {
      method: 'GET',
      url: '/api/v1/auth/sessions',
      access: access.authenticated,
      schema: { summary: 'My live sessions', tags: ['iam'], response: { 200: Type.Array(SessionOut) } },
      handler: async (req) => {
        const auth = caller(req);
        if (auth.kind !== 'user') throw new AccordError('IAM_WRONG_AUDIENCE', { message: 'API clients have no sessions.' });
        return (await listSessions(db, auth.principalId)).map((s) => ({ ...s, current: s.id === auth.sessionId }));
      },
    },
    {
      method: 'DELETE',
      url: '/api/v1/auth/sessions/:id',
      access: access.authenticated,
      status: 204,
      schema: { summary: 'End one of my sessions (e.g. a lost laptop)', tags: ['iam'], params: Type.Object({ id: Uuid }) },
      handler: async (req, reply) => {
        const auth = caller(req);
        const { params } = parts<{ id: string }>(req);
        await db.transaction().execute(async (trx) => {
          const own = await trx.selectFrom('accord.sessions').select('id').where('id', '=', params.id).where('user_id', '=', auth.principalId).where('revoked_at', 'is', null).executeTakeFirst();
          if (!own) throw new AccordError('IAM_SESSION_NOT_FOUND');
          await revokeSession(trx, params.id, 'revoked-by-owner');
          await record(trx, auditSource(req.meta), { tenantId: auth.tenantId, action: 'session.revoked', target: { type: 'session', id: params.id }, outcome: 'success', details: { by: 'owner' } });
        });
        return reply.code(204).send();
      },
    },
    {
      method: 'GET',
      url: '/api/v1/tenants/:tenant/users/:email/sessions',
      access: access.permission('user:manage', { tenantParam: 'tenant' }),
      schema: { summary: "A user's live sessions", tags: ['iam'], params: UserParams, response: { 200: Type.Array(SessionOut) } },
      handler: async (req) => {
        const { params } = parts<{ tenant: string; email: string }>(req);
        const { user } = await tenantUser(params.tenant, params.email);
        const auth = caller(req);
        return (await listSessions(db, user.id)).map((s) => ({ ...s, current: s.id === auth.sessionId }));
      },
    },
    {
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
      handler: async (req) => {
        const { params, query } = parts<{ tenant: string; email: string }, unknown, { id?: string }>(req);
        const { tenant, user } = await tenantUser(params.tenant, params.email);
        return db.transaction().execute(async (trx) => {
          await requireStanding(trx, caller(req), { tenantId: tenant.id, tenantName: tenant.name }, { user: user.id });
          let revoked: number;
          if (query.id) {
            const s = await trx.selectFrom('accord.sessions').select('id').where('id', '=', query.id).where('user_id', '=', user.id).where('revoked_at', 'is', null).executeTakeFirst();
            if (!s) throw new AccordError('IAM_SESSION_NOT_FOUND');
            revoked = (await revokeSession(trx, s.id, 'revoked-by-admin')) ? 1 : 0;
          } else {
            revoked = await revokeUserSessions(trx, user.id, 'revoked-by-admin');
          }
          await record(trx, auditSource(req.meta), {
            tenantId: tenant.id,
            action: 'session.revoked',
            target: query.id ? { type: 'session', id: query.id } : { type: 'user', id: user.id },
            outcome: 'success',
            details: { by: 'admin', user: user.email, revoked },
          });
          return { revoked };
        });
      },
    },
  ];
}
