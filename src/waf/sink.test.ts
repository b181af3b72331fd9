// Defence at the sink (issue 14 item 4): SQL text the platform compiles carries tenant values only
// as parameters, and a tenant-named path stays under its directory.
import assert from 'node:assert/strict';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { DummyDriver, Kysely, PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler } from 'kysely';
import { checkSinkPath, checkSinkSql, SinkViolation } from './sink.ts';

// Compile-only Kysely: the SQL text a repository would send, without a database.
const db = new Kysely<{ contact: { id: string; name: string; notes: string } }>({
  dialect: { createAdapter: () => new PostgresAdapter(), createDriver: () => new DummyDriver(), createIntrospector: (k) => new PostgresIntrospector(k), createQueryCompiler: () => new PostgresQueryCompiler() },
});
const HOSTILE = "x'; DROP TABLE contact; --";

const violation = (check: string) => (err: unknown) => err instanceof SinkViolation && err.sink === 'sql' && err.check === check;

test('a query that carries tenant values as parameters passes the SQL sink check', () => {
  const q = db.selectFrom('contact').selectAll().where('name', '=', HOSTILE).where('notes', 'like', '%select%').compile();
  assert.deepEqual(q.parameters, [HOSTILE, '%select%']);
  assert.doesNotThrow(() => checkSinkSql(q.sql, q.parameters));
  const insert = db.insertInto('contact').values({ id: 'c1', name: HOSTILE, notes: '/* not a comment */ -- nor this' }).compile();
  assert.doesNotThrow(() => checkSinkSql(insert.sql, insert.parameters));
});

test('a tenant value spliced into the statement text is a violation', () => {
  const spliced = `select * from "contact" where "name" = '${HOSTILE.replace(/'/g, "''")}-${'Ada Lovelace'}'`;
  assert.throws(() => checkSinkSql(spliced, ['Ada Lovelace']), violation('tenant value in statement text'));
  // A value equal to a quoted table or column name is not spliced: identifiers are the platform's.
  const byName = db.selectFrom('contact').select('notes').where('name', '=', 'notes').where('id', '=', 'contact').compile();
  assert.doesNotThrow(() => checkSinkSql(byName.sql, byName.parameters));
  assert.throws(() => checkSinkSql(`select "notes" from "contact" where "name" = 'notes'`, ['notes']), violation('tenant value in statement text'));
  // Values shorter than three characters and non-strings are too common in SQL text to tell anything.
  assert.doesNotThrow(() => checkSinkSql('select "id" from "contact" where "id" = $1', ['id', 42, null]));
});

test('a comment outside quotes is a violation; inside a literal or a quoted identifier it is data', () => {
  assert.throws(() => checkSinkSql('select * from "contact" -- where tenant = $1', []), violation('comment in statement'));
  assert.throws(() => checkSinkSql('select * from "contact" /* x */ where "id" = $1', []), violation('comment in statement'));
  assert.doesNotThrow(() => checkSinkSql(`select '--not a comment', 'it''s /* data */' from "odd--name"`, []));
});

test('a second statement is a violation; one trailing semicolon is not', () => {
  assert.throws(() => checkSinkSql('select 1; delete from "contact"', []), violation('more than one statement'));
  assert.doesNotThrow(() => checkSinkSql('select 1;  ', []));
  assert.doesNotThrow(() => checkSinkSql(`select ';delete from x' as "a;b"`, []));
});

test('a path under its directory resolves; .., absolute paths, sibling prefixes and NUL are violations', () => {
  const base = resolve('/srv/accord/tenants/acme');
  assert.equal(checkSinkPath(base, 'exports/2026.csv'), join(base, 'exports', '2026.csv'));
  assert.equal(checkSinkPath(base, 'a/../b.txt'), join(base, 'b.txt'));
  assert.equal(checkSinkPath(base, '.'), base);
  const path = (check: string) => (err: unknown) => err instanceof SinkViolation && err.sink === 'path' && err.check === check;
  assert.throws(() => checkSinkPath(base, '../globex/secrets.txt'), path('path leaves its directory'));
  assert.throws(() => checkSinkPath(base, '/etc/passwd'), path('path leaves its directory'));
  // `/srv/accord/tenants/acme-evil` starts with the base's text but is not under it.
  assert.throws(() => checkSinkPath(base, '../acme-evil/x'), path('path leaves its directory'));
  assert.throws(() => checkSinkPath(base, 'ok.txt\0.png'), path('NUL in path'));
});
