import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { runAsStage, type StageRef } from '../../../src/kernel/index.ts';
import { engines } from '../../harness/engines.ts';
import { client, endUser, expensesManifest, type Platform, startPlatform, type TestStage, tenantWithApp } from '../../harness/data-api.ts';

// Every rule enforced twice: with the test-only switch on, the data API's SQL carries no rule at
// all, and the row-level-security policies compiled from the same AST (compilePolicies) must
// still refuse other owners' rows, other roles' operations, and other stages' and tenants' data.
for (const engine of engines()) {
  describe(`the database alone enforces the rules on ${engine.name}`, () => {
    let p: Platform;
    let prod: TestStage;
    let dev: TestStage;
    let globex: TestStage;
    let bob: ReturnType<typeof client>;
    let dave: ReturnType<typeof client>;
    let carol: ReturnType<typeof client>;
    let bobClaim: string;
    const ref = (s: TestStage): StageRef => ({ tenantId: s.tenantId, stageId: s.stageId, schema: s.schema, role: s.role });

    before(async () => {
      p = await startPlatform(engine, { rulesOff: true });
      const acme = await tenantWithApp(p, 'acme', expensesManifest(), ['production', 'development']);
      prod = acme.find((s) => s.stage === 'production') as TestStage;
      dev = acme.find((s) => s.stage === 'development') as TestStage;
      globex = (await tenantWithApp(p, 'globex', expensesManifest())).find((s) => s.stage === 'production') as TestStage;
      bob = client(p, prod, 'expenses', (await endUser(p, prod, 'bob@acme.test', 'expenses', ['Employee'])).token);
      dave = client(p, prod, 'expenses', (await endUser(p, prod, 'dave@acme.test', 'expenses', ['Employee'])).token);
      carol = client(p, prod, 'expenses', (await endUser(p, prod, 'carol@acme.test', 'expenses', ['Manager'])).token);
      const r = await bob.create('Claim', { title: 'mine', amount: '5' });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      bobClaim = r.body.id;
    });
    after(async () => p?.close());

    test("another owner's rows stay invisible and unchangeable", async () => {
      assert.equal((await dave.get('Claim', bobClaim)).status, 404);
      assert.deepEqual((await dave.list('Claim')).body.items, []);
      assert.equal((await dave.update('Claim', bobClaim, { title: 'stolen' })).status, 404);
      assert.equal((await dave.remove('Claim', bobClaim)).status, 404);
      assert.equal((await bob.get('Claim', bobClaim)).body.title, 'mine');
    });

    test("a role's check and presets are enforced by the database", async () => {
      const approved = await bob.create('Claim', { title: 'x', amount: '1', status: 'approved' });
      assert.equal(approved.status, 403);
      assert.equal(approved.body.code, 'DATA_CHECK_FAILED');
      assert.equal((await bob.list('Claim')).body.items.length, 1, 'nothing was written');
    });

    test("a role cannot use another role's rows or operations", async () => {
      // The manager's update rule covers submitted claims only: a draft stays out of reach.
      assert.equal((await carol.update('Claim', bobClaim, { status: 'approved' })).status, 404);
      assert.equal((await carol.get('Claim', bobClaim)).body.status, 'draft');
      // No create rule for Employees on Category: the policy refuses the insert itself.
      await assert.rejects(
        runAsStage(p.plane, ref(prod), { kind: 'end-user', principalId: null, roles: ['Employee'], requestId: 'rls-1' }, (s) =>
          sql`insert into "Category" (id, name) values (gen_random_uuid(), 'Travel')`.execute(s.db),
        ),
        (err: { code?: string }) => err.code === '42501',
      );
      // With no app role at all, not one row is visible.
      const rows = await runAsStage(p.plane, ref(prod), { kind: 'end-user', principalId: null, roles: [], requestId: 'rls-2' }, async (s) => (await sql`select id from "Claim"`.execute(s.db)).rows);
      assert.deepEqual(rows, []);
    });

    test("another stage's and another tenant's tables are out of reach of a stage's role", async () => {
      for (const other of [dev, globex]) {
        await assert.rejects(
          runAsStage(p.plane, ref(prod), { kind: 'end-user', principalId: null, roles: ['Manager'], requestId: 'rls-3' }, (s) => sql`select id from ${sql.id(other.schema, 'Claim')}`.execute(s.db)),
          (err: { code?: string }) => err.code === '42501',
        );
      }
      // And the table owner's rows are subject to RLS too (FORCE): the owning role sees none without a role.
      const forced = await p.database.db.transaction().execute(async (trx) => {
        await sql`set local role ${sql.id(prod.role)}`.execute(trx);
        const r = await sql`select relforcerowsecurity as f from pg_class where oid = ${`${prod.schema}."Claim"`}::regclass`.execute(trx);
        return (r.rows[0] as { f: boolean }).f;
      });
      assert.equal(forced, true);
    });

    test('a token of one stage opens no other stage', async () => {
      const devClient = client(p, dev, 'expenses', (await endUser(p, prod, 'erin@acme.test', 'expenses', ['Manager'])).token);
      const r = await devClient.list('Claim');
      assert.equal(r.status, 403);
    });
  });
}
