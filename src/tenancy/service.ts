import type { Selectable } from 'kysely';
import type { AuditSource } from '../audit-chain/index.ts';
import type { Keyring } from '../crypto/keyring/index.ts';
import { type Db, type DbOrTrx, prepared, type TenantsTable, type Trx } from '../db/index.ts';
import { AccordError } from '../errors/index.ts';
import { unitOfWork } from '../kernel/index.ts';
import { assertRegion, assertStageName, assertTenantName, DEFAULT_STAGES } from './names.ts';
import { createStageStorage, dropStageStorage, newStageStorageNames } from './stage-storage.ts';

/** A stage as the API shows it. */
export interface Stage {
  readonly id: string;
  readonly name: string;
  readonly position: number;
  readonly schema: string;
  readonly role: string;
  readonly createdAt: string;
}

/** A tenant as the API shows it. */
export interface Tenant {
  readonly id: string;
  readonly name: string;
  readonly displayName: string;
  readonly region: string;
  readonly createdAt: string;
}

type TenantRow = Selectable<TenantsTable>;
type StageRow = { id: string; name: string; position: number; schema_name: string; role_name: string; created_at: Date };

const toTenant = (r: TenantRow): Tenant => ({
  id: r.id,
  name: r.name,
  displayName: r.display_name,
  region: r.region,
  createdAt: r.created_at.toISOString(),
});
const toStage = (r: StageRow): Stage => ({
  id: r.id,
  name: r.name,
  position: r.position,
  schema: r.schema_name,
  role: r.role_name,
  createdAt: r.created_at.toISOString(),
});

const isUniqueViolation = (err: unknown): boolean => (err as { code?: string })?.code === '23505';

// Compiled once: the two reads of nearly every request that names a tenant (issue 9).
const tenantByName = prepared((db: DbOrTrx, name: string) => db.selectFrom('accord.tenants').selectAll().where('name', '=', name));
const stagesOf = prepared((db: DbOrTrx, tenantId: string) =>
  db.selectFrom('accord.stages').select(['id', 'name', 'position', 'schema_name', 'role_name', 'created_at']).where('tenant_id', '=', tenantId).orderBy('position'),
);

/** Looks a tenant up by name; throws TENANCY_TENANT_NOT_FOUND. */
export async function getTenant(db: DbOrTrx, name: string, opts: { lock?: boolean } = {}): Promise<Tenant> {
  const row = opts.lock
    ? await db.selectFrom('accord.tenants').selectAll().where('name', '=', name).forUpdate().executeTakeFirst()
    : (await tenantByName(db, name))[0];
  if (!row) throw new AccordError('TENANCY_TENANT_NOT_FOUND', { details: { tenant: name } });
  return toTenant(row);
}

const tenantAndStage = prepared((db: DbOrTrx, tenantName: string, stageName: string) =>
  db
    .selectFrom('accord.tenants as t')
    .leftJoin('accord.stages as s', (j) => j.onRef('s.tenant_id', '=', 't.id').on('s.name', '=', stageName))
    .selectAll('t')
    .select(['s.id as s_id', 's.name as s_name', 's.position as s_position', 's.schema_name as s_schema', 's.role_name as s_role', 's.created_at as s_created_at'])
    .where('t.name', '=', tenantName),
);

/**
 * The tenant and stage a request path names, in one round trip (the route kit calls this once
 * per request). A missing tenant or stage is the same catalog 404 on every route.
 */
export async function resolvePathScope(db: DbOrTrx, tenantName: string, stageName: string | undefined): Promise<{ tenant: Tenant; stage: Stage | undefined }> {
  if (stageName === undefined) return { tenant: await getTenant(db, tenantName), stage: undefined };
  const [row] = await tenantAndStage(db, tenantName, stageName);
  if (!row) throw new AccordError('TENANCY_TENANT_NOT_FOUND', { details: { tenant: tenantName } });
  if (row.s_id === null || row.s_name === null || row.s_position === null || row.s_schema === null || row.s_role === null || row.s_created_at === null) {
    throw new AccordError('TENANCY_STAGE_NOT_FOUND', { details: { tenant: tenantName, stage: stageName } });
  }
  return {
    tenant: toTenant(row),
    stage: toStage({ id: row.s_id, name: row.s_name, position: row.s_position, schema_name: row.s_schema, role_name: row.s_role, created_at: row.s_created_at }),
  };
}

/** Lists tenants, optionally only those named. */
export async function listTenants(db: DbOrTrx, only?: readonly string[]): Promise<Tenant[]> {
  if (only !== undefined && only.length === 0) return [];
  let q = db.selectFrom('accord.tenants').selectAll().orderBy('name');
  if (only !== undefined) q = q.where('name', 'in', [...only]);
  return (await q.execute()).map(toTenant);
}

/** A tenant's stages in their order. */
export async function listStages(db: DbOrTrx, tenantId: string): Promise<Stage[]> {
  return (await stagesOf(db, tenantId)).map(toStage);
}

async function insertStage(trx: Trx, tenantId: string, name: string, position: number): Promise<Stage> {
  const names = newStageStorageNames();
  await createStageStorage(trx, names);
  const row = await trx
    .insertInto('accord.stages')
    .values({ tenant_id: tenantId, name, position, schema_name: names.schema, role_name: names.role })
    .returning(['id', 'name', 'position', 'schema_name', 'role_name', 'created_at'])
    .executeTakeFirstOrThrow();
  return toStage(row);
}

/**
 * Creates a tenant with the default stages (each with its schema and role), all in one
 * transaction with its audit records: a failure leaves nothing behind.
 */
export async function createTenant(
  db: Db,
  keyring: Keyring,
  source: AuditSource,
  input: { name: string; displayName?: string | undefined; region?: string | undefined },
): Promise<Tenant & { stages: Stage[] }> {
  assertTenantName(input.name);
  const region = input.region ?? 'default';
  assertRegion(region);
  const displayName = input.displayName?.trim() || input.name;
  try {
    return await unitOfWork(db, source, async ({ trx, audit }) => {
      const row = await trx
        .insertInto('accord.tenants')
        .values({ name: input.name, display_name: displayName, region })
        .returningAll()
        .executeTakeFirstOrThrow();
      const tenant = toTenant(row);
      await audit({
        tenantId: tenant.id,
        action: 'tenant.created',
        target: { type: 'tenant', id: tenant.id },
        outcome: 'success',
        details: { name: tenant.name, displayName, region },
      });
      await keyring.createKek(trx, tenant.id);
      const stages: Stage[] = [];
      for (const [i, name] of DEFAULT_STAGES.entries()) {
        const stage = await insertStage(trx, tenant.id, name, i + 1);
        await keyring.createDek(trx, tenant.id, stage.id);
        await audit(stageCreated(tenant.id, stage));
        stages.push(stage);
      }
      return { ...tenant, stages };
    });
  } catch (err) {
    if (isUniqueViolation(err)) {
      throw new AccordError('TENANCY_TENANT_EXISTS', { details: { tenant: input.name }, cause: err });
    }
    throw err;
  }
}

const stageCreated = (tenantId: string, stage: Stage) =>
  ({
    tenantId,
    action: 'stage.created',
    target: { type: 'stage', id: stage.id },
    outcome: 'success',
    details: { name: stage.name, position: stage.position, schema: stage.schema },
  }) as const;

/**
 * Adds a stage after an existing one (default: last). Later stages shift down one place. The
 * tenant row is locked so concurrent insertions keep positions consistent.
 */
export async function createStage(
  db: Db,
  keyring: Keyring,
  source: AuditSource,
  tenantName: string,
  input: { name: string; after?: string | undefined },
): Promise<Stage> {
  assertStageName(input.name);
  if (input.after !== undefined) assertStageName(input.after);
  try {
    return await unitOfWork(db, source, async ({ trx, audit }) => {
      const tenant = await getTenant(trx, tenantName, { lock: true });
      const stages = await listStages(trx, tenant.id);
      if (stages.some((s) => s.name === input.name)) {
        throw new AccordError('TENANCY_STAGE_EXISTS', { details: { tenant: tenantName, stage: input.name } });
      }
      let position = (stages.at(-1)?.position ?? 0) + 1;
      if (input.after !== undefined) {
        const after = stages.find((s) => s.name === input.after);
        if (!after) {
          throw new AccordError('TENANCY_STAGE_NOT_FOUND', {
            message: `The tenant has no stage "${input.after}" to insert after.`,
            details: { tenant: tenantName, stage: input.after },
          });
        }
        position = after.position + 1;
        await trx
          .updateTable('accord.stages')
          .set((eb) => ({ position: eb('position', '+', 1) }))
          .where('tenant_id', '=', tenant.id)
          .where('position', '>=', position)
          .execute();
      }
      const stage = await insertStage(trx, tenant.id, input.name, position);
      await keyring.createDek(trx, tenant.id, stage.id);
      await audit(stageCreated(tenant.id, stage));
      return stage;
    });
  } catch (err) {
    if (isUniqueViolation(err)) {
      throw new AccordError('TENANCY_STAGE_EXISTS', { details: { tenant: tenantName, stage: input.name }, cause: err });
    }
    throw err;
  }
}

/**
 * Deletes a tenant. Its keys go first (crypto-shredding: whatever copy of its data exists
 * elsewhere can no longer be decrypted), then its stages' schemas and roles, its users and
 * grants (by cascade) and the tenant row, all in one transaction. The deletion is audited on the
 * platform chain, with what was destroyed.
 */
export async function deleteTenant(db: Db, keyring: Keyring, source: AuditSource, tenantName: string, confirm: string | undefined): Promise<void> {
  if (confirm !== tenantName) {
    throw new AccordError('TENANCY_CONFIRMATION_REQUIRED', { details: { tenant: tenantName } });
  }
  await unitOfWork(db, source, async ({ trx, audit }) => {
    const tenant = await getTenant(trx, tenantName, { lock: true });
    const stages = await listStages(trx, tenant.id);
    const shredded = await keyring.shredTenant(trx, tenant.id);
    for (const s of stages) await dropStageStorage(trx, { schema: s.schema, role: s.role });
    await trx.deleteFrom('accord.tenants').where('id', '=', tenant.id).execute();
    await audit({
      tenantId: null,
      action: 'tenant.deleted',
      target: { type: 'tenant', id: tenant.id },
      outcome: 'success',
      details: {
        name: tenant.name,
        stages: stages.map((s) => s.name),
        schemasDropped: stages.map((s) => s.schema),
        keysDestroyed: { tenantKekVersions: shredded.keks, stageDataKeys: shredded.deks },
      },
    });
  });
}

/**
 * Deletes a stage: its data keys go first (crypto-shredding), then its schema and role, then the
 * row; later stages move up one place. The last stage of a tenant cannot be deleted (delete the
 * tenant instead). Audited on the tenant's chain with what was destroyed.
 */
export async function deleteStage(
  db: Db,
  keyring: Keyring,
  source: AuditSource,
  tenantName: string,
  stageName: string,
  confirm: string | undefined,
): Promise<void> {
  if (confirm !== stageName) {
    throw new AccordError('TENANCY_CONFIRMATION_REQUIRED', { message: 'Repeat the stage name in the confirm field to delete it.', details: { stage: stageName } });
  }
  await unitOfWork(db, source, async ({ trx, audit }) => {
    const tenant = await getTenant(trx, tenantName, { lock: true });
    const stages = await listStages(trx, tenant.id);
    const stage = stages.find((s) => s.name === stageName);
    if (!stage) throw new AccordError('TENANCY_STAGE_NOT_FOUND', { details: { tenant: tenantName, stage: stageName } });
    if (stages.length === 1) throw new AccordError('TENANCY_LAST_STAGE', { details: { tenant: tenantName, stage: stageName } });
    const deks = await keyring.shredStage(trx, stage.id);
    await dropStageStorage(trx, { schema: stage.schema, role: stage.role });
    await trx.deleteFrom('accord.stages').where('id', '=', stage.id).execute();
    await trx
      .updateTable('accord.stages')
      .set((eb) => ({ position: eb('position', '-', 1) }))
      .where('tenant_id', '=', tenant.id)
      .where('position', '>', stage.position)
      .execute();
    await audit({
      tenantId: tenant.id,
      action: 'stage.deleted',
      target: { type: 'stage', id: stage.id },
      outcome: 'success',
      details: { name: stage.name, schemaDropped: stage.schema, keysDestroyed: { stageDataKeyVersions: deks } },
    });
  });
}
