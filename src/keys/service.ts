import { type AuditSource, systemSource } from '../audit-chain/index.ts';
import { decryptField, encryptField, envelopeKeyVersion, type FieldContext } from '../crypto/field/index.ts';
import type { Keyring } from '../crypto/keyring/index.ts';
import type { Db, DbOrTrx, Trx } from '../db/index.ts';
import { AccordError } from '../errors/index.ts';
import { auditAlone, gatewayWrappedUnder, rewrapGatewayPassword, unitOfWork } from '../kernel/index.ts';
import { enqueueJob, type JobStep } from '../jobs/index.ts';
import { IamKey } from '../iam/index.ts';

const BATCH = 100;

/** What `accord keys status` shows: versions, how many values each DEK version still protects, jobs. */
export async function keyStatus(db: DbOrTrx, keyring: Keyring, tenantId: string) {
  const keks = await db.selectFrom('accord.tenant_keks').select(['version', 'state', 'root_key_id', 'created_at']).where('tenant_id', '=', tenantId).orderBy('version').execute();
  const stages = await db.selectFrom('accord.stages').select(['id', 'name', 'position']).where('tenant_id', '=', tenantId).orderBy('position').execute();
  const deks = await db.selectFrom('accord.stage_deks').select(['stage_id', 'version', 'state', 'kek_version', 'created_at']).where('tenant_id', '=', tenantId).orderBy('version').execute();
  const counts = await db
    .selectFrom('accord.stage_secrets')
    .innerJoin('accord.stages', 'accord.stages.id', 'accord.stage_secrets.stage_id')
    .select(['accord.stage_secrets.stage_id', 'accord.stage_secrets.key_version', (eb) => eb.fn.countAll<number>().as('n')])
    .where('accord.stages.tenant_id', '=', tenantId)
    .groupBy(['accord.stage_secrets.stage_id', 'accord.stage_secrets.key_version'])
    .execute();
  const jobs = await db
    .selectFrom('accord.jobs')
    .select(['id', 'kind', 'state', 'progress', 'attempts', 'error', 'created_at', 'updated_at'])
    .where('tenant_id', '=', tenantId)
    .where('kind', 'like', 'keys.%')
    .orderBy('created_at', 'desc')
    .limit(10)
    .execute();
  return {
    provider: keyring.kms.name,
    rootKeyId: keyring.kms.currentKeyId(),
    kek: keks.map((k) => ({ version: k.version, state: k.state, rootKeyId: k.root_key_id, createdAt: k.created_at.toISOString() })),
    stages: stages.map((s) => ({
      stage: s.name,
      deks: deks
        .filter((d) => d.stage_id === s.id)
        .map((d) => ({
          version: d.version,
          state: d.state,
          kekVersion: d.kek_version,
          createdAt: d.created_at.toISOString(),
          values: Number(counts.find((c) => c.stage_id === s.id && c.key_version === d.version)?.n ?? 0),
        })),
    })),
        // A job's error text is for the operator's log (it can name KMS labels, files, driver codes):
    // the API says only that the last attempt failed.
    jobs: jobs.map((j) => ({ id: j.id, kind: j.kind, state: j.state, progress: j.progress, attempts: j.attempts, lastAttemptFailed: j.error !== null, createdAt: j.created_at.toISOString() })),
  };
}

/**
 * Rotates a tenant's KEK (or, with a stage, that stage's DEK): the new version is used for new
 * writes at once, and a job moves existing material over in batches, resumable after a crash.
 */
export async function rotateKeys(
  db: Db,
  keyring: Keyring,
  source: AuditSource,
  tenant: { id: string; name: string },
  stage?: { id: string; name: string },
): Promise<{ kind: 'kek' | 'dek'; version: number; jobId: string }> {
  return unitOfWork(db, source, async ({ trx, audit }) => {
    // One rotation at a time per tenant: the tenant row is the lock.
    await trx.selectFrom('accord.tenants').select('id').where('id', '=', tenant.id).forUpdate().executeTakeFirstOrThrow();
    if (stage) {
      const version = await keyring.createDek(trx, tenant.id, stage.id);
      const jobId = await enqueueJob(trx, 'keys.reencrypt-stage', { stageId: stage.id, tenantId: tenant.id, toVersion: version }, tenant.id);
      await audit({ tenantId: tenant.id, action: 'key.rotated', target: { type: 'stage-dek', id: stage.id }, outcome: 'success', details: { stage: stage.name, version, jobId } });
      return { kind: 'dek' as const, version, jobId };
    }
    const version = await keyring.createKek(trx, tenant.id);
    const jobId = await enqueueJob(trx, 'keys.rewrap-tenant', { tenantId: tenant.id, toVersion: version }, tenant.id);
    await audit({ tenantId: tenant.id, action: 'key.rotated', target: { type: 'tenant-kek', id: tenant.id }, outcome: 'success', details: { version, jobId } });
    return { kind: 'kek' as const, version, jobId };
  });
}

/** Root rotation: a new KMS root key version, then a job rewraps every tenant KEK and the IAM key. */
export async function rotateRoot(db: Db, keyring: Keyring, source: AuditSource): Promise<{ rootKeyId: string; jobId: string }> {
  return unitOfWork(db, source, async ({ trx, audit }) => {
    // The KMS is outside the database: its new version is made inside the unit, so a KMS failure
    // leaves no audit record claiming a rotation, and the record commits with the job that
    // rewraps under the new version. (Should the commit itself fail, the KMS holds an unused
    // version that the next rotation's job retires.)
    const previous = keyring.kms.currentKeyId();
    const rootKeyId = await keyring.kms.rotateRoot();
    const jobId = await enqueueJob(trx, 'keys.rewrap-root', { toKeyId: rootKeyId, retire: [previous] });
    await audit({ tenantId: null, action: 'key.root.rotated', target: { type: 'root-key', id: rootKeyId }, outcome: 'success', details: { jobId } });
    return { rootKeyId, jobId };
  });
}

const secretContext = (tenantId: string, stageId: string, name: string): FieldContext => ({
  tenant: tenantId,
  stage: stageId,
  entity: 'accord.stage-secret',
  field: 'value',
  recordId: name,
});

/** Stores a secret stage setting encrypted under the stage's active DEK. Audited without its value. */
export async function setSecret(
  db: Db,
  keyring: Keyring,
  source: AuditSource,
  at: { tenantId: string; stageId: string; stageName: string },
  name: string,
  value: string,
): Promise<{ name: string; keyVersion: number }> {
  return unitOfWork(db, source, async ({ trx, audit }) => {
    // Hold the active key row shared until commit: a concurrent rotation (which retires that row)
    // waits for this write, so its job is sure to see and re-encrypt the value before it destroys
    // the old version. Without it the value could land under a version already destroyed.
    await trx.selectFrom('accord.stage_deks').select('version').where('stage_id', '=', at.stageId).where('state', '=', 'active').forShare().execute();
    const dek = await keyring.activeDek(trx, at.stageId);
    const envelope = encryptField(dek, value, secretContext(at.tenantId, at.stageId, name));
    await trx
      .insertInto('accord.stage_secrets')
      .values({ stage_id: at.stageId, name, envelope, key_version: dek.version })
      .onConflict((oc) => oc.columns(['stage_id', 'name']).doUpdateSet({ envelope, key_version: dek.version, updated_at: new Date() }))
      .execute();
    await audit({ tenantId: at.tenantId, action: 'secret.set', target: { type: 'stage-secret', id: `${at.stageName}/${name}` }, outcome: 'success', details: { keyVersion: dek.version } });
    return { name, keyVersion: dek.version };
  });
}

/** Secret names with masked values: the API never returns a secret. */
export async function listSecrets(db: DbOrTrx, stageId: string) {
  const rows = await db.selectFrom('accord.stage_secrets').select(['name', 'key_version', 'updated_at']).where('stage_id', '=', stageId).orderBy('name').execute();
  return rows.map((r) => ({ name: r.name, value: '********', keyVersion: r.key_version, updatedAt: r.updated_at.toISOString() }));
}

/**
 * The runtime's read of a secret (no route exposes this). Fails closed on any integrity problem,
 * and records the failure on the tenant's audit chain: a value that does not decrypt is either
 * tampering or a lost key, and both are security events.
 */
export async function readSecret(db: Db, keyring: Keyring, tenantId: string, stageId: string, name: string): Promise<string | undefined> {
  const row = await db.selectFrom('accord.stage_secrets').select(['envelope']).where('stage_id', '=', stageId).where('name', '=', name).executeTakeFirst();
  if (!row) return undefined;
  try {
    const version = envelopeKeyVersion(row.envelope);
    const dek = await keyring.dek(db, stageId, version);
    return decryptField((v) => (v === version ? dek : undefined), row.envelope, secretContext(tenantId, stageId, name)).toString('utf8');
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    await auditAlone(db, systemSource, {
      tenantId,
      action: 'crypto.decrypt.failed',
      target: { type: 'stage-secret', id: `${stageId}/${name}` },
      outcome: 'failure',
      reason: typeof code === 'string' ? code : 'error',
    }).catch(() => {});
    throw err;
  }
}

/** The rotation jobs' steps, bound to a keyring. */
export function keyJobSteps(
  keyring: Keyring,
  source: AuditSource,
  log: (msg: string, err: unknown) => void = () => {},
  opts: {
    /**
     * Re-encrypts one batch of the stage's app data under the new DEK (the data API's, wired by the
     * server); returns how many rows it changed, 0 when none is left. Old DEK versions are destroyed
     * only after it returns 0.
     */
    reencryptAppData?: (db: Db, tenantId: string, stageId: string, toVersion: number, batch: number) => Promise<number>;
    /**
     * Rewraps one batch of other keys the tenant's KEK wraps (the data API's stage blind-index
     * keys) under the KEK `toVersion`, in the job's transaction; returns how many, 0 when none is
     * left. Old KEK versions are destroyed only after it returns 0.
     */
    rewrapAppKeys?: (trx: Trx, tenantId: string, toVersion: number, batch: number) => Promise<number>;
    /**
     * With app data: old DEK versions are destroyed no sooner than this long after the rotation
     * (default 10 s), so a write that picked up the old active key just before the rotation (or
     * from the data API's one-second key cache) has landed, and been re-encrypted, first.
     */
    destroyGraceMs?: number;
  } = {},
): Map<string, JobStep> {
  return new Map<string, JobStep>([
    [
      'keys.rewrap-tenant',
      async (db, job) => {
        const { tenantId, toVersion } = job.payload as { tenantId: string; toVersion: number };
        return unitOfWork(db, source, async ({ trx, audit }) => {
          const pending = await trx
            .selectFrom('accord.stage_deks')
            .select(['stage_id', 'version'])
            .where('tenant_id', '=', tenantId)
            .where('kek_version', '<', toVersion)
            .limit(BATCH)
            .execute();
          for (const d of pending) await keyring.rewrapDek(trx, d.stage_id, d.version);
          const done = Number(job.progress.rewrapped ?? 0) + pending.length;
          if (pending.length > 0) return { done: false, progress: { ...job.progress, rewrapped: done } };
          const appKeys = opts.rewrapAppKeys ? await opts.rewrapAppKeys(trx, tenantId, toVersion, BATCH) : 0;
          if (appKeys > 0) return { done: false, progress: { ...job.progress, appKeys: Number(job.progress.appKeys ?? 0) + appKeys } };
          const destroyed = await trx.deleteFrom('accord.tenant_keks').where('tenant_id', '=', tenantId).where('version', '<', toVersion).returning('version').execute();
          if (destroyed.length > 0) {
            await audit({ tenantId, action: 'key.destroyed', target: { type: 'tenant-kek', id: tenantId }, outcome: 'success', details: { versions: destroyed.map((d) => d.version) } });
          }
          return { done: true, progress: { ...job.progress, rewrapped: done, destroyedVersions: destroyed.map((d) => d.version) } };
        });
      },
    ],
    [
      'keys.reencrypt-stage',
      async (db, job) => {
        const { tenantId, stageId, toVersion } = job.payload as { tenantId: string; stageId: string; toVersion: number };
        // App data first, outside the unit of work (its stage sessions need the connection on PGlite).
        if (opts.reencryptAppData) {
          const n = await opts.reencryptAppData(db, tenantId, stageId, toVersion, BATCH);
          if (n > 0) return { done: false, progress: { ...job.progress, appRows: Number(job.progress.appRows ?? 0) + n } };
          const target = await db.selectFrom('accord.stage_deks').select('created_at').where('stage_id', '=', stageId).where('version', '=', toVersion).executeTakeFirst();
          if (target && Date.now() - target.created_at.getTime() < (opts.destroyGraceMs ?? 10_000)) {
            await new Promise((r) => setTimeout(r, 250));
            return { done: false, progress: { ...job.progress, waiting: 'grace period before destroying old keys' } };
          }
        }
        return unitOfWork(db, source, async ({ trx, audit }) => {
          const pending = await trx
            .selectFrom('accord.stage_secrets')
            .select(['name', 'envelope', 'key_version'])
            .where('stage_id', '=', stageId)
            .where('key_version', '<', toVersion)
            .limit(BATCH)
            .forUpdate()
            .execute();
          const target = await keyring.dek(trx, stageId, toVersion);
          if (!target) throw new AccordError('INTERNAL', { message: 'rotation target key is missing' });
          for (const s of pending) {
            const old = await keyring.dek(trx, stageId, s.key_version);
            const ctx = secretContext(tenantId, stageId, s.name);
            const plain = decryptField((v) => (v === s.key_version ? old : undefined), s.envelope, ctx);
            const envelope = encryptField(target, plain, ctx);
            plain.fill(0);
            await trx.updateTable('accord.stage_secrets').set({ envelope, key_version: toVersion }).where('stage_id', '=', stageId).where('name', '=', s.name).execute();
          }
          const done = Number(job.progress.reencrypted ?? 0) + pending.length;
          if (pending.length > 0) return { done: false, progress: { ...job.progress, reencrypted: done } };
          const destroyed = await trx.deleteFrom('accord.stage_deks').where('stage_id', '=', stageId).where('version', '<', toVersion).returning('version').execute();
          if (destroyed.length > 0) {
            await audit({ tenantId, action: 'key.destroyed', target: { type: 'stage-dek', id: stageId }, outcome: 'success', details: { versions: destroyed.map((d) => d.version) } });
          }
          return { done: true, progress: { ...job.progress, reencrypted: done, destroyedVersions: destroyed.map((d) => d.version) } };
        });
      },
    ],
    [
      'keys.rewrap-root',
      async (db, job) => {
        const { retire } = job.payload as { toKeyId: string; retire: string[] };
        const result = await unitOfWork(db, source, async ({ trx }) => {
          // Toward the provider's current root key, not the one named at enqueue time: after a second
          // rotation the older target is itself on its way out.
          const pending = await trx
            .selectFrom('accord.tenant_keks')
            .select(['tenant_id', 'version'])
            .where('root_key_id', '<>', keyring.kms.currentKeyId())
            .limit(BATCH)
            .execute();
          for (const k of pending) await keyring.rewrapKek(trx, k.tenant_id, k.version);
          // The platform's IAM key is wrapped by the root key too (one row, moved with the first batch).
          return pending.length + (await IamKey.rewrap(trx, keyring.kms)) + (await rewrapGatewayPassword(trx, keyring.kms));
        });
        const done = Number(job.progress.rewrapped ?? 0) + result;
        if (result > 0) return { done: false, progress: { rewrapped: done } };
        // The old root key version is destroyed once nothing it wrapped is left in the catalog.
        const retired: string[] = [];
        for (const id of retire) {
          const still =
            (await db.selectFrom('accord.tenant_keks').select('tenant_id').where('root_key_id', '=', id).limit(1).executeTakeFirst()) ??
            (await db.selectFrom('accord.iam_keys').select('kid').where('root_key_id', '=', id).limit(1).executeTakeFirst()) ??
            ((await gatewayWrappedUnder(db, id)) || undefined);
          if (still || id === keyring.kms.currentKeyId()) continue;
          try {
            // Retiring destroys key material: audited in the same unit (a KMS failure rolls the record back).
            await unitOfWork(db, source, async ({ audit }) => {
              await audit({ tenantId: null, action: 'key.root.retired', target: { type: 'root-key', id }, outcome: 'success' });
              await keyring.kms.retireRoot(id);
            });
            retired.push(id);
          } catch (err) {
            log('could not retire an old root key version', err);
          }
        }
        return { done: true, progress: { rewrapped: done, retiredRootKeys: retired } };
      },
    ],
  ]);
}
