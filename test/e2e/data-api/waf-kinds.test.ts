import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { engines } from '../../harness/engines.ts';
import { client, endUser, expensesManifest, type Platform, startPlatform, type TestStage, tenantWithApp } from '../../harness/data-api.ts';

// The WAF reads the data API's fields the way the app model types them: on a stage that blocks,
// attack text in a free-text attribute is refused by the firewall, the same text in a decimal or
// an enum reaches the data API (which refuses it as a bad value), and a filter is the data API's
// own expression language.
const ATTACK = "1' union select password from users --";

for (const engine of engines()) {
  describe(`the WAF on the data API on ${engine.name}`, () => {
    let p: Platform;
    let prod: TestStage;
    let bob: ReturnType<typeof client>;

    before(async () => {
      p = await startPlatform(engine);
      [prod] = (await tenantWithApp(p, 'acme', expensesManifest())).filter((s) => s.stage === 'production') as [TestStage];
      await p.database.db.insertInto('accord.waf_settings').values({ stage_id: prod.stageId, tenant_id: prod.tenantId, mode: 'block', paranoia_level: 1, threshold: 5 }).execute();
      bob = client(p, prod, 'expenses', (await endUser(p, prod, 'bob@acme.test', 'expenses', ['Employee'])).token);
    });
    after(async () => p?.close());

    test('attack text in a free-text attribute is blocked by the firewall', async () => {
      const r = await bob.create('Claim', { title: ATTACK, amount: '1.00' });
      assert.equal(r.status, 403, JSON.stringify(r.body));
      assert.equal(r.body.code, 'WAF_BLOCKED');
    });

    test('the same text in a decimal or an enum attribute is the data API’s bad value, not a firewall block', async () => {
      const amount = await bob.create('Claim', { title: 'Lunch', amount: ATTACK });
      assert.equal(amount.status, 400, JSON.stringify(amount.body));
      assert.equal(amount.body.code, 'DATA_BODY_INVALID');
      const status = await bob.create('Claim', { title: 'Lunch', amount: '1.00', status: ATTACK });
      assert.equal(status.status, 400, JSON.stringify(status.body));
      assert.equal(status.body.code, 'DATA_BODY_INVALID');
    });

    test('a filter holding SQL words is compiled by the data API, not refused by the firewall', async () => {
      const r = await bob.list('Claim', { filter: `row.title == "${ATTACK.replaceAll("'", '')}"` });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(r.body.items, []);
      // A text attribute as a query parameter is still inspected.
      const q = await bob.list('Claim', { title: ATTACK });
      assert.equal(q.status, 403, JSON.stringify(q.body));
    });
  });
}
