import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { sql } from 'kysely';
import pg from 'pg';
import { engines, superuserUrl } from '../../test/harness/engines.ts';
import { type Database, type Db, migrate, openDatabase, type Trx } from '../db/index.ts';
import {
  type AuditEvent,
  type AuditSource,
  appendAuditEvent,
  auditEventFields,
  auditEventJson,
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

    describe('accord.append_audit_event, the path for sessions that cannot see the catalog', () => {
      /** A role holding only USAGE on schema accord and (unless `execute` is false) EXECUTE on the function. */
      async function narrowRole(db: Db, execute = true): Promise<string> {
        const role = `accord_test_${randomBytes(6).toString('hex')}`;
        await sql`create role ${sql.id(role)} nologin noinherit`.execute(db);
        // Membership lets the platform SET ROLE into it, as stage sessions do with stage roles.
        await sql`grant ${sql.id(role)} to current_user`.execute(db);
        await sql`grant usage on schema accord to ${sql.id(role)}`.execute(db);
        if (execute) await sql`grant execute on function accord.append_audit_event(jsonb) to ${sql.id(role)}`.execute(db);
        return role;
      }
      const asRole = <T>(db: Db, role: string, fn: (trx: Trx) => Promise<T>) =>
        db.transaction().execute(async (trx) => {
          await sql`set local role ${sql.id(role)}`.execute(trx);
          return fn(trx);
        });

      test('a role that cannot read the catalog appends an unsealed event, which seals into a valid chain', async () => {
        const { database } = await fresh();
        const db = database.db;
        const role = await narrowRole(db);
        const tenant = randomUUID();
        await assert.rejects(asRole(db, role, (trx) => sql`select * from accord.audit_events`.execute(trx)), /permission denied/);
        const { id, xid } = await asRole(db, role, async (trx) => ({
          id: await appendAuditEvent(trx, source, event(tenant, 1)),
          xid: (await sql<{ xid: string }>`select pg_current_xact_id()::text as xid`.execute(trx)).rows[0]?.xid,
        }));
        await db.transaction().execute((trx) => record(trx, source, event(tenant, 2)));
        const row = await db.selectFrom('accord.audit_events').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
        assert.deepEqual([row.seq, row.hash, row.xid], [null, null, xid]);
        assert.ok(Math.abs(row.occurred_at.getTime() - Date.now()) < 600_000, 'the function dates the event itself');
        // The same columns as record() writes, from the one row builder.
        const { details, ...fields } = auditEventFields(source, event(tenant, 1));
        for (const [k, v] of Object.entries(fields)) assert.deepEqual(row[k as keyof typeof row], v, k);
        assert.deepEqual(row.details, details);
        await sealPending(db, { wait: true });
        const r = await verifyChain(db, tenant, { trustedKeys });
        assert.deepEqual([r.ok, r.records], [true, 2], r.detail);
      });

      test('a role without EXECUTE on it cannot call it: PUBLIC holds nothing', async () => {
        const { database } = await fresh();
        const role = await narrowRole(database.db, false);
        await assert.rejects(
          asRole(database.db, role, (trx) => appendAuditEvent(trx, source, event(randomUUID(), 1))),
          (e) => pgCode(e) === '42501',
        );
      });

      test('events of the wrong shape are refused and append nothing', async () => {
        const { database } = await fresh();
        const db = database.db;
        const role = await narrowRole(db);
        const tenant = randomUUID();
        const good = JSON.parse(auditEventJson(source, event(tenant, 1))) as Record<string, unknown>;
        const bad: [string, unknown][] = [
          ['an array', [good]],
          ['an unknown field', { ...good, seq: 1 }],
          ['a missing field', { ...good, details: undefined }],
          ['a chain that is not the tenant’s', { ...good, chain_id: 'platform' }],
          ['a tenant that is not a UUID', { ...good, tenant_id: 'acme', chain_id: 'acme' }],
          ['an unknown actor type', { ...good, actor_type: 'root' }],
          ['roles that are not strings', { ...good, actor_roles: [1] }],
          ['an action that is not a dotted name', { ...good, action: 'DROP TABLE' }],
          ['an unknown outcome', { ...good, outcome: 'maybe' }],
          ['details that are not an object', { ...good, details: 'text' }],
          ['a target half given', { ...good, target_id: null }],
          ['a number where text belongs', { ...good, reason: 7 }],
        ];
        for (const [what, value] of bad) {
          await assert.rejects(
            asRole(db, role, (trx) => sql`select accord.append_audit_event(${JSON.stringify(value)}::jsonb)`.execute(trx)),
            (e) => pgCode(e) === '22023',
            what,
          );
        }
        assert.equal((await db.selectFrom('accord.audit_events').select('id').execute()).length, 0);
      });

      test('a stage’s role appends to its own tenant’s chain only', async () => {
        const { database } = await fresh();
        const db = database.db;
        const role = await narrowRole(db);
        const [own, other] = [randomUUID(), randomUUID()];
        await sql`insert into accord.tenants (id, name, display_name, region) values (${own}, ${`t-${own.slice(0, 8)}`}, 'Own', 'eu'), (${other}, ${`t-${other.slice(0, 8)}`}, 'Other', 'eu')`.execute(db);
        await sql`insert into accord.stages (tenant_id, name, position, schema_name, role_name) values (${own}, 'dev', 1, ${`st_${role}`}, ${role})`.execute(db);
        await asRole(db, role, (trx) => appendAuditEvent(trx, source, event(own, 1)));
        for (const tenantId of [other, null]) {
          await assert.rejects(
            asRole(db, role, (trx) => appendAuditEvent(trx, source, event(tenantId, 2))),
            (e) => pgCode(e) === '42501',
            `tenant ${tenantId}`,
          );
        }
        assert.deepEqual(
          (await db.selectFrom('accord.audit_events').select('chain_id').execute()).map((r) => r.chain_id),
          [own],
        );
      });
    });
  });
}
