import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { sql } from 'kysely';
import pg from 'pg';
import { engines, superuserUrl } from '../../test/harness/engines.ts';
import type { Database } from '../db/index.ts';
import {
  chainIdFor,
  ephemeralSigner,
  readCheckpointFiles,
  record,
  sealedRow,
  sealPending,
  systemSource,
  takeCheckpoints,
  verifyChain,
  writeCheckpointFiles,
} from './index.ts';

const signer = ephemeralSigner();
const trustedKeys = new Map([[signer.keyId, signer.publicKeyPem]]);
const policy = { everyRecords: 1_000_000, everyMs: 3_600_000 };

/**
 * Runs tampering SQL as a superuser with triggers off (session_replication_role = replica),
 * the way an attacker with full database access would. On PGlite the platform already is one.
 */
async function tamper(database: Database, url: string | undefined, statements: string[]): Promise<void> {
  if (database.engine === 'pglite') {
    await database.db.transaction().execute(async (trx) => {
      await sql`set local session_replication_role = replica`.execute(trx);
      for (const s of statements) await sql.raw(s).execute(trx);
    });
    return;
  }
  const client = new pg.Client({ connectionString: await superuserUrl(url ?? '') });
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

for (const engine of engines()) {
  describe(`audit chain verification on ${engine.name}`, () => {
    /** A fresh database with `n` records on one tenant chain; returns the chain id. */
    async function seeded(n: number): Promise<{ database: Database; url: string | undefined; chain: string }> {
      const url = engine.newDatabaseUrl ? await engine.newDatabaseUrl() : undefined;
      const database = await (url ? openFromUrl(url) : engine.open());
      const tenantId = randomUUID();
      await database.db.transaction().execute(async (trx) => {
        for (let i = 1; i <= n; i++) {
          await record(trx, systemSource, { tenantId, action: 'test.event', outcome: 'success', details: { i } });
        }
      });
      // Sealing links them into the chain (in a server, the sealer does this right after commit).
      assert.equal((await sealPending(database.db, { wait: true })).sealed, n);
      return { database, url, chain: chainIdFor(tenantId) };
    }

    test('an untouched chain verifies, with its stored checkpoint', async () => {
      const { database, chain } = await seeded(20);
      assert.equal((await takeCheckpoints(database.db, signer, policy, { force: true })).length, 1);
      const r = await verifyChain(database.db, chain, { trustedKeys });
      assert.equal(r.ok, true, r.detail);
      assert.equal(r.records, 20);
      assert.equal(r.checkpointsChecked, 1);
    });

    test('the table refuses UPDATE, DELETE and TRUNCATE from the platform', async () => {
      const { database, chain } = await seeded(3);
      const refused = /append-only|permission denied/;
      await assert.rejects(sql`update accord.audit_events set reason = 'x' where chain_id = ${chain}`.execute(database.db), refused);
      await assert.rejects(sql`delete from accord.audit_events where chain_id = ${chain}`.execute(database.db), refused);
      await assert.rejects(sql`truncate accord.audit_events`.execute(database.db), refused);
      assert.equal((await verifyChain(database.db, chain, { trustedKeys })).ok, true);
    });

    const cases: { name: string; sql: (chain: string) => string[]; firstBadSeq: number; problem: string }[] = [
      {
        name: 'a modified field',
        sql: (c) => [`update accord.audit_events set details = '{"i": 99}' where chain_id = '${c}' and seq = 7`],
        firstBadSeq: 7,
        problem: 'hash-mismatch',
      },
      {
        name: 'a deleted record',
        sql: (c) => [`delete from accord.audit_events where chain_id = '${c}' and seq = 5`],
        firstBadSeq: 5,
        problem: 'missing-record',
      },
      {
        name: 'an inserted record (later ones renumbered)',
        sql: (c) => [
          `update accord.audit_events set seq = seq + 1000 where chain_id = '${c}' and seq >= 4`,
          `update accord.audit_events set seq = seq - 999 where chain_id = '${c}' and seq >= 1000`,
          `insert into accord.audit_events select chain_id, 4, gen_random_uuid(), occurred_at, tenant_id, actor_type, actor_id, actor_label, actor_roles, 'forged.event', target_type, target_id, outcome, reason, source_ip, user_agent, request_id, details, hash from accord.audit_events where chain_id = '${c}' and seq = 3`,
        ],
        firstBadSeq: 4,
        problem: 'hash-mismatch',
      },
      {
        name: 'two records swapped',
        sql: (c) => [
          `update accord.audit_events set seq = -1 where chain_id = '${c}' and seq = 8`,
          `update accord.audit_events set seq = 8 where chain_id = '${c}' and seq = 9`,
          `update accord.audit_events set seq = 9 where chain_id = '${c}' and seq = -1`,
        ],
        firstBadSeq: 8,
        problem: 'hash-mismatch',
      },
      {
        name: 'a deleted tail',
        sql: (c) => [`delete from accord.audit_events where chain_id = '${c}' and seq > 15`],
        firstBadSeq: 16,
        problem: 'truncated',
      },
    ];
    for (const c of cases) {
      test(`${c.name} is detected at its sequence number`, async () => {
        const { database, url, chain } = await seeded(20);
        await tamper(database, url, c.sql(chain));
        const r = await verifyChain(database.db, chain, { trustedKeys });
        assert.equal(r.ok, false);
        assert.equal(r.problem, c.problem, r.detail);
        assert.equal(r.firstBadSeq, c.firstBadSeq, r.detail);
      });
    }

    test('a tail truncated along with its head and stored checkpoints is caught by exported checkpoints', async () => {
      const { database, url, chain } = await seeded(20);
      const dir = mkdtempSync(join(tmpdir(), 'accord-cp-'));
      writeCheckpointFiles(dir, await takeCheckpoints(database.db, signer, policy, { force: true }));
      // A careful attacker removes the tail, rewinds the head and drops the checkpoints too.
      const head = sealedRow(await database.db.selectFrom('accord.audit_events').selectAll().where('chain_id', '=', chain).where('seq', '=', 12).executeTakeFirstOrThrow());
      await tamper(database, url, [
        `delete from accord.audit_events where chain_id = '${chain}' and seq > 12`,
        `delete from accord.audit_checkpoints where chain_id = '${chain}'`,
        `update accord.audit_chains set last_seq = 12, last_hash = '\\x${head.hash.toString('hex')}', last_checkpoint_seq = 0 where chain_id = '${chain}'`,
      ]);
      assert.equal((await verifyChain(database.db, chain, { trustedKeys })).ok, true, 'invisible from inside the database');
      const r = await verifyChain(database.db, chain, { trustedKeys, external: readCheckpointFiles(dir) });
      assert.equal(r.ok, false);
      assert.equal(r.problem, 'truncated');
      assert.equal(r.firstBadSeq, 13);
    });

    test('checkpoints signed by another key are reported, not trusted', async () => {
      const { database, chain } = await seeded(5);
      const other = ephemeralSigner();
      const foreign = await takeCheckpoints(database.db, other, policy, { force: true });
      const r = await verifyChain(database.db, chain, { trustedKeys, external: foreign });
      assert.equal(r.ok, false);
      assert.equal(r.problem, 'checkpoint-signature');
      assert.match(r.detail ?? '', /does not know/);
    });

    test('a rewritten chain with recomputed hashes is caught by the signed checkpoint', async () => {
      const { database, url, chain } = await seeded(10);
      const cps = await takeCheckpoints(database.db, signer, policy, { force: true });
      // Rewrite record 10 and recompute its hash so the chain itself is consistent again.
      const row = sealedRow(await database.db.selectFrom('accord.audit_events').selectAll().where('chain_id', '=', chain).where('seq', '=', 10).executeTakeFirstOrThrow());
      const prev = sealedRow(await database.db.selectFrom('accord.audit_events').selectAll().where('chain_id', '=', chain).where('seq', '=', 9).executeTakeFirstOrThrow());
      const { chainHash } = await import('./canonical.ts');
      const { toCanonical } = await import('./record.ts');
      const forged = { ...row, details: { i: 'forged' } };
      const hash = chainHash(prev.hash, toCanonical(forged));
      await tamper(database, url, [
        `update accord.audit_events set details = '{"i":"forged"}', hash = '\\x${hash.toString('hex')}' where chain_id = '${chain}' and seq = 10`,
        `update accord.audit_chains set last_hash = '\\x${hash.toString('hex')}' where chain_id = '${chain}'`,
      ]);
      const r = await verifyChain(database.db, chain, { trustedKeys, external: cps });
      assert.equal(r.ok, false);
      assert.equal(r.problem, 'checkpoint-mismatch');
      assert.equal(r.firstBadSeq, 10);
    });
  });
}

async function openFromUrl(url: string): Promise<Database> {
  const { openDatabase, migrate } = await import('../db/index.ts');
  const d = await openDatabase({ dataDir: 'x', databaseUrl: url });
  await migrate(d.db);
  return d;
}
