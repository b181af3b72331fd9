import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { sql } from 'kysely';
import pg from 'pg';
import { engines, superuserUrl } from '../../test/harness/engines.ts';
import { type Database, type Db, migrate, openDatabase, type Trx } from '../db/index.ts';
import { runtimeRoleOf } from '../kernel/index.ts';
import { createStageStorage, newStageStorageNames } from '../tenancy/stage-storage.ts';
import {
  type AuditEvent,
  type AuditSource,
  appendStageAuditEvent,
  auditEventFields,
  chainIdFor,
  ephemeralSigner,
  record,
  sealPending,
  verifyChain,
  verifyChains,
} from './index.ts';

const signer = ephemeralSigner();
const trustedKeys = new Map([[signer.keyId, signer.publicKeyPem]]);

const source: AuditSource = {
  actor: { type: 'user', id: 'u-1', label: 'ops@example.test', roles: ['platform-operator'] },
  requestId: 'req-1',
  sourceIp: '192.0.2.7',
  userAgent: 'test/1',
};
const event = (tenantId: string | null, i: number): AuditEvent => ({
  tenantId,
  action: 'test.event',
  target: { type: 'thing', id: String(i) },
  outcome: 'success',
  details: { i, password: 'never stored' },
});

/** Per chain: the sequence numbers in the table, in order, and how many rows are unsealed. */
async function seqsOf(db: Db, chain: string): Promise<{ seqs: number[]; unsealed: number }> {
  const rows = await db.selectFrom('accord.audit_events').select(['seq']).where('chain_id', '=', chain).orderBy('seq').execute();
  return { seqs: rows.filter((r) => r.seq !== null).map((r) => Number(r.seq)), unsealed: rows.filter((r) => r.seq === null).length };
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
const pgCode = (e: unknown) => (e as { code?: string }).code;

for (const engine of engines()) {
  describe(`audit sealing on ${engine.name}`, () => {
    /** A fresh database, with its URL on PostgreSQL (for a superuser connection). */
    async function fresh(): Promise<{ database: Database; url: string | undefined }> {
      if (!engine.newDatabaseUrl) return { database: await engine.open(), url: undefined };
      const url = await engine.newDatabaseUrl();
      const database = await openDatabase({ dataDir: 'unused', databaseUrl: url, maxConnections: 12 });
      await migrate(database.db);
      return { database, url };
    }

    /** SQL as a superuser with triggers off, the way an attacker with full database access would run it. */
    async function tamper(database: Database, url: string | undefined, statements: string[]): Promise<void> {
      if (!url) {
        await database.db.transaction().execute(async (trx) => {
          await sql`set local session_replication_role = replica`.execute(trx);
          for (const s of statements) await sql.raw(s).execute(trx);
        });
        return;
      }
      const client = new pg.Client({ connectionString: await superuserUrl(url) });
      await client.connect();
      try {
        await client.query('begin');
        await client.query('set local session_replication_role = replica');
        for (const s of statements) await client.query(s);
        await client.query('commit');
      } finally {
        await client.end();
      }
    }

    test('record() inserts one unsealed event in the caller’s transaction, and a rolled-back one leaves nothing', async () => {
      const { database } = await fresh();
      const db = database.db;
      const tenant = randomUUID();
      const inside = await db.transaction().execute(async (trx) => {
        const id = await record(trx, source, event(tenant, 1));
        const row = await trx.selectFrom('accord.audit_events').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
        const xid = await sql<{ xid: string }>`select pg_current_xact_id()::text as xid`.execute(trx);
        return { id, row, xid: xid.rows[0]?.xid };
      });
      assert.equal(inside.row.seq, null);
      assert.equal(inside.row.hash, null);
      assert.equal(inside.row.xid, inside.xid, 'the writing transaction is on the row');
      assert.equal(typeof inside.row.ins, 'number');
      assert.deepEqual(inside.row.details, { i: 1, password: '[redacted]' });
      const heads = await db.selectFrom('accord.audit_chains').select('chain_id').where('chain_id', '=', tenant).execute();
      assert.deepEqual(heads, [], 'the request path does not touch the chain head');

      await assert.rejects(
        db.transaction().execute(async (trx) => {
          await record(trx, source, event(tenant, 2));
          throw new Error('the change failed');
        }),
        /the change failed/,
      );
      for (let i = 3; i <= 5; i++) await db.transaction().execute((trx) => record(trx, source, event(tenant, i)));

      // `wait`: other test files' transactions on the same server hold the horizon back too.
      const sealed = await sealPending(db, { wait: true });
      assert.equal(sealed.sealed, 4);
      assert.equal(sealed.pending, false);
      assert.deepEqual(await seqsOf(db, tenant), { seqs: [1, 2, 3, 4], unsealed: 0 });
      const order = await db.selectFrom('accord.audit_events').select(['seq', 'target_id']).where('chain_id', '=', tenant).orderBy('seq').execute();
      assert.deepEqual(
        order.map((r) => r.target_id),
        ['1', '3', '4', '5'],
        'sealed in the order written',
      );
      const report = await verifyChain(db, tenant, { trustedKeys });
      assert.equal(report.ok, true, report.detail);
      assert.deepEqual([report.records, report.lastSeq, report.unsealed], [4, 4, 0]);
      assert.equal((await sealPending(db)).sealed, 0, 'a second pass finds nothing');
    });

    test('events waiting for the sealer are counted by verify, not reported, and appear in the report of a chain with no head yet', async () => {
      const { database } = await fresh();
      const tenant = randomUUID();
      for (let i = 1; i <= 3; i++) await database.db.transaction().execute((trx) => record(trx, source, event(tenant, i)));
      const [report] = (await verifyChains(database.db, { trustedKeys })).filter((r) => r.chain === tenant);
      assert.ok(report, 'the chain is in the report');
      assert.deepEqual([report.ok, report.records, report.unsealed], [true, 0, 3]);
    });

    test('many transactions recording at once on a few chains, with two sealers running, leave every chain exactly 1..N', async () => {
      const { database } = await fresh();
      const db = database.db;
      const chains = [randomUUID(), randomUUID(), null];
      const expected = new Map<string, number>();
      let writing = true;
      const sealer = async () => {
        let passes = 0;
        while (writing) {
          await sealPending(db, { batchSize: 7 });
          passes++;
          await new Promise((r) => setImmediate(r));
        }
        return passes;
      };
      const writers = Array.from({ length: 24 }, async (_, w) => {
        for (let t = 0; t < 6; t++) {
          const tenant = chains[(w + t) % chains.length] ?? null;
          const fail = (w * 6 + t) % 5 === 0;
          try {
            await db.transaction().execute(async (trx) => {
              for (let e = 0; e < 3; e++) await record(trx, source, event(tenant, w * 100 + t * 10 + e));
              if (fail) throw new Error('rolled back');
            });
            expected.set(chainIdFor(tenant), (expected.get(chainIdFor(tenant)) ?? 0) + 3);
          } catch (err) {
            if (!fail) throw err;
          }
        }
      });
      const sealers = [sealer(), sealer()];
      await Promise.all(writers);
      writing = false;
      const passes = await Promise.all(sealers);
      assert.ok(passes.every((p) => p > 0), 'both sealers ran while the writers did');
      await sealPending(db, { wait: true });
      for (const [chain, n] of expected) {
        assert.deepEqual(await seqsOf(db, chain), { seqs: range(n), unsealed: 0 }, `chain ${chain}`);
        const r = await verifyChain(db, chain, { trustedKeys });
        assert.equal(r.ok, true, r.detail);
        assert.equal(r.lastSeq, n);
      }
    });

    if (engine.name === 'postgres') {
      test('an event of a transaction still running holds back every later one, so nothing commits into the past', async () => {
        const { database } = await fresh();
        const db = database.db;
        const tenant = randomUUID();
        const slow = await db.startTransaction().execute();
        await record(slow, source, event(tenant, 1));
        await db.transaction().execute((trx) => record(trx, source, event(tenant, 2)));
        const held = await sealPending(db, { wait: true });
        assert.deepEqual([held.sealed, held.pending], [0, true], 'the later, committed event waits behind the horizon');
        await slow.commit().execute();
        assert.equal((await sealPending(db, { wait: true })).sealed, 2);
        const order = await db.selectFrom('accord.audit_events').select(['seq', 'target_id']).where('chain_id', '=', tenant).orderBy('seq').execute();
        assert.deepEqual(
          order.map((r) => [r.seq, r.target_id]),
          [
            [1, '1'],
            [2, '2'],
          ],
        );
        assert.equal((await verifyChain(db, tenant, { trustedKeys })).ok, true);
      });
    }

    test('the platform cannot change an unsealed event, nor re-seal a sealed one', async () => {
      const { database } = await fresh();
      const db = database.db;
      const tenant = randomUUID();
      await db.transaction().execute((trx) => record(trx, source, event(tenant, 1)));
      const refused = /append-only|permission denied/;
      await assert.rejects(sql`update accord.audit_events set details = '{"i": 2}' where chain_id = ${tenant}`.execute(db), refused);
      // Sealing may fill seq and hash only: together with another column it is refused.
      await assert.rejects(
        sql`update accord.audit_events set seq = 1, hash = '\\x00', action = 'forged' where chain_id = ${tenant}`.execute(db),
        refused,
      );
      await sealPending(db, { wait: true });
      await assert.rejects(sql`update accord.audit_events set seq = 7 where chain_id = ${tenant}`.execute(db), /append-only \(UPDATE refused\)/);
      await assert.rejects(sql`update accord.audit_events set seq = null, hash = null where chain_id = ${tenant}`.execute(db), /append-only \(UPDATE refused\)/);
      assert.equal((await verifyChain(db, tenant, { trustedKeys })).ok, true);
    });

    test('an unsealed event slipped in behind the sealer’s horizon is reported as one the sealer should have sealed', async () => {
      const { database, url } = await fresh();
      const db = database.db;
      const tenant = randomUUID();
      for (let i = 1; i <= 5; i++) await db.transaction().execute((trx) => record(trx, source, event(tenant, i)));
      await sealPending(db, { wait: true });
      // A row carrying the id of a transaction that ended long ago: it never came through a writer
      // the sealer could have seen running, so it was inserted behind its back.
      await tamper(database, url, [
        `insert into accord.audit_events (chain_id, id, occurred_at, tenant_id, actor_type, actor_id, actor_label, actor_roles, action, target_type, target_id, outcome, reason, source_ip, user_agent, request_id, details, xid)
         select chain_id, gen_random_uuid(), occurred_at, tenant_id, actor_type, actor_id, actor_label, actor_roles, 'forged.event', target_type, target_id, outcome, reason, source_ip, user_agent, request_id, details, '3'::xid8
         from accord.audit_events where chain_id = '${tenant}' and seq = 2`,
      ]);
      const r = await verifyChain(db, tenant, { trustedKeys });
      assert.equal(r.ok, false);
      assert.equal(r.problem, 'unsealed-record', r.detail);
      assert.equal(r.firstBadSeq, 6);
      assert.equal(r.unsealed, 1);
    });

    test('a sealed event turned back into an unsealed one is reported at its sequence number', async () => {
      const { database, url } = await fresh();
      const db = database.db;
      const tenant = randomUUID();
      for (let i = 1; i <= 6; i++) await db.transaction().execute((trx) => record(trx, source, event(tenant, i)));
      await sealPending(db, { wait: true });
      await tamper(database, url, [`update accord.audit_events set seq = null, hash = null where chain_id = '${tenant}' and seq = 3`]);
      const r = await verifyChain(db, tenant, { trustedKeys });
      assert.deepEqual([r.ok, r.problem, r.firstBadSeq], [false, 'missing-record', 3]);
    });

    describe('a stage session’s INSERT, the one way into the trail for roles that cannot see the catalog', () => {
      /** A tenant with a stage made as the platform makes one; its runtime role, as sessions SET ROLE to it. */
      async function stageRole(db: Db): Promise<{ role: string; tenant: string }> {
        const tenant = randomUUID();
        const names = newStageStorageNames();
        await db.transaction().execute(async (trx) => {
          await sql`insert into accord.tenants (id, name, display_name, region) values (${tenant}, ${`t-${tenant.slice(0, 8)}`}, 'T', 'eu')`.execute(trx);
          await sql`insert into accord.stages (tenant_id, name, position, schema_name, role_name) values (${tenant}, 'dev', 1, ${names.schema}, ${names.role})`.execute(trx);
          await createStageStorage(trx, names);
        });
        const role = runtimeRoleOf(names.role);
        // The platform SETs ROLE through the gateway; here it needs the membership itself.
        await sql`grant ${sql.id(role)} to current_user`.execute(db);
        return { role, tenant };
      }
      const asRole = <T>(db: Db, role: string, fn: (trx: Trx) => Promise<T>) =>
        db.transaction().execute(async (trx) => {
          await sql`select set_config('role', ${role}, true)`.execute(trx);
          return fn(trx);
        });
      const insertAs = (db: Db, role: string, row: Record<string, unknown>) =>
        asRole(db, role, (trx) => sql`insert into accord.audit_events (${sql.join(Object.keys(row).map((k) => sql.id(k)))}) values (${sql.join(Object.values(row))})`.execute(trx));

      test('a stage’s runtime role appends an unsealed event dated by the database, which seals into a valid chain, and reads none', async () => {
        const { database } = await fresh();
        const db = database.db;
        const { role, tenant } = await stageRole(db);
        await assert.rejects(asRole(db, role, (trx) => sql`select * from accord.audit_events`.execute(trx)), /permission denied/);
        const before = Date.now();
        const { id, xid } = await asRole(db, role, async (trx) => ({
          id: await appendStageAuditEvent(trx, source, event(tenant, 1)),
          xid: (await sql<{ xid: string }>`select pg_current_xact_id()::text as xid`.execute(trx)).rows[0]?.xid,
        }));
        await db.transaction().execute((trx) => record(trx, source, event(tenant, 2)));
        const row = await db.selectFrom('accord.audit_events').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
        assert.deepEqual([row.seq, row.hash, row.xid], [null, null, xid]);
        assert.ok(row.occurred_at.getTime() >= before - 1 && row.occurred_at.getTime() <= Date.now(), 'the database dates the event');
        assert.equal(row.occurred_at.getTime() % 1, 0);
        // The same columns as record() writes, from the one row builder.
        const { details, ...fields } = auditEventFields(source, event(tenant, 1));
        for (const [k, v] of Object.entries(fields)) assert.deepEqual(row[k as keyof typeof row], v, k);
        assert.deepEqual(row.details, details);
        await sealPending(db, { wait: true });
        const r = await verifyChain(db, tenant, { trustedKeys });
        assert.deepEqual([r.ok, r.records], [true, 2], r.detail);
      });

      test('a stage’s role writes only to its own tenant’s chain: not another tenant’s, not the platform’s', async () => {
        const { database } = await fresh();
        const db = database.db;
        const { role, tenant } = await stageRole(db);
        const other = await stageRole(db);
        for (const tenantId of [other.tenant, null]) {
          await assert.rejects(
            asRole(db, role, (trx) => appendStageAuditEvent(trx, source, event(tenantId, 2))),
            (e) => pgCode(e) === '42501',
            `tenant ${tenantId}`,
          );
        }
        // A chain that is not the tenant named on the row.
        const good = { chain_id: tenant, id: randomUUID(), tenant_id: tenant, actor_type: 'user', actor_roles: '{}', action: 'test.event', outcome: 'success', details: '{}' };
        await assert.rejects(insertAs(db, role, { ...good, chain_id: other.tenant }), (e) => pgCode(e) === '42501');
        await insertAs(db, role, good);
        assert.deepEqual((await db.selectFrom('accord.audit_events').select('chain_id').execute()).map((r) => r.chain_id), [tenant]);
      });

      test('a stage’s role cannot seal, date, or number an event itself, nor append one of the wrong shape', async () => {
        const { database } = await fresh();
        const db = database.db;
        const { role, tenant } = await stageRole(db);
        const good = { chain_id: tenant, id: randomUUID(), tenant_id: tenant, actor_type: 'user', actor_roles: '{}', action: 'test.event', outcome: 'success', details: '{}' };
        const refused: [string, Record<string, unknown>][] = [
          ['a sequence number', { ...good, seq: 1 }],
          ['a hash', { ...good, hash: Buffer.from('00', 'hex') }],
          ['its own date', { ...good, occurred_at: new Date(0) }],
          ['a transaction id', { ...good, xid: '3' }],
          ['an insertion number', { ...good, ins: 1 }],
          ['an unknown actor type', { ...good, actor_type: 'root' }],
          ['an action that is not a dotted name', { ...good, action: 'DROP TABLE' }],
          ['an unknown outcome', { ...good, outcome: 'maybe' }],
          ['details that are not an object', { ...good, details: '"text"' }],
          ['a target half given', { ...good, target_type: 'thing' }],
          ['text over 8192 characters', { ...good, reason: 'x'.repeat(8193) }],
        ];
        for (const [what, row] of refused) await assert.rejects(insertAs(db, role, row), (e) => pgCode(e) === '42501', what);
        assert.equal((await db.selectFrom('accord.audit_events').select('id').execute()).length, 0);
      });

      test('a role that is no stage’s runtime role appends nothing, even when granted the columns', async () => {
        const { database } = await fresh();
        const db = database.db;
        const { tenant } = await stageRole(db);
        const role = `accord_test_${randomBytes(6).toString('hex')}`;
        await sql`create role ${sql.id(role)} nologin noinherit`.execute(db);
        await sql`grant ${sql.id(role)} to current_user`.execute(db);
        await sql`grant usage on schema accord to ${sql.id(role)}`.execute(db);
        await sql`grant insert on accord.audit_events to ${sql.id(role)}`.execute(db);
        await sql`grant usage on sequence accord.audit_events_ins to ${sql.id(role)}`.execute(db);
        await sql`grant execute on function accord.stage_audit_tenant() to ${sql.id(role)}`.execute(db);
        await assert.rejects(asRole(db, role, (trx) => appendStageAuditEvent(trx, source, event(tenant, 1))), (e) => pgCode(e) === '42501');
        assert.equal((await db.selectFrom('accord.audit_events').select('id').execute()).length, 0);
      });
    });
  });
}
