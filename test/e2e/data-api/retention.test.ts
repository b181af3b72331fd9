import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { retentionJobSteps, scheduleRetention } from '../../../src/apps/index.ts';
import { compileForTest } from '../../harness/apps.ts';
import { client, endUser, type Platform, startPlatform, type TestStage, tenantWithApp } from '../../harness/data-api.ts';
import { engines } from '../../harness/engines.ts';
import { seed } from '../../harness/matrix.ts';

const manifest = `
app: archive
version: 1.0.0
roles:
  Clerk: { description: reads everything }
entities:
  Case:
    attributes:
      title: { type: text, required: true }
      closedAt: { type: datetime }
    retention: { days: 30, from: closedAt }
    access:
      read: [Clerk]
`;

// With the clock frozen at 2026-03-15, cases closed more than 30 days before are purged in
// batches by the retention job's step, each batch audited with its count; the others stay.
for (const engine of engines()) {
  describe(`the retention job on ${engine.name}`, () => {
    let p: Platform;
    let st: TestStage;
    before(async () => {
      p = await startPlatform(engine);
      [st] = (await tenantWithApp(p, 'acme', manifest)).filter((s) => s.stage === 'production') as [TestStage];
    });
    after(async () => p?.close());

    test('purges expired rows in batches, audited with counts, and keeps the rest', async () => {
      const e = compileForTest(manifest).ir.entities[0] as NonNullable<ReturnType<typeof compileForTest>['ir']['entities'][0]>;
      const old = ['2026-01-01T00:00:00.000Z', '2026-01-20T00:00:00.000Z', '2026-02-01T00:00:00.000Z'].map((closedAt) => ({ id: randomUUID(), title: 'old', closedAt }));
      const kept = [
        { id: randomUUID(), title: 'recent', closedAt: '2026-03-01T00:00:00.000Z' },
        { id: randomUUID(), title: 'open', closedAt: null },
      ];
      await seed(p, st, e, [...old, ...kept]);
      const step = retentionJobSteps(p.plane, () => new Date('2026-03-15T00:00:00.000Z'), 2).get('data.retention');
      assert.ok(step);
      const job = { id: randomUUID(), kind: 'data.retention', tenantId: st.tenantId, payload: {}, progress: {} as Record<string, unknown> };
      let steps = 0;
      for (;;) {
        const r = await step(p.database.db, job);
        job.progress = r.progress;
        steps++;
        if (r.done) break;
        assert.ok(steps < 10);
      }
      assert.equal(steps, 3, 'two batches of at most 2, then done');
      const clerk = client(p, st, 'archive', (await endUser(p, st, 'clerk@acme.test', 'archive', ['Clerk'])).token);
      const left = (await clerk.list('Case')).body.items.map((c: { id: string }) => c.id).sort();
      assert.deepEqual(left, kept.map((k) => k.id).sort());
      const events = await p.database.db.selectFrom('accord.audit_events').select(['details']).where('tenant_id', '=', st.tenantId).where('action', '=', 'data.retention.purged').execute();
      assert.deepEqual(events.map((x) => (x.details as { count: number }).count).sort(), [1, 2]);
    });

    test('the scheduler enqueues one retention job per tenant with a retention rule deployed, and none while one waits', async () => {
      // A tenant whose app has no retention rule gets none.
      await tenantWithApp(p, 'beta', manifest.replace('    retention: { days: 30, from: closedAt }\n', ''));
      await p.database.db.deleteFrom('accord.jobs').where('kind', '=', 'data.retention').execute();
      assert.deepEqual(await scheduleRetention(p.database.db), [st.tenantId]);
      assert.deepEqual(await scheduleRetention(p.database.db), [], 'one is pending already');
      const jobs = await p.database.db.selectFrom('accord.jobs').select(['tenant_id', 'state']).where('kind', '=', 'data.retention').execute();
      assert.deepEqual(jobs.map((j) => ({ ...j })), [{ tenant_id: st.tenantId, state: 'pending' }]);
      await p.database.db.updateTable('accord.jobs').set({ state: 'done' }).where('kind', '=', 'data.retention').execute();
      assert.deepEqual(await scheduleRetention(p.database.db), [st.tenantId], 'the next interval enqueues again');
    });

    test('a caller without an app role of the app is refused the entity', async () => {
      const nobody = client(p, st, 'archive', (await endUser(p, st, 'nobody@acme.test', 'archive', [])).token);
      assert.equal((await nobody.list('Case')).status, 403);
    });
  });
}
