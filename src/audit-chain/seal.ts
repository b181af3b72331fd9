import { type Selectable, sql } from 'kysely';
import type { AuditEventsTable, Db } from '../db/index.ts';
import { chainHash } from './canonical.ts';
import { toCanonical } from './record.ts';

// Sealing links unsealed events into their chains: it gives each its sequence number and hash.
//
// Why it is safe to do after the fact, and in what order: an event carries the id of the
// transaction that wrote it (`xid`). The horizon of a snapshot, pg_snapshot_xmin, is the oldest
// transaction still running anywhere on the server; every transaction older than it has ended, so
// the unsealed events visible below the horizon are final (committed) and no event below it can
// appear later. Sealing only those, in insertion order, means a chain only ever grows at its end:
// nothing that commits later can belong before something already sealed. (Event stores use the
// same horizon for gap-free reading of concurrent appends.)
//
// Sealers on several nodes take turns per chain on the chain head's row lock (`FOR UPDATE`, or
// `SKIP LOCKED` to leave a busy chain to the node that holds it), so two nodes never hand out one
// sequence number twice. Each batch reads the events only after it holds the lock, so it sees what
// the previous holder sealed.

/** Options of a seal pass. */
export interface SealOptions {
  /** Events sealed per transaction (default 2000). */
  readonly batchSize?: number;
  /** Chains locked per transaction (default 100). */
  readonly chainsPerBatch?: number;
  /**
   * Seal everything committed before the call (verification, exports, tests): wait, up to
   * `waitMs`, for the transactions that were running when it began to end (the horizon is
   * server-wide: a transaction in any database of the server holds it back), and for chains
   * another sealer holds instead of leaving them to it.
   */
  readonly wait?: boolean;
  /** How long `wait` waits for the horizon (default 30 000 ms); then it seals what it can. */
  readonly waitMs?: number;
  /** Only these chains (default: every chain with unsealed events). */
  readonly chains?: readonly string[];
  /** Called after each committed batch with the events it sealed. */
  readonly onSealed?: (events: readonly SealedEvent[]) => void;
}

/** One event as a committed batch sealed it. */
export interface SealedEvent {
  readonly chain: string;
  readonly seq: number;
  readonly id: string;
  readonly occurredAt: Date;
}

/** What a seal pass did. */
export interface SealResult {
  readonly sealed: number;
  readonly batches: number;
  /** Unsealed events remain: of transactions still running, or of chains another sealer held. */
  readonly pending: boolean;
}

type UnsealedRow = Selectable<AuditEventsTable> & { horizon: string };

const positive = (n: number | undefined, fallback: number, name: string): number => {
  if (n === undefined) return fallback;
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`sealPending: opts.${name} must be a positive integer`);
  return n;
};

/**
 * Seals every final unsealed event (of the chains named, or all), batch by batch, and returns
 * once nothing sealable is left that this caller may lock. Safe to run from any number of nodes
 * at once. Events of transactions still running stay for a later pass.
 */
export async function sealPending(db: Db, opts: SealOptions = {}): Promise<SealResult> {
  const batchSize = positive(opts.batchSize, 2000, 'batchSize');
  const chainsPerBatch = positive(opts.chainsPerBatch, 100, 'chainsPerBatch');
  let sealed = 0;
  let batches = 0;
  let pending = false;
  if (opts.wait) await horizonPassesNow(db, opts.waitMs ?? 30_000);
  // Named chains need no discovery: their heads are created by the batch if missing.
  const chains = opts.chains ? [...new Set(opts.chains)].sort() : await chainsToSeal(db);
  for (let i = 0; i < chains.length; i += chainsPerBatch) {
    const part = chains.slice(i, i + chainsPerBatch);
    for (;;) {
      const b = await sealBatch(db, part, batchSize, opts.wait === true);
      batches++;
      sealed += b.events.length;
      if (b.events.length > 0) opts.onSealed?.(b.events);
      if (!b.full) {
        pending ||= b.pending;
        break;
      }
    }
  }
  return { sealed, batches, pending };
}

/**
 * Waits until every transaction that had an id when this was called has ended, i.e. until the
 * horizon reaches the next transaction id of that moment, or until `timeoutMs` passes.
 */
async function horizonPassesNow(db: Db, timeoutMs: number): Promise<void> {
  const now = await sql<{ next: string }>`select pg_snapshot_xmax(pg_current_snapshot())::text as next`.execute(db);
  const next = now.rows[0]?.next;
  const until = Date.now() + timeoutMs;
  for (let pause = 1; ; pause = Math.min(50, pause * 2)) {
    const r = await sql<{ ok: boolean }>`select pg_snapshot_xmin(pg_current_snapshot()) >= ${next}::xid8 as ok`.execute(db);
    if (r.rows[0]?.ok || Date.now() >= until) return;
    await new Promise((resolve) => setTimeout(resolve, pause));
  }
}

/**
 * Chains with unsealed events. A skip scan over the unsealed-events index: one probe per chain,
 * however many events wait.
 */
async function chainsToSeal(db: Db): Promise<string[]> {
  const r = await sql<{ chain_id: string }>`
    with recursive c (chain_id) as (
      (select chain_id from accord.audit_events where seq is null order by chain_id limit 1)
      union all
      select (select e.chain_id from accord.audit_events e where e.seq is null and e.chain_id > c.chain_id order by e.chain_id limit 1)
      from c where c.chain_id is not null
    )
    select chain_id from c where chain_id is not null`.execute(db);
  return r.rows.map((row) => row.chain_id);
}

/**
 * One transaction: lock the heads (creating missing ones), read their final unsealed events, link
 * them, move the heads. `pending`: unsealed events are left that this batch could not seal (of
 * transactions still running, or in chains another sealer held).
 */
async function sealBatch(db: Db, chains: readonly string[], limit: number, wait: boolean): Promise<{ events: SealedEvent[]; full: boolean; pending: boolean }> {
  const events: SealedEvent[] = [];
  let pending = false;
  const full = await db.transaction().execute(async (trx) => {
    let heads = trx.selectFrom('accord.audit_chains').select(['chain_id', 'last_seq', 'last_hash']).where('chain_id', 'in', chains).orderBy('chain_id').forUpdate();
    if (!wait) heads = heads.skipLocked();
    const locked = await heads.execute();
    if (locked.length < chains.length) {
      // New chains get their head here (held by this transaction until it commits); a chain whose
      // head exists but was not locked is another sealer's for now.
      const have = new Set(locked.map((h) => h.chain_id));
      const missing = chains.filter((c) => !have.has(c));
      const created = await sql<{ chain_id: string; last_seq: number; last_hash: Buffer }>`
        insert into accord.audit_chains (chain_id, tenant_id)
        select distinct on (chain_id) chain_id, tenant_id from accord.audit_events
        where seq is null and chain_id in (${sql.join(missing)})
        order by chain_id, ins
        on conflict do nothing
        returning chain_id, last_seq, last_hash`.execute(trx);
      locked.push(...created.rows);
      if (created.rows.length < missing.length) pending = true;
    }
    if (locked.length === 0) return false;
    // A new statement, so a new snapshot: taken after the locks, it sees every earlier seal.
    const lockedIds = sql.join(locked.map((l) => l.chain_id));
    const rows = (
      await sql<UnsealedRow & { waiting: boolean }>`
        select h.horizon::text as horizon, h.waiting, e.*
        from (
          select x.horizon, exists (
            select 1 from accord.audit_events w where w.seq is null and w.chain_id in (${lockedIds}) and not (w.xid < x.horizon)
          ) as waiting
          from (select pg_snapshot_xmin(pg_current_snapshot()) as horizon) x
        ) h
        left join lateral (
          select * from accord.audit_events
          where seq is null and chain_id in (${lockedIds}) and xid < h.horizon
          order by chain_id, ins
          limit ${limit}
        ) e on true`.execute(trx)
    ).rows;
    const horizon = rows[0]?.horizon;
    if (rows[0]?.waiting) pending = true;
    const linked = rows.filter((r) => r.chain_id !== null);
    const state = new Map(locked.map((h) => [h.chain_id, { seq: Number(h.last_seq), hash: h.last_hash, moved: false }]));
    const updates: { chain_id: string; ins: number; seq: number; hash: string }[] = [];
    for (const row of linked) {
      const head = state.get(row.chain_id);
      if (!head) throw new Error(`audit sealing: read an event of chain ${row.chain_id}, whose head is not locked`);
      head.seq += 1;
      head.hash = chainHash(head.hash, toCanonical({ ...row, seq: head.seq }));
      head.moved = true;
      updates.push({ chain_id: row.chain_id, ins: Number(row.ins), seq: head.seq, hash: head.hash.toString('hex') });
      events.push({ chain: row.chain_id, seq: head.seq, id: row.id, occurredAt: row.occurred_at });
    }
    const isFull = linked.length >= limit;
    // A batch that did not fill up left nothing final behind in the chains it locked: their
    // horizon moves, and verify reports any older unsealed event as one the sealer skipped.
    const headUpdates = [...state]
      .filter(([, h]) => h.moved || !isFull)
      .map(([chain_id, h]) => ({ chain_id, last_seq: h.seq, last_hash: h.hash.toString('hex'), sealed_xid: isFull ? null : (horizon ?? null) }));
    if (headUpdates.length === 0) return isFull;
    const r = await sql<{ sealed: number; heads: number }>`
      with v as (
        select * from jsonb_to_recordset(${JSON.stringify(updates)}::jsonb) as v(chain_id text, ins bigint, seq bigint, hash text)
      ),
      sealed as (
        update accord.audit_events e set seq = v.seq, hash = decode(v.hash, 'hex')
        from v where e.chain_id = v.chain_id and e.ins = v.ins and e.seq is null
        returning 1
      ),
      heads as (
        update accord.audit_chains c
        set last_seq = h.last_seq, last_hash = decode(h.last_hash, 'hex'), sealed_xid = coalesce(h.sealed_xid::xid8, c.sealed_xid)
        from jsonb_to_recordset(${JSON.stringify(headUpdates)}::jsonb) as h(chain_id text, last_seq bigint, last_hash text, sealed_xid text)
        where c.chain_id = h.chain_id
        returning 1
      )
      select (select count(*) from sealed)::int as sealed, (select count(*) from heads)::int as heads`.execute(trx);
    const done = r.rows[0];
    // Under the head locks nobody else seals these rows; a shortfall means the table changed under
    // us (tampering, a bug): roll back rather than move a head past a record that is not there.
    if (done?.sealed !== updates.length || done.heads !== headUpdates.length) {
      throw new Error(`audit sealing: expected to seal ${updates.length} events and move ${headUpdates.length} heads, did ${done?.sealed} and ${done?.heads}`);
    }
    return isFull;
  });
  return { events, full, pending };
}
