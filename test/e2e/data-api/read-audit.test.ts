import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { client, endUser, expensesManifest, type Platform, startPlatform, type TestStage, tenantWithApp } from '../../harness/data-api.ts';
import { engines } from '../../harness/engines.ts';

// What a read's data.read event records: the ids of the records returned that showed a
// confidential or restricted value, and which of those fields they showed — one event per
// request, none when nothing sensitive (or only nulls) was returned.
for (const engine of engines()) {
  describe(`the audit of sensitive reads on ${engine.name}`, () => {
    let p: Platform;
    let st: TestStage;
    let carol: ReturnType<typeof client>;
    let erin: ReturnType<typeof client>;
    const ids: string[] = [];

    const readEvents = async () =>
      (
        await p.database.db.selectFrom('accord.audit_events').select(['details', 'actor_id']).where('tenant_id', '=', st.tenantId).where('action', '=', 'data.read').orderBy('occurred_at').orderBy('id').execute()
      ).map((e) => e.details as { ids: string[]; count: number; fields: string[]; entity: string });

    before(async () => {
      p = await startPlatform(engine);
      [st] = (await tenantWithApp(p, 'acme', expensesManifest())).filter((s) => s.stage === 'production') as [TestStage];
      const bob = client(p, st, 'expenses', (await endUser(p, st, 'bob@acme.test', 'expenses', ['Employee'])).token);
      carol = client(p, st, 'expenses', (await endUser(p, st, 'carol@acme.test', 'expenses', ['Manager'])).token);
      erin = client(p, st, 'expenses', (await endUser(p, st, 'erin@acme.test', 'expenses', ['Auditor'])).token);
      for (let i = 0; i < 3; i++) ids.push((await bob.create('Claim', { title: `c${i}`, amount: '1', iban: 'DE89370400440532013000', notes: `n${i}` })).body.id);
      // One without any sensitive value.
      ids.push((await bob.create('Claim', { title: 'plain', amount: '1' })).body.id);
    });
    after(async () => p?.close());

    test('a page of a list records the ids it returned with a sensitive field, not the row fetched to know there is a next page', async () => {
      const before = (await readEvents()).length;
      const page = await carol.list('Claim', { sort: 'title', limit: '2' });
      assert.equal(page.status, 200, JSON.stringify(page.body));
      assert.equal(page.body.items.length, 2);
      assert.ok(page.body.next);
      const events = (await readEvents()).slice(before);
      assert.equal(events.length, 1);
      assert.deepEqual([...(events[0]?.ids ?? [])].sort(), page.body.items.map((c: { id: string }) => c.id).sort());
      assert.equal(events[0]?.count, 2);
      assert.deepEqual(events[0]?.fields, ['iban', 'notes']);
    });

    test('the fields are those the caller saw: an Auditor reads the notes, not the IBAN', async () => {
      const before = (await readEvents()).length;
      const one = await erin.get('Claim', ids[0] as string);
      assert.equal(one.status, 200, JSON.stringify(one.body));
      assert.equal(one.body.iban, undefined);
      const events = (await readEvents()).slice(before);
      assert.deepEqual(events.map((e) => [e.ids, e.fields]), [[[ids[0]], ['notes']]]);
    });

    test('a read that returns nothing sensitive, or nothing at all, records nothing', async () => {
      const before = (await readEvents()).length;
      assert.equal((await carol.get('Claim', ids[3] as string)).status, 200);
      assert.equal((await carol.get('Claim', '00000000-0000-4000-8000-000000000000')).status, 404);
      assert.equal((await carol.list('Claim', { filter: 'row.title == "plain"' })).body.items.length, 1);
      assert.equal((await readEvents()).length, before);
    });
  });
}
