// The audit trail's cost, on PGlite (in memory) and PostgreSQL (a local server from the test
// harness): (a) records/s through record() with one and with 100 records per transaction, and how
// fast sealPending() links that backlog into its chain; (b) what one record() adds to a small write
// transaction (median and p99 latency with and without it, sequential, then 8 concurrent writers on
// one chain and on 8 chains, PostgreSQL only), with this process's sealer running as in a server,
// and the seal lag: from a writer's commit to the sealer's commit of that event; (c) how fast
// verifyChains() recomputes what was written.
import { randomBytes, randomUUID } from 'node:crypto';
import { closeSync, fdatasyncSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import pino from 'pino';
import { type AuditEvent, ephemeralSigner, record, type SealedEvent, sealPending, systemSource, takeCheckpoints, verifyChains } from '../src/audit-chain/index.ts';
import { AuditSealer } from '../src/audit-trail/index.ts';
import { type Database, type Db, migrate, openDatabase, type Trx } from '../src/db/index.ts';
import { type PostgresServer, startPostgres } from '../test/harness/postgres.ts';
import { createOwnedDatabase, machine, positiveInt } from './lib.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESULTS = join(ROOT, 'bench', 'results', 'audit.json');
const WRITERS = 8;
const BATCH = 100;
/** The server's default sealing schedule (config auditSealDelayMs, auditSealIntervalMs). */
const SEAL_DELAY_MS = 10;
const SEAL_INTERVAL_MS = 1000;

/**
 * Seal lag: from the moment a writer sees its commit to the moment the sealer's batch holding that
 * event has committed, per event, sorted into the phase that was running.
 */
class LagTracker {
  readonly #committed = new Map<string, number>();
  readonly #sealedAt = new Map<string, number>();
  #phase = 'none';
  readonly lags = new Map<string, number[]>();

  phase(name: string): void {
    this.#phase = name;
    if (!this.lags.has(name)) this.lags.set(name, []);
  }
  committed(id: string): void {
    const now = performance.now();
    const sealed = this.#sealedAt.get(id);
    if (sealed === undefined) this.#committed.set(id, now);
    else {
      // The sealer's callback ran first: its commit cannot precede ours, so the lag is about 0.
      this.#sealedAt.delete(id);
      this.lags.get(this.#phase)?.push(Math.max(0, sealed - now));
    }
  }
  sealed(events: readonly SealedEvent[]): void {
    const now = performance.now();
    for (const e of events) {
      const at = this.#committed.get(e.id);
      if (at === undefined) this.#sealedAt.set(e.id, now);
      else {
        this.#committed.delete(e.id);
        this.lags.get(this.#phase)?.push(now - at);
      }
    }
  }
  /** Committed events the sealer has not sealed yet. */
  get waiting(): number {
    return this.#committed.size;
  }
  /** Waits until every committed event is sealed; returns the ms it took. */
  async drained(timeoutMs = 60_000): Promise<number> {
    const t0 = performance.now();
    while (this.#committed.size > 0) {
      if (performance.now() - t0 > timeoutMs) throw new Error(`${this.#committed.size} events still unsealed after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 1));
    }
    return performance.now() - t0;
  }
}
interface Latency {
  n: number;
  medianMs: number;
  p99Ms: number;
  meanMs: number;
  minMs: number;
  maxMs: number;
}

const round3 = (n: number) => Math.round(n * 1000) / 1000;

function latency(samples: readonly number[]): Latency {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return {
    n: s.length,
    medianMs: round3(median),
    p99Ms: round3(at(0.99)),
    meanMs: round3(s.reduce((a, b) => a + b, 0) / s.length),
    minMs: round3(s[0]!),
    maxMs: round3(s.at(-1)!),
  };
}

/** A small, typical audited change: one row, one record. */
const event = (tenantId: string, itemId: string): AuditEvent => ({
  tenantId,
  action: 'bench.item.created',
  target: { type: 'item', id: itemId },
  outcome: 'success',
  details: { name: 'widget', size: 3 },
});

async function insertItem(trx: Trx, n: number): Promise<string> {
  const r = await sql<{ id: string }>`insert into bench.items (name, n) values (${`item-${n}`}, ${n}) returning id::text as id`.execute(trx);
  return r.rows[0]!.id;
}

/** One write transaction, timed from begin to commit; with `chain`, it also records one event. */
async function timedWrite(db: Db, n: number, chain: string | undefined, lag?: LagTracker): Promise<number> {
  const t0 = performance.now();
  const eventId = await db.transaction().execute(async (trx) => {
    const id = await insertItem(trx, n);
    return chain === undefined ? undefined : record(trx, systemSource, event(chain, id));
  });
  const elapsed = performance.now() - t0;
  if (eventId !== undefined) lag?.committed(eventId);
  // A server gets each request from a socket, so its event loop turns between requests and the
  // sealer's timers run. PGlite answers without I/O: a tight loop of writes would starve timers
  // (the sealer would only run once the loop ends). One turn per transaction, outside the timing,
  // for both variants alike.
  await new Promise((resolve) => setImmediate(resolve));
  return elapsed;
}

interface ThroughputResult {
  recordsPerTransaction: number;
  records: number;
  seconds: number;
  /** Over all rounds. */
  recordsPerSecond: number;
  /** Per round, to show the spread a shared machine adds. */
  roundsRecordsPerSecond: number[];
}

/** Writes `records` records on one chain, `perTx` per transaction; returns the seconds taken. */
async function writeRecords(db: Db, chain: string, records: number, perTx: number): Promise<number> {
  const txs = Math.ceil(records / perTx);
  const t0 = performance.now();
  for (let i = 0; i < txs; i++) {
    await db.transaction().execute(async (trx) => {
      for (let j = 0; j < perTx; j++) await record(trx, systemSource, event(chain, `${i}-${j}`));
    });
  }
  return (performance.now() - t0) / 1000;
}

/**
 * (a) records/s through record(), for each of `cases` ([records, per transaction]), on one chain
 * each. The cases alternate over `rounds` rounds (order rotated), so load drift hits all alike.
 */
async function throughput(db: Db, cases: readonly (readonly [number, number])[], rounds: number): Promise<ThroughputResult[]> {
  const chains = cases.map(() => randomUUID());
  const seconds = cases.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < cases.length; k++) {
      const c = (k + r) % cases.length;
      const [records, perTx] = cases[c]!;
      seconds[c]!.push(await writeRecords(db, chains[c]!, Math.max(perTx, Math.round(records / rounds / perTx) * perTx), perTx));
    }
  }
  return cases.map(([records, perTx], c) => {
    const perRound = Math.max(perTx, Math.round(records / rounds / perTx) * perTx);
    const total = seconds[c]!.reduce((a, b) => a + b, 0);
    return {
      recordsPerTransaction: perTx,
      records: perRound * rounds,
      seconds: round3(total),
      recordsPerSecond: Math.round((perRound * rounds) / total),
      roundsRecordsPerSecond: seconds[c]!.map((s) => Math.round(perRound / s)),
    };
  });
}

interface SealLag extends Latency {
  /** Longest wait, after a block of writes ended, until the sealer had sealed all of it. */
  drainMs: number;
}

interface CostResult {
  writers: number;
  /** 'one chain' or 'N chains' for the audited variant. */
  chains: string;
  without: Latency & { transactionsPerSecond: number };
  with: Latency & { transactionsPerSecond: number };
  medianRatio: number;
  p99Ratio: number;
  /** Audited tx/s over unaudited tx/s. */
  throughputRatio: number;
  /** From each audited writer's commit to its event's seal, ms (absent: no sealer ran). */
  sealLag?: SealLag;
}

/**
 * (b) sequential: the two variants alternate transaction by transaction, so drift in the machine's
 * load (it is shared) hits both alike.
 */
async function sequentialCost(db: Db, n: number, warmup: number, lag: LagTracker | undefined): Promise<CostResult> {
  const chain = randomUUID();
  for (let i = 0; i < warmup; i++) await timedWrite(db, i, i % 2 ? chain : undefined, lag);
  await lag?.drained();
  lag?.phase('sequential');
  const without: number[] = [];
  const withAudit: number[] = [];
  for (let i = 0; i < 2 * n; i++) {
    if (i % 2) withAudit.push(await timedWrite(db, i, chain, lag));
    else without.push(await timedWrite(db, i, undefined, lag));
  }
  if (!lag) return costResult(1, 'one chain, no sealer running', without, withAudit, undefined, undefined);
  const drainMs = await lag.drained();
  return costResult(1, 'one chain', without, withAudit, undefined, { ...latency(lag.lags.get('sequential') ?? []), drainMs: round3(drainMs) });
}

/**
 * (b) concurrent: `writers` clients at once, each on its own pooled connection. The variants run
 * in blocks (mixing them would let unaudited writers fill the gaps audited ones wait in), in
 * `rounds` rounds with the order rotated, so load drift spreads over all of them. After each
 * audited block, the sealer's drain time (until all of the block is sealed) is taken outside the
 * block's wall time: the sealer runs during the block, and what it has left at the end shows
 * whether it keeps up.
 */
async function concurrentCost(
  db: Db,
  n: number,
  writers: number,
  rounds: number,
  lag: LagTracker,
): Promise<{ without: CostResult['without']; oneChain: CostResult; manyChains: CostResult }> {
  const sharedChain = randomUUID();
  const ownChains = Array.from({ length: writers }, () => randomUUID());
  type Variant = 'without' | 'one' | 'many';
  const samples: Record<Variant, number[]> = { without: [], one: [], many: [] };
  const wall: Record<Variant, number> = { without: 0, one: 0, many: 0 };
  const drain: Record<Variant, number> = { without: 0, one: 0, many: 0 };
  const perWriter = Math.ceil(n / rounds / writers);
  const block = async (v: Variant, keep: boolean) => {
    lag.phase(keep ? v : 'warm-up');
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: writers }, async (_, w) => {
        for (let i = 0; i < perWriter; i++) {
          const chain = v === 'without' ? undefined : v === 'one' ? sharedChain : ownChains[w]!;
          const elapsed = await timedWrite(db, i, chain, lag);
          if (keep) samples[v].push(elapsed);
        }
      }),
    );
    if (keep) wall[v] += performance.now() - t0;
    const drained = await lag.drained();
    if (keep) drain[v] = Math.max(drain[v], drained);
  };
  const order: Variant[] = ['without', 'one', 'many'];
  for (const v of order) await block(v, false); // warm-up: connections, chain rows, plans
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < order.length; k++) await block(order[(k + r) % order.length]!, true);
  }
  const tps = (v: Variant) => Math.round(samples[v].length / (wall[v] / 1000));
  const base = { ...latency(samples.without), transactionsPerSecond: tps('without') };
  const lagOf = (v: Variant): SealLag => ({ ...latency(lag.lags.get(v) ?? []), drainMs: round3(drain[v]) });
  return {
    without: base,
    oneChain: costResult(writers, 'one chain', samples.without, samples.one, { without: tps('without'), with: tps('one') }, lagOf('one')),
    manyChains: costResult(writers, `${writers} chains`, samples.without, samples.many, { without: tps('without'), with: tps('many') }, lagOf('many')),
  };
}

function costResult(
  writers: number,
  chains: string,
  without: number[],
  withAudit: number[],
  tps: { without: number; with: number } | undefined,
  sealLag: SealLag | undefined,
): CostResult {
  const a = latency(without);
  const b = latency(withAudit);
  // Sequential: one transaction at a time, so throughput is the inverse of the mean latency.
  const seqTps = (l: Latency) => Math.round(1000 / l.meanMs);
  const withoutTps = tps?.without ?? seqTps(a);
  const withTps = tps?.with ?? seqTps(b);
  return {
    writers,
    chains,
    without: { ...a, transactionsPerSecond: withoutTps },
    with: { ...b, transactionsPerSecond: withTps },
    medianRatio: round3(b.medianMs / a.medianMs),
    p99Ratio: round3(b.p99Ms / a.p99Ms),
    throughputRatio: round3(withTps / withoutTps),
    ...(sealLag ? { sealLag } : {}),
  };
}

interface SealSpeed {
  records: number;
  seconds: number;
  recordsPerSecond: number;
  batches: number;
}

/** (a) sealPending() over the unsealed backlog (a) left: how fast a start-up catches up. */
async function sealSpeed(db: Db): Promise<SealSpeed> {
  const t0 = performance.now();
  const r = await sealPending(db);
  const seconds = (performance.now() - t0) / 1000;
  return { records: r.sealed, seconds: round3(seconds), recordsPerSecond: Math.round(r.sealed / seconds), batches: r.batches };
}

interface VerifyResult {
  chains: number;
  records: number;
  checkpoints: number;
  runs: number;
  medianSeconds: number;
  recordsPerSecond: number;
}

/** (c) verifyChains over everything written (after one signed checkpoint per chain), median of `runs`. */
async function verifySpeed(db: Db, runs: number): Promise<VerifyResult> {
  const signer = ephemeralSigner();
  const taken = await takeCheckpoints(db, signer, { everyRecords: 1, everyMs: 1 }, { force: true });
  const trustedKeys = new Map([[signer.keyId, signer.publicKeyPem]]);
  const times: number[] = [];
  let records = 0;
  let chains = 0;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const reports = await verifyChains(db, { trustedKeys });
    times.push(performance.now() - t0);
    const bad = reports.filter((r) => !r.ok);
    if (bad.length > 0) throw new Error(`verification failed: ${JSON.stringify(bad.slice(0, 3))}`);
    records = reports.reduce((s, r) => s + r.records, 0);
    chains = reports.length;
  }
  const medianSeconds = latency(times).medianMs / 1000;
  return { chains, records, checkpoints: taken.length, runs, medianSeconds: round3(medianSeconds), recordsPerSecond: Math.round(records / medianSeconds) };
}

/** Median of one `select 1` round trip outside a transaction: the unit most of (b) is made of. */
async function roundTripMs(db: Db, n: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < n + 100; i++) {
    const t0 = performance.now();
    await sql`select 1`.execute(db);
    if (i >= 100) times.push(performance.now() - t0);
  }
  return latency(times).medianMs;
}

/**
 * Median of an 8 KiB write plus fdatasync in the temporary directory (the disk the benchmark's
 * PostgreSQL lives on): roughly what a durable commit would add to both variants of (b), which
 * the harness's server (fsync=off, synchronous_commit=off) does not pay.
 */
function fdatasyncMs(n: number): number {
  const path = join(tmpdir(), `accord-bench-fsync-${randomBytes(4).toString('hex')}`);
  const fd = openSync(path, 'w');
  const page = Buffer.alloc(8192, 1);
  const times: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      writeSync(fd, page, 0, page.length, 0);
      fdatasyncSync(fd);
      times.push(performance.now() - t0);
    }
  } finally {
    closeSync(fd);
    unlinkSync(path);
  }
  return latency(times).medianMs;
}

interface EngineResult {
  engine: string;
  throughput: ThroughputResult[];
  sealSpeed: SealSpeed;
  /** Median `select 1` round trip, ms. */
  roundTripMs: number;
  /** The request path alone: the sealer does not run during these writes. */
  sequentialNoSealer: CostResult;
  sequential: CostResult;
  concurrent?: { oneChain: CostResult; manyChains: CostResult };
  verify: VerifyResult;
}

async function benchEngine(label: string, database: Database, n: number, log: (l: string) => void): Promise<EngineResult> {
  const db = database.db;
  await migrate(db);
  await sql`create schema bench`.execute(db);
  await sql`create table bench.items (id bigserial primary key, name text not null, n int not null, created_at timestamptz not null default now())`.execute(db);

  log(`${label}: warm-up`);
  await writeRecords(db, randomUUID(), 200, 1);
  await writeRecords(db, randomUUID(), 200, BATCH);
  const tp = await throughput(
    db,
    [
      [n, 1],
      [Math.max(BATCH, 5 * n), BATCH],
    ],
    5,
  );
  for (const r of tp) log(`${label}: ${r.records} records, ${r.recordsPerTransaction} per transaction: ${r.recordsPerSecond} records/s (rounds: ${r.roundsRecordsPerSecond.join(' ')})`);

  const seal = await sealSpeed(db);
  log(`${label}: sealed the backlog of ${seal.records} records in ${seal.seconds} s: ${seal.recordsPerSecond} records/s (${seal.batches} batches)`);

  const roundTrip = await roundTripMs(db, 1000);
  log(`${label}: select 1 round trip ${roundTrip} ms`);
  const sequentialNoSealer = await sequentialCost(db, n, Math.max(100, n / 10), undefined);
  log(`${label}: sequential write, no sealer running, ${sequentialNoSealer.without.medianMs} ms, with audit ${sequentialNoSealer.with.medianMs} ms (×${sequentialNoSealer.medianRatio})`);
  await sealPending(db);
  // From here on this process's sealer runs as a server node's does (default schedule).
  const lag = new LagTracker();
  const sealer = new AuditSealer(db, pino({ level: 'warn' }), { delayMs: SEAL_DELAY_MS, intervalMs: SEAL_INTERVAL_MS, onSealed: (e) => lag.sealed(e) });
  sealer.start();
  let sequential: CostResult;
  let concurrent: EngineResult['concurrent'];
  try {
    sequential = await sequentialCost(db, n, Math.max(100, n / 10), lag);
    log(
      `${label}: sequential write ${sequential.without.medianMs} ms, with audit ${sequential.with.medianMs} ms (×${sequential.medianRatio}); seal lag median ${sequential.sealLag?.medianMs} ms, p99 ${sequential.sealLag?.p99Ms} ms`,
    );
    if (database.engine === 'postgres') {
      const c = await concurrentCost(db, n, WRITERS, 4, lag);
      concurrent = { oneChain: c.oneChain, manyChains: c.manyChains };
      for (const r of [c.oneChain, c.manyChains]) {
        log(
          `${label}: ${WRITERS} writers, ${r.chains}: ${r.without.medianMs} → ${r.with.medianMs} ms (×${r.medianRatio}), ${r.without.transactionsPerSecond} → ${r.with.transactionsPerSecond} tx/s (×${r.throughputRatio}); seal lag median ${r.sealLag?.medianMs} ms, p99 ${r.sealLag?.p99Ms} ms, drained ${r.sealLag?.drainMs} ms after a block`,
        );
      }
    }
  } finally {
    await sealer.stop();
  }

  const verify = await verifySpeed(db, 3);
  log(`${label}: verified ${verify.records} records in ${verify.chains} chains: ${verify.recordsPerSecond} records/s`);
  return { engine: label, throughput: tp, sealSpeed: seal, roundTripMs: roundTrip, sequentialNoSealer, sequential, ...(concurrent ? { concurrent } : {}), verify };
}

const ms = (n: number) => n.toFixed(2);

function tables(results: EngineResult[], fsyncMs: number | undefined): string {
  const out: string[] = [];
  out.push('(a) `record()` throughput, one chain, sequential (no sealer running), then `sealPending()` over that backlog', '');
  out.push('| engine | records per transaction | records | records/s | slowest–fastest of 5 rounds |', '|---|---:|---:|---:|---:|');
  for (const r of results) {
    for (const t of r.throughput) {
      out.push(`| ${r.engine} | ${t.recordsPerTransaction} | ${t.records} | ${t.recordsPerSecond} | ${Math.min(...t.roundsRecordsPerSecond)}–${Math.max(...t.roundsRecordsPerSecond)} |`);
    }
    out.push(`| ${r.engine} | sealing the backlog | ${r.sealSpeed.records} | ${r.sealSpeed.recordsPerSecond} | ${r.sealSpeed.batches} batches |`);
  }

  out.push('', '(b) a one-row write transaction without and with one `record()` call, this process\'s sealer running unless the row says otherwise', '');
  out.push(
    '| engine | writers | audited chains | median ms without | median ms with | added ms | median ratio | p99 ms without | p99 ms with | p99 ratio | tx/s without | tx/s with | throughput ratio |',
    '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  const costs = (r: EngineResult) => [r.sequentialNoSealer, r.sequential, r.concurrent?.oneChain, r.concurrent?.manyChains].filter((c): c is CostResult => c !== undefined);
  for (const r of results) {
    for (const c of costs(r)) {
      out.push(
        `| ${r.engine} | ${c.writers} | ${c.chains} | ${ms(c.without.medianMs)} | ${ms(c.with.medianMs)} | ${ms(c.with.medianMs - c.without.medianMs)} | ${c.medianRatio.toFixed(2)} | ${ms(c.without.p99Ms)} | ${ms(c.with.p99Ms)} | ${c.p99Ratio.toFixed(2)} | ${c.without.transactionsPerSecond} | ${c.with.transactionsPerSecond} | ${c.throughputRatio.toFixed(2)} |`,
      );
    }
  }
  out.push('', `Seal lag of the audited writes in (b): from the writer's commit to the commit of the sealer's batch holding the event (sealer delay ${SEAL_DELAY_MS} ms, interval ${SEAL_INTERVAL_MS} ms)`, '');
  out.push('| engine | writers | audited chains | events | median ms | p99 ms | max ms | left to seal when the writes stopped: drained within ms |', '|---|---:|---|---:|---:|---:|---:|---:|');
  for (const r of results) {
    for (const c of costs(r)) {
      if (!c.sealLag) continue;
      out.push(`| ${r.engine} | ${c.writers} | ${c.chains} | ${c.sealLag.n} | ${ms(c.sealLag.medianMs)} | ${ms(c.sealLag.p99Ms)} | ${ms(c.sealLag.maxMs)} | ${ms(c.sealLag.drainMs)} |`);
    }
  }

  out.push('', `Median \`select 1\` round trip: ${results.map((r) => `${r.engine} ${ms(r.roundTripMs)} ms`).join(', ')}.`);
  if (fsyncMs !== undefined) {
    const p = results.find((r) => r.engine === 'PostgreSQL')?.sequential;
    const est = p ? ` Adding it to both sequential PostgreSQL medians gives an estimated ratio of ${((p.with.medianMs + fsyncMs) / (p.without.medianMs + fsyncMs)).toFixed(2)} for durable commits (an estimate, not a measurement).` : '';
    out.push(`Median 8 KiB write + fdatasync on this disk: ${ms(fsyncMs)} ms.${est}`);
  }
  out.push('', '(c) `verifyChains()` over everything written above (median of 3 runs)', '');
  out.push('| engine | chains | records | checkpoints | seconds | records/s |', '|---|---:|---:|---:|---:|---:|');
  for (const r of results) {
    const v = r.verify;
    out.push(`| ${r.engine} | ${v.chains} | ${v.records} | ${v.checkpoints} | ${v.medianSeconds.toFixed(2)} | ${v.recordsPerSecond} |`);
  }
  return out.join('\n');
}

/** Runs the benchmark, prints markdown tables and writes bench/results/audit.json. */
export async function run(): Promise<void> {
  const n = positiveInt('BENCH_N', 2000);
  const host = machine();
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const results: EngineResult[] = [];
  let server: PostgresServer | undefined;
  try {
    const pglite = await openDatabase({ dataDir: 'unused', inMemory: true });
    try {
      results.push(await benchEngine('PGlite', pglite, n, log));
    } finally {
      await pglite.close();
    }
    log('starting a PostgreSQL server');
    server = await startPostgres({ tls: false });
    const postgres = await openDatabase({ dataDir: 'unused', databaseUrl: await createOwnedDatabase(server.url, 'bench'), maxConnections: WRITERS + 2 });
    try {
      results.push(await benchEngine('PostgreSQL', postgres, n, log));
    } finally {
      await postgres.close();
    }
  } finally {
    await server?.stop();
  }
  const fsync = fdatasyncMs(200);
  log(`8 KiB write + fdatasync: ${fsync} ms`);
  const loadAtEnd = Math.round(loadavg()[0]! * 100) / 100;

  const header = `N = ${n}; ${host.cpuModel}, ${host.nproc} CPUs, Node ${host.node}, ${host.date} (1-min load ${host.loadAverage1m} at start, ${loadAtEnd} at end)`;
  process.stdout.write(`\n${header}\n\n${tables(results, fsync)}\n`);

  await mkdir(join(ROOT, 'bench', 'results'), { recursive: true });
  await writeFile(
    RESULTS,
    `${JSON.stringify(
      {
        benchmark: 'audit',
        description:
          'record() throughput and sealing speed; latency and throughput of a one-row write transaction without and with one record() (sequential and 8 concurrent writers on one or 8 chains) with the sealer running, and the seal lag; verifyChains() speed',
        machine: { ...host, loadAverage1mAtEnd: loadAtEnd },
        n,
        fdatasyncMs: fsync,
        results,
      },
      null,
      2,
    )}\n`,
  );
  process.stderr.write(`results written to ${RESULTS}\n`);
}
