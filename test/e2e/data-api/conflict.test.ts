import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { client, endUser, type Platform, startPlatform, type TestStage, tenantWithApp } from '../../harness/data-api.ts';
import { engines } from '../../harness/engines.ts';

// Unique values across owners: a clash is a 409 that names the attribute and nothing of the row
// the caller cannot read; nothing is written, and the caller's session goes on working.
const manifest = `
app: badges
version: 1.0.0
roles:
  Holder: { description: holds own badges }
conditions:
  own: row.owner == auth.user
entities:
  Badge:
    attributes:
      code:  { type: text, required: true, unique: true, maxLength: 40 }
      label: { type: text }
      owner: { type: user, required: true, immutable: true }
    access:
      read:   [{ role: Holder, where: own }]
      create: [{ role: Holder, preset: { owner: auth.user } }]
`;

for (const engine of engines()) {
  describe(`unique conflicts in the data API on ${engine.name}`, () => {
    let p: Platform;
    let st: TestStage;
    let ann: ReturnType<typeof client>;
    let ben: ReturnType<typeof client>;

    before(async () => {
      p = await startPlatform(engine);
      [st] = (await tenantWithApp(p, 'acme', manifest)).filter((s) => s.stage === 'production') as [TestStage];
      ann = client(p, st, 'badges', (await endUser(p, st, 'ann@acme.test', 'badges', ['Holder'])).token);
      ben = client(p, st, 'badges', (await endUser(p, st, 'ben@acme.test', 'badges', ['Holder'])).token);
    });
    after(async () => p?.close());

    test('a value another owner holds is a 409 naming the attribute, revealing nothing of that row, and writing nothing', async () => {
      const mine = await ann.create('Badge', { code: 'B-7', label: 'secret label of ann' });
      assert.equal(mine.status, 201, JSON.stringify(mine.body));
      const clash = await ben.create('Badge', { code: 'B-7', label: 'ben' });
      assert.equal(clash.status, 409, JSON.stringify(clash.body));
      assert.equal(clash.body.code, 'DATA_CONFLICT');
      assert.deepEqual(clash.body.details, { field: 'code' });
      const text = JSON.stringify(clash.body);
      for (const leak of [mine.body.id, 'secret label of ann', 'already exists', 'Key (']) assert.ok(!text.includes(leak), `the answer reveals ${leak}`);
      // Ben's next request works (the failed session rolled back cleanly) and he sees only his own.
      const next = await ben.create('Badge', { code: 'B-8', label: 'ben' });
      assert.equal(next.status, 201, JSON.stringify(next.body));
      assert.deepEqual((await ben.list('Badge')).body.items.map((b: { code: string }) => b.code), ['B-8']);
      const all = await p.database.db.selectFrom('accord.audit_events').select(['action', 'target_id']).where('tenant_id', '=', st.tenantId).where('action', '=', 'data.create').execute();
      assert.equal(all.length, 2, 'the refused create left no audit event');
    });
  });
}
