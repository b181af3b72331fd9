import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { sql } from 'kysely';
import { engines } from '../../../test/harness/engines.ts';
import { testKeyring } from '../../../test/harness/keys.ts';
import { systemSource } from '../../audit-chain/index.ts';
import type { Db, EngineName, Trx } from '../../db/index.ts';
import { isAccordError } from '../../errors/index.ts';
import { createTenant } from '../../tenancy/index.ts';
import { compileManifestText } from '../manifest/load.ts';
import { deployRevision, type LifecycleDeps, planDeployment, promote, type RevisionInput, rollback, type StageRef } from './index.ts';

const EXAMPLE = new URL('../../../examples/expenses/expenses.app.yaml', import.meta.url);
const BASE = readFileSync(EXAMPLE, 'utf8');
const ACTION = readFileSync(new URL('../../../examples/expenses/actions/approve.ts', import.meta.url), 'utf8');

/** The reference manifest with edits applied (each a [from, to] replacement that must match). */
function revision(...edits: [string | RegExp, string][]): RevisionInput {
  let text = BASE;
  for (const [from, to] of edits) {
    const next = text.replace(from, to);
    assert.notEqual(next, text, `edit ${String(from)} matched nothing`);
    text = next;
  }
  const r = compileManifestText(text, { file: 'expenses.app.yaml', readFile: (p) => (p === 'actions/approve.ts' ? ACTION : undefined) });
  assert.ok(r.ok && r.ir && r.revision, JSON.stringify(r.errors));
  return { hash: r.revision.hash, ir: r.ir, manifest: text, actions: { 'actions/approve.ts': ACTION } };
}

const DROP_NOTES: [string, string][] = [
  ['      notes:    { type: text, classification: confidential, encrypted: true }\n', ''],
  ['fields: [title, amount, currency, iban, notes, category, status]', 'fields: [title, amount, currency, iban, category, status]'],
];
const V2: [string, string] = ['version: 1.0.0', 'version: 1.1.0'];
const ADD_INDEX: [string, string] = ['      - [owner, status]\n', '      - [owner, status]\n      - [category]\n'];

async function columns(db: Db, schema: string, table: string): Promise<string[]> {
  const r = await sql<{ c: string }>`select column_name as c from information_schema.columns where table_schema = ${schema} and table_name = ${table} order by ordinal_position`.execute(db);
  return r.rows.map((x) => x.c);
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (isAccordError(err)) return err.code;
    throw err;
  }
  return 'no error';
}

for (const engine of engines()) {
  describe(`the migration engine and deployments on ${engine.name}`, { concurrency: false }, () => {
    let db: Db;
    let dev: StageRef;
    let tenant: { id: string; name: string };
    let keyring: Awaited<ReturnType<typeof testKeyring>>;
    let stages: StageRef[];
    const deps = (): LifecycleDeps => ({ db, engine: engine.name as EngineName, keyring });
    const R1 = revision();
    const deploy = (rev: RevisionInput, extra: { allowDataLoss?: boolean; kind?: 'deploy' | 'rollback' } = {}) =>
      deployRevision(db, { engine: engine.name as EngineName, source: systemSource, tenant, stage: dev, revision: rev, kind: extra.kind ?? 'deploy', ...(extra.allowDataLoss ? { allowDataLoss: true } : {}) });
    const q = (t: string) => `"${dev.schema}"."${t}"`;
    // The tests read and write the stage's rows as the platform, beside the API: the tables FORCE
    // row-level security even for their owner, so lift it for the one statement (PGlite runs as a
    // superuser and bypasses it anyway).
    const asData = <R>(query: { execute: (d: Trx) => Promise<R> }): Promise<R> =>
      db.transaction().execute(async (trx) => {
        const tables = (await sql<{ t: string }>`select tablename as t from pg_tables where schemaname = ${dev.schema}`.execute(trx)).rows.map((r) => r.t);
        const force = async (on: boolean) => {
          await sql`set local role ${sql.id(dev.role)}`.execute(trx);
          for (const t of tables) await sql.raw(`alter table ${q(t)} ${on ? '' : 'no '}force row level security`).execute(trx);
          await sql`reset role`.execute(trx);
        };
        await force(false);
        const r = await query.execute(trx);
        await force(true);
        return r;
      });
    const insertClaim = (title: string, notes: string | null) =>
      asData(sql.raw(`insert into ${q('Claim')} (title, amount, owner, notes) values ('${title}', 10, gen_random_uuid(), ${notes === null ? 'null' : `'\\x${Buffer.from(notes).toString('hex')}'::bytea`})`));
    const currentRevision = async () => (await db.selectFrom('accord.app_stage_state').select('revision').where('stage_id', '=', dev.id).executeTakeFirst())?.revision;

    test('a first deployment creates the tables as the stage owner and records the revision, the state and an audit event together', async () => {
      db = (await engine.open()).db;
      keyring = await testKeyring();
      const t = await createTenant(db, keyring, systemSource, { name: 'acme', displayName: 'Acme' });
      stages = t.stages as StageRef[];
      tenant = { id: t.id, name: t.name };
      dev = t.stages[0] as StageRef;
      const r = await deploy(R1);
      assert.equal(r.changed, true);
      assert.equal(r.label, 'R1');
      assert.ok(r.steps.every((s) => s.class === 'online'));
      const owner = await sql<{ o: string }>`select tableowner as o from pg_tables where schemaname = ${dev.schema} and tablename = 'Claim'`.execute(db);
      assert.equal(owner.rows[0]?.o, dev.role);
      assert.equal(await currentRevision(), R1.hash);
      const actions = (await db.selectFrom('accord.audit_events').select('action').where('action', 'like', 'app.%').execute()).map((x) => x.action);
      assert.deepEqual(actions, ['app.deployed']);
    });

    test('deploying the same content again changes nothing and says so', async () => {
      const r = await deploy(R1);
      assert.equal(r.changed, false);
      assert.match(r.message, /already runs/);
      assert.equal((await db.selectFrom('accord.app_deployments').select('id').execute()).length, 1);
    });

    test('a plan that drops an attribute lists it as data loss and changes nothing', async () => {
      await insertClaim('Taxi', 'receipt in drawer');
      const plan = await planDeployment(db, { engine: engine.name as EngineName, stage: dev, revision: revision(...DROP_NOTES, ADD_INDEX, V2) });
      assert.deepEqual(plan.dataLoss, [{ entity: 'Claim', attribute: 'notes', effect: 'hidden' }]);
      assert.ok(plan.steps.some((s) => s.kind === 'create-index' && s.name.includes('category')));
      assert.equal(await currentRevision(), R1.hash);
    });

    test('removing an attribute keeps its column and data; rolling back serves it again', async () => {
      const R2 = revision(...DROP_NOTES, ADD_INDEX, V2);
      const r = await deploy(R2);
      assert.equal(r.label, 'R2');
      assert.ok((await columns(db, dev.schema, 'Claim')).includes('notes'), 'the column is kept');
      // The next revision inserts rows without the hidden column.
      await asData(sql.raw(`insert into ${q('Claim')} (title, amount, owner) values ('Hotel', 90, gen_random_uuid())`));
      const back = await deploy(R1, { kind: 'rollback' });
      assert.equal(back.label, 'R1');
      assert.equal(await currentRevision(), R1.hash);
      const rows = await asData(sql<{ notes: Buffer | null }>`select notes from ${sql.id(dev.schema, 'Claim')} where title = 'Taxi'`);
      assert.equal(Buffer.from(rows.rows[0]?.notes as Buffer).toString(), 'receipt in drawer');
    });

    test('a unique attribute is refused while duplicates exist, and nothing changes', async () => {
      await insertClaim('Taxi', null);
      const before = await currentRevision();
      assert.equal(await codeOf(deploy(revision(['title:    { type: text, required: true, maxLength: 200 }', 'title:    { type: text, required: true, maxLength: 200, unique: true }']))), 'APP_MIGRATION_PRECHECK_FAILED');
      assert.equal(await currentRevision(), before);
    });

    test('making an attribute required is refused while rows have no value', async () => {
      assert.equal(await codeOf(deploy(revision(['category: { type: reference, entity: Category }', 'category: { type: reference, entity: Category, required: true }']))), 'APP_MIGRATION_PRECHECK_FAILED');
    });

    test('a narrower decimal is refused when a value would not fit; a wider one applies without loss', async () => {
      await asData(sql.raw(`insert into ${q('Claim')} (title, amount, owner) values ('Flight', 12345.67, gen_random_uuid())`));
      assert.equal(await codeOf(deploy(revision(['precision: 12, scale: 2, required: true', 'precision: 5, scale: 2, required: true']))), 'APP_MIGRATION_PRECHECK_FAILED');
      const wide = await deploy(revision(['precision: 12, scale: 2, required: true', 'precision: 14, scale: 2, required: true']));
      assert.equal(wide.steps.find((s) => s.kind === 'alter-type')?.class, 'brief-lock');
      const r = await asData(sql<{ a: string }>`select amount::text as a from ${sql.id(dev.schema, 'Claim')} where title = 'Flight'`);
      assert.equal(r.rows[0]?.a, '12345.67');
    });

    test('a tighter check is refused when existing rows break it', async () => {
      assert.equal(await codeOf(deploy(revision(['maxLength: 200 }', 'maxLength: 3 }']))), 'APP_MIGRATION_PRECHECK_FAILED');
    });

    test('a type change the engine cannot prove safe is refused', async () => {
      assert.equal(await codeOf(deploy(revision(['limit: { type: decimal, precision: 12, scale: 2 }', 'limit: { type: integer }']))), 'APP_MIGRATION_UNSUPPORTED');
    });

    test('a new required attribute with a default is added online to a table with rows, which get the default', async () => {
      const r = await deploy(revision(['      category: { type: reference, entity: Category }\n', '      category: { type: reference, entity: Category }\n      priority: { type: integer, required: true, default: 3 }\n']));
      const step = r.steps.find((s) => s.kind === 'add-column' && s.name === 'priority');
      assert.equal(step?.class, 'online');
      const rows = await asData(sql<{ p: string }>`select distinct priority::text as p from ${sql.id(dev.schema, 'Claim')}`);
      assert.deepEqual(rows.rows, [{ p: '3' }]);
    });

    test('required, a tighter check and unique apply when the data allows them, each with its class', async () => {
      await asData(sql.raw(`delete from ${q('Claim')} where title = 'Taxi' and notes is null`));
      const r = await deploy(
        revision(
          ['currency: { type: text, default: EUR, pattern: "^[A-Z]{3}$" }', 'currency: { type: text, default: EUR, required: true, pattern: "^[A-Z]{3}$" }'],
          ['title:    { type: text, required: true, maxLength: 200 }', 'title:    { type: text, required: true, maxLength: 100, unique: true }'],
        ),
      );
      const kinds = Object.fromEntries(r.steps.map((s) => [s.kind, s]));
      assert.equal(kinds['set-required']?.class, 'scan');
      assert.equal(kinds['set-required']?.precheck?.violations, 0);
      assert.equal(kinds['add-check']?.precheck?.violations, 0);
      // On PostgreSQL the unique index is built concurrently first, then attached as the constraint.
      const unique = r.steps.filter((s) => s.kind === 'add-unique');
      assert.deepEqual(
        unique.map((s) => s.phase),
        engine.name === 'postgres' ? ['concurrent', 'transaction'] : ['transaction'],
      );
      assert.equal(unique[0]?.precheck?.violations, 0);
      const nn = await sql<{ n: boolean }>`select is_nullable = 'NO' as n from information_schema.columns where table_schema = ${dev.schema} and table_name = 'Claim' and column_name = 'currency'`.execute(db);
      assert.equal(nn.rows[0]?.n, true);
      // The unique constraint now refuses a duplicate title.
      await assert.rejects(insertClaim('Hotel', null));
    });

    test('relaxing them again drops the constraints, keeping every row', async () => {
      const before = (await asData(sql<{ n: number }>`select count(*)::int as n from ${sql.id(dev.schema, 'Claim')}`)).rows[0]?.n;
      const r = await deploy(R1, { kind: 'rollback' });
      assert.ok(r.steps.some((s) => s.kind === 'drop-unique'));
      assert.ok(r.steps.some((s) => s.kind === 'drop-required'));
      const after = (await asData(sql<{ n: number }>`select count(*)::int as n from ${sql.id(dev.schema, 'Claim')}`)).rows[0]?.n;
      assert.equal(after, before);
      await insertClaim('Hotel', null);
    });

    test('removing an entity hides its table with its rows; rolling back serves it again', async () => {
      await asData(sql.raw(`insert into ${q('Category')} (name) values ('Travel')`));
      const r = await deploy(
        revision(
          ['      category: { type: reference, entity: Category }\n', ''],
          ['fields: [title, amount, currency, iban, notes, category, status]', 'fields: [title, amount, currency, iban, notes, status]'],
          [/\n {2}Category:\n[\s\S]*?\n\nactions:/, '\n\nactions:'],
        ),
      );
      assert.deepEqual(
        r.dataLoss.map((d) => [d.entity, d.attribute ?? null, d.effect]),
        [
          ['Claim', 'category', 'hidden'],
          ['Claim', 'priority', 'hidden'],
          ['Category', null, 'hidden'],
        ],
      );
      await deploy(R1, { kind: 'rollback' });
      const rows = await asData(sql<{ name: string }>`select name from ${sql.id(dev.schema, 'Category')}`);
      assert.deepEqual(rows.rows, [{ name: 'Travel' }]);
    });

    test('a column added out of band is drift: the deployment is refused with a report', async () => {
      await sql.raw(`alter table ${q('Category')} add column sneaky text`).execute(db);
      const before = await currentRevision();
      try {
        await deploy(revision(V2));
        assert.fail('deployed despite drift');
      } catch (err) {
        assert.ok(isAccordError(err, 'APP_SCHEMA_DRIFT'));
        assert.deepEqual((err.details as { drift: unknown[] }).drift, [{ table: 'Category', object: 'column', name: 'sneaky', change: 'added', actual: { type: 'text', notNull: false, default: null } }]);
      }
      assert.equal(await currentRevision(), before);
      const ev = await db.selectFrom('accord.audit_events').select(['outcome', 'reason']).where('action', '=', 'app.drift.detected').executeTakeFirstOrThrow();
      assert.deepEqual(ev, { outcome: 'failure', reason: 'APP_SCHEMA_DRIFT' });
      await sql.raw(`alter table ${q('Category')} drop column sneaky`).execute(db);
    });

    test('with consent to data loss the hidden column is dropped and the drop is audited with what went', async () => {
      const r = await deploy(revision(...DROP_NOTES, V2), { allowDataLoss: true });
      // notes, and priority (hidden since the rollback to R1, which does not have it).
      const dropped = [
        { entity: 'Claim', attribute: 'notes', effect: 'dropped' },
        { entity: 'Claim', attribute: 'priority', effect: 'dropped' },
      ];
      assert.deepEqual(r.dataLoss, dropped);
      assert.ok(!(await columns(db, dev.schema, 'Claim')).includes('notes'));
      const ev = await db.selectFrom('accord.audit_events').select(['details']).where('action', '=', 'app.data-dropped').executeTakeFirstOrThrow();
      assert.deepEqual((ev.details as { dropped: unknown }).dropped, dropped);
    });

    test('an older revision redeployed after a drop gets the column back, empty', async () => {
      await deploy(R1, { kind: 'rollback' });
      assert.ok((await columns(db, dev.schema, 'Claim')).includes('notes'));
    });

    test('promotion takes the same revision one stage on; production refuses a lower version than it runs', async () => {
      const v2 = revision(V2);
      await deploy(v2);
      const [, test, production] = stages as [StageRef, StageRef, StageRef];
      assert.equal((await promote(deps(), systemSource, tenant, test, 'expenses', undefined, null)).to.revision, v2.hash);
      assert.equal((await promote(deps(), systemSource, tenant, production, 'expenses', undefined, null)).to.revision, v2.hash);
      // R1 (1.0.0) runs on development again and reaches test, but production runs 1.1.0.
      await deploy(R1, { kind: 'rollback' });
      await promote(deps(), systemSource, tenant, test, 'expenses', undefined, null);
      assert.equal(await codeOf(promote(deps(), systemSource, tenant, production, 'expenses', undefined, null)), 'APP_VERSION_DOWNGRADE');
      // Rolling production back is the way down, to a revision it ran: R1 never did.
      assert.equal(await codeOf(rollback(deps(), systemSource, tenant, production, 'expenses', 'R1', null)), 'APP_REVISION_NEVER_RAN');
      const running = await db.selectFrom('accord.app_stage_state').select('revision').where('stage_id', '=', production.id).executeTakeFirstOrThrow();
      assert.equal(running.revision, v2.hash);
    });

    if (engine.name === 'postgres') {
      test('a second deployment to the stage waits for the first within its bound, then fails with APP_DEPLOY_IN_PROGRESS', async () => {
        await db.connection().execute(async (other) => {
          // What a running deployment holds (deploy.ts, holdStage).
          await sql`select pg_advisory_lock(hashtext('accord.app-deploy'), hashtext(${dev.id}))`.execute(other);
          try {
            const r = deployRevision(db, { engine: 'postgres', source: systemSource, tenant, stage: dev, revision: revision(['version: 1.0.0', 'version: 1.3.0']), kind: 'deploy', waitMillis: 300 });
            assert.equal(await codeOf(r), 'APP_DEPLOY_IN_PROGRESS');
          } finally {
            await sql`select pg_advisory_unlock(hashtext('accord.app-deploy'), hashtext(${dev.id}))`.execute(other);
          }
        });
      });

      test('a table kept locked by other work makes the migration give up after its retries with APP_MIGRATION_LOCK_TIMEOUT, changing nothing', async () => {
        const before = await currentRevision();
        const conn = await db.connection().execute(async (other) => {
          await sql`begin`.execute(other);
          await sql.raw(`lock table ${q('Claim')} in access share mode`).execute(other);
          try {
            return await codeOf(deploy(revision(['currency: { type: text, default: EUR,', 'currency: { type: text, default: USD,'])));
          } finally {
            await sql`rollback`.execute(other);
          }
        });
        assert.equal(conn, 'APP_MIGRATION_LOCK_TIMEOUT');
        assert.equal(await currentRevision(), before);
      });
    }
  });
}
