import { Type } from '@sinclair/typebox';
import type { Keyring } from '../crypto/keyring/index.ts';
import type { Db } from '../db/index.ts';
import { AccordError } from '../errors/index.ts';
import { access, type RouteDefinition, route } from '../http/index.ts';
import { listStages } from '../tenancy/index.ts';
import { keyStatus, listSecrets, rotateKeys, rotateRoot, setSecret } from './service.ts';

const TenantParams = Type.Object({ tenant: Type.String({ maxLength: 63 }) });
const StageParams = Type.Object({ tenant: Type.String({ maxLength: 63 }), stage: Type.String({ maxLength: 63 }) });
const SECRET_NAME = '^[A-Za-z][A-Za-z0-9_.-]{0,127}$';
const KeyStatusOut = Type.Object({
  tenant: Type.String(),
  provider: Type.String(),
  rootKeyId: Type.String(),
  kek: Type.Array(Type.Object({ version: Type.Integer(), state: Type.String(), rootKeyId: Type.String(), createdAt: Type.String({ format: 'date-time' }) })),
  stages: Type.Array(
    Type.Object({
      stage: Type.String(),
      deks: Type.Array(Type.Object({ version: Type.Integer(), state: Type.String(), kekVersion: Type.Integer(), createdAt: Type.String({ format: 'date-time' }), values: Type.Integer() })),
    }),
  ),
  jobs: Type.Array(
    Type.Object({
      id: Type.String(),
      kind: Type.String(),
      state: Type.String(),
      progress: Type.Record(Type.String(), Type.Unknown()),
      attempts: Type.Integer(),
      lastAttemptFailed: Type.Boolean(),
      createdAt: Type.String({ format: 'date-time' }),
    }),
  ),
});
const RotationOut = Type.Object({ kind: Type.Union([Type.Literal('kek'), Type.Literal('dek')]), version: Type.Integer(), jobId: Type.String() });
const SecretOut = Type.Object({ name: Type.String(), value: Type.Literal('********'), keyVersion: Type.Integer(), updatedAt: Type.String({ format: 'date-time' }) });

/** Keys (status, rotation) and stage secrets (DATA-1, DATA-2). */
export function keyRoutes(deps: { db: Db; keyring: Keyring }): RouteDefinition[] {
  const { db, keyring } = deps;
  // A stage named in the body (the path's stage, where there is one, comes resolved in ctx).
  const stageOf = async (tenant: { id: string; name: string }, stageName: string) => {
    const stage = (await listStages(db, tenant.id)).find((s) => s.name === stageName);
    if (!stage) throw new AccordError('TENANCY_STAGE_NOT_FOUND', { details: { tenant: tenant.name, stage: stageName } });
    return stage;
  };
  return [
    route({
      method: 'GET',
      url: '/api/v1/tenants/:tenant/keys',
      access: access.permission('key:read', { tenantParam: 'tenant' }),
      schema: { summary: "A tenant's key versions, values per data-key version, rotation jobs", tags: ['keys'], params: TenantParams, response: { 200: KeyStatusOut } },
      handler: async ({ tenant }) => ({ tenant: tenant.name, ...(await keyStatus(db, keyring, tenant.id)) }),
    }),
    route({
      method: 'POST',
      url: '/api/v1/tenants/:tenant/keys/rotate',
      access: access.permission('key:rotate', { tenantParam: 'tenant' }),
      status: 202,
      schema: {
        summary: "Rotate the tenant's key-encryption key, or one stage's data key",
        tags: ['keys'],
        params: TenantParams,
        body: Type.Object({ stage: Type.Optional(Type.String({ maxLength: 63 })) }, { additionalProperties: false }),
        response: { 202: RotationOut },
      },
      handler: async ({ tenant, body, source }) =>
        body.stage === undefined ? rotateKeys(db, keyring, source, tenant) : rotateKeys(db, keyring, source, tenant, await stageOf(tenant, body.stage)),
    }),
    route({
      method: 'POST',
      url: '/api/v1/keys/root/rotate',
      access: access.permission('platform:manage'),
      status: 202,
      schema: {
        summary: 'Rotate the KMS root key; tenant KEKs are rewrapped by a job',
        tags: ['keys'],
        response: { 202: Type.Object({ rootKeyId: Type.String(), jobId: Type.String() }) },
      },
      handler: async ({ source }) => rotateRoot(db, keyring, source),
    }),
    route({
      method: 'GET',
      url: '/api/v1/tenants/:tenant/stages/:stage/secrets',
      access: access.permission('stage:read', { tenantParam: 'tenant', stageParam: 'stage' }),
      schema: { summary: "A stage's secret settings, values masked", tags: ['keys'], params: StageParams, response: { 200: Type.Array(SecretOut) } },
      handler: async ({ stage }) => listSecrets(db, stage.id),
    }),
    route({
      method: 'PUT',
      url: '/api/v1/tenants/:tenant/stages/:stage/secrets/:name',
      access: access.permission('secret:write', { tenantParam: 'tenant', stageParam: 'stage' }),
      schema: {
        summary: 'Set a secret stage setting (write-only: it is never returned)',
        tags: ['keys'],
        params: Type.Composite([StageParams, Type.Object({ name: Type.String({ pattern: SECRET_NAME }) })]),
        body: Type.Object({ value: Type.String({ minLength: 1, maxLength: 65_536 }) }, { additionalProperties: false }),
        response: { 200: Type.Object({ name: Type.String(), keyVersion: Type.Integer() }) },
      },
      handler: async ({ tenant, stage, params, body, source }) =>
        setSecret(db, keyring, source, { tenantId: tenant.id, stageId: stage.id, stageName: stage.name }, params.name, body.value),
    }),
  ];
}
