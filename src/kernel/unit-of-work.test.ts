import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { engines } from '../../test/harness/engines.ts';
import { systemSource } from '../audit-chain/index.ts';
import type { Db } from '../db/index.ts';
import { AccordError, isAccordError } from '../errors/index.ts';
import { auditAlone, onAfterCommitError, refuse, unitOfWork } from './index.ts';

const event = (action: string) => ({ tenantId: null, action, outcome: 'success' as const });
const actions = async (db: Db, prefix: string) =>
  (await db.selectFrom('accord.audit_events').select('action').where('action', 'like', `${prefix}%`).execute()).map((r) => r.action).sort();
const tenantNamed = async (db: Db, name: string) => db.selectFrom('accord.tenants').select('id').where('name', '=', name).executeTakeFirst();

for (const engine of engines()) {
  describe(`unit of work on ${engine.name}`, () => {
    test('a unit commits its change and its audit events together, then runs its after-commit hooks', async () => {
      const { db } = await engine.open();
      const seen: string[] = [];
      const result = await unitOfWork(db, systemSource, async (w) => {
        await w.trx.insertInto('accord.tenants').values({ name: 'uow-ok', display_name: 'x', region: 'default' }).execute();
        await w.audit(event('test.uow.ok'));
        w.afterCommit(async () => {
          // The hook sees the committed change from outside the transaction.
          seen.push((await tenantNamed(db, 'uow-ok')) ? 'committed' : 'not yet');
        });
        return 42;
      });
      assert.equal(result, 42);
      assert.deepEqual(seen, ['committed']);
      assert.deepEqual(await actions(db, 'test.uow.ok'), ['test.uow.ok']);
    });

    test('a failing unit rolls back its change and its audit events, and runs no hook', async () => {
      const { db } = await engine.open();
      let hookRan = false;
      await assert.rejects(
        unitOfWork(db, systemSource, async (w) => {
          await w.trx.insertInto('accord.tenants').values({ name: 'uow-fail', display_name: 'x', region: 'default' }).execute();
          await w.audit(event('test.uow.fail'));
          w.afterCommit(() => {
            hookRan = true;
          });
          throw new AccordError('TENANCY_TENANT_EXISTS', { details: { tenant: 'uow-fail' } });
        }),
        (err) => isAccordError(err, 'TENANCY_TENANT_EXISTS'),
      );
      assert.equal(hookRan, false);
      assert.equal(await tenantNamed(db, 'uow-fail'), undefined);
      assert.deepEqual(await actions(db, 'test.uow.fail'), []);
    });

    test('a committed refusal keeps what the unit wrote and its events, then throws the refusal', async () => {
      const { db } = await engine.open();
      let hookRan = false;
      await assert.rejects(
        unitOfWork(db, systemSource, async (w) => {
          // e.g. a failure counter: it must survive the refusal.
          await w.trx.insertInto('accord.tenants').values({ name: 'uow-refused', display_name: 'x', region: 'default' }).execute();
          w.afterCommit(() => {
            hookRan = true;
          });
          return w.refuse(new AccordError('IAM_INVALID_CREDENTIALS'), event('test.uow.refused.a'), event('test.uow.refused.b'));
        }),
        (err) => isAccordError(err, 'IAM_INVALID_CREDENTIALS'),
      );
      assert.ok(await tenantNamed(db, 'uow-refused'), 'the write before the refusal committed');
      assert.deepEqual(await actions(db, 'test.uow.refused'), ['test.uow.refused.a', 'test.uow.refused.b']);
      assert.equal(hookRan, true, 'the transaction committed, so its hooks ran');
    });

    test('refuse and auditAlone record events for callers that hold no unit', async () => {
      const { db } = await engine.open();
      await assert.rejects(refuse(db, systemSource, new AccordError('IAM_FORBIDDEN', { details: { permission: 'x:y' } }), event('test.alone.refused')), (err) =>
        isAccordError(err, 'IAM_FORBIDDEN'),
      );
      await auditAlone(db, systemSource, event('test.alone.a'), event('test.alone.b'));
      assert.deepEqual(await actions(db, 'test.alone'), ['test.alone.a', 'test.alone.b', 'test.alone.refused']);
    });

    test('a failing after-commit hook is reported and does not turn the committed unit into an error', async () => {
      const { db } = await engine.open();
      const reported: unknown[] = [];
      onAfterCommitError((err) => reported.push(err));
      try {
        const result = await unitOfWork(db, systemSource, async (w) => {
          w.afterCommit(() => {
            throw new Error('notifier down');
          });
          await w.audit(event('test.uow.hookfail'));
          return 'done';
        });
        assert.equal(result, 'done');
        assert.equal(reported.length, 1);
        assert.deepEqual(await actions(db, 'test.uow.hookfail'), ['test.uow.hookfail']);
      } finally {
        onAfterCommitError((err) => console.error('after-commit hook failed', err));
      }
    });
  });
}
