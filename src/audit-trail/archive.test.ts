import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { sql } from 'kysely';
import pg from 'pg';
import { engines, superuserUrl } from '../../test/harness/engines.ts';
import {
  type AuditRecordView,
  type CanonicalRecord,
  type CheckpointSigner,
  chainHash,
  ephemeralSigner,
  PLATFORM_CHAIN,
  record,
  sealedRow,
  sealPending,
  systemSource,
  takeCheckpoints,
  verifyChain,
  verifyChains,
} from '../audit-chain/index.ts';
import { type Database, type Db, migrate, openDatabase } from '../db/index.ts';
import { type ArchivedFile, archiveExpired, verifyArchive } from './archive.ts';

const DAY = 86_400_000;
// Frozen clock: every record and every run says when it happens.
const NOW = new Date('2026-06-01T00:00:00.000Z');
const daysBefore = (d: number, from = NOW) => new Date(from.getTime() - d * DAY);
const daysAfter = (d: number) => new Date(NOW.getTime() + d * DAY);

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'accord-archive-'));
  dirs.push(d);
  return d;
}
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** Writes `n` records into a chain as if they happened at `at`. */
async function write(db: Db, tenantId: string | null, at: Date, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await db.transaction().execute((trx) =>
      record(trx, systemSource, { tenantId, action: 'test.event', target: { type: 'thing', id: String(i) }, outcome: 'success', details: { i, note: 'ü ✓' } }, at),
    );
  }
  // In a server the sealer links them into the chain right after commit; archiving takes sealed records only.
  await sealPending(db, { wait: true });
}

// Both seal first, as the server's sealer would have by then (the archive's own audit record too).
const onlineSeqs = async (db: Db, chain: string) => {
  await sealPending(db, { wait: true });
  return (await db.selectFrom('accord.audit_events').select('seq').where('chain_id', '=', chain).orderBy('seq').execute()).map((r) => Number(r.seq));
};
const head = async (db: Db, chain: string) => {
  await sealPending(db, { wait: true });
  return db.selectFrom('accord.audit_chains').selectAll().where('chain_id', '=', chain).executeTakeFirstOrThrow();
};
const hashOf = async (db: Db, chain: string, seq: number) =>
  sealedRow(await db.selectFrom('accord.audit_events').selectAll().where('chain_id', '=', chain).where('seq', '=', seq).executeTakeFirstOrThrow()).hash.toString('hex');
const linesOf = async (file: string) => (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '');
const seqsIn = async (file: string) => (await linesOf(file)).map((l) => (JSON.parse(l) as { seq: number }).seq);
const pgCode = (e: unknown) => (e as { code?: string }).code;

/** The canonical form of an archive line, rebuilt from docs/audit.md's description rather than from the code under test. */
function canonicalOf(v: Record<string, unknown>): CanonicalRecord {
  // Archive lines are sealed records: their seq is a number.
  const r = v as unknown as AuditRecordView & { seq: number };
  return {
    v: 1,
    chain: r.chain,
    seq: r.seq,
    id: r.id,
    time: r.time,
    tenant: r.tenantId,
    actor: r.actor,
    action: r.action,
    target: r.target,
    outcome: r.outcome,
    reason: r.reason,
    source: r.source,
    details: r.details,
  };
}

/** Every file under the archive root, with a digest of its bytes. */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const chain of (await readdir(dir)).sort()) {
    for (const f of (await readdir(join(dir, chain))).sort()) {
      out.set(`${chain}/${f}`, createHash('sha256').update(await readFile(join(dir, chain, f))).digest('hex'));
    }
  }
  return out;
}

for (const engine of engines()) {
  describe(`audit archive on ${engine.name}`, { concurrency: false }, () => {
    let db: Db;
    let dir: string;
    let signer: CheckpointSigner;
    let keys: Map<string, string>;
    const tenant = randomUUID();
    let hashAt5 = '';
    let first: ArchivedFile | undefined;

    test('records older than 90 days move to a signed archive file and leave the table; newer ones stay', async () => {
      db = (await engine.open()).db;
      dir = await tempDir();
      signer = ephemeralSigner();
      keys = new Map([[signer.keyId, signer.publicKeyPem]]);
      await write(db, tenant, daysBefore(200), 3);
      await write(db, tenant, daysBefore(100), 2);
      await write(db, tenant, daysBefore(10), 2);
      await write(db, null, daysBefore(120), 1);
      await write(db, null, daysBefore(5), 1);
      // A checkpoint that the archive will swallow must not upset the online verification later.
      await takeCheckpoints(db, signer, { everyRecords: 1, everyMs: 1 }, { force: true, now: daysBefore(4) });
      hashAt5 = await hashOf(db, tenant, 5);

      const result = await archiveExpired(db, signer, { dir, now: NOW });

      assert.deepEqual(result.problems, []);
      assert.deepEqual(result.purged, []);
      const byChain = new Map(result.archived.map((a) => [a.chain, a]));
      first = byChain.get(tenant);
      assert.ok(first);
      assert.deepEqual([first.firstSeq, first.lastSeq, first.records], [1, 5, 5]);
      assert.equal(first.file, join(dir, tenant, '000000000001-000000000005.jsonl'));
      assert.deepEqual(await seqsIn(first.file), [1, 2, 3, 4, 5]);
      const platform = byChain.get(PLATFORM_CHAIN);
      assert.deepEqual([platform?.firstSeq, platform?.lastSeq], [1, 1]);

      // Seq 8 is the archiving's own audit record.
      assert.deepEqual(await onlineSeqs(db, tenant), [6, 7, 8]);
      assert.deepEqual(await onlineSeqs(db, PLATFORM_CHAIN), [2, 3]);
      const sig = JSON.parse(await readFile(first.file.replace(/\.jsonl$/, '.sig.json'), 'utf8')) as Record<string, unknown>;
      assert.deepEqual(Object.keys(sig).sort(), ['chain', 'createdAt', 'firstSeq', 'keyId', 'lastHash', 'lastSeq', 'prevHash', 'records', 'sha256', 'signature']);
      assert.equal(sig.prevHash, '0'.repeat(64));
      assert.equal(sig.lastHash, hashAt5);
      assert.equal(sig.sha256, createHash('sha256').update(await readFile(first.file)).digest('hex'));
      assert.equal(sig.keyId, signer.keyId);
    });

    test('the online chain verifies from its moved anchor, the archive verifies, and the two join', async () => {
      const h = await head(db, tenant);
      assert.equal(Number(h.anchor_seq), 5);
      assert.equal(h.anchor_hash.toString('hex'), hashAt5);
      const online = await verifyChains(db, { trustedKeys: keys });
      assert.ok(online.length >= 2);
      for (const r of online) assert.equal(r.ok, true, `${r.chain}: ${r.detail}`);
      assert.equal(online.find((r) => r.chain === tenant)?.records, 3);

      const archived = await verifyArchive(dir, keys);
      assert.deepEqual(
        archived.map((r) => [r.chain, r.ok, r.files, r.records]).sort(),
        [
          [PLATFORM_CHAIN, true, 1, 1],
          [tenant, true, 1, 5],
        ].sort(),
      );
      const t = archived.find((r) => r.chain === tenant);
      assert.equal(t?.lastSeq, Number(h.anchor_seq));
      assert.equal(t?.lastHash, h.anchor_hash.toString('hex'));
      // The same join, checked by verifyArchive itself against the database.
      for (const r of await verifyArchive(dir, keys, { db })) assert.equal(r.ok, true, `${r.chain}: ${r.detail}`);
    });

    test('archiving is audited on the archived chain', async () => {
      const ev = await db.selectFrom('accord.audit_events').selectAll().where('chain_id', '=', tenant).where('action', '=', 'audit.archived').execute();
      assert.equal(ev.length, 1);
      assert.equal(ev[0]?.target_id, `${tenant}/000000000001-000000000005`);
      assert.equal(ev[0]?.occurred_at.toISOString(), NOW.toISOString());
      assert.deepEqual(
        { ...(ev[0]?.details as Record<string, unknown>), sha256: undefined },
        { firstSeq: 1, lastSeq: 5, records: 5, lastHash: hashAt5, sha256: undefined },
      );
    });

    test('a direct DELETE of an online record is refused, by the trigger even when DELETE is granted', async () => {
      await assert.rejects(
        db.deleteFrom('accord.audit_events').where('chain_id', '=', tenant).where('seq', '=', 6).execute(),
        (e) => pgCode(e) === '42501',
      );
      const asOwnerWithDelete = (flag: boolean) =>
        db.transaction().execute(async (trx) => {
          await sql`grant delete on accord.audit_events to current_user`.execute(trx);
          if (flag) await sql`set local accord.audit_archiving = 'on'`.execute(trx);
          await trx.deleteFrom('accord.audit_events').where('chain_id', '=', tenant).where('seq', '=', 6).execute();
        });
      await assert.rejects(asOwnerWithDelete(false), /append-only \(DELETE refused\)/);
      // The archiving flag only opens records at or below the anchor.
      await assert.rejects(asOwnerWithDelete(true), /append-only \(DELETE refused\)/);
      assert.deepEqual(await onlineSeqs(db, tenant), [6, 7, 8]);
      const priv = await sql<{ ok: boolean }>`select has_table_privilege('accord.audit_events', 'DELETE') as ok`.execute(db);
      if (engine.name === 'postgres') assert.equal(priv.rows[0]?.ok, false, 'archiving leaves the role without DELETE');
    });

    test('archiving twice with the same clock changes nothing', async () => {
      const filesBefore = await snapshot(dir);
      const rowsBefore = await db.selectFrom('accord.audit_events').select(['chain_id', 'seq']).execute();
      const again = await archiveExpired(db, signer, { dir, now: NOW });
      assert.deepEqual(again, { archived: [], purged: [], leftoversRemoved: [], problems: [] });
      assert.deepEqual(await snapshot(dir), filesBefore);
      assert.equal((await db.selectFrom('accord.audit_events').select(['chain_id', 'seq']).execute()).length, rowsBefore.length);
    });

    test('tampering with an archive file is detected, naming the file and the first bad sequence', async () => {
      assert.ok(first);
      const name = '000000000001-000000000005';
      const tamper = async (change: (lines: string[], sig: Record<string, unknown>) => void) => {
        const copy = await tempDir();
        await cp(dir, copy, { recursive: true });
        const file = join(copy, tenant, `${name}.jsonl`);
        const sigFile = join(copy, tenant, `${name}.sig.json`);
        const lines = await linesOf(file);
        const sig = JSON.parse(await readFile(sigFile, 'utf8')) as Record<string, unknown>;
        change(lines, sig);
        await writeFile(file, lines.map((l) => `${l}\n`).join(''));
        await writeFile(sigFile, JSON.stringify(sig));
        const report = (await verifyArchive(copy, keys)).find((r) => r.chain === tenant);
        assert.ok(report);
        return report;
      };
      const edit = (line: string, fn: (v: Record<string, unknown>) => void) => {
        const v = JSON.parse(line) as Record<string, unknown>;
        fn(v);
        return JSON.stringify(v);
      };

      const modified = await tamper((lines) => {
        lines[2] = edit(lines[2] ?? '', (v) => {
          v.details = { i: 99, note: 'ü ✓' };
        });
      });
      assert.deepEqual([modified.ok, modified.problem, modified.firstBadSeq], [false, 'hash-mismatch', 3]);
      assert.ok(modified.badFile?.endsWith(`${tenant}/${name}.jsonl`));

      const rehashed = await tamper((lines) => {
        // A careful forger rewrites the stored hashes from the change on: every line agrees with
        // its hash, and only the signed lastHash gives it away.
        let prev: Buffer = Buffer.from((JSON.parse(lines[2] ?? '') as { hash: string }).hash, 'hex');
        for (let i = 3; i < lines.length; i++) {
          lines[i] = edit(lines[i] ?? '', (v) => {
            if (i === 3) v.outcome = 'failure';
            prev = chainHash(prev, canonicalOf(v));
            v.hash = prev.toString('hex');
          });
        }
      });
      assert.deepEqual([rehashed.ok, rehashed.problem, rehashed.firstBadSeq], [false, 'last-hash', 5]);

      const dropped = await tamper((lines) => {
        lines.splice(1, 1);
      });
      assert.deepEqual([dropped.problem, dropped.firstBadSeq], ['sequence', 2]);

      const forgedSig = await tamper((_lines, sig) => {
        sig.records = 4;
      });
      assert.deepEqual([forgedSig.problem, forgedSig.firstBadSeq], ['signature', 1]);

      const whitespace = await tamper((lines) => {
        lines[0] = `${lines[0]} `;
      });
      assert.deepEqual([whitespace.problem, whitespace.firstBadSeq], ['sha256', 1]);

      const stranger = (await verifyArchive(dir, new Map([[ephemeralSigner().keyId, ephemeralSigner().publicKeyPem]]))).find((r) => r.chain === tenant);
      assert.deepEqual([stranger?.ok, stranger?.problem], [false, 'untrusted-key']);
    });

    test('archive files past the retention period are purged, oldest first, and every purge is audited once', async () => {
      // 300 days on, the tenant's first archive (last record 100 days before NOW) is 400 days old.
      const later = daysAfter(300);
      const result = await archiveExpired(db, signer, { dir, now: later });
      assert.deepEqual(result.problems, []);
      assert.deepEqual(
        result.purged.map((p) => [p.chain, p.firstSeq, p.lastSeq, p.records]).sort(),
        [
          [PLATFORM_CHAIN, 1, 1, 1],
          [tenant, 1, 5, 5],
        ].sort(),
      );
      assert.equal(result.purged.find((p) => p.chain === tenant)?.lastRecordAt, daysBefore(100).toISOString());
      // The records that expired meanwhile were archived in the same run and are kept.
      assert.deepEqual(
        result.archived.filter((a) => a.chain === tenant).map((a) => [a.firstSeq, a.lastSeq]),
        [[6, 8]],
      );
      assert.deepEqual(await readdir(join(dir, tenant)), ['000000000006-000000000008.jsonl', '000000000006-000000000008.sig.json']);

      const purges = await db.selectFrom('accord.audit_events').selectAll().where('chain_id', '=', PLATFORM_CHAIN).where('action', '=', 'audit.archive.purged').execute();
      assert.deepEqual(purges.map((p) => p.target_id).sort(), [`${PLATFORM_CHAIN}/000000000001-000000000001`, `${tenant}/000000000001-000000000005`].sort());
      const tenantPurge = purges.find((p) => p.target_id?.startsWith(tenant))?.details as Record<string, unknown>;
      assert.equal(tenantPurge.lastHash, hashAt5);

      // What remains still verifies: the oldest file left starts where the purged one ended.
      for (const r of await verifyArchive(dir, keys, { db })) assert.equal(r.ok, true, `${r.chain}: ${r.detail}`);
      for (const r of await verifyChains(db, { trustedKeys: keys })) assert.equal(r.ok, true, `${r.chain}: ${r.detail}`);

      const again = await archiveExpired(db, signer, { dir, now: later });
      assert.deepEqual(again.purged, []);
      assert.equal(
        (await db.selectFrom('accord.audit_events').select('seq').where('chain_id', '=', PLATFORM_CHAIN).where('action', '=', 'audit.archive.purged').execute()).length,
        2,
      );
    });

    test('a crash between writing the file and the database step loses nothing and duplicates nothing', async () => {
      const fresh = (await engine.open()).db;
      const root = await tempDir();
      const chain = randomUUID();
      await write(fresh, chain, daysBefore(200), 4);
      await write(fresh, chain, daysBefore(100), 3);
      await write(fresh, chain, daysBefore(10), 2);
      const all = await fresh.selectFrom('accord.audit_events').select(['seq', 'id']).where('chain_id', '=', chain).orderBy('seq').execute();
      const crash = () => {
        throw new Error('simulated crash');
      };

      // First crash: 60 days earlier, only the four oldest were due.
      await assert.rejects(archiveExpired(fresh, signer, { dir: root, now: daysBefore(60), beforeDelete: crash }), /simulated crash/);
      assert.deepEqual(await readdir(join(root, chain)), ['000000000001-000000000004.jsonl', '000000000001-000000000004.sig.json']);
      assert.deepEqual(await onlineSeqs(fresh, chain), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
      assert.equal(Number((await head(fresh, chain)).anchor_seq), 0);
      // Second crash on the longer range; then a run that completes with the same range.
      await assert.rejects(archiveExpired(fresh, signer, { dir: root, now: NOW, beforeDelete: crash }), /simulated crash/);
      const done = await archiveExpired(fresh, signer, { dir: root, now: NOW });

      assert.deepEqual(
        done.archived.map((a) => [a.firstSeq, a.lastSeq]),
        [[1, 7]],
      );
      assert.deepEqual(done.leftoversRemoved.map((p) => p.slice(root.length)).sort(), [
        `/${chain}/000000000001-000000000007.jsonl`,
        `/${chain}/000000000001-000000000007.sig.json`,
      ]);
      assert.deepEqual(await readdir(join(root, chain)), ['000000000001-000000000007.jsonl', '000000000001-000000000007.sig.json']);
      const archivedIds = (await linesOf(join(root, chain, '000000000001-000000000007.jsonl'))).map((l) => (JSON.parse(l) as { id: string }).id);
      const onlineIds = (await fresh.selectFrom('accord.audit_events').select('id').where('chain_id', '=', chain).where('seq', '<=', 9).orderBy('seq').execute()).map((r) => r.id);
      assert.deepEqual([...archivedIds, ...onlineIds], all.map((r) => r.id));
      for (const r of await verifyArchive(root, keys, { db: fresh })) assert.equal(r.ok, true, `${r.chain}: ${r.detail}`);
      assert.equal((await verifyChain(fresh, chain, { trustedKeys: keys })).ok, true);
    });

    test('a long backlog becomes several files that join; a missing file in the middle is reported as a gap', async () => {
      const fresh = (await engine.open()).db;
      const root = await tempDir();
      const chain = randomUUID();
      await write(fresh, chain, daysBefore(200), 7);
      const result = await archiveExpired(fresh, signer, { dir: root, now: NOW, maxRecordsPerFile: 3 });
      assert.deepEqual(
        result.archived.map((a) => [a.firstSeq, a.lastSeq]),
        [
          [1, 3],
          [4, 6],
          [7, 7],
        ],
      );
      const [report] = await verifyArchive(root, keys, { db: fresh });
      assert.deepEqual([report?.ok, report?.files, report?.records, report?.firstSeq, report?.lastSeq], [true, 3, 7, 1, 7]);
      assert.equal((await verifyChain(fresh, chain, { trustedKeys: keys })).ok, true);

      const copy = await tempDir();
      await cp(root, copy, { recursive: true });
      await rm(join(copy, chain, '000000000004-000000000006.jsonl'));
      await rm(join(copy, chain, '000000000004-000000000006.sig.json'));
      const [gap] = await verifyArchive(copy, keys);
      assert.deepEqual([gap?.ok, gap?.problem, gap?.firstBadSeq, gap?.files], [false, 'gap', 7, 1]);
      assert.ok(gap?.badFile?.endsWith('000000000007-000000000007.jsonl'));
      // Removing the newest file instead is only visible against the database's anchor.
      await rm(join(copy, chain, '000000000007-000000000007.jsonl'));
      await rm(join(copy, chain, '000000000007-000000000007.sig.json'));
      assert.equal((await verifyArchive(copy, keys))[0]?.ok, true);
      const [short] = await verifyArchive(copy, keys, { db: fresh });
      assert.deepEqual([short?.ok, short?.problem, short?.firstBadSeq], [false, 'anchor-mismatch', 4]);
    });

    test('a newer record stops the archive even when older ones follow it, so the online chain has no hole', async () => {
      const fresh = (await engine.open()).db;
      const root = await tempDir();
      const chain = randomUUID();
      // Two nodes with clocks apart can write a chain whose times are not in sequence order.
      await write(fresh, chain, daysBefore(200), 2);
      await write(fresh, chain, daysBefore(80), 1);
      await write(fresh, chain, daysBefore(150), 2);
      const result = await archiveExpired(fresh, signer, { dir: root, now: NOW });
      assert.deepEqual(
        result.archived.map((a) => [a.firstSeq, a.lastSeq]),
        [[1, 2]],
      );
      assert.deepEqual(await onlineSeqs(fresh, chain), [3, 4, 5, 6]);
    });

    test('two runs at once, while records keep arriving, archive each record exactly once', async () => {
      const fresh = (await engine.open()).db;
      const root = await tempDir();
      const chain = randomUUID();
      await write(fresh, chain, daysBefore(200), 30);
      const [a, b] = await Promise.all([
        archiveExpired(fresh, signer, { dir: root, now: NOW, maxRecordsPerFile: 7 }),
        archiveExpired(fresh, signer, { dir: root, now: NOW, maxRecordsPerFile: 7 }),
        write(fresh, chain, daysBefore(1), 10),
      ]);
      const ranges = [...(a?.archived ?? []), ...(b?.archived ?? [])].map((x) => [x.firstSeq, x.lastSeq]).sort((x, y) => (x[0] ?? 0) - (y[0] ?? 0));
      // Every archived range starts right after the one before; none is repeated.
      let next = 1;
      for (const [f, l] of ranges) {
        assert.equal(f, next);
        next = (l ?? 0) + 1;
      }
      assert.ok(next > 30, `archived up to ${next - 1}`);
      const [report] = await verifyArchive(root, keys, { db: fresh });
      assert.equal(report?.ok, true, report?.detail);
      assert.equal((await verifyChain(fresh, chain, { trustedKeys: keys })).ok, true);
      const online = await onlineSeqs(fresh, chain);
      assert.equal(online[0], (report?.lastSeq ?? 0) + 1);
      assert.equal(online.length + (report?.records ?? 0), Number((await head(fresh, chain)).last_seq));
    });

    test('a chain whose online records were tampered with is left online and reported, not archived', async () => {
      let database: Database;
      let tamper: (statement: string) => Promise<void>;
      if (engine.name === 'postgres' && engine.newDatabaseUrl) {
        const url = await engine.newDatabaseUrl();
        database = await openDatabase({ dataDir: 'unused', databaseUrl: url });
        await migrate(database.db);
        const admin = await superuserUrl(url);
        tamper = async (statement) => {
          const client = new pg.Client({ connectionString: admin });
          await client.connect();
          try {
            await client.query(`begin; set local session_replication_role = replica; ${statement}; commit`);
          } finally {
            await client.end();
          }
        };
      } else {
        database = await engine.open();
        tamper = (statement) =>
          database.db.transaction().execute(async (trx) => {
            await sql`set local session_replication_role = replica`.execute(trx);
            await sql.raw(statement).execute(trx);
          });
      }
      try {
        const chain = randomUUID();
        const root = await tempDir();
        await write(database.db, chain, daysBefore(200), 5);
        await tamper(`update accord.audit_events set outcome = 'denied' where chain_id = '${chain}' and seq = 3`);
        const result = await archiveExpired(database.db, signer, { dir: root, now: NOW });
        assert.deepEqual(result.archived, []);
        assert.deepEqual(
          result.problems.map((p) => [p.chain, p.problem, p.seq]),
          [[chain, 'chain-broken', 3]],
        );
        assert.deepEqual(await onlineSeqs(database.db, chain), [1, 2, 3, 4, 5]);
        assert.deepEqual(await readdir(root), []);
      } finally {
        if (engine.name === 'postgres') await database.close();
      }
    });
  });
}
