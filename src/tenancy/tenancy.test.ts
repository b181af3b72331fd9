import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { sql } from 'kysely';
import { engines } from '../../test/harness/engines.ts';
import { testKeyring } from '../../test/harness/keys.ts';
import type { Keyring } from '../crypto/keyring/index.ts';
import { systemSource } from '../audit-chain/index.ts';
import type { Db } from '../db/index.ts';
import { isAccordError } from '../errors/index.ts';
import { runtimeRoleOf } from '../kernel/index.ts';
import { createStage, createTenant, deleteTenant, listStages } from './index.ts';

const names = (stages: { name: string }[]) => stages.map((s) => s.name);

async function schemaExists(db: Db, schema: string): Promise<boolean> {
  const r = await sql`select 1 from pg_namespace where nspname = ${schema}`.execute(db);
  return r.rows.length === 1;
}
async function roleExists(db: Db, role: string): Promise<boolean> {
  const r = await sql`select 1 from pg_roles where rolname = ${role}`.execute(db);
  return r.rows.length === 1;
}

for (const engine of engines()) {
  describe(`tenancy on ${engine.name}`, { concurrency: false }, () => {
    let db: Db;
    let keyring: Keyring;
    test('a new tenant gets development, test and production, each with its own schema and role', async () => {
      db = (await engine.open()).db;
      keyring = await testKeyring();
      const t = await createTenant(db, keyring, systemSource, { name: 'acme', displayName: 'Acme Corp' });
      assert.equal(t.displayName, 'Acme Corp');
      assert.deepEqual(names(t.stages), ['development', 'test', 'production']);
      assert.deepEqual(
        t.stages.map((s) => s.position),
        [1, 2, 3],
      );
      for (const s of t.stages) {
        assert.ok(await schemaExists(db, s.schema), `schema ${s.schema}`);
        assert.ok(await roleExists(db, s.role), `role ${s.role}`);
        assert.ok(await roleExists(db, runtimeRoleOf(s.role)), `runtime role of ${s.role}`);
        const owner = await sql<{ owner: string }>`select nspowner::regrole::text as owner from pg_namespace where nspname = ${s.schema}`.execute(db);
        assert.equal(owner.rows[0]?.owner, s.role, 'the stage role owns its schema');
      }
      assert.equal(new Set(t.stages.map((s) => s.schema)).size, 3);
    });

    test('creating a tenant is audited in the same transaction', async () => {
      const rows = await db.selectFrom('accord.audit_events').select(['action']).orderBy('ins').execute();
      assert.deepEqual(
        rows.map((r) => r.action),
        ['tenant.created', 'stage.created', 'stage.created', 'stage.created'],
      );
    });

    test('a stage inserted after test sits between test and production', async () => {
      const uat = await createStage(db, keyring, systemSource, 'acme', { name: 'uat', after: 'test' });
      assert.equal(uat.position, 3);
      const t = await db.selectFrom('accord.tenants').select('id').where('name', '=', 'acme').executeTakeFirstOrThrow();
      const stages = await listStages(db, t.id);
      assert.deepEqual(names(stages), ['development', 'test', 'uat', 'production']);
      assert.deepEqual(
        stages.map((s) => s.position),
        [1, 2, 3, 4],
      );
      const last = await createStage(db, keyring, systemSource, 'acme', { name: 'sandbox' });
      assert.equal(last.position, 5);
    });

    test('bad names, duplicates and unknown references are refused and change nothing', async () => {
      const before = await db.selectFrom('accord.stages').select('id').execute();
      const auditBefore = await db.selectFrom('accord.audit_events').select('id').execute();
      const cases: [() => Promise<unknown>, string][] = [
        [() => createTenant(db, keyring, systemSource, { name: 'Bad_Name' }), 'TENANCY_TENANT_NAME_INVALID'],
        [() => createTenant(db, keyring, systemSource, { name: 'a' }), 'TENANCY_TENANT_NAME_INVALID'],
        [() => createTenant(db, keyring, systemSource, { name: 'ends-' }), 'TENANCY_TENANT_NAME_INVALID'],
        [() => createTenant(db, keyring, systemSource, { name: 'api' }), 'TENANCY_TENANT_NAME_INVALID'],
        [() => createTenant(db, keyring, systemSource, { name: 'acme' }), 'TENANCY_TENANT_EXISTS'],
        [() => createTenant(db, keyring, systemSource, { name: 'ok-name', region: 'EU West' }), 'REQUEST_INVALID'],
        [() => createStage(db, keyring, systemSource, 'acme', { name: 'UAT' }), 'TENANCY_STAGE_NAME_INVALID'],
        [() => createStage(db, keyring, systemSource, 'acme', { name: 'uat' }), 'TENANCY_STAGE_EXISTS'],
        [() => createStage(db, keyring, systemSource, 'acme', { name: 'perf', after: 'nowhere' }), 'TENANCY_STAGE_NOT_FOUND'],
        [() => createStage(db, keyring, systemSource, 'nope', { name: 'perf' }), 'TENANCY_TENANT_NOT_FOUND'],
      ];
      for (const [p, code] of cases) await assert.rejects(p(), (e) => isAccordError(e) && e.code === code, code);
      assert.equal((await db.selectFrom('accord.stages').select('id').execute()).length, before.length);
      assert.equal((await db.selectFrom('accord.tenants').select('id').execute()).length, 1);
      assert.equal((await db.selectFrom('accord.audit_events').select('id').execute()).length, auditBefore.length);
    });

    test("a stage's role can use its own schema but not another stage's, another tenant's or the catalog", async () => {
      const other = await createTenant(db, keyring, systemSource, { name: 'globex' });
      const acme = await db.selectFrom('accord.tenants').select('id').where('name', '=', 'acme').executeTakeFirstOrThrow();
      const [dev, test_] = await listStages(db, acme.id);
      assert.ok(dev && test_);
      const foreign = other.stages[0];
      assert.ok(foreign);
      // Tables owned by their stage roles, as app deployments will create them.
      for (const s of [dev, test_, foreign]) {
        await db.transaction().execute(async (trx) => {
          await sql`set local role ${sql.id(s.role)}`.execute(trx);
          await sql`create table ${sql.id(s.schema, 'items')} (id int primary key, secret text)`.execute(trx);
          await sql`insert into ${sql.id(s.schema, 'items')} values (1, ${s.name})`.execute(trx);
        });
      }
      const asRole = async (role: string, query: ReturnType<typeof sql>) =>
        db.transaction().execute(async (trx) => {
          await sql`set local role ${sql.id(role)}`.execute(trx);
          return query.execute(trx);
        });
      const own = await asRole(dev.role, sql`select secret from ${sql.id(dev.schema, 'items')}`);
      assert.deepEqual(own.rows, [{ secret: 'development' }]);
      const denied = /permission denied/;
      await assert.rejects(asRole(dev.role, sql`select * from ${sql.id(test_.schema, 'items')}`), denied, 'another stage of the same tenant');
      await assert.rejects(asRole(dev.role, sql`select * from ${sql.id(foreign.schema, 'items')}`), denied, 'another tenant');
      await assert.rejects(asRole(dev.role, sql`select * from accord.users`), denied, 'the platform catalog');
      await assert.rejects(asRole(dev.role, sql`create table ${sql.id(test_.schema, 'x')} (a int)`), denied, 'creating in a foreign schema');
    });

    test('deleting a tenant drops its schemas and roles, requires confirmation, and is audited', async () => {
      const acme = await db.selectFrom('accord.tenants').select('id').where('name', '=', 'acme').executeTakeFirstOrThrow();
      const stages = await listStages(db, acme.id);
      await assert.rejects(deleteTenant(db, keyring, systemSource, 'acme', 'acm'), (e) => isAccordError(e, 'TENANCY_CONFIRMATION_REQUIRED'));
      assert.ok(await schemaExists(db, stages[0]?.schema ?? ''));
      await deleteTenant(db, keyring, systemSource, 'acme', 'acme');
      for (const s of stages) {
        assert.equal(await schemaExists(db, s.schema), false, s.schema);
        assert.equal(await roleExists(db, s.role), false, s.role);
        assert.equal(await roleExists(db, runtimeRoleOf(s.role)), false, runtimeRoleOf(s.role));
      }
      assert.equal((await db.selectFrom('accord.stages').select('id').where('tenant_id', '=', acme.id).execute()).length, 0);
      const audit = await db.selectFrom('accord.audit_events').select(['action', 'tenant_id']).where('action', '=', 'tenant.deleted').execute();
      assert.deepEqual(audit, [{ action: 'tenant.deleted', tenant_id: null }]);
      await assert.rejects(deleteTenant(db, keyring, systemSource, 'acme', 'acme'), (e) => isAccordError(e, 'TENANCY_TENANT_NOT_FOUND'));
      // The other tenant is untouched.
      assert.ok(await db.selectFrom('accord.tenants').select('id').where('name', '=', 'globex').executeTakeFirst());
    });
  });
}
