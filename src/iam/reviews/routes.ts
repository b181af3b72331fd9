import { type TSchema, Type } from '@sinclair/typebox';
import { access, type RouteDefinition, route } from '../../http/index.ts';
import type { IamServices } from '../services.ts';
import { scopeOf } from '../users/standing.ts';
import { closeReview, decideItem, getReview, listReviews, listTenantGrants, startReview } from './service.ts';

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
const DateTime = Type.String({ format: 'date-time' });
const TenantParams = Type.Object({ tenant: Type.String({ maxLength: 63 }) });
const ReviewParams = Type.Object({ tenant: Type.String({ maxLength: 63 }), id: Type.String({ format: 'uuid' }) });
const ItemParams = Type.Object({ tenant: Type.String({ maxLength: 63 }), id: Type.String({ format: 'uuid' }), itemId: Type.String({ format: 'uuid' }) });
const Kind = Type.Union([Type.Literal('role'), Type.Literal('app-role')]);
const PrincipalType = Type.Union([Type.Literal('user'), Type.Literal('client')]);
const Decision = Type.Union([Type.Literal('confirm'), Type.Literal('revoke')]);

const GrantOut = Type.Object({
  id: Type.String(),
  kind: Kind,
  principal: Type.Object({ type: PrincipalType, id: Type.String(), label: Type.String(), status: Type.String() }),
  role: Type.String(),
  app: Nullable(Type.String()),
  stage: Nullable(Type.String()),
  grantedAt: DateTime,
  grantedBy: Nullable(Type.String()),
  lastUsedAt: Nullable(DateTime),
});
const Counts = Type.Object({ items: Type.Integer(), confirmed: Type.Integer(), revoked: Type.Integer(), undecided: Type.Integer() });
const ReviewOut = Type.Object({
  id: Type.String(),
  name: Type.String(),
  startedBy: Type.String(),
  startedAt: DateTime,
  closedAt: Nullable(DateTime),
  closedBy: Nullable(Type.String()),
  counts: Counts,
});
const ItemOut = Type.Object({
  id: Type.String(),
  kind: Kind,
  grantId: Type.String(),
  principal: Type.Object({ type: PrincipalType, id: Type.String(), label: Type.String() }),
  role: Type.String(),
  app: Nullable(Type.String()),
  stage: Nullable(Type.String()),
  lastUsedAt: Nullable(DateTime),
  decision: Type.Union([Decision, Type.Null()]),
  decidedBy: Nullable(Type.String()),
  decidedAt: Nullable(DateTime),
  note: Nullable(Type.String()),
});

/** Access reviews (SOC 2 CC6.2/CC6.3): every grant with its last use, and review campaigns. */
export function reviewRoutes(iam: IamServices): RouteDefinition[] {
  const { db } = iam;
  const review = access.permission('access:review', { tenantParam: 'tenant' });
  return [
    route({
      method: 'GET',
      url: '/api/v1/tenants/:tenant/access-review',
      access: review,
      schema: { summary: 'Every grant on the tenant (users, API clients, app roles) with who granted it and its last use', tags: ['iam'], params: TenantParams, response: { 200: Type.Array(GrantOut) } },
      handler: async ({ tenant }) => {
        await iam.grantUsage.flush();
        return listTenantGrants(db, tenant.id);
      },
    }),
    route({
      method: 'POST',
      url: '/api/v1/tenants/:tenant/access-reviews',
      access: review,
      status: 201,
      schema: {
        summary: 'Start a review campaign: every current grant becomes an item to confirm or revoke',
        tags: ['iam'],
        params: TenantParams,
        body: Type.Object({ name: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false }),
        response: { 201: ReviewOut },
      },
      handler: async ({ tenant, body, auth, source }) => {
        await iam.grantUsage.flush();
        return startReview(db, auth, source, scopeOf(tenant), body.name);
      },
    }),
    route({
      method: 'GET',
      url: '/api/v1/tenants/:tenant/access-reviews',
      access: review,
      schema: { summary: "The tenant's review campaigns with their decision counts", tags: ['iam'], params: TenantParams, response: { 200: Type.Array(ReviewOut) } },
      handler: async ({ tenant }) => listReviews(db, scopeOf(tenant)),
    }),
    route({
      method: 'GET',
      url: '/api/v1/tenants/:tenant/access-reviews/:id',
      access: review,
      schema: {
        summary: 'A review campaign with every item and its decision (who, when, note)',
        tags: ['iam'],
        params: ReviewParams,
        response: { 200: Type.Composite([ReviewOut, Type.Object({ items: Type.Array(ItemOut) })]) },
      },
      handler: async ({ tenant, params }) => getReview(db, scopeOf(tenant), params.id),
    }),
    route({
      method: 'POST',
      url: '/api/v1/tenants/:tenant/access-reviews/:id/items/:itemId',
      access: review,
      schema: {
        summary: 'Confirm or revoke one reviewed grant (revoking deletes it now; decisions are final)',
        tags: ['iam'],
        params: ItemParams,
        body: Type.Object({ decision: Decision, note: Type.Optional(Type.String({ maxLength: 1000 })) }, { additionalProperties: false }),
        response: { 200: ItemOut },
      },
      handler: async ({ tenant, params, body, auth, source }) =>
        decideItem(db, auth, source, scopeOf(tenant), { reviewId: params.id, itemId: params.itemId, decision: body.decision, note: body.note }),
    }),
    route({
      method: 'POST',
      url: '/api/v1/tenants/:tenant/access-reviews/:id/close',
      access: review,
      schema: { summary: 'Close a review campaign; the answer counts the items left undecided', tags: ['iam'], params: ReviewParams, response: { 200: ReviewOut } },
      handler: async ({ tenant, params, auth, source }) => closeReview(db, auth, source, scopeOf(tenant), params.id),
    }),
  ];
}
