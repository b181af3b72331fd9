import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { entityRuleAttributes, rules } from '../../../src/apps/index.ts';
import { compileForTest } from '../../harness/apps.ts';
import { client, endUser, type Platform, startPlatform, type TestStage, tenantWithApp } from '../../harness/data-api.ts';
import { engines } from '../../harness/engines.ts';
import { seed } from '../../harness/matrix.ts';

// For random rows, a random read rule and a random filter, a list returns exactly the rows the
// TypeScript evaluator of the rules lets the caller see and the filter keeps.
const atom = fc.oneof(
  fc.tuple(fc.constantFrom('==', '!=', '<', '<=', '>', '>='), fc.integer({ min: 0, max: 5 })).map(([op, n]) => `row.n ${op} ${n}`),
  fc.constantFrom('a', 'b', 'c').map((v) => `row.s == "${v}"`),
  fc.subarray(['a', 'b', 'c'], { minLength: 1 }).map((vs) => `row.s in [${vs.map((v) => `"${v}"`).join(', ')}]`),
  fc.constant('row.owner == auth.user'),
  fc.constant('row.n == null'),
  fc.constantFrom('x', 'y', 'xy').map((p) => `row.t.startsWith("${p}")`),
);
const expr: fc.Arbitrary<string> = fc.letrec((tie) => ({
  e: fc.oneof({ depthSize: 'small', withCrossShrink: true }, atom, fc.tuple(tie('e'), fc.constantFrom('&&', '||'), tie('e')).map(([a, op, b]) => `(${a} ${op} ${b})`), tie('e').map((a) => `!(${a})`)),
})).e as fc.Arbitrary<string>;

const manifest = (where: string) => `
app: prop
version: 1.0.0
roles:
  Reader: { description: reads by a random rule }
entities:
  Item:
    attributes:
      n: { type: integer }
      s: { type: enum, values: [a, b, c], required: true }
      t: { type: text, required: true }
      owner: { type: user, required: true }
    access:
      read:
        - { role: Reader, where: ${JSON.stringify(where)} }
`;

for (const engine of engines()) {
  describe(`random rules and filters on ${engine.name}`, () => {
    let p: Platform;
    let n = 0;
    before(async () => {
      p = await startPlatform(engine);
    });
    after(async () => p?.close());

    test('a list returns exactly the rows the evaluator allows', async () => {
      await fc.assert(
        fc.asyncProperty(
          expr,
          expr,
          fc.array(fc.record({ n: fc.option(fc.integer({ min: 0, max: 5 }), { nil: null }), s: fc.constantFrom('a', 'b', 'c'), t: fc.constantFrom('x', 'xy', 'y', 'z'), mine: fc.boolean() }), { maxLength: 12 }),
          async (where, filter, specs) => {
            const text = manifest(where);
            const app = compileForTest(text).ir;
            const [st] = (await tenantWithApp(p, `prop-${n++}`, text)).filter((s) => s.stage === 'production') as [TestStage];
            const me = await endUser(p, st, 'reader@prop.test', 'prop', ['Reader']);
            const other = randomUUID();
            const e = app.entities[0] as NonNullable<(typeof app.entities)[0]>;
            const rows = specs.map((r) => ({ id: randomUUID(), n: r.n === null ? null : String(r.n), s: r.s, t: r.t, owner: r.mine ? me.id : other }));
            await seed(p, st, e, rows);
            const attrs = entityRuleAttributes(e);
            const f = rules.checkRule(filter, { attributes: attrs, place: 'filter' });
            assert.ok(f.ok);
            const w = e.access.read[0]?.where?.ast ?? rules.lit.bool(true);
            const input = (row: Record<string, unknown>) => ({ row, auth: { user: me.id, roles: ['Reader'] }, now: new Date() });
            const want = rows.filter((r) => rules.evaluateRule(w, attrs, input(r)) && rules.evaluateRule(f.expr, attrs, input(r))).map((r) => r.id).sort();
            const res = await client(p, st, 'prop', me.token).list('Item', { filter, limit: '100' });
            assert.equal(res.status, 200, JSON.stringify(res.body));
            assert.deepEqual(res.body.items.map((x: { id: string }) => x.id).sort(), want, `where ${where}; filter ${filter}`);
          },
        ),
        { numRuns: 12, seed: 20261202 },
      );
    });
  });
}
