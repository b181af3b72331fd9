import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { engines } from '../../test/harness/engines.ts';
import { type DbOrTrx, prepared } from './index.ts';

for (const engine of engines()) {
  describe(`prepared queries on ${engine.name}`, () => {
    test('a prepared query answers each call with the rows for that call’s values, in and outside a transaction', async () => {
      const { db } = await engine.open();
      await db
        .insertInto('accord.tenants')
        .values([
          { name: 'alpha', display_name: 'A', region: 'eu' },
          { name: 'beta', display_name: 'B', region: 'us' },
          { name: 'gamma', display_name: 'G', region: 'eu' },
        ])
        .execute();
      // A constant between the two arguments: its value must stay where the builder put it.
      const byRegion = prepared((d: DbOrTrx, region: string, after: string) =>
        d.selectFrom('accord.tenants').select('name').where('region', '=', region).where('display_name', '<>', 'none').where('name', '>', after).orderBy('name'),
      );
      assert.deepEqual(await byRegion(db, 'eu', ''), [{ name: 'alpha' }, { name: 'gamma' }]);
      assert.deepEqual(await byRegion(db, 'eu', 'alpha'), [{ name: 'gamma' }]);
      assert.deepEqual(await byRegion(db, 'us', ''), [{ name: 'beta' }]);
      assert.deepEqual(await byRegion(db, "eu' or 'x' = 'x", ''), [], 'values travel as bind parameters');
      const inTrx = await db.transaction().execute(async (trx) => {
        await trx.insertInto('accord.tenants').values({ name: 'delta', display_name: 'D', region: 'us' }).execute();
        return byRegion(trx, 'us', '');
      });
      assert.deepEqual(inTrx, [{ name: 'beta' }, { name: 'delta' }]);
    });

    test('a builder that does not use an argument as a plain value is refused on the first call', async () => {
      const { db } = await engine.open();
      const unused = prepared((d: DbOrTrx, _name: string) => d.selectFrom('accord.tenants').select('name').where('name', '=', 'fixed'));
      await assert.rejects(unused(db, 'x'), /does not use every argument as a value/);
      const inList = prepared((d: DbOrTrx, names: readonly string[]) => d.selectFrom('accord.tenants').select('name').where('name', 'in', names));
      await assert.rejects(inList(db, ['a', 'b']), /single values, not lists/);
    });
  });
}
