import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { appDataReencrypter, forgetStageIndexKeys, rewrapStageIndexKeys } from '../../../src/apps/index.ts';
import { systemSource } from '../../../src/audit-chain/index.ts';
import { keyJobSteps, rotateKeys } from '../../../src/keys/index.ts';
import { client, endUser, expensesManifest, type Platform, startPlatform, type TestStage, tenantWithApp } from '../../harness/data-api.ts';
import { engines } from '../../harness/engines.ts';

// A stage DEK rotation re-encrypts the app's encrypted attributes under the new version before
// the old one is destroyed; the values still read back, and equality search still finds them.
for (const engine of engines()) {
  describe(`key rotation of app data on ${engine.name}`, () => {
    let p: Platform;
    let st: TestStage;
    before(async () => {
      p = await startPlatform(engine);
      [st] = (await tenantWithApp(p, 'acme', expensesManifest())).filter((s) => s.stage === 'production') as [TestStage];
    });
    after(async () => p?.close());

    test('re-encrypts every encrypted value, then destroys the old DEK version', async () => {
      const bob = client(p, st, 'expenses', (await endUser(p, st, 'bob@acme.test', 'expenses', ['Employee'])).token);
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) ids.push((await bob.create('Claim', { title: `c${i}`, amount: '1', iban: `DE0000000000000000000${i}`, notes: `n${i}` })).body.id);
      const rotated = await rotateKeys(p.database.db, p.keyring, systemSource, { id: st.tenantId, name: 'acme' }, { id: st.stageId, name: 'production' });
      const step = keyJobSteps(p.keyring, systemSource, () => {}, { reencryptAppData: async (db, t, s, v) => appDataReencrypter(p.plane, p.keyring)(db, t, s, v, 2), destroyGraceMs: 0 }).get('keys.reencrypt-stage');
      assert.ok(step);
      const job = { id: rotated.jobId, kind: 'keys.reencrypt-stage', tenantId: st.tenantId, payload: { tenantId: st.tenantId, stageId: st.stageId, toVersion: rotated.version }, progress: {} as Record<string, unknown> };
      for (let i = 0; ; i++) {
        assert.ok(i < 20);
        const r = await step(p.database.db, job);
        job.progress = r.progress;
        if (r.done) break;
      }
      assert.equal(job.progress.appRows, 3);
      const versions = (await p.database.db.selectFrom('accord.stage_deks').select('version').where('stage_id', '=', st.stageId).execute()).map((v) => v.version);
      assert.deepEqual(versions, [rotated.version], 'the old version is gone');
      const raw = (await sql.raw<{ v: string }>(`select encode(substring(iban from 2 for 4), 'hex') as v from "${st.schema}"."Claim"`).execute(p.database.db)).rows;
      if (engine.name === 'pglite') assert.deepEqual(raw.map((r) => r.v), Array(3).fill(rotated.version.toString(16).padStart(8, '0')));
      for (const [i, id] of ids.entries()) {
        const c = await bob.get('Claim', id);
        assert.equal(c.status, 200, JSON.stringify(c.body));
        assert.equal(c.body.iban, `DE0000000000000000000${i}`);
        assert.equal(c.body.notes, `n${i}`);
      }
      assert.deepEqual((await bob.list('Claim', { iban: 'DE00000000000000000001' })).body.items.map((c: { id: string }) => c.id), [ids[1]]);
    });

    test('a tenant KEK rotation rewraps the stage blind-index keys before it destroys the old KEK, so search works after a restart', async () => {
      const bob = client(p, st, 'expenses', (await endUser(p, st, 'bert@acme.test', 'expenses', ['Employee'])).token);
      const made = await bob.create('Claim', { title: 'kek', amount: '1', iban: 'DE11111111111111111111' });
      assert.equal(made.status, 201, JSON.stringify(made.body));
      const before = await p.database.db.selectFrom('accord.stage_index_keys').select(['kek_version', 'wrapped']).where('stage_id', '=', st.stageId).executeTakeFirstOrThrow();
      const rotated = await rotateKeys(p.database.db, p.keyring, systemSource, { id: st.tenantId, name: 'acme' });
      assert.equal(rotated.kind, 'kek');
      const step = keyJobSteps(p.keyring, systemSource, () => {}, { rewrapAppKeys: (trx, t, v, n) => rewrapStageIndexKeys(trx, p.keyring, t, v, n) }).get('keys.rewrap-tenant');
      assert.ok(step);
      const job = { id: rotated.jobId, kind: 'keys.rewrap-tenant', tenantId: st.tenantId, payload: { tenantId: st.tenantId, toVersion: rotated.version }, progress: {} as Record<string, unknown> };
      for (let i = 0; ; i++) {
        assert.ok(i < 20);
        const r = await step(p.database.db, job);
        job.progress = r.progress;
        if (r.done) break;
      }
      assert.equal(job.progress.appKeys, 1);
      assert.deepEqual(job.progress.destroyedVersions, [before.kek_version]);
      const after = await p.database.db.selectFrom('accord.stage_index_keys').select(['kek_version', 'wrapped']).where('stage_id', '=', st.stageId).executeTakeFirstOrThrow();
      assert.equal(after.kek_version, rotated.version);
      assert.notDeepEqual(after.wrapped, before.wrapped);
      // As a restarted node: the index key is unwrapped again, under the new KEK, and still finds the row.
      forgetStageIndexKeys();
      p.keyring.forgetTenant(st.tenantId);
      await new Promise((r) => setTimeout(r, 1100)); // the data API's one-second key cache
      const found = await bob.list('Claim', { iban: 'DE11111111111111111111' });
      assert.equal(found.status, 200, JSON.stringify(found.body));
      assert.deepEqual(found.body.items.map((c: { id: string }) => c.id), [made.body.id]);
    });
  });
}
