import { Type } from '@sinclair/typebox';
import type { Db } from '../db/index.ts';
import { access, type RouteDefinition, route, type ScopeStage, type ScopeTenant } from '../http/index.ts';
import { addRule, listRules, removeRule, type RuleScope, setStageSettings, stageSettings } from './store.ts';

const Quota = Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 1_000_000 }), windowSeconds: Type.Integer({ minimum: 1, maximum: 86_400 }) }, { additionalProperties: false });
const RuleIn = Type.Object(
  { action: Type.Union([Type.Literal('allow'), Type.Literal('deny')]), cidr: Type.String({ minLength: 1, maxLength: 64 }), note: Type.Optional(Type.String({ maxLength: 200 })) },
  { additionalProperties: false },
);
const RuleOut = Type.Object({ id: Type.String(), action: Type.String(), cidr: Type.String(), note: Type.String(), createdAt: Type.String() });
const Limits = Type.Object({ ip: Type.Optional(Quota), user: Type.Optional(Quota), client: Type.Optional(Quota), tenant: Type.Optional(Quota) });
const StageNetworkOut = Type.Object({ rules: Type.Array(RuleOut), rateLimits: Limits, effectiveRateLimits: Limits, corsOrigins: Type.Array(Type.String()) });
const StageParams = Type.Object({ tenant: Type.String({ maxLength: 63 }), stage: Type.String({ maxLength: 63 }) });
const RuleParams = Type.Object({ tenant: Type.String({ maxLength: 63 }), stage: Type.String({ maxLength: 63 }), rule: Type.String({ maxLength: 64 }) });

const stageScope = (tenant: ScopeTenant, stage: ScopeStage): RuleScope & { kind: 'stage' } => ({ kind: 'stage', tenantId: tenant.id, stageId: stage.id, label: `${tenant.name}/${stage.name}` });
const PLATFORM: RuleScope = { kind: 'platform' };

/**
 * The perimeter's API (NET-2): IP allow/deny lists of the control plane (operators) and of each
 * stage (its data plane and sign-in; the tenant's stage managers), and a stage's rate limits and
 * CORS origins. Every change is audited and bumps the version counter; `changed` makes it apply
 * on this node at once (the others follow within perimeterRefreshMilliseconds).
 */
export function perimeterRoutes(deps: { db: Db; platformLimits: () => Record<string, unknown>; changed: () => void }): RouteDefinition[] {
  const { db, changed } = deps;
  const stageRead = access.permission('stage:read', { tenantParam: 'tenant', stageParam: 'stage' });
  const stageManage = access.permission('stage:manage', { tenantParam: 'tenant', stageParam: 'stage' });
  return [
    route({
      method: 'GET',
      url: '/api/v1/network/rules',
      access: access.permission('platform:manage'),
      schema: { summary: "The control plane's address allow/deny list", tags: ['perimeter'], response: { 200: Type.Array(RuleOut) } },
      handler: async () => listRules(db, PLATFORM),
    }),
    route({
      method: 'POST',
      url: '/api/v1/network/rules',
      access: access.permission('platform:manage'),
      status: 201,
      schema: { summary: "Add an address or CIDR range to the control plane's allow or deny list", tags: ['perimeter'], body: RuleIn, response: { 201: RuleOut } },
      handler: async ({ body, source }) => {
        const r = await addRule(db, source, PLATFORM, body);
        changed();
        return r;
      },
    }),
    route({
      method: 'DELETE',
      url: '/api/v1/network/rules/:rule',
      access: access.permission('platform:manage'),
      schema: { summary: "Remove a rule (by id or CIDR) from the control plane's list", tags: ['perimeter'], params: Type.Object({ rule: Type.String({ maxLength: 64 }) }), response: { 200: RuleOut } },
      handler: async ({ params, source }) => {
        const r = await removeRule(db, source, PLATFORM, params.rule);
        changed();
        return r;
      },
    }),
    route({
      method: 'GET',
      url: '/api/v1/tenants/:tenant/stages/:stage/network',
      access: stageRead,
      schema: { summary: "A stage's address rules, rate limits and CORS origins", tags: ['perimeter'], params: StageParams, response: { 200: StageNetworkOut } },
      handler: async ({ tenant, stage }) => {
        const settings = await stageSettings(db, stage.id);
        return {
          rules: await listRules(db, stageScope(tenant, stage)),
          rateLimits: settings.rateLimits,
          effectiveRateLimits: { ...deps.platformLimits(), ...settings.rateLimits },
          corsOrigins: [...settings.corsOrigins],
        };
      },
    }),
    route({
      method: 'POST',
      url: '/api/v1/tenants/:tenant/stages/:stage/network/rules',
      access: stageManage,
      status: 201,
      schema: { summary: "Add an address or CIDR range to a stage's allow or deny list (its data plane and sign-in)", tags: ['perimeter'], params: StageParams, body: RuleIn, response: { 201: RuleOut } },
      handler: async ({ tenant, stage, body, source }) => {
        const r = await addRule(db, source, stageScope(tenant, stage), body);
        changed();
        return r;
      },
    }),
    route({
      method: 'DELETE',
      url: '/api/v1/tenants/:tenant/stages/:stage/network/rules/:rule',
      access: stageManage,
      schema: { summary: "Remove a rule (by id or CIDR) from a stage's list", tags: ['perimeter'], params: RuleParams, response: { 200: RuleOut } },
      handler: async ({ tenant, stage, params, source }) => {
        const r = await removeRule(db, source, stageScope(tenant, stage), params.rule);
        changed();
        return r;
      },
    }),
    route({
      method: 'PATCH',
      url: '/api/v1/tenants/:tenant/stages/:stage/network',
      access: stageManage,
      schema: {
        summary: "Set a stage's rate limits (a kind set to null takes the platform's again) and CORS origins",
        tags: ['perimeter'],
        params: StageParams,
        body: Type.Object(
          {
            rateLimits: Type.Optional(
              Type.Object(
                {
                  ip: Type.Optional(Type.Union([Quota, Type.Null()])),
                  user: Type.Optional(Type.Union([Quota, Type.Null()])),
                  client: Type.Optional(Type.Union([Quota, Type.Null()])),
                  tenant: Type.Optional(Type.Union([Quota, Type.Null()])),
                },
                { additionalProperties: false },
              ),
            ),
            corsOrigins: Type.Optional(Type.Array(Type.String({ maxLength: 300 }), { maxItems: 50 })),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ rateLimits: Limits, corsOrigins: Type.Array(Type.String()) }) },
      },
      handler: async ({ tenant, stage, body, source }) => {
        const merged = body.rateLimits ? { ...(await stageSettings(db, stage.id)).rateLimits, ...body.rateLimits } : undefined;
        const r = await setStageSettings(db, source, stageScope(tenant, stage), { rateLimits: merged, corsOrigins: body.corsOrigins });
        changed();
        return { rateLimits: r.rateLimits, corsOrigins: [...r.corsOrigins] };
      },
    }),
  ];
}
