// Encrypted attributes of app data: AES-256-GCM envelopes under the stage's active DEK, bound to
// tenant, stage, entity, field and record (so a value copied to another row, field or stage does
// not decrypt), and HMAC blind indexes for equality search under a per-field key derived from the
// stage's index key. Keys are read from the catalog with the platform's connection, before the
// stage session starts (the runtime role cannot read the catalog).
import { randomBytes } from 'node:crypto';
import { blindIndex, type DataKey, decryptField, deriveFieldKey, encryptField, envelopeKeyVersion } from '../../crypto/field/index.ts';
import { type Keyring, unwrapKey, wrapKey } from '../../crypto/keyring/index.ts';
import type { Db, DbOrTrx } from '../../db/index.ts';

export interface CryptScope {
  readonly tenantId: string;
  readonly stageId: string;
  readonly entity: string;
}

const indexKeyAad = (stageId: string) => `accord/stage-index-key/v1/${stageId}`;
const indexKeys = new Map<string, Buffer>();

/** The stage's blind-index key, created on first use (wrapped under the tenant's active KEK). */
export async function stageIndexKey(db: Db, keyring: Keyring, tenantId: string, stageId: string): Promise<Buffer> {
  const hit = indexKeys.get(stageId);
  if (hit) return hit;
  let row = await db.selectFrom('accord.stage_index_keys').select(['kek_version', 'wrapped']).where('stage_id', '=', stageId).executeTakeFirst();
  if (!row) {
    const kekRow = await db.selectFrom('accord.tenant_keks').select('version').where('tenant_id', '=', tenantId).where('state', '=', 'active').executeTakeFirst();
    if (!kekRow) throw new Error('tenant has no active KEK');
    const kek = await keyring.kek(db, tenantId, kekRow.version);
    const key = randomBytes(32);
    await db
      .insertInto('accord.stage_index_keys')
      .values({ stage_id: stageId, tenant_id: tenantId, kek_version: kekRow.version, wrapped: wrapKey(kek, key, indexKeyAad(stageId)) })
      .onConflict((oc) => oc.column('stage_id').doNothing())
      .execute();
    row = await db.selectFrom('accord.stage_index_keys').select(['kek_version', 'wrapped']).where('stage_id', '=', stageId).executeTakeFirstOrThrow();
  }
  const kek = await keyring.kek(db, tenantId, row.kek_version);
  const key = unwrapKey(kek, row.wrapped, indexKeyAad(stageId));
  indexKeys.set(stageId, key);
  return key;
}

/**
 * Tenant KEK rotation: rewraps up to `batch` of the tenant's stage blind-index keys still wrapped
 * under an older KEK version under `toVersion`, before the rotation job destroys the old versions
 * (else the next process to start could not unwrap them, and search on encrypted attributes would
 * fail). The key itself does not change, so blind indexes stay valid. Returns how many it rewrapped.
 */
export async function rewrapStageIndexKeys(trx: DbOrTrx, keyring: Keyring, tenantId: string, toVersion: number, batch: number): Promise<number> {
  const rows = await trx
    .selectFrom('accord.stage_index_keys')
    .select(['stage_id', 'kek_version', 'wrapped'])
    .where('tenant_id', '=', tenantId)
    .where('kek_version', '<', toVersion)
    .orderBy('stage_id')
    .limit(batch)
    .forUpdate()
    .execute();
  if (rows.length === 0) return 0;
  const kek = await keyring.kek(trx, tenantId, toVersion);
  for (const r of rows) {
    const key = unwrapKey(await keyring.kek(trx, tenantId, r.kek_version), r.wrapped, indexKeyAad(r.stage_id));
    await trx
      .updateTable('accord.stage_index_keys')
      .set({ kek_version: toVersion, wrapped: wrapKey(kek, key, indexKeyAad(r.stage_id)) })
      .where('stage_id', '=', r.stage_id)
      .execute();
    key.fill(0);
  }
  return rows.length;
}

/** Test-only: forget the unwrapped index keys, as a restarted process has. */
export function forgetStageIndexKeys(): void {
  indexKeys.clear();
}

/** The blind-index entry (bytes) of a value of a searchable field. */
export function indexEntry(stageKey: Buffer, scope: CryptScope, field: string, value: string): Buffer {
  const fieldKey = deriveFieldKey(stageKey, { tenant: scope.tenantId, stage: scope.stageId, entity: scope.entity, field }, 'blind-index');
  return Buffer.from(blindIndex(fieldKey, value, { encoding: 'hex' }), 'hex');
}

/** Encrypts a field value (its JSON text) for one record. */
export function sealValue(dek: DataKey, scope: CryptScope, field: string, recordId: string, value: unknown): Buffer {
  return encryptField(dek, JSON.stringify(value), { tenant: scope.tenantId, stage: scope.stageId, entity: scope.entity, field, recordId });
}

/** The keys a request on a stage may need, loaded before its stage session starts. */
export interface StageKeys {
  /** New values are encrypted with it. */
  readonly active: DataKey;
  /** Every DEK version the stage still has, for decryption. */
  readonly all: ReadonlyMap<number, DataKey>;
  readonly index: Buffer;
}

/**
 * Loads the stage's keys with the platform's connection. It must happen before the stage session:
 * on PGlite the session holds the one connection, and the runtime role cannot read the catalog.
 */
export async function loadStageKeys(db: Db, keyring: Keyring, tenantId: string, stageId: string): Promise<StageKeys> {
  const active = await keyring.activeDek(db, stageId);
  const versions = await db.selectFrom('accord.stage_deks').select('version').where('stage_id', '=', stageId).execute();
  const all = new Map<number, DataKey>();
  for (const { version } of versions) {
    const k = version === active.version ? active : await keyring.dek(db, stageId, version);
    if (k) all.set(version, k);
  }
  return { active, all, index: await stageIndexKey(db, keyring, tenantId, stageId) };
}

/** The DEK version an envelope names. */
export const versionOf = (envelope: Uint8Array): number => envelopeKeyVersion(envelope);

/** Decrypts a field value sealed by {@link sealValue}. */
export function openValue(keys: ReadonlyMap<number, DataKey>, scope: CryptScope, field: string, recordId: string, envelope: Uint8Array): unknown {
  const text = decryptField((v) => keys.get(v), envelope, { tenant: scope.tenantId, stage: scope.stageId, entity: scope.entity, field, recordId }).toString('utf8');
  return JSON.parse(text);
}
