import { randomBytes } from 'node:crypto';
import type { DbOrTrx, Trx } from '../../db/index.ts';
import { AccordError } from '../../errors/index.ts';
import type { KmsProvider } from '../kms/index.ts';
import { dekAad, kekAad, unwrapKey, wrapKey } from './wrap.ts';

/** A data key in clear, with its version (what the field library encrypts with). */
export interface DataKey {
  readonly version: number;
  readonly key: Buffer;
}

interface Cached {
  readonly tenantId: string;
  readonly key: Buffer;
}

/**
 * The key hierarchy: KMS root key → per-tenant key-encryption key (KEK) → per-stage data keys
 * (DEKs), each versioned. Only wrapped forms are stored. Unwrapped keys are kept in a bounded
 * in-memory cache (least recently used out) and wiped when evicted or when their tenant is
 * shredded.
 */
export class Keyring {
  readonly kms: KmsProvider;
  readonly #cache = new Map<string, Cached>();
  readonly #max: number;

  constructor(kms: KmsProvider, opts: { maxCached?: number } = {}) {
    this.kms = kms;
    this.#max = opts.maxCached ?? 1000;
  }

  #remember(id: string, tenantId: string, key: Buffer): Buffer {
    this.#cache.delete(id);
    this.#cache.set(id, { tenantId, key });
    while (this.#cache.size > this.#max) {
      const [oldest, entry] = this.#cache.entries().next().value as [string, Cached];
      entry.key.fill(0);
      this.#cache.delete(oldest);
    }
    return key;
  }

  #recall(id: string): Buffer | undefined {
    const hit = this.#cache.get(id);
    if (!hit) return undefined;
    this.#cache.delete(id);
    this.#cache.set(id, hit);
    return hit.key;
  }

  /** How many unwrapped keys are in memory (for tests and metrics). */
  get cachedKeys(): number {
    return this.#cache.size;
  }

  /** Wipes and forgets every unwrapped key of a tenant (on deletion, before the data goes). */
  forgetTenant(tenantId: string): number {
    let n = 0;
    for (const [id, entry] of this.#cache) {
      if (entry.tenantId !== tenantId) continue;
      entry.key.fill(0);
      this.#cache.delete(id);
      n++;
    }
    return n;
  }

  /** Creates the tenant's next KEK version (v1 for a new tenant) and makes it the active one. */
  async createKek(trx: Trx, tenantId: string): Promise<number> {
    const last = await trx
      .selectFrom('accord.tenant_keks')
      .select((eb) => eb.fn.max('version').as('v'))
      .where('tenant_id', '=', tenantId)
      .executeTakeFirst();
    const version = Number(last?.v ?? 0) + 1;
    const key = randomBytes(32);
    const { keyId, wrapped } = await this.kms.wrap(key, kekAad(tenantId, version));
    await trx.updateTable('accord.tenant_keks').set({ state: 'retired' }).where('tenant_id', '=', tenantId).where('state', '=', 'active').execute();
    await trx.insertInto('accord.tenant_keks').values({ tenant_id: tenantId, version, root_key_id: keyId, wrapped, state: 'active' }).execute();
    this.#remember(`kek:${tenantId}:${version}`, tenantId, key);
    return version;
  }

  /** The tenant's KEK of a version, unwrapped through the KMS on a cache miss. */
  async kek(db: DbOrTrx, tenantId: string, version: number): Promise<Buffer> {
    const id = `kek:${tenantId}:${version}`;
    const hit = this.#recall(id);
    if (hit) return hit;
    const row = await db
      .selectFrom('accord.tenant_keks')
      .select(['root_key_id', 'wrapped'])
      .where('tenant_id', '=', tenantId)
      .where('version', '=', version)
      .executeTakeFirst();
    if (!row) throw new AccordError('CRYPTO_KEY_VERSION_UNKNOWN', { details: { key: 'tenant-kek', keyVersion: version } });
    return this.#remember(id, tenantId, await this.kms.unwrap(row.root_key_id, row.wrapped, kekAad(tenantId, version)));
  }

  async #activeKekVersion(db: DbOrTrx, tenantId: string): Promise<number> {
    const row = await db
      .selectFrom('accord.tenant_keks')
      .select('version')
      .where('tenant_id', '=', tenantId)
      .where('state', '=', 'active')
      .executeTakeFirst();
    if (!row) throw new AccordError('CRYPTO_KEY_VERSION_UNKNOWN', { details: { key: 'tenant-kek', keyVersion: 'active' } });
    return row.version;
  }

  /** Creates the stage's next DEK version under the tenant's active KEK and makes it active. */
  async createDek(trx: Trx, tenantId: string, stageId: string): Promise<number> {
    const last = await trx
      .selectFrom('accord.stage_deks')
      .select((eb) => eb.fn.max('version').as('v'))
      .where('stage_id', '=', stageId)
      .executeTakeFirst();
    const version = Number(last?.v ?? 0) + 1;
    const kekVersion = await this.#activeKekVersion(trx, tenantId);
    const kek = await this.kek(trx, tenantId, kekVersion);
    const key = randomBytes(32);
    await trx.updateTable('accord.stage_deks').set({ state: 'retired' }).where('stage_id', '=', stageId).where('state', '=', 'active').execute();
    await trx
      .insertInto('accord.stage_deks')
      .values({ stage_id: stageId, tenant_id: tenantId, version, kek_version: kekVersion, wrapped: wrapKey(kek, key, dekAad(stageId, version)), state: 'active' })
      .execute();
    this.#remember(`dek:${stageId}:${version}`, tenantId, key);
    return version;
  }

  /** A stage's DEK of a version, or undefined when that version does not exist (any more). */
  async dek(db: DbOrTrx, stageId: string, version: number): Promise<DataKey | undefined> {
    const id = `dek:${stageId}:${version}`;
    const hit = this.#recall(id);
    if (hit) return { version, key: hit };
    const row = await db
      .selectFrom('accord.stage_deks')
      .select(['tenant_id', 'kek_version', 'wrapped'])
      .where('stage_id', '=', stageId)
      .where('version', '=', version)
      .executeTakeFirst();
    if (!row) return undefined;
    const kek = await this.kek(db, row.tenant_id, row.kek_version);
    return { version, key: this.#remember(id, row.tenant_id, unwrapKey(kek, row.wrapped, dekAad(stageId, version))) };
  }

  /** The stage's active DEK: new values are encrypted with it. */
  async activeDek(db: DbOrTrx, stageId: string): Promise<DataKey> {
    const row = await db.selectFrom('accord.stage_deks').select('version').where('stage_id', '=', stageId).where('state', '=', 'active').executeTakeFirst();
    const dek = row ? await this.dek(db, stageId, row.version) : undefined;
    if (!dek) throw new AccordError('CRYPTO_KEY_VERSION_UNKNOWN', { details: { key: 'stage-dek', keyVersion: 'active' } });
    return dek;
  }

  /**
   * Crypto-shredding: destroys every key of the tenant (wrapped forms in the database, clear ones
   * in memory) inside the caller's deletion transaction, before the data is dropped. Returns what
   * was destroyed, for the audit record.
   */
  async shredTenant(trx: Trx, tenantId: string): Promise<{ keks: number[]; deks: number }> {
    const keks = await trx.deleteFrom('accord.tenant_keks').where('tenant_id', '=', tenantId).returning('version').execute();
    const deks = await trx.deleteFrom('accord.stage_deks').where('tenant_id', '=', tenantId).executeTakeFirst();
    this.forgetTenant(tenantId);
    return { keks: keks.map((k) => k.version).sort((a, b) => a - b), deks: Number(deks.numDeletedRows) };
  }

  /** Destroys a stage's data keys (all versions) and forgets them: the stage's data is shredded. */
  async shredStage(trx: Trx, stageId: string): Promise<number[]> {
    const deks = await trx.deleteFrom('accord.stage_deks').where('stage_id', '=', stageId).returning('version').execute();
    for (const d of deks) {
      const id = `dek:${stageId}:${d.version}`;
      this.#cache.get(id)?.key.fill(0);
      this.#cache.delete(id);
    }
    return deks.map((d) => d.version).sort((a, b) => a - b);
  }

  /** Rewraps one DEK under the tenant's active KEK (rotation step). */
  async rewrapDek(trx: Trx, stageId: string, version: number): Promise<void> {
    const row = await trx
      .selectFrom('accord.stage_deks')
      .select(['tenant_id', 'kek_version'])
      .where('stage_id', '=', stageId)
      .where('version', '=', version)
      .forUpdate()
      .executeTakeFirstOrThrow();
    const target = await this.#activeKekVersion(trx, row.tenant_id);
    if (row.kek_version === target) return;
    const dek = await this.dek(trx, stageId, version);
    if (!dek) return;
    const kek = await this.kek(trx, row.tenant_id, target);
    await trx
      .updateTable('accord.stage_deks')
      .set({ kek_version: target, wrapped: wrapKey(kek, dek.key, dekAad(stageId, version)) })
      .where('stage_id', '=', stageId)
      .where('version', '=', version)
      .execute();
  }

  /** Rewraps one tenant KEK under the KMS's current root key (root rotation step). */
  async rewrapKek(trx: Trx, tenantId: string, version: number): Promise<void> {
    const row = await trx
      .selectFrom('accord.tenant_keks')
      .select(['root_key_id'])
      .where('tenant_id', '=', tenantId)
      .where('version', '=', version)
      .forUpdate()
      .executeTakeFirstOrThrow();
    if (row.root_key_id === this.kms.currentKeyId()) return;
    const kek = await this.kek(trx, tenantId, version);
    const { keyId, wrapped } = await this.kms.wrap(kek, kekAad(tenantId, version));
    await trx.updateTable('accord.tenant_keks').set({ root_key_id: keyId, wrapped }).where('tenant_id', '=', tenantId).where('version', '=', version).execute();
  }
}
