import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import pino from 'pino';
import { engines } from '../../test/harness/engines.ts';
import { testKeyring } from '../../test/harness/keys.ts';
import { systemSource } from '../audit-chain/index.ts';
import { Keyring } from '../crypto/keyring/index.ts';
import type { Db } from '../db/index.ts';
import { JobRunner } from '../jobs/index.ts';
import { gatewayCredentials } from '../kernel/index.ts';
import { createTenant, deleteStage, deleteTenant, type Stage } from '../tenancy/index.ts';
import { keyJobSteps, keyStatus, listSecrets, readSecret, rotateKeys, rotateRoot, setSecret } from './index.ts';

const quiet = pino({ level: 'silent' });

for (const engine of engines()) {
  describe(`keys and secrets on ${engine.name}`, { concurrency: false }, () => {
    let db: Db;
    let keyring: Keyring;
    let tenant: { id: string; name: string; stages: Stage[] };
    let dev: Stage;
    const drain = () => new JobRunner(db, keyJobSteps(keyring, systemSource), quiet).drain();
    const at = () => ({ tenantId: tenant.id, stageId: dev.id, stageName: dev.name });

    test('a new tenant gets KEK v1 and a v1 data key per stage, stored only wrapped', async () => {
      db = (await engine.open()).db;
      keyring = await testKeyring();
      tenant = await createTenant(db, keyring, systemSource, { name: 'acme' });
      dev = tenant.stages[0] as Stage;
      const status = await keyStatus(db, keyring, tenant.id);
      assert.equal(status.provider, 'local');
      assert.deepEqual(status.kek.map((k) => [k.version, k.state]), [[1, 'active']]);
      assert.deepEqual(status.stages.map((s) => [s.stage, s.deks.map((d) => d.version)]), [
        ['development', [1]],
        ['test', [1]],
        ['production', [1]],
      ]);
      const rows = await db.selectFrom('accord.stage_deks').select('wrapped').execute();
      assert.ok(rows.every((r) => r.wrapped.length === 60), 'nonce + 32-byte key + tag');
    });

    test('secrets are write-only, encrypted at rest and readable by the runtime', async () => {
      await setSecret(db, keyring, systemSource, at(), 'SMTP_PASSWORD', 'p4ss-word-value');
      await setSecret(db, keyring, systemSource, at(), 'API_TOKEN', 'tok-123456789');
      const listed = await listSecrets(db, dev.id);
      assert.deepEqual(listed.map((s) => [s.name, s.value]), [
        ['API_TOKEN', '********'],
        ['SMTP_PASSWORD', '********'],
      ]);
      const raw = await db.selectFrom('accord.stage_secrets').select('envelope').execute();
      assert.ok(raw.every((r) => !r.envelope.toString('latin1').includes('p4ss-word-value')));
      assert.equal(await readSecret(db, keyring, tenant.id, dev.id, 'SMTP_PASSWORD'), 'p4ss-word-value');
      // A cold keyring (another node, or after a restart) unwraps through the KMS.
      assert.equal(await readSecret(db, new Keyring(keyring.kms), tenant.id, dev.id, 'API_TOKEN'), 'tok-123456789');
    });

    test('a ciphertext moved to another secret fails closed instead of decrypting', async () => {
      const a = await db.selectFrom('accord.stage_secrets').select('envelope').where('name', '=', 'API_TOKEN').executeTakeFirstOrThrow();
      await db.transaction().execute(async (trx) => {
        await trx.insertInto('accord.stage_secrets').values({ stage_id: dev.id, name: 'COPY', envelope: a.envelope, key_version: 1 }).execute();
      });
      await assert.rejects(readSecret(db, keyring, tenant.id, dev.id, 'COPY'), (e: { code?: string }) => e.code === 'CRYPTO_DECRYPT_FAILED');
      const alarm = await db.selectFrom('accord.audit_events').select(['reason', 'target_id']).where('action', '=', 'crypto.decrypt.failed').execute();
      assert.deepEqual(alarm, [{ reason: 'CRYPTO_DECRYPT_FAILED', target_id: `${dev.id}/COPY` }]);
      await db.deleteFrom('accord.stage_secrets').where('name', '=', 'COPY').execute();
    });

    test('rotating the tenant KEK rewraps every data key, destroys v1, and values stay readable', async () => {
      const r = await rotateKeys(db, keyring, systemSource, tenant);
      assert.equal(r.kind, 'kek');
      assert.equal(r.version, 2);
      const before = await keyStatus(db, keyring, tenant.id);
      assert.deepEqual(before.kek.map((k) => [k.version, k.state]), [
        [1, 'retired'],
        [2, 'active'],
      ]);
      await drain();
      const after = await keyStatus(db, keyring, tenant.id);
      assert.deepEqual(after.kek.map((k) => [k.version, k.state]), [[2, 'active']]);
      assert.ok(after.stages.every((s) => s.deks.every((d) => d.kekVersion === 2)));
      assert.equal(after.jobs[0]?.state, 'done');
      assert.equal(await readSecret(db, new Keyring(keyring.kms), tenant.id, dev.id, 'SMTP_PASSWORD'), 'p4ss-word-value');
    });

    test("rotating a stage's data key re-encrypts its values and destroys the old version", async () => {
      const r = await rotateKeys(db, keyring, systemSource, tenant, dev);
      assert.equal(r.kind, 'dek');
      assert.equal(r.version, 2);
      // New writes use the new version at once, before the job has run.
      await setSecret(db, keyring, systemSource, at(), 'NEW_ONE', 'fresh');
      const mid = await keyStatus(db, keyring, tenant.id);
      const devMid = mid.stages.find((s) => s.stage === 'development');
      assert.deepEqual(devMid?.deks.map((d) => [d.version, d.values]), [
        [1, 2],
        [2, 1],
      ]);
      await drain();
      const after = await keyStatus(db, keyring, tenant.id);
      const devAfter = after.stages.find((s) => s.stage === 'development');
      assert.deepEqual(devAfter?.deks.map((d) => [d.version, d.state, d.values]), [[2, 'active', 3]]);
      for (const [name, value] of [
        ['SMTP_PASSWORD', 'p4ss-word-value'],
        ['API_TOKEN', 'tok-123456789'],
        ['NEW_ONE', 'fresh'],
      ] as const) {
        assert.equal(await readSecret(db, new Keyring(keyring.kms), tenant.id, dev.id, name), value);
      }
    });

    test('rotating the root key rewraps tenant KEKs only and retires the old root key', async () => {
      const oldRoot = keyring.kms.currentKeyId();
      // The data-plane gateway's password is wrapped by the root key too.
      const gateway = await gatewayCredentials(db, keyring.kms);
      const deksBefore = await db.selectFrom('accord.stage_deks').select(['stage_id', 'wrapped']).orderBy('stage_id').execute();
      const r = await rotateRoot(db, keyring, systemSource);
      assert.notEqual(r.rootKeyId, oldRoot);
      await drain();
      const keks = await db.selectFrom('accord.tenant_keks').select('root_key_id').execute();
      assert.ok(keks.every((k) => k.root_key_id === r.rootKeyId));
      const deksAfter = await db.selectFrom('accord.stage_deks').select(['stage_id', 'wrapped']).orderBy('stage_id').execute();
      assert.deepEqual(deksAfter, deksBefore, 'data keys untouched');
      await assert.rejects(keyring.kms.unwrap(oldRoot, Buffer.alloc(61), 'x'));
      assert.equal(await readSecret(db, new Keyring(keyring.kms), tenant.id, dev.id, 'API_TOKEN'), 'tok-123456789');
      assert.deepEqual(await gatewayCredentials(db, keyring.kms), gateway);
    });

    test('two root rotations in a row both finish, onto the newest root key', async () => {
      await rotateRoot(db, keyring, systemSource);
      const second = await rotateRoot(db, keyring, systemSource);
      await drain();
      const keks = await db.selectFrom('accord.tenant_keks').select('root_key_id').execute();
      assert.ok(keks.length > 0 && keks.every((k) => k.root_key_id === second.rootKeyId));
      const jobs = await db.selectFrom('accord.jobs').select('state').where('kind', '=', 'keys.rewrap-root').execute();
      assert.ok(jobs.every((j) => j.state === 'done'));
    });

    test('a tampered wrapped data key fails closed with a catalog code', async () => {
      const row = await db.selectFrom('accord.stage_deks').select(['wrapped', 'version']).where('stage_id', '=', dev.id).executeTakeFirstOrThrow();
      const bad = Buffer.from(row.wrapped);
      bad[20] = (bad[20] ?? 0) ^ 1;
      await db.updateTable('accord.stage_deks').set({ wrapped: bad }).where('stage_id', '=', dev.id).execute();
      await assert.rejects(readSecret(db, new Keyring(keyring.kms), tenant.id, dev.id, 'API_TOKEN'), (e: { code?: string }) => e.code === 'CRYPTO_DECRYPT_FAILED');
      await db.updateTable('accord.stage_deks').set({ wrapped: row.wrapped }).where('stage_id', '=', dev.id).execute();
      assert.equal(await readSecret(db, new Keyring(keyring.kms), tenant.id, dev.id, 'API_TOKEN'), 'tok-123456789');
    });

    test('deleting a stage shreds its data keys first; the others keep theirs and move up', async () => {
      const testStage = tenant.stages.find((s) => s.name === 'test') as Stage;
      await setSecret(db, keyring, systemSource, { tenantId: tenant.id, stageId: testStage.id, stageName: 'test' }, 'TEST_ONLY', 'test-secret-value');
      const copy = await db.selectFrom('accord.stage_secrets').selectAll().where('stage_id', '=', testStage.id).execute();
      await assert.rejects(deleteStage(db, keyring, systemSource, 'acme', 'test', 'tset'), (e: { code?: string }) => e.code === 'TENANCY_CONFIRMATION_REQUIRED');
      await deleteStage(db, keyring, systemSource, 'acme', 'test', 'test');
      assert.equal((await db.selectFrom('accord.stage_deks').select('version').where('stage_id', '=', testStage.id).execute()).length, 0);
      const left = await db.selectFrom('accord.stages').select(['name', 'position']).where('tenant_id', '=', tenant.id).orderBy('position').execute();
      assert.deepEqual(left, [
        { name: 'development', position: 1 },
        { name: 'production', position: 2 },
      ]);
      assert.equal(await readSecret(db, keyring, tenant.id, dev.id, 'API_TOKEN'), 'tok-123456789', 'other stages unaffected');
      // The copied ciphertext, put back under a surviving stage id, has no key to open it.
      await db.insertInto('accord.stage_secrets').values({ ...copy[0]!, stage_id: dev.id, name: 'TEST_ONLY' }).execute();
      await assert.rejects(readSecret(db, new Keyring(keyring.kms), tenant.id, dev.id, 'TEST_ONLY'));
      await db.deleteFrom('accord.stage_secrets').where('name', '=', 'TEST_ONLY').execute();
      const audit = await db.selectFrom('accord.audit_events').select('details').where('action', '=', 'stage.deleted').executeTakeFirstOrThrow();
      assert.deepEqual((audit.details as { keysDestroyed: unknown }).keysDestroyed, { stageDataKeyVersions: [1] });
    });

    test('deleting the tenant shreds its keys first: a copy of its data taken before cannot be decrypted', async () => {
      const copy = await db.selectFrom('accord.stage_secrets').selectAll().where('stage_id', '=', dev.id).execute();
      const wrappedDeks = await db.selectFrom('accord.stage_deks').selectAll().where('tenant_id', '=', tenant.id).execute();
      assert.ok(copy.length === 3 && wrappedDeks.length === 2);
      assert.ok(keyring.cachedKeys > 0);
      await deleteTenant(db, keyring, systemSource, 'acme', 'acme');
      assert.equal((await db.selectFrom('accord.tenant_keks').select('version').execute()).length, 0);
      const audit = await db.selectFrom('accord.audit_events').select('details').where('action', '=', 'tenant.deleted').executeTakeFirstOrThrow();
      assert.deepEqual((audit.details as { keysDestroyed: unknown }).keysDestroyed, { tenantKekVersions: [2], stageDataKeys: 2 });
      // Put the copied ciphertexts and even the wrapped data keys back: without the tenant KEK,
      // nothing unwraps.
      const restored = await createTenant(db, keyring, systemSource, { name: 'acme-restored' });
      const stage = restored.stages[0] as Stage;
      await db.deleteFrom('accord.stage_deks').where('stage_id', '=', stage.id).execute();
      await db.transaction().execute(async (trx) => {
        for (const d of wrappedDeks.filter((x) => x.stage_id === dev.id)) {
          await trx.insertInto('accord.stage_deks').values({ ...d, stage_id: stage.id, tenant_id: restored.id }).execute();
        }
        for (const s of copy) await trx.insertInto('accord.stage_secrets').values({ ...s, stage_id: stage.id }).execute();
      });
      await assert.rejects(readSecret(db, new Keyring(keyring.kms), tenant.id, stage.id, 'API_TOKEN'));
    });

    test('key operations are audited without key material or secret values', async () => {
      const rows = await db.selectFrom('accord.audit_events').select(['action', 'details']).execute();
      const actions = new Set(rows.map((r) => r.action));
      for (const a of ['key.rotated', 'key.destroyed', 'secret.set', 'key.root.rotated', 'tenant.deleted']) assert.ok(actions.has(a), a);
      const text = JSON.stringify(rows);
      for (const secret of ['p4ss-word-value', 'tok-123456789', 'fresh']) assert.ok(!text.includes(secret));
    });
  });
}
