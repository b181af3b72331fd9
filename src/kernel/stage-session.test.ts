import assert from 'node:assert/strict';
import { createHash, createHmac, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { CompiledQuery, Migrator, sql } from 'kysely';
import pg from 'pg';
import { engines, superuserUrl, type TestEngine } from '../../test/harness/engines.ts';
import { testKeyring } from '../../test/harness/keys.ts';
import { STAGE_AUDIT_COLUMNS, STAGE_AUDIT_TYPES } from '../audit-chain/index.ts';
import { type Database, type Db, migrate, openDatabase } from '../db/index.ts';
import { migrations } from '../db/migrations/index.ts';
import { createStageStorage, newStageStorageNames } from '../tenancy/stage-storage.ts';
import { type Caller, type DataPlane, gatewayCredentials, gatewayRoleName, openDataPlane, runAsStage, runtimeRoleOf, type StageRef, type StageSession, scramSha256Verifier } from './index.ts';

const U1 = randomUUID();
const U2 = randomUUID();
const caller = (principalId: string | null = U1, requestId = 'req-1'): Caller => ({ kind: 'user', principalId, roles: ['tenant-admin', 'app:clerk'], requestId });

/** PostgreSQL's "insufficient privilege", which every refusal below must be. */
const denied = (e: unknown) => (e as { code?: string }).code === '42501';
/** An unqualified name finds nothing in a schema the role may not use: PostgreSQL skips it in the search path. */
const notFound = (e: unknown) => (e as { code?: string }).code === '42P01';

/** A stage's storage, with two tables its owner created (as an app deployment will). */
async function makeStage(db: Db): Promise<StageRef> {
  const names = newStageStorageNames();
  const [tenantId, stageId] = [randomUUID(), randomUUID()];
  await db.transaction().execute(async (trx) => {
    // Registered as the platform registers a stage: its events go to its tenant's chain only.
    await sql`insert into accord.tenants (id, name, display_name, region) values (${tenantId}, ${`t-${tenantId.slice(0, 8)}`}, 'T', 'eu')`.execute(trx);
    await sql`insert into accord.stages (id, tenant_id, name, position, schema_name, role_name) values (${stageId}, ${tenantId}, 'dev', 1, ${names.schema}, ${names.role})`.execute(trx);
    await createStageStorage(trx, names);
    await sql`set local role ${sql.id(names.role)}`.execute(trx);
    await sql`set local search_path = ${sql.id(names.schema)}`.execute(trx);
    await sql`create table plain (id int primary key, v text not null)`.execute(trx);
    await sql`insert into plain values (1, ${`row of ${names.schema}`})`.execute(trx);
    await sql`create table items (id serial primary key, owner_id uuid not null, label text not null)`.execute(trx);
    await sql`alter table items enable row level security`.execute(trx);
    await sql`create policy own_rows on items using (owner_id = nullif(current_setting('accord.user_id', true), '')::uuid)`.execute(trx);
    await sql`insert into items (owner_id, label) values (${U1}, 'u1-a'), (${U1}, 'u1-b'), (${U2}, 'u2-a')`.execute(trx);
  });
  return { tenantId, stageId, ...names };
}

/** A migrated catalog and, on PostgreSQL, its URL (the data plane connects to the same database). */
async function openCatalog(engine: TestEngine): Promise<{ database: Database; url?: string }> {
  if (engine.name === 'pglite') return { database: await engine.open() };
  const url = await engine.newDatabaseUrl!();
  const database = await openDatabase({ dataDir: 'unused', databaseUrl: url });
  await migrate(database.db);
  return { database, url };
}

async function rejectsDenied(p: Promise<unknown>, what: string): Promise<void> {
  await assert.rejects(p, (e) => {
    assert.ok(denied(e), `${what}: expected a privilege error, got ${(e as Error).message}`);
    return true;
  });
}

for (const engine of engines()) {
  describe(`stage sessions on ${engine.name}`, () => {
    let database: Database;
    let url: string | undefined;
    let plane: DataPlane;
    let a: StageRef;
    let b: StageRef;
    let gateway: string;
    let platformRole: string;
    const keyring = testKeyring();

    before(async () => {
      ({ database, url } = await openCatalog(engine));
      a = await makeStage(database.db);
      b = await makeStage(database.db);
      gateway = await gatewayRoleName(database.db);
      platformRole = (await sql<{ u: string }>`select current_user::text as u`.execute(database.db)).rows[0]!.u;
      // One connection, so every session below reuses the one before it.
      plane = await openDataPlane(database, { databaseUrl: url, kms: (await keyring).kms, maxConnections: 1 });
    });
    after(async () => {
      await plane?.close();
      await database?.close();
    });

    const inA = <T>(fn: (s: StageSession) => Promise<T>, who: Caller = caller()) => runAsStage(plane, a, who, fn);

    test('a session runs as the stage runtime role on the stage schema, with the caller in settings', async () => {
      const r = await inA(async (s) => {
        const who = await sql<Record<string, string>>`
          select current_user::text as role, session_user::text as login, current_setting('search_path') as path,
            current_setting('accord.user_id') as user_id, current_setting('accord.roles') as roles,
            current_setting('accord.principal_kind') as kind, current_setting('accord.request_id') as request_id,
            current_setting('accord.tenant_id') as tenant_id, current_setting('accord.stage_id') as stage_id`.execute(s.db);
        const row = await s.db.selectFrom('plain').select('v').where('id', '=', 1).executeTakeFirstOrThrow();
        return { ...who.rows[0], v: row.v };
      });
      assert.deepEqual(r, {
        role: runtimeRoleOf(a.role),
        login: gateway,
        path: `"${a.schema}", pg_temp`,
        user_id: U1,
        roles: 'tenant-admin,app:clerk',
        kind: 'user',
        request_id: 'req-1',
        tenant_id: a.tenantId,
        stage_id: a.stageId,
        v: `row of ${a.schema}`,
      });
    });

    test('the runtime role may read and write its tables but not create, alter or drop them', async () => {
      await inA((s) => s.db.updateTable('plain').set({ v: `row of ${a.schema}` }).where('id', '=', 1).execute());
      await rejectsDenied(inA((s) => sql`create table extra (a int)`.execute(s.db)), 'create table');
      await rejectsDenied(inA((s) => sql`alter table plain add column z int`.execute(s.db)), 'alter table');
      await rejectsDenied(inA((s) => sql`drop table plain`.execute(s.db)), 'drop table');
      await rejectsDenied(inA((s) => sql`alter table items disable row level security`.execute(s.db)), 'disable RLS');
    });

    test('the catalog is refused: users, audit events, stages, the migration table', async () => {
      for (const table of ['users', 'audit_events', 'stages', 'data_plane_gateway', 'kysely_migration']) {
        await rejectsDenied(inA((s) => sql`select * from ${sql.id('accord', table)}`.execute(s.db)), `accord.${table}`);
      }
      await rejectsDenied(inA((s) => sql`insert into accord.audit_events (id) values (gen_random_uuid())`.execute(s.db)), 'insert audit');
    });

    test("another stage's table is refused, named or through the search path", async () => {
      await rejectsDenied(inA((s) => sql`select * from ${sql.id(b.schema, 'plain')}`.execute(s.db)), 'qualified');
      await assert.rejects(
        inA(async (s) => {
          await sql`set local search_path = ${sql.id(b.schema)}`.execute(s.db);
          return sql`select * from plain`.execute(s.db);
        }),
        notFound,
      );
    });

    test('RESET ROLE and SET ROLE NONE land on the gateway role, which holds nothing', async () => {
      for (const reset of [sql`reset role`, sql`set role none`, sql`select set_config('role', 'none', true)`]) {
        await rejectsDenied(
          inA(async (s) => {
            await reset.execute(s.db);
            const who = await sql<{ u: string }>`select current_user::text as u`.execute(s.db);
            assert.equal(who.rows[0]!.u, gateway);
            return sql`select * from ${sql.id(a.schema, 'plain')}`.execute(s.db);
          }),
          'own table after reset',
        );
        await rejectsDenied(
          inA(async (s) => {
            await reset.execute(s.db);
            return sql`select * from accord.users`.execute(s.db);
          }),
          'catalog after reset',
        );
      }
    });

    test('SET ROLE or set_config(role) to the stage owner, another owner or the platform role is refused', async () => {
      for (const target of [a.role, b.role, platformRole]) {
        await rejectsDenied(inA((s) => sql`set role ${sql.id(target)}`.execute(s.db)), `set role ${target}`);
        await rejectsDenied(inA((s) => sql`set local role ${sql.id(target)}`.execute(s.db)), `set local role ${target}`);
        await rejectsDenied(inA((s) => sql`select set_config('role', ${target}, false)`.execute(s.db)), `set_config role ${target}`);
      }
    });

    if (engine.name === 'postgres') {
      test('SET SESSION AUTHORIZATION to the platform role is refused, and to the gateway itself holds nothing', async () => {
        await rejectsDenied(inA((s) => sql`set session authorization ${sql.id(platformRole)}`.execute(s.db)), 'session authorization');
        await rejectsDenied(inA((s) => sql`select set_config('session_authorization', ${platformRole}, false)`.execute(s.db)), 'set_config');
        await rejectsDenied(
          inA(async (s) => {
            await sql`set session authorization ${sql.id(gateway)}`.execute(s.db);
            return sql`select * from ${sql.id(a.schema, 'plain')}`.execute(s.db);
          }),
          'as the gateway',
        );
      });
    } else {
      test('SET SESSION AUTHORIZATION escapes on PGlite, whose one session is a superuser (the documented limit), and the next session is confined again', async () => {
        const escaped = await inA(async (s) => {
          await sql`set session authorization ${sql.id(platformRole)}`.execute(s.db);
          return (await sql<{ n: number }>`select count(*)::int as n from accord.data_plane_gateway`.execute(s.db)).rows[0]!.n;
        });
        assert.equal(escaped, 1);
        const who = await sql<{ u: string; s: string }>`select current_user::text as u, session_user::text as s`.execute(database.db);
        assert.deepEqual(who.rows[0], { u: platformRole, s: platformRole });
        await rejectsDenied(inA((s) => sql`select * from accord.users`.execute(s.db)), 'next session');
      });
    }

    test('SQL injected into a session can switch to another stage runtime role (the documented limit of one gateway)', async () => {
      const v = await inA(async (s) => {
        await sql`set local role ${sql.id(runtimeRoleOf(b.role))}`.execute(s.db);
        return (await sql<{ v: string }>`select v from ${sql.id(b.schema, 'plain')}`.execute(s.db)).rows[0]!.v;
      });
      assert.equal(v, `row of ${b.schema}`);
    });

    test('a row-level-security policy reading accord.user_id isolates rows, and its check refuses foreign rows', async () => {
      const labels = (who: string) => inA(async (s) => (await s.db.selectFrom('items').select('label').orderBy('label').execute()).map((r) => r.label), caller(who));
      assert.deepEqual(await labels(U1), ['u1-a', 'u1-b']);
      assert.deepEqual(await labels(U2), ['u2-a']);
      assert.deepEqual(await labels(randomUUID()), []);
      assert.deepEqual(await inA(async (s) => (await s.db.selectFrom('items').select('label').execute()).length, caller(null)), 0);
      await assert.rejects(
        inA((s) => s.db.insertInto('items').values({ owner_id: U2, label: 'forged' }).execute()),
        (e) => denied(e) && /row-level security/.test((e as Error).message),
      );
    });

    test('caller settings changed inside a session, even session-wide, do not reach the next one on the same connection', async () => {
      const pid = async (s: StageSession) => (await sql<{ p: number }>`select pg_backend_pid() as p`.execute(s.db)).rows[0]!.p;
      const first = await inA(async (s) => {
        await sql`select set_config('accord.user_id', ${U2}, false), set_config('accord.roles', 'platform-operator', false)`.execute(s.db);
        assert.deepEqual(await s.db.selectFrom('items').select('label').execute(), [{ label: 'u2-a' }]);
        await sql`select set_config('search_path', ${b.schema}, false)`.execute(s.db);
        return pid(s);
      });
      const next = await inA(async (s) => {
        const r = await sql<{ u: string; r: string; p: string }>`
          select current_setting('accord.user_id') as u, current_setting('accord.roles') as r, current_setting('search_path') as p`.execute(s.db);
        return { ...r.rows[0], labels: (await s.db.selectFrom('items').select('label').orderBy('label').execute()).map((x) => x.label), pid: await pid(s) };
      }, caller(U1, 'req-2'));
      assert.deepEqual(next, { u: U1, r: 'tenant-admin,app:clerk', p: `"${a.schema}", pg_temp`, labels: ['u1-a', 'u1-b'], pid: first });
    });

    test('a session that throws rolls back its writes; one that swallowed a failed statement does not report a commit', async () => {
      await assert.rejects(
        inA(async (s) => {
          await s.db.updateTable('plain').set({ v: 'changed' }).where('id', '=', 1).execute();
          throw new Error('boom');
        }),
        /boom/,
      );
      await assert.rejects(
        inA(async (s) => {
          await s.db.updateTable('plain').set({ v: 'changed' }).where('id', '=', 1).execute();
          await sql`select 1 / 0`.execute(s.db).catch(() => {});
        }),
        (e) => /rolled back|aborted/.test((e as Error).message),
      );
      assert.equal(await inA(async (s) => (await s.db.selectFrom('plain').select('v').executeTakeFirstOrThrow()).v), `row of ${a.schema}`);
    });

    test('after a session the connection is back to its login role with no caller settings', async () => {
      await inA(async () => {});
      if (engine.name === 'pglite') {
        // PGlite: the platform shares the connection, so it must be the platform again.
        const r = await sql<Record<string, string | null>>`
          select current_user::text as u, session_user::text as s, current_setting('accord.user_id', true) as uid, current_setting('role') as role`.execute(database.db);
        assert.deepEqual(r.rows[0], { u: platformRole, s: platformRole, uid: '', role: 'none' });
      } else {
        const admin = new pg.Client({ connectionString: await superuserUrl(url!) });
        await admin.connect();
        try {
          const r = await admin.query(`select state, usename from pg_stat_activity where usename = $1`, [gateway]);
          assert.deepEqual(r.rows, [{ state: 'idle', usename: gateway }]);
        } finally {
          await admin.end();
        }
      }
    });

    test('audit() appends as the stage role, whose only function of the catalog is the lookup of its own tenant', async () => {
      // A missing grant would be 42501; the event lands unsealed on the tenant's chain, with the caller.
      const id = await inA((s) => s.audit({ action: 'item.read', outcome: 'success', target: { type: 'item', id: '1' } }));
      const row = await database.db.selectFrom('accord.audit_events').select(['action', 'tenant_id', 'actor_id', 'target_id']).where('id', '=', id).executeTakeFirstOrThrow();
      assert.deepEqual({ ...row }, { action: 'item.read', tenant_id: a.tenantId, actor_id: U1, target_id: '1' });
      const callable = await sql<{ f: string }>`
        select p.oid::regprocedure::text as f from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname = 'accord' and has_function_privilege(${runtimeRoleOf(a.role)}, p.oid, 'execute')`.execute(database.db);
      assert.deepEqual(callable.rows.map((r) => r.f), ['accord.stage_audit_tenant()']);
    });

    test('an event given to auditAtCommit commits with the session and its write, and with nothing when the session fails', async () => {
      const label = `commit-${randomUUID()}`;
      const countEvents = async () =>
        Number((await sql<{ n: string }>`select count(*)::text as n from accord.audit_events where target_id = ${label}`.execute(database.db)).rows[0]?.n);
      const countItems = async () => Number((await inA((s) => sql<{ n: string }>`select count(*)::text as n from items where label = ${label}`.execute(s.db))).rows[0]?.n);
      await inA(async (s) => {
        await sql`insert into items (owner_id, label) values (${U1}, ${label})`.execute(s.db);
        s.auditAtCommit({ action: 'item.create', outcome: 'success', target: { type: 'item', id: label } });
      });
      assert.equal(await countEvents(), 1);
      assert.equal(await countItems(), 1);
      // The session throws after queueing its event: neither the row nor the event lands.
      await assert.rejects(
        inA(async (s) => {
          await sql`insert into items (owner_id, label) values (${U1}, ${label})`.execute(s.db);
          s.auditAtCommit({ action: 'item.create', outcome: 'success', target: { type: 'item', id: label } });
          throw new Error('handler failed');
        }),
        /handler failed/,
      );
      // The event itself is refused (an action that is not a dotted lower-case name): the write
      // in front of it rolls back too.
      await assert.rejects(
        inA(async (s) => {
          await sql`insert into items (owner_id, label) values (${U1}, ${label})`.execute(s.db);
          s.auditAtCommit({ action: 'Not An Action', outcome: 'success', target: { type: 'item', id: label } });
        }),
      );
      assert.equal(await countEvents(), 1);
      assert.equal(await countItems(), 1);
    });

    // PGlite plans in-process and is not pipelined: nothing to prepare there.
    if (engine.name === 'postgres') {
      test('a statement seen again on a connection is prepared there once and then only bound', async () => {
        const tag = `n${randomUUID().slice(0, 8)}`;
        const text = `select $1::int as ${tag}`;
        // Sequential sessions reuse the pool's most recently released connection.
        for (let i = 0; i < 3; i++) {
          const r = await inA((s) => s.batch([CompiledQuery.raw(text, [i])]));
          assert.deepEqual(r[0], [{ [tag]: i }]);
        }
        const held = await inA((s) => sql<{ statement: string }>`select statement from pg_prepared_statements where statement = ${text}`.execute(s.db));
        assert.equal(held.rows.length, 1, 'prepared once on the connection');
      });
    }

    test('a final batch commits with its statements and the queued events; a failing one commits nothing; nothing runs after it', async () => {
      const label = `final-${randomUUID()}`;
      const count = async (table: 'items' | 'events') =>
        table === 'items'
          ? Number((await inA((s) => sql<{ n: string }>`select count(*)::text as n from items where label = ${label}`.execute(s.db))).rows[0]?.n)
          : Number((await sql<{ n: string }>`select count(*)::text as n from accord.audit_events where target_id = ${label}`.execute(database.db)).rows[0]?.n);
      const insert = (s: StageSession) => sql`insert into items (owner_id, label) values (${U1}, ${label})`.compile(s.db);
      // An event appended by a statement itself, from the session's auditValues.
      const appended = (s: StageSession) => {
        const values = s.auditValues({ action: 'item.made', outcome: 'success', target: { type: 'item', id: label } });
        return sql`with _aud as (insert into accord.audit_events (${sql.raw(STAGE_AUDIT_COLUMNS.join(', '))}) values (${sql.join(values.map((v, i) => sql`${v}::${sql.raw(STAGE_AUDIT_TYPES[i] as string)}`))})) select 1 as made`.compile(s.db);
      };
      const [, rows] = await inA(async (s) => {
        s.auditAtCommit({ action: 'item.create', outcome: 'success', target: { type: 'item', id: label } });
        const out = await s.batch([insert(s), appended(s)], { commit: true });
        await assert.rejects(s.batch([insert(s)]), /has committed/);
        return out;
      });
      assert.equal(rows?.length, 1);
      assert.equal(await count('items'), 1);
      assert.equal(await count('events'), 2);
      await assert.rejects(inA((s) => s.batch([insert(s), sql`select 1/0`.compile(s.db)], { commit: true })));
      // The session committed, then its caller failed: what it committed stays.
      await assert.rejects(
        inA(async (s) => {
          await s.batch([insert(s)], { commit: true });
          throw new Error('after the commit');
        }),
        /after the commit/,
      );
      assert.equal(await count('items'), 2);
      assert.equal(await count('events'), 2);
    });

    test('a statement that fails inside a session rolls back what came before it, and the connection serves the next session', async () => {
      const label = `fail-${randomUUID()}`;
      await assert.rejects(
        inA(async (s) => {
          await sql`insert into items (owner_id, label) values (${U1}, ${label})`.execute(s.db);
          await sql`select 1/0`.execute(s.db);
        }),
        (e: unknown) => (e as { code?: string }).code === '22012',
      );
      // The first statement of a session fails (the settings went with it): nothing half-set stays.
      await assert.rejects(inA((s) => sql`select * from no_such_table`.execute(s.db)));
      for (let i = 0; i < 12; i++) {
        const r = await inA((s) => sql<{ n: string; u: string }>`select count(*)::text as n, current_setting('accord.user_id') as u from items where label = ${label}`.execute(s.db));
        assert.deepEqual({ ...r.rows[0] }, { n: '0', u: U1 });
      }
    });

    test('the gateway role logs in, inherits nothing, owns nothing and holds no privilege of its own', async () => {
      const r = await sql<Record<string, boolean | number>>`
        select rolcanlogin as login, rolinherit as inherit, rolsuper as super, rolcreaterole as createrole, rolbypassrls as bypassrls,
          (select count(*)::int from pg_class where relowner = pg_roles.oid) + (select count(*)::int from pg_namespace where nspowner = pg_roles.oid) as owns,
          has_schema_privilege(rolname, 'accord', 'usage') as catalog, has_schema_privilege(rolname, ${a.schema}, 'usage') as stage
        from pg_roles where rolname = ${gateway}`.execute(database.db);
      assert.deepEqual(r.rows[0], { login: true, inherit: false, super: false, createrole: false, bypassrls: false, owns: 0, catalog: false, stage: false });
    });

    test('malformed stage or caller values are refused before anything reaches the database', async () => {
      const bad: [StageRef, Caller][] = [
        [{ ...a, schema: 'public' }, caller()],
        [{ ...a, role: platformRole }, caller()],
        [{ ...a, tenantId: "x'; drop table plain; --" }, caller()],
        [a, caller('not-a-uuid')],
        [a, caller(U1, "req'1")],
        [a, { ...caller(), roles: ['a,b'] }],
        [a, { ...caller(), kind: 'root' as Caller['kind'] }],
      ];
      for (const [stage, who] of bad) await assert.rejects(runAsStage(plane, stage, who, async () => 1), TypeError);
    });
  });
}

describe('stage sessions across migration 007', () => {
  for (const engine of engines()) {
    test(`a stage created before migration 007 gets a runtime role the gateway can use (${engine.name})`, async () => {
      const { database, url } = await (async () => {
        if (engine.name === 'pglite') return { database: await engine.open({ migrate: false }), url: undefined };
        const u = await engine.newDatabaseUrl!();
        return { database: await openDatabase({ dataDir: 'unused', databaseUrl: u }), url: u };
      })();
      try {
        const upTo006 = Object.fromEntries(Object.entries(migrations).filter(([name]) => name < '007'));
        await sql`create schema accord`.execute(database.db);
        const old = new Migrator({ db: database.db, migrationTableSchema: 'accord', provider: { getMigrations: async () => upTo006 } });
        const res = await old.migrateToLatest();
        assert.equal(res.error, undefined);
        // What createStageStorage did before 007, and a table the owner created.
        const names = newStageStorageNames();
        const tenant = await database.db.insertInto('accord.tenants').values({ name: 'old', display_name: 'Old', region: 'eu' }).returning('id').executeTakeFirstOrThrow();
        const stage = await database.db.insertInto('accord.stages').values({ tenant_id: tenant.id, name: 'development', position: 1, schema_name: names.schema, role_name: names.role }).returning('id').executeTakeFirstOrThrow();
        await database.db.transaction().execute(async (trx) => {
          await sql`create role ${sql.id(names.role)} nologin noinherit`.execute(trx);
          await sql`grant ${sql.id(names.role)} to current_user`.execute(trx);
          await sql`create schema ${sql.id(names.schema)} authorization ${sql.id(names.role)}`.execute(trx);
          await sql`set local role ${sql.id(names.role)}`.execute(trx);
          await sql`create table ${sql.id(names.schema, 'plain')} (id int primary key, v text)`.execute(trx);
          await sql`insert into ${sql.id(names.schema, 'plain')} values (1, 'before 007')`.execute(trx);
        });
        await migrate(database.db);
        const plane = await openDataPlane(database, { databaseUrl: url, kms: (await testKeyring()).kms });
        try {
          const v = await runAsStage(plane, { tenantId: tenant.id, stageId: stage.id, ...names }, caller(), async (s) => (await s.db.selectFrom('plain').select('v').executeTakeFirstOrThrow()).v);
          assert.equal(v, 'before 007');
        } finally {
          await plane.close();
        }
      } finally {
        await database.close();
      }
    });
  }
});

describe('the gateway password', () => {
  test('is one per installation, wrapped by the KMS, and PostgreSQL holds only its SCRAM verifier', async () => {
    const pgEngine = engines().find((e) => e.name === 'postgres')!;
    const url = await pgEngine.newDatabaseUrl!();
    const database = await openDatabase({ dataDir: 'unused', databaseUrl: url });
    try {
      await migrate(database.db);
      const { kms } = await testKeyring();
      const [first, second] = await Promise.all([gatewayCredentials(database.db, kms), gatewayCredentials(database.db, kms)]);
      assert.deepEqual(first, second);
      assert.match(first.password, /^[A-Za-z0-9_-]{43}$/);
      const stored = await sql<{ wrapped: Buffer }>`select wrapped from accord.data_plane_gateway`.execute(database.db);
      assert.equal(stored.rows[0]!.wrapped.includes(Buffer.from(first.password)), false);
      const admin = new pg.Client({ connectionString: await superuserUrl(url) });
      await admin.connect();
      try {
        const r = await admin.query<{ p: string }>('select rolpassword as p from pg_authid where rolname = $1', [first.role]);
        const m = /^SCRAM-SHA-256\$(\d+):([^$]+)\$/.exec(r.rows[0]!.p)!;
        assert.equal(r.rows[0]!.p, scramSha256Verifier(first.password, Buffer.from(m[2]!, 'base64'), Number(m[1])));
      } finally {
        await admin.end();
      }
    } finally {
      await database.close();
    }
  });

  test('the SCRAM-SHA-256 verifier matches the RFC 7677 exchange', () => {
    // RFC 7677 section 3: password "pencil"; a server holding this verifier accepts the client's
    // proof and answers with the RFC's server signature.
    const verifier = scramSha256Verifier('pencil', Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'), 4096);
    const [, storedB64, serverB64] = /^SCRAM-SHA-256\$4096:[^$]+\$([^:]+):(.+)$/.exec(verifier)!;
    const auth =
      'n=user,r=rOprNGfwEbeRWgbNEkqO,' +
      'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,' +
      'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0';
    const storedKey = Buffer.from(storedB64!, 'base64');
    const proof = Buffer.from('dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=', 'base64');
    const signature = createHmac('sha256', storedKey).update(auth).digest();
    const clientKey = Buffer.from(proof.map((x, i) => x ^ signature[i]!));
    assert.deepEqual(createHash('sha256').update(clientKey).digest(), storedKey);
    assert.equal(createHmac('sha256', Buffer.from(serverB64!, 'base64')).update(auth).digest('base64'), '6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=');
  });
});
