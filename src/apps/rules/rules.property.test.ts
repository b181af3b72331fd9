// Properties of the rule profile. (1) Printing a rule and parsing it back gives the same canonical
// AST. (2) For random rows and random rules, the TypeScript evaluator and the compiled SQL select the
// same rows, NULLs included, on both engines.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { type Kysely, sql } from 'kysely';
import { engines } from '../../../test/harness/engines.ts';
import {
  and,
  arith,
  attr,
  auth,
  call,
  checkRule,
  compare,
  compileRule,
  type CompareOp,
  evaluateRule,
  type Expr,
  inList,
  type Literal,
  list,
  lit,
  not,
  now,
  or,
  parameterBindings,
  printRule,
  type RuleAttribute,
  size,
} from './index.ts';

const UUIDS = ['00000000-0000-4000-8000-000000000001', '00000000-0000-4000-8000-000000000002', 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee'];
const ENUM = ['a', 'b', 'c'];
const DATES = ['2024-02-28', '2024-02-29', '2024-03-01', '1999-12-31'];
const NOW = new Date('2025-06-01T12:00:00.000Z');
const HOUR = 3_600_000;

const attrs = new Map<string, RuleAttribute>([
  ['id', { type: 'uuid', nullable: false }],
  ['s', { type: 'string', nullable: true }],
  ['rq', { type: 'string', nullable: false }],
  ['e', { type: 'string', nullable: true, enumValues: ENUM }],
  ['n', { type: 'int', nullable: true }],
  ['d', { type: 'decimal', nullable: true }],
  ['b', { type: 'bool', nullable: true }],
  ['ts', { type: 'timestamp', nullable: true }],
  ['dt', { type: 'date', nullable: true }],
  ['u', { type: 'uuid', nullable: true }],
]);

// Small domains, so that equalities and NULLs happen often.
const char = fc.constantFrom('a', 'b', '%', '_', '\\', "'", '"', 'é', '😀', ' ');
const str = fc.string({ unit: char, maxLength: 3 });
const cents = fc.integer({ min: -300, max: 300 }).map((c) => `${c < 0 ? '-' : ''}${Math.floor(Math.abs(c) / 100)}.${String(Math.abs(c) % 100).padStart(2, '0')}`);
const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: null, freq: 3 });
const row = fc.record({
  s: opt(str),
  rq: str,
  e: opt(fc.constantFrom(...ENUM)),
  n: opt(fc.bigInt(-3n, 3n)),
  d: opt(cents),
  b: opt(fc.boolean()),
  ts: opt(fc.integer({ min: -3, max: 3 }).map((h) => new Date(NOW.getTime() + h * HOUR))),
  dt: opt(fc.constantFrom(...DATES)),
  u: opt(fc.constantFrom(...UUIDS)),
});
type Row = typeof row extends fc.Arbitrary<infer R> ? R : never;

const cmpOp = fc.constantFrom<CompareOp>('==', '!=', '<', '<=', '>', '>=');
const eqOp = fc.constantFrom<CompareOp>('==', '!=');
const swap = (op: CompareOp, l: Expr, r: Expr) => fc.boolean().map((flip) => (flip ? compare(op, r, l) : compare(op, l, r)));

const intLit = fc.bigInt(-3n, 3n).map((v) => lit.int(v));
const decLit = cents.map((v) => lit.decimal(v));
const strLit = str.map((v) => lit.string(v));

const leaf: fc.Arbitrary<Expr> = fc.oneof(
  // strings: equality, membership, LIKE-style functions, size
  fc.tuple(eqOp, fc.constantFrom('s', 'rq', 'e'), fc.oneof(strLit, fc.constantFrom('s', 'rq').map((n) => attr(n)))).chain(([op, a, r]) => swap(op, attr(a), a === 'e' && r.kind === 'string' ? lit.string('b') : r)),
  fc.tuple(fc.constantFrom('s', 'rq'), fc.array(strLit, { maxLength: 3 })).map(([a, items]) => inList(attr(a), list(items))),
  fc.tuple(fc.constantFrom('startsWith', 'endsWith', 'contains') as fc.Arbitrary<'startsWith' | 'endsWith' | 'contains'>, fc.constantFrom('s', 'rq'), str).map(([fn, a, v]) => call(fn, attr(a), lit.string(v))),
  fc.tuple(cmpOp, fc.constantFrom('s', 'rq'), fc.integer({ min: 0, max: 3 })).map(([op, a, k]) => compare(op, size(attr(a)), lit.int(k))),
  fc.tuple(fc.constantFrom(...ENUM)).map(([v]) => inList(attr('e'), list([lit.string(v), lit.string('c')]))),
  // numbers: int and decimal, mixed, against each other and literals
  fc.tuple(cmpOp, fc.constantFrom('n', 'd'), fc.oneof(intLit, decLit, fc.constantFrom('n', 'd').map((n) => attr(n)))).chain(([op, a, r]) => swap(op, attr(a), r)),
  fc.tuple(fc.constantFrom('n', 'd'), fc.array(fc.oneof(intLit, decLit), { maxLength: 3 })).map(([a, items]) => inList(attr(a), list(items as Literal[]))),
  // booleans
  fc.constant(attr('b')),
  fc.tuple(eqOp, fc.boolean()).chain(([op, v]) => swap(op, attr('b'), lit.bool(v))),
  fc.boolean().map((v) => lit.bool(v)),
  // time
  fc.tuple(cmpOp, fc.integer({ min: -2, max: 2 }), fc.constantFrom<'+' | '-'>('+', '-')).chain(([op, h, sign]) => swap(op, attr('ts'), h === 0 ? now() : arith(sign, now(), lit.duration(Math.abs(h) * HOUR)))),
  fc.tuple(cmpOp, fc.constantFrom(...DATES)).chain(([op, v]) => swap(op, attr('dt'), lit.date(v))),
  // ids and the caller
  fc.tuple(eqOp, fc.constantFrom(...UUIDS)).chain(([op, v]) => swap(op, attr('u'), lit.string(v))),
  eqOp.chain((op) => swap(op, attr('u'), auth('user'))),
  fc.constantFrom('Manager', 'Clerk').map((r) => inList(lit.string(r), auth('roles'))),
  fc.constantFrom('s', 'e', 'n', 'd', 'b', 'ts', 'dt', 'u').chain((a) => eqOp.chain((op) => swap(op, attr(a), lit.null()))),
);

const rule: fc.Arbitrary<Expr> = fc.letrec<{ cond: Expr }>((tie) => ({
  cond: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf,
    tie('cond').map(not),
    fc.tuple(tie('cond'), tie('cond')).map(([a, b]) => and(a, b)),
    fc.tuple(tie('cond'), tie('cond')).map(([a, b]) => or(a, b)),
    fc.tuple(eqOp, tie('cond'), fc.boolean()).map(([op, c, v]) => compare(op, c, lit.bool(v))),
  ),
})).cond;

const evalInput = (r: Row) => ({ row: { ...r }, auth: { user: UUIDS[0] as string, roles: ['Manager'] }, now: NOW });

test('printing a rule and parsing it back gives the same canonical AST', () => {
  fc.assert(
    fc.property(rule, (e) => {
      const text = printRule(e);
      const back = checkRule(text, { attributes: attrs, place: 'where' });
      assert.ok(back.ok, `${text}: ${JSON.stringify(!back.ok && back.problems)}`);
      assert.deepEqual(back.expr, e, text);
      assert.equal(printRule(back.expr), text);
    }),
    { numRuns: 500 },
  );
});

for (const engine of engines()) {
  describe(`rules evaluated in SQL on ${engine.name}`, () => {
    let db: Kysely<unknown>;
    before(async () => {
      db = (await engine.open({ migrate: false })).db as unknown as Kysely<unknown>;
      await sql`create schema rules_prop`.execute(db);
      await sql`create table rules_prop.t (
        id uuid primary key, s text, rq text not null, e text, n bigint, d numeric(10,2), b boolean,
        ts timestamptz(3), dt date, u uuid)`.execute(db);
    });
    after(async () => {
      await sql`drop schema if exists rules_prop cascade`.execute(db).catch(() => {});
    });

    test('the TypeScript evaluator and the compiled WHERE select the same rows, NULLs included', async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(row, { minLength: 1, maxLength: 8 }), rule, async (rows, e) => {
          const withIds = rows.map((r, i) => ({ ...r, id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}` }));
          const expected = withIds.filter((r) => evaluateRule(e, attrs, evalInput(r))).map((r) => r.id);
          const where = compileRule(e, attrs, parameterBindings({ table: 't', auth: { user: UUIDS[0] as string, roles: ['Manager'] }, now: NOW }));
          const got = await db
            .transaction()
            .execute(async (trx) => {
              for (const r of withIds) {
                await sql`insert into rules_prop.t (id, s, rq, e, n, d, b, ts, dt, u) values (${r.id}::uuid, ${r.s}, ${r.rq}, ${r.e}, ${r.n === null ? null : String(r.n)}::bigint, ${r.d}::numeric, ${r.b}, ${r.ts?.toISOString() ?? null}::timestamptz, ${r.dt}::date, ${r.u}::uuid)`.execute(trx);
              }
              const res = await sql<{ id: string }>`select t.id from rules_prop.t as t where ${where} order by t.id`.execute(trx);
              throw Object.assign(new Error('rollback'), { rows: res.rows.map((x) => x.id) });
            })
            .catch((err: { rows?: string[] }) => {
              if (!err.rows) throw err;
              return err.rows;
            });
          assert.deepEqual(got, expected, `${printRule(e)}\nrows: ${JSON.stringify(withIds, (_, v) => (typeof v === 'bigint' ? `${v}n` : v))}`);
        }),
        { numRuns: engine.name === 'pglite' ? 150 : 150 },
      );
    });
  });
}
