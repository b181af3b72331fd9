import { Type } from '@sinclair/typebox';
import type { DbOrTrx } from '../../db/index.ts';
import { AccordError } from '../../errors/index.ts';
import { access, type RouteDefinition, route } from '../../http/index.ts';
import { rolePermissions } from '../roles/resolve.ts';
import type { IamServices } from '../services.ts';

// ODC's bounds for session policy (1 hour to 45 days absolute); idle may be shorter, not under 5 min.
export const POLICY_LIMITS = Object.freeze({ idleMin: 300, absoluteMin: 3600, max: 45 * 86400 });

const Seconds = Type.Union([Type.Integer({ minimum: 1, maximum: 10 * 365 * 86400 }), Type.Null()]);
const TenantPolicyOut = Type.Object({
  requireMfa: Type.Boolean(),
  mfaRequiredRoles: Type.Array(Type.String()),
  sessionIdleSeconds: Type.Integer(),
  sessionAbsoluteSeconds: Type.Integer(),
  /** Whether the values are the tenant's own or the platform defaults. */
  sessionFromDefaults: Type.Boolean(),
});
const StagePolicyOut = Type.Object({ sessionIdleSeconds: Type.Integer(), sessionAbsoluteSeconds: Type.Integer(), sessionFromDefaults: Type.Boolean() });

/** Checks a session policy change against the limits, with the effective values after it. */
function checkSessionPolicy(idle: number, absolute: number): void {
  const problems: string[] = [];
  if (idle < POLICY_LIMITS.idleMin || idle > POLICY_LIMITS.max) problems.push(`idle timeout must be between ${POLICY_LIMITS.idleMin} s and 45 days`);
  if (absolute < POLICY_LIMITS.absoluteMin || absolute > POLICY_LIMITS.max) problems.push('absolute timeout must be between 1 hour and 45 days');
  if (idle > absolute) problems.push('idle timeout cannot exceed the absolute timeout');
  if (problems.length > 0) throw new AccordError('IAM_POLICY_INVALID', { message: `The policy is not valid: ${problems.join('; ')}.`, details: { problems } });
}

async function checkRoles(db: DbOrTrx, tenantId: string, roles: readonly string[]): Promise<void> {
  for (const r of roles) await rolePermissions(db, tenantId, r);
}

/** Per-tenant MFA and console session policy; per-stage end-user session policy. */
export function policyRoutes(iam: IamServices): RouteDefinition[] {
  const { db, defaults } = iam;
  const tenantView = (t: { require_mfa: boolean; mfa_required_roles: string[]; session_idle_seconds: number | null; session_absolute_seconds: number | null }) => ({
    requireMfa: t.require_mfa,
    mfaRequiredRoles: t.mfa_required_roles,
    sessionIdleSeconds: t.session_idle_seconds ?? defaults.idleSeconds,
    sessionAbsoluteSeconds: t.session_absolute_seconds ?? defaults.absoluteSeconds,
    sessionFromDefaults: t.session_idle_seconds === null && t.session_absolute_seconds === null,
  });
  const stageView = (s: { session_idle_seconds: number | null; session_absolute_seconds: number | null }) => ({
    sessionIdleSeconds: s.session_idle_seconds ?? defaults.idleSeconds,
    sessionAbsoluteSeconds: s.session_absolute_seconds ?? defaults.absoluteSeconds,
    sessionFromDefaults: s.session_idle_seconds === null && s.session_absolute_seconds === null,
  });
  const tenantRow = (trx: DbOrTrx, id: string) =>
    trx.selectFrom('accord.tenants').select(['require_mfa', 'mfa_required_roles', 'session_idle_seconds', 'session_absolute_seconds']).where('id', '=', id).forUpdate().executeTakeFirstOrThrow();
  const TenantParams = Type.Object({ tenant: Type.String({ maxLength: 63 }) });
  const StageParams = Type.Object({ tenant: Type.String({ maxLength: 63 }), stage: Type.String({ maxLength: 63 }) });
  return [
    route({
      method: 'GET',
      url: '/api/v1/tenants/:tenant/policy',
      access: access.permission('tenant:read', { tenantParam: 'tenant' }),
      schema: { summary: "The tenant's MFA and console session policy", tags: ['iam'], params: TenantParams, response: { 200: TenantPolicyOut } },
      handler: async ({ tenant }) => tenantView(await tenantRow(db, tenant.id)),
    }),
    route({
      method: 'PATCH',
      url: '/api/v1/tenants/:tenant/policy',
      access: access.permission('tenant:manage', { tenantParam: 'tenant' }),
      schema: {
        summary: 'Change the MFA requirement (everyone or some roles) and console session timeouts (null: platform default)',
        tags: ['iam'],
        params: TenantParams,
        body: Type.Object(
          {
            requireMfa: Type.Optional(Type.Boolean()),
            mfaRequiredRoles: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 50, uniqueItems: true })),
            sessionIdleSeconds: Type.Optional(Seconds),
            sessionAbsoluteSeconds: Type.Optional(Seconds),
          },
          { additionalProperties: false, minProperties: 1 },
        ),
        response: { 200: TenantPolicyOut },
      },
      handler: async ({ tenant: t, body, unit }) =>
        unit(async ({ trx, audit }) => {
          const before = await tenantRow(trx, t.id);
          const next = {
            require_mfa: body.requireMfa ?? before.require_mfa,
            mfa_required_roles: body.mfaRequiredRoles ?? before.mfa_required_roles,
            session_idle_seconds: body.sessionIdleSeconds === undefined ? before.session_idle_seconds : body.sessionIdleSeconds,
            session_absolute_seconds: body.sessionAbsoluteSeconds === undefined ? before.session_absolute_seconds : body.sessionAbsoluteSeconds,
          };
          checkSessionPolicy(next.session_idle_seconds ?? defaults.idleSeconds, next.session_absolute_seconds ?? defaults.absoluteSeconds);
          if (body.mfaRequiredRoles) await checkRoles(trx, t.id, body.mfaRequiredRoles);
          await trx.updateTable('accord.tenants').set(next).where('id', '=', t.id).execute();
          await audit({
            tenantId: t.id,
            action: 'tenant.policy.changed',
            target: { type: 'tenant', id: t.id },
            outcome: 'success',
            details: { before: tenantView(before), after: tenantView(next) },
          });
          return tenantView(next);
        }),
    }),
    route({
      method: 'GET',
      url: '/api/v1/tenants/:tenant/stages/:stage/policy',
      access: access.permission('stage:read', { tenantParam: 'tenant', stageParam: 'stage' }),
      schema: { summary: "The stage's end-user session policy", tags: ['iam'], params: StageParams, response: { 200: StagePolicyOut } },
      handler: async ({ stage }) =>
        stageView(await db.selectFrom('accord.stages').select(['session_idle_seconds', 'session_absolute_seconds']).where('id', '=', stage.id).executeTakeFirstOrThrow()),
    }),
    route({
      method: 'PATCH',
      url: '/api/v1/tenants/:tenant/stages/:stage/policy',
      access: access.permission('tenant:manage', { tenantParam: 'tenant', stageParam: 'stage' }),
      schema: {
        summary: "Change the stage's end-user session timeouts (null: platform default)",
        tags: ['iam'],
        params: StageParams,
        body: Type.Object({ sessionIdleSeconds: Type.Optional(Seconds), sessionAbsoluteSeconds: Type.Optional(Seconds) }, { additionalProperties: false, minProperties: 1 }),
        response: { 200: StagePolicyOut },
      },
      handler: async ({ tenant: t, stage: s, body, unit }) =>
        unit(async ({ trx, audit }) => {
          const before = await trx.selectFrom('accord.stages').select(['session_idle_seconds', 'session_absolute_seconds']).where('id', '=', s.id).forUpdate().executeTakeFirstOrThrow();
          const next = {
            session_idle_seconds: body.sessionIdleSeconds === undefined ? before.session_idle_seconds : body.sessionIdleSeconds,
            session_absolute_seconds: body.sessionAbsoluteSeconds === undefined ? before.session_absolute_seconds : body.sessionAbsoluteSeconds,
          };
          checkSessionPolicy(next.session_idle_seconds ?? defaults.idleSeconds, next.session_absolute_seconds ?? defaults.absoluteSeconds);
          await trx.updateTable('accord.stages').set(next).where('id', '=', s.id).execute();
          await audit({
            tenantId: t.id,
            action: 'stage.policy.changed',
            target: { type: 'stage', id: s.id },
            outcome: 'success',
            details: { stage: s.name, before: stageView(before), after: stageView(next) },
          });
          return stageView(next);
        }),
    }),
  ];
}
