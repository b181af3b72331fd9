import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Kysely, sql } from 'kysely';
import { parse, stringify } from 'yaml';
import { engines } from '../../../test/harness/engines.ts';
import { actionReader, compileDdl, compileManifestText, entityOf, entityRuleAttributes, manifestJsonSchema, rules } from '../index.ts';

const manifestPath = fileURLToPath(new URL('../../../examples/expenses/expenses.app.yaml', import.meta.url));
const text = readFileSync(manifestPath, 'utf8');
const reference = () => compileManifestText(text, { file: manifestPath, readFile: actionReader(manifestPath) });

describe('the compiler', () => {
  test('the reference app compiles to an IR and a revision', () => {
    const r = reference();
    assert.deepEqual(r.errors, []);
    assert.ok(r.ir && r.revision);
    assert.match(r.revision.hash, /^sha256:[0-9a-f]{64}$/);
    assert.deepEqual(
      r.ir.entities.map((e) => e.name),
      ['Category', 'Claim'],
    );
    assert.deepEqual([...r.actionSources.keys()], ['actions/approve.ts']);
  });

  test('the same content gives the same revision, whatever the spelling', () => {
    const a = reference();
    // The same manifest as JSON, with its keys in another order.
    const doc = parse(text) as Record<string, unknown>;
    const reordered = Object.fromEntries(Object.entries(doc).reverse());
    const json = compileManifestText(JSON.stringify(reordered), { file: 'expenses.app.json', readFile: actionReader(manifestPath) });
    assert.equal(json.revision?.hash, a.revision?.hash);
    const yaml = compileManifestText(stringify(reordered), { file: 'x.yaml', readFile: actionReader(manifestPath) });
    assert.equal(yaml.revision?.hash, a.revision?.hash);
  });

  test('a change of meaning or of an action source changes the revision', () => {
    const a = reference().revision?.hash;
    const changed = compileManifestText(text.replace('maxLength: 200', 'maxLength: 201'), { file: 'x', readFile: actionReader(manifestPath) });
    assert.notEqual(changed.revision?.hash, a);
    const otherAction = compileManifestText(text, { file: 'x', readFile: (p) => `${actionReader(manifestPath)(p)}\n// changed\n` });
    assert.notEqual(otherAction.revision?.hash, a);
  });

  test('docs/app-manifest.schema.json is the schema the validator uses', () => {
    const published = JSON.parse(readFileSync(new URL('../../../docs/app-manifest.schema.json', import.meta.url), 'utf8'));
    assert.deepEqual(published, manifestJsonSchema());
  });
});

for (const engine of engines()) {
  describe(`the reference app's DDL on ${engine.name}`, () => {
    let db: Kysely<unknown>;
    const schema = 'app_expenses_test';
    before(async () => {
      db = (await engine.open({ migrate: false })).db as unknown as Kysely<unknown>;
      await sql`create schema ${sql.id(schema)}`.execute(db);
    });
    after(async () => {
      await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(db).catch(() => {});
    });

    test('creates the tables with typed columns, constraints, a row version and indexes', async () => {
      const app = reference().ir;
      assert.ok(app);
      for (const s of compileDdl(app, { schema })) await sql.raw(s.sql).execute(db);
      const cols = await sql<{ table_name: string; column_name: string; data_type: string; is_nullable: string }>`
        select table_name, column_name, data_type, is_nullable from information_schema.columns
        where table_schema = ${schema} order by table_name, ordinal_position`.execute(db);
      const claim = Object.fromEntries(cols.rows.filter((c) => c.table_name === 'Claim').map((c) => [c.column_name, `${c.data_type}${c.is_nullable === 'NO' ? ' not null' : ''}`]));
      assert.deepEqual(claim, {
        id: 'uuid not null',
        _version: 'bigint not null',
        _created_at: 'timestamp with time zone not null',
        _updated_at: 'timestamp with time zone not null',
        amount: 'numeric not null',
        category: 'uuid',
        currency: 'text',
        iban: 'bytea',
        iban_bidx: 'bytea',
        notes: 'bytea',
        owner: 'uuid not null',
        status: 'text not null',
        title: 'text not null',
      });
      const idx = await sql<{ indexname: string }>`select indexname from pg_indexes where schemaname = ${schema} order by 1`.execute(db);
      assert.deepEqual(
        idx.rows.map((r) => r.indexname),
        ['Category_name_key', 'Category_pkey', 'Claim_pkey', 'claim_category_fk_idx', 'claim_iban_bidx_idx', 'claim_owner_status_idx', 'claim_status_idx'],
      );
    });

    test('the constraints refuse what the model refuses', async () => {
      const t = sql.id(schema, 'Claim');
      const owner = '00000000-0000-4000-8000-000000000001';
      const ins = await sql<{ status: string; currency: string; _version: string }>`insert into ${t} (title, amount, owner) values ('Taxi', 12.5, ${owner}::uuid) returning status, currency, _version`.execute(db);
      assert.deepEqual({ ...ins.rows[0], _version: String(ins.rows[0]?._version) }, { status: 'draft', currency: 'EUR', _version: '1' });
      await assert.rejects(sql`insert into ${t} (title, amount, owner, status) values ('x', 1, ${owner}::uuid, 'paid')`.execute(db), /Claim_status_enum|check/i);
      await assert.rejects(sql`insert into ${t} (title, amount, owner) values ('x', -1, ${owner}::uuid)`.execute(db), /Claim_amount_min|check/i);
      await assert.rejects(sql`insert into ${t} (title, amount, owner) values (${'x'.repeat(201)}, 1, ${owner}::uuid)`.execute(db), /max_length|check/i);
      await assert.rejects(sql`insert into ${t} (title, amount, owner, category) values ('x', 1, ${owner}::uuid, ${owner}::uuid)`.execute(db), /fkey|foreign/i);
    });

    test("the Employee read rule compiles to a WHERE that selects the caller's claims only", async () => {
      const app = reference().ir;
      const claim = app && entityOf(app, 'Claim');
      assert.ok(claim);
      const where = claim.access.read.find((r) => r.role === 'Employee')?.where;
      assert.ok(where);
      const t = sql.id(schema, 'Claim');
      const mine = '00000000-0000-4000-8000-0000000000aa';
      await sql`insert into ${t} (title, amount, owner) values ('mine', 1, ${mine}::uuid), ('theirs', 1, ${'00000000-0000-4000-8000-0000000000bb'}::uuid)`.execute(db);
      const cond = rules.compileRule(where.ast, entityRuleAttributes(claim), rules.parameterBindings({ table: 'c', auth: { user: mine, roles: ['Employee'] }, now: new Date() }));
      const got = await sql<{ title: string }>`select c.title from ${t} as c where ${cond}`.execute(db);
      assert.deepEqual(
        got.rows.map((r) => r.title),
        ['mine'],
      );
    });
  });
}
