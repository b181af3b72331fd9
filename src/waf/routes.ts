// The firewall's API: a stage's settings, its rule exclusions, its security events.
import { Type } from '@sinclair/typebox';
import type { Db } from '../db/index.ts';
import { AccordError } from '../errors/index.ts';
import { access, type RouteDefinition, route } from '../http/index.ts';
import { listEvents } from './events.ts';
import { readStageSettings, type WafSettingsCache } from './settings.ts';

const StageParams = Type.Object({ tenant: Type.String(), stage: Type.String() });
const Mode = Type.Union([Type.Literal('off'), Type.Literal('detect'), Type.Literal('block')]);
const SettingsOut = Type.Object({ mode: Mode, paranoiaLevel: Type.Integer(), threshold: Type.Integer() });
const ExclusionOut = Type.Object({
  id: Type.String(),
  ruleId: Type.Integer(),
  field: Type.String(),
  justification: Type.String(),
  expiresAt: Type.String(),
  createdAt: Type.String(),
  active: Type.Boolean(),
});
const MatchOut = Type.Object({ ruleId: Type.Integer(), category: Type.String(), score: Type.Integer(), field: Type.String(), excerpt: Type.String() });
const EventOut = Type.Object({
  reference: Type.String(),
  at: Type.String(),
  mode: Type.String(),
  blocked: Type.Boolean(),
  kind: Type.String(),
  requestId: Type.String(),
  method: Type.String(),
  route: Type.String(),
  score: Type.Integer(),
  paranoiaLevel: Type.Integer(),
  ruleIds: Type.Array(Type.Integer()),
  categories: Type.Record(Type.String(), Type.Integer()),
  fields: Type.Array(Type.String()),
  matches: Type.Array(MatchOut),
});

const YEAR_MS = 366 * 24 * 3600 * 1000;

/** The WAF routes; `ruleIds` are the ids the loaded rule set has (an exclusion must name one). */
export function wafRoutes(deps: { db: Db; settings: WafSettingsCache; ruleIds: ReadonlySet<number>; now?: () => Date }): RouteDefinition[] {
  const { db } = deps;
  const now = deps.now ?? (() => new Date());
  const base = '/api/v1/tenants/:tenant/stages/:stage/waf';
  return [
    route({
      method: 'GET',
      url: base,
      access: access.permission('stage:read', { tenantParam: 'tenant', stageParam: 'stage' }),
      schema: { summary: "The stage's firewall settings", tags: ['waf'], params: StageParams, response: { 200: SettingsOut } },
      handler: async ({ stage }) => readStageSettings(db, stage.id),
    }),
    route({
      method: 'PATCH',
      url: base,
      access: access.permission('tenant:manage', { tenantParam: 'tenant', stageParam: 'stage' }),
      schema: {
        summary: "Change the stage's firewall mode, paranoia level or threshold",
        tags: ['waf'],
        params: StageParams,
        body: Type.Object(
          { mode: Type.Optional(Mode), paranoiaLevel: Type.Optional(Type.Integer()), threshold: Type.Optional(Type.Integer()) },
          { additionalProperties: false, minProperties: 1 },
        ),
        response: { 200: SettingsOut },
      },
      handler: async ({ tenant, stage, body, unit }) => {
        if (body.paranoiaLevel !== undefined && (body.paranoiaLevel < 1 || body.paranoiaLevel > 4)) throw new AccordError('WAF_SETTINGS_INVALID', { message: 'The paranoia level is 1, 2, 3 or 4.', details: { field: 'paranoiaLevel' } });
        if (body.threshold !== undefined && (body.threshold < 1 || body.threshold > 1000)) throw new AccordError('WAF_SETTINGS_INVALID', { message: 'The threshold is between 1 and 1000.', details: { field: 'threshold' } });
        const result = await unit(async ({ trx, audit }) => {
          const before = await readStageSettings(trx, stage.id);
          const next = { mode: body.mode ?? before.mode, paranoiaLevel: body.paranoiaLevel ?? before.paranoiaLevel, threshold: body.threshold ?? before.threshold };
          await trx
            .insertInto('accord.waf_settings')
            .values({ stage_id: stage.id, tenant_id: tenant.id, mode: next.mode, paranoia_level: next.paranoiaLevel, threshold: next.threshold })
            .onConflict((oc) => oc.column('stage_id').doUpdateSet({ mode: next.mode, paranoia_level: next.paranoiaLevel, threshold: next.threshold, updated_at: now() }))
            .execute();
          await audit({ tenantId: tenant.id, action: 'waf.settings.changed', target: { type: 'stage', id: stage.id }, outcome: 'success', details: { stage: stage.name, before, after: next } });
          return next;
        });
        deps.settings.invalidate();
        return result;
      },
    }),
    route({
      method: 'GET',
      url: `${base}/exclusions`,
      access: access.permission('stage:read', { tenantParam: 'tenant', stageParam: 'stage' }),
      schema: { summary: "The stage's rule exclusions (expired ones too, marked inactive)", tags: ['waf'], params: StageParams, response: { 200: Type.Array(ExclusionOut) } },
      handler: async ({ stage }) => {
        const rows = await db.selectFrom('accord.waf_exclusions').selectAll().where('stage_id', '=', stage.id).where('removed_at', 'is', null).orderBy('created_at').execute();
        const t = now();
        return rows.map((r) => ({ id: r.id, ruleId: r.rule_id, field: r.field, justification: r.justification, expiresAt: r.expires_at.toISOString(), createdAt: r.created_at.toISOString(), active: r.expires_at > t }));
      },
    }),
    route({
      method: 'POST',
      url: `${base}/exclusions`,
      access: access.permission('tenant:manage', { tenantParam: 'tenant', stageParam: 'stage' }),
      status: 201,
      schema: {
        summary: 'Exclude one rule from one field (or every field: "*"), with a justification and an expiry',
        tags: ['waf'],
        params: StageParams,
        body: Type.Object(
          {
            ruleId: Type.Integer(),
            field: Type.String({ minLength: 1, maxLength: 200 }),
            justification: Type.String({ minLength: 1, maxLength: 1000 }),
            expiresAt: Type.String({ format: 'date-time' }),
          },
          { additionalProperties: false },
        ),
        response: { 201: ExclusionOut },
      },
      handler: async ({ tenant, stage, body, unit }) => {
        if (!deps.ruleIds.has(body.ruleId)) throw new AccordError('WAF_SETTINGS_INVALID', { message: `The rule set has no rule ${body.ruleId}.`, details: { field: 'ruleId' } });
        const expires = new Date(body.expiresAt);
        const t = now();
        if (!(expires > t) || expires.getTime() - t.getTime() > YEAR_MS) throw new AccordError('WAF_SETTINGS_INVALID', { message: 'The expiry must be in the future and at most a year ahead.', details: { field: 'expiresAt' } });
        const row = await unit(async ({ trx, audit }) => {
          const r = await trx
            .insertInto('accord.waf_exclusions')
            .values({ tenant_id: tenant.id, stage_id: stage.id, rule_id: body.ruleId, field: body.field, justification: body.justification, expires_at: expires })
            .returningAll()
            .executeTakeFirstOrThrow();
          await audit({
            tenantId: tenant.id,
            action: 'waf.exclusion.added',
            target: { type: 'waf-exclusion', id: r.id },
            outcome: 'success',
            details: { stage: stage.name, ruleId: body.ruleId, field: body.field, justification: body.justification, expiresAt: expires.toISOString() },
          });
          return r;
        });
        deps.settings.invalidate();
        return { id: row.id, ruleId: row.rule_id, field: row.field, justification: row.justification, expiresAt: row.expires_at.toISOString(), createdAt: row.created_at.toISOString(), active: true };
      },
    }),
    route({
      method: 'DELETE',
      url: `${base}/exclusions/:id`,
      access: access.permission('tenant:manage', { tenantParam: 'tenant', stageParam: 'stage' }),
      status: 204,
      schema: { summary: 'Remove a rule exclusion (it stays in the history)', tags: ['waf'], params: Type.Object({ tenant: Type.String(), stage: Type.String(), id: Type.String({ format: 'uuid' }) }) },
      handler: async ({ tenant, stage, params, unit }) => {
        await unit(async ({ trx, audit, refuse }) => {
          const r = await trx.updateTable('accord.waf_exclusions').set({ removed_at: now() }).where('id', '=', params.id).where('stage_id', '=', stage.id).where('removed_at', 'is', null).returning(['id', 'rule_id', 'field']).executeTakeFirst();
          if (!r) return refuse(new AccordError('WAF_EXCLUSION_NOT_FOUND'));
          await audit({ tenantId: tenant.id, action: 'waf.exclusion.removed', target: { type: 'waf-exclusion', id: r.id }, outcome: 'success', details: { stage: stage.name, ruleId: r.rule_id, field: r.field } });
        });
        deps.settings.invalidate();
      },
    }),
    route({
      method: 'GET',
      url: `${base}/events`,
      access: access.permission('security:read', { tenantParam: 'tenant', stageParam: 'stage' }),
      schema: {
        summary: "The stage's firewall detections, newest first",
        tags: ['waf'],
        params: StageParams,
        querystring: Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })), reference: Type.Optional(Type.String({ format: 'uuid' })) }, { additionalProperties: false }),
        response: { 200: Type.Array(EventOut) },
      },
      handler: async ({ tenant, stage, query }) => listEvents(db, tenant.id, stage.id, query.limit ?? 100, query.reference),
    }),
  ];
}
