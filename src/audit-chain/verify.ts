import { sql } from 'kysely';
import type { Db, DbOrTrx, Trx } from '../db/index.ts';
import { chainHash } from './canonical.ts';
import { listCheckpoints } from './checkpoints.ts';
import { sealedRow, toCanonical } from './record.ts';
import { type SignedCheckpoint, verifyCheckpointSignature } from './signing.ts';

/** What can be wrong with a chain, at its first bad sequence number. */
export type ChainProblem =
  | 'hash-mismatch' /* a record's content or position changed */
  | 'missing-record' /* a sequence number is absent: a record was deleted */
  | 'duplicate-record' /* a sequence number appears twice or goes backwards: a record was inserted */
  | 'truncated' /* the chain ends before its head or an exported checkpoint */
  | 'beyond-head' /* records after the chain's recorded head: inserted at the end */
  | 'checkpoint-mismatch' /* a signed checkpoint's hash differs from the record at its sequence */
  | 'checkpoint-signature' /* a checkpoint is not signed by a key this platform trusts */
  | 'unsealed-record'; /* an unsealed event the sealer has passed by: inserted behind its back, or unsealed again */

export interface ChainReport {
  readonly chain: string;
  readonly tenantId: string | null;
  readonly ok: boolean;
  /** Records checked (those online; archived ones are covered by the anchor). */
  readonly records: number;
  readonly anchorSeq: number;
  readonly lastSeq: number;
  readonly checkpointsChecked: number;
  /** Events not sealed yet (written moments ago, normally): not covered by the hash chain yet. */
  readonly unsealed: number;
  readonly firstBadSeq?: number;
  readonly problem?: ChainProblem;
  readonly detail?: string;
}

const BATCH = 2000;

type VerifyOptions = { trustedKeys: ReadonlyMap<string, string>; external?: readonly SignedCheckpoint[] };

/** Runs `fn` on one snapshot: the head, the records and the unsealed events must agree in time. */
function inSnapshot<T>(db: DbOrTrx, fn: (trx: DbOrTrx) => Promise<T>): Promise<T> {
  if (db.isTransaction) return fn(db as Trx);
  return (db as Db).transaction().setIsolationLevel('repeatable read').setAccessMode('read only').execute(fn);
}

/**
 * Recomputes one chain from its anchor and checks it against the stored head, the stored
 * checkpoints and any external ones (e.g. files exported earlier), then its unsealed events
 * against the sealer's horizon. Stops at the first problem and reports its sequence number.
 * Reads one snapshot (a repeatable-read transaction unless `db` already is a transaction), so
 * sealing going on meanwhile cannot look like tampering.
 */
export function verifyChain(db: DbOrTrx, chain: string, opts: VerifyOptions): Promise<ChainReport> {
  return inSnapshot(db, (trx) => verifyOne(trx, chain, opts));
}

async function verifyOne(db: DbOrTrx, chain: string, opts: VerifyOptions): Promise<ChainReport> {
  const head = await db.selectFrom('accord.audit_chains').selectAll().where('chain_id', '=', chain).executeTakeFirst();
  const stored = await listCheckpoints(db, { chain });
  const checkpoints = [...stored, ...(opts.external ?? []).filter((c) => c.chain === chain)];
  const base = {
    chain,
    tenantId: head?.tenant_id ?? null,
    anchorSeq: Number(head?.anchor_seq ?? 0),
    lastSeq: Number(head?.last_seq ?? 0),
    checkpointsChecked: checkpoints.length,
    unsealed: 0,
  };
  const fail = (records: number, firstBadSeq: number, problem: ChainProblem, detail: string): ChainReport => ({
    ...base,
    ok: false,
    records,
    firstBadSeq,
    problem,
    detail,
  });

  for (const cp of checkpoints) {
    const pem = opts.trustedKeys.get(cp.keyId);
    if (!pem || !verifyCheckpointSignature(cp, pem)) {
      return fail(0, cp.seq, 'checkpoint-signature', pem ? `checkpoint ${cp.seq} has an invalid signature` : `checkpoint ${cp.seq} is signed by key ${cp.keyId}, which this platform does not know`);
    }
  }
  const wanted = new Map<number, string[]>();
  for (const cp of checkpoints) wanted.set(cp.seq, [...(wanted.get(cp.seq) ?? []), cp.hash]);

  let expected = base.anchorSeq + 1;
  let prev = head?.anchor_hash ?? Buffer.alloc(32);
  let records = 0;
  let after = -1;
  for (;;) {
    const rows = await db
      .selectFrom('accord.audit_events')
      .selectAll()
      .where('chain_id', '=', chain)
      .where('seq', 'is not', null)
      .where('seq', '>', after)
      .orderBy('seq')
      .limit(BATCH)
      .execute();
    if (rows.length === 0) break;
    for (const stored of rows) {
      const row = sealedRow(stored);
      const seq = row.seq;
      if (seq < expected) return fail(records, seq, 'duplicate-record', `sequence ${seq} appears where ${expected} was expected`);
      if (seq > expected) return fail(records, expected, 'missing-record', `sequence ${expected} is missing (next present: ${seq})`);
      const computed = chainHash(prev, toCanonical(row));
      if (!computed.equals(row.hash)) return fail(records, seq, 'hash-mismatch', `record ${seq} does not match its hash or its predecessor`);
      for (const h of wanted.get(seq) ?? []) {
        if (h !== computed.toString('hex')) return fail(records, seq, 'checkpoint-mismatch', `record ${seq} differs from the signed checkpoint`);
      }
      prev = computed;
      expected = seq + 1;
      records++;
    }
    after = Number(rows.at(-1)?.seq);
    // Ties within one batch end never happen: (chain_id, seq) is unique unless someone dropped the index,
    // and then the next batch starts after the last seq seen, which the duplicate check above covers.
  }
  const lastSeen = expected - 1;
  if (lastSeen < base.lastSeq) return fail(records, lastSeen + 1, 'truncated', `the chain ends at ${lastSeen} but its head says ${base.lastSeq}`);
  if (lastSeen > base.lastSeq) return fail(records, base.lastSeq + 1, 'beyond-head', `records after the head ${base.lastSeq}`);
  const furthest = Math.max(0, ...checkpoints.map((c) => c.seq));
  if (furthest > lastSeen) return fail(records, lastSeen + 1, 'truncated', `a signed checkpoint covers ${furthest} but the chain ends at ${lastSeen}`);

  // Unsealed events are not in the chain yet. One the sealer has passed by (its transaction ended
  // before the horizon of a seal pass that left nothing behind) never arrived the normal way.
  const u = await sql<{ unsealed: number; skipped: number; first_id: string | null; first_xid: string | null }>`
    select count(*)::int as unsealed,
      count(*) filter (where e.xid is null or e.xid < c.sealed_xid)::int as skipped,
      (array_agg(e.id::text order by e.ins) filter (where e.xid is null or e.xid < c.sealed_xid))[1] as first_id,
      (array_agg(e.xid::text order by e.ins) filter (where e.xid is null or e.xid < c.sealed_xid))[1] as first_xid
    from accord.audit_events e left join accord.audit_chains c on c.chain_id = e.chain_id
    where e.chain_id = ${chain} and e.seq is null`.execute(db);
  const { unsealed = 0, skipped = 0, first_id: firstId = null, first_xid: firstXid = null } = u.rows[0] ?? {};
  if (skipped > 0) {
    return {
      ...fail(records, lastSeen + 1, 'unsealed-record', `${skipped} unsealed event(s) the sealer should have sealed, first ${firstId} (transaction ${firstXid ?? 'unknown'}, horizon ${head?.sealed_xid})`),
      unsealed,
    };
  }
  return { ...base, ok: true, records, unsealed };
}

/**
 * Verifies every chain (or the ones named), including chains only known from external checkpoints
 * and chains whose events are all still unsealed.
 */
export async function verifyChains(
  db: DbOrTrx,
  opts: { chains?: readonly string[]; trustedKeys: ReadonlyMap<string, string>; external?: readonly SignedCheckpoint[] },
): Promise<ChainReport[]> {
  let chains = opts.chains
    ? [...opts.chains]
    : (
        await sql<{ chain_id: string }>`
          select chain_id from accord.audit_chains
          union
          select distinct chain_id from accord.audit_events where seq is null
          order by chain_id`.execute(db)
      ).rows.map((c) => c.chain_id);
  if (!opts.chains) {
    for (const cp of opts.external ?? []) if (!chains.includes(cp.chain)) chains.push(cp.chain);
    chains = [...new Set(chains)];
  }
  const reports: ChainReport[] = [];
  for (const chain of chains) reports.push(await verifyChain(db, chain, opts));
  return reports;
}
