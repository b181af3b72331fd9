import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { client, endUser, type Platform, startPlatform, type TestStage, tenantWithApp } from '../../harness/data-api.ts';
import { engines } from '../../harness/engines.ts';

// Keyset pages over an attribute that may be NULL: walking every page gives each row exactly
// once, in PostgreSQL's order (NULLs last ascending, first descending, the id breaking ties).
const manifest = `
app: ranks
version: 1.0.0
roles:
  Reader: { description: reads and writes everything }
entities:
  Item:
    attributes:
      label: { type: text, required: true }
      rank:  { type: integer }
      seen:  { type: date }
    access:
      read: [Reader]
      create: [Reader]
`;

const RANKS = [null, 3, 1, null, 2, 3, null, 1, 2, null, 5];

for (const engine of engines()) {
  describe(`keyset pages over nullable attributes on ${engine.name}`, () => {
    let p: Platform;
    let st: TestStage;
    let reader: ReturnType<typeof client>;
    const rows: { id: string; rank: number | null; seen: string | null }[] = [];

    before(async () => {
      p = await startPlatform(engine);
      [st] = (await tenantWithApp(p, 'acme', manifest)).filter((s) => s.stage === 'production') as [TestStage];
      reader = client(p, st, 'ranks', (await endUser(p, st, 'r@acme.test', 'ranks', ['Reader'])).token);
      for (const [i, rank] of RANKS.entries()) {
        const seen = i % 3 === 0 ? null : `2026-0${1 + (i % 4)}-01`;
        const r = await reader.create('Item', { label: `i${i}`, rank, seen });
        assert.equal(r.status, 201, JSON.stringify(r.body));
        rows.push({ id: r.body.id, rank, seen });
      }
    });
    after(async () => p?.close());

    const walk = async (sort: string, limit: string) => {
      const out: string[] = [];
      let cursor: string | null = null;
      for (let i = 0; i < 20; i++) {
        const page = await reader.list('Item', { sort, limit, ...(cursor ? { cursor } : {}) });
        assert.equal(page.status, 200, JSON.stringify(page.body));
        out.push(...page.body.items.map((x: { id: string }) => x.id));
        cursor = page.body.next;
        if (!cursor) return out;
      }
      throw new Error('too many pages');
    };

    // PostgreSQL's order: NULL after every value ascending, before every value descending; the
    // id (ascending after an ascending key, descending after a descending one) breaks ties.
    const expected = (key: 'rank' | 'seen', desc: boolean) =>
      [...rows]
        .sort((a, b) => {
          const x = a[key];
          const y = b[key];
          if (x !== y) {
            if (x === null) return desc ? -1 : 1;
            if (y === null) return desc ? 1 : -1;
            return (x < y ? -1 : 1) * (desc ? -1 : 1);
          }
          return (a.id < b.id ? -1 : 1) * (desc ? -1 : 1);
        })
        .map((r) => r.id);

    for (const [sort, key, desc] of [
      ['rank', 'rank', false],
      ['-rank', 'rank', true],
      ['seen', 'seen', false],
      ['-seen', 'seen', true],
    ] as const) {
      test(`sort=${sort}: every page in order, each row once`, async () => {
        for (const limit of ['1', '2', '3']) assert.deepEqual(await walk(sort, limit), expected(key, desc), `limit ${limit}`);
      });
    }
  });
}
