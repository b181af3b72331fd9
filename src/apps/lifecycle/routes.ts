import { writeFileSync } from 'node:fs';
import { Type } from '@sinclair/typebox';
import { AccordError } from '../../errors/index.ts';
import { access, type AuthContext, type RouteDefinition, route } from '../../http/index.ts';
import { can } from '../../iam/index.ts';
import { listStages } from '../../tenancy/index.ts';
import { appStatus, deployUpload, type LifecycleDeps, listRevisions, listSettings, planUpload, promote, rollback, setSetting } from './service.ts';

const NAME = '^[a-z][a-z0-9-]{0,62}$';
const AppParams = Type.Object({ tenant: Type.String({ maxLength: 63 }), app: Type.String({ pattern: NAME }) });
const StageAppParams = Type.Object({ tenant: Type.String({ maxLength: 63 }), app: Type.String({ pattern: NAME }), stage: Type.String({ maxLength: 63 }) });
// The manifest size limit (1 MiB) is the compiler's; the request body limit bounds the rest.
const Upload = Type.Object(
  {
    // contentMediaType: the firewall reads manifests and action sources as code (src/waf/field-kinds.ts).
    manifest: Type.String({ maxLength: 1024 * 1024 + 1, contentMediaType: 'application/yaml' }),
    file: Type.Optional(Type.String({ maxLength: 255 })),
    actions: Type.Optional(Type.Record(Type.String({ maxLength: 255 }), Type.String({ maxLength: 1024 * 1024, contentMediaType: 'text/javascript' }), { maxProperties: 200 })),
    allowDataLoss: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
const RevisionBody = Type.Object({ revision: Type.String({ minLength: 1, maxLength: 71 }) }, { additionalProperties: false });
const OptionalRevision = Type.Object({ revision: Type.Optional(Type.String({ minLength: 1, maxLength: 71 })) }, { additionalProperties: false });
// Plans and deployment results are documented in docs/apps.md; their step lists vary by change.
const PlanOut = Type.Object({}, { additionalProperties: true });

const userOf = (auth: AuthContext) => (auth.kind === 'user' ? auth.principalId : null);

/**
 * Test seam for the kill tests (test/e2e/apps/deploy-kill.test.ts): with
 * ACCORD_TEST_DEPLOY_PAUSE=<phase>:<file>, a deployment reaching that phase writes the file and
 * never continues, so the test can kill -9 the process at a known point. It can only stall
 * deployments, never change what they do.
 */
function pauseFromEnv(): LifecycleDeps['onPhase'] {
  const v = process.env.ACCORD_TEST_DEPLOY_PAUSE;
  if (!v) return undefined;
  const i = v.indexOf(':');
  const phase = v.slice(0, i);
  const file = v.slice(i + 1);
  return async (p) => {
    if (p !== phase) return;
    writeFileSync(file, p);
    await new Promise(() => {});
  };
}

/** The lifecycle's routes: plan, deploy, promote, rollback, revisions, status, settings (APP-3). */
export function lifecycleRoutes(base: LifecycleDeps): RouteDefinition[] {
  const pause = pauseFromEnv();
  const deps: LifecycleDeps = pause ? { ...base, onPhase: pause } : base;
  const { db } = deps;
  return [
    route({
      method: 'POST',
      url: '/api/v1/tenants/:tenant/apps/:app/stages/:stage/plan',
      access: access.permission('app:deploy', { tenantParam: 'tenant', stageParam: 'stage' }),
      schema: { summary: 'Impact analysis of a manifest against a stage: steps, prechecks, data loss, rule changes, drift', tags: ['apps'], params: StageAppParams, body: Upload, response: { 200: PlanOut } },
      handler: async ({ stage, params, body }) => planUpload(deps, stage, params.app, body),
    }),
    route({
      method: 'POST',
      url: '/api/v1/tenants/:tenant/apps/:app/stages/:stage/deployments',
      access: access.permission('app:deploy', { tenantParam: 'tenant', stageParam: 'stage' }),
      schema: { summary: 'Deploy a manifest to the first stage (a new revision)', tags: ['apps'], params: StageAppParams, body: Upload, response: { 200: PlanOut } },
      handler: async ({ tenant, stage, params, body, source, auth }) => deployUpload(deps, source, tenant, stage, params.app, body, userOf(auth)),
    }),
    route({
      method: 'POST',
      url: '/api/v1/tenants/:tenant/apps/:app/stages/:stage/promotions',
      access: access.permission('app:promote', { tenantParam: 'tenant', stageParam: 'stage' }),
      schema: { summary: 'Promote the revision of the previous stage (or a given one that ran there) to this stage', tags: ['apps'], params: StageAppParams, optionalBody: OptionalRevision, response: { 200: PlanOut } },
      handler: async ({ tenant, stage, params, body, source, auth }) => promote(deps, source, tenant, stage, params.app, body?.revision, userOf(auth)),
    }),
    route({
      method: 'POST',
      url: '/api/v1/tenants/:tenant/apps/:app/stages/:stage/rollbacks',
      access: access.permission('app:deploy', { tenantParam: 'tenant', stageParam: 'stage' }),
      schema: { summary: 'Redeploy a revision the stage ran before', tags: ['apps'], params: StageAppParams, body: RevisionBody, response: { 200: PlanOut } },
      handler: async ({ tenant, stage, params, body, source, auth }) => {
        // Deploying is enough on the first stage; later stages take what promoters may put there.
        const first = (await listStages(db, tenant.id))[0];
        if (first?.id !== stage.id && !can(auth, 'app:promote', { tenant: tenant.name, stage: stage.name })) {
          throw new AccordError('IAM_FORBIDDEN', { message: `Rolling back ${stage.name} needs app:promote.`, details: { permission: 'app:promote' } });
        }
        return rollback(deps, source, tenant, stage, params.app, body.revision, userOf(auth));
      },
    }),
    route({
      method: 'GET',
      url: '/api/v1/tenants/:tenant/apps/:app/revisions',
      access: access.permission('tenant:read', { tenantParam: 'tenant' }),
      schema: { summary: "An app's revisions, newest first, with where they run and their deployments", tags: ['apps'], params: AppParams, response: { 200: Type.Array(PlanOut) } },
      handler: async ({ tenant, params }) => listRevisions(db, tenant.id, params.app),
    }),
    route({
      method: 'GET',
      url: '/api/v1/tenants/:tenant/apps/:app',
      access: access.permission('tenant:read', { tenantParam: 'tenant' }),
      schema: { summary: 'What revision of the app runs on each stage', tags: ['apps'], params: AppParams, response: { 200: PlanOut } },
      handler: async ({ tenant, params }) => appStatus(db, tenant.id, params.app),
    }),
    route({
      method: 'GET',
      url: '/api/v1/tenants/:tenant/apps/:app/stages/:stage/settings',
      access: access.permission('stage:read', { tenantParam: 'tenant', stageParam: 'stage' }),
      schema: { summary: "A stage's settings of an app (secret values masked)", tags: ['apps'], params: StageAppParams, response: { 200: Type.Array(PlanOut) } },
      handler: async ({ stage, params }) => listSettings(db, stage, params.app),
    }),
    route({
      method: 'PUT',
      url: '/api/v1/tenants/:tenant/apps/:app/stages/:stage/settings/:name',
      access: access.permission('app:deploy', { tenantParam: 'tenant', stageParam: 'stage' }),
      schema: {
        summary: "Set a stage's value of a setting (secret ones go to the stage secrets store and are never returned)",
        tags: ['apps'],
        params: Type.Composite([StageAppParams, Type.Object({ name: Type.String({ pattern: '^[a-zA-Z][a-zA-Z0-9]{0,62}$' }) })]),
        body: Type.Object({ value: Type.String({ maxLength: 65_536 }) }, { additionalProperties: false }),
        response: { 200: PlanOut },
      },
      handler: async ({ tenant, stage, params, body, source, auth }) => {
        return setSetting(deps, source, tenant, stage, params.app, params.name, body.value, userOf(auth), (secret) => {
          if (secret && !can(auth, 'secret:write', { tenant: tenant.name, stage: stage.name })) throw new AccordError('IAM_FORBIDDEN', { message: 'Secret settings need secret:write.', details: { permission: 'secret:write' } });
        });
      },
    }),
  ];
}
