// What a stage session costs (src/kernel/stage-session.ts), in-process, on PGlite (in memory) and
// PostgreSQL (a local server from the test harness): a read by primary key through runAsStage
// (BEGIN with the runtime role and the caller settings, the query, COMMIT) against the same query
// on a bare pooled connection; sequentially (the two alternating read by read), and on PostgreSQL
// with 8 concurrent readers. Round trips are counted at the driver (pg Client.query, PGlite
// exec/query), one count per message sent and answered.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import { sql } from 'kysely';
import pg from 'pg';
import { openKms } from '../src/crypto/kms/index.ts';
import { type Database, migrate, openDatabase } from '../src/db/index.ts';
import { type Caller, type DataPlane, openDataPlane, runAsStage, type StageRef } from '../src/kernel/index.ts';
import { createStageStorage, newStageStorageNames } from '../src/tenancy/stage-storage.ts';
import { type PostgresServer, startPostgres } from '../test/harness/postgres.ts';
import { createOwnedDatabase, machine, positiveInt } from './lib.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESULTS = join(ROOT, 'bench', 'results', 'kernel.json');
const ROWS = 1000;
const READERS = 8;

interface Latency {
  n: number;
  medianMs: number;
  p99Ms: number;
  meanMs: number;
}

const round3 = (n: number) => Math.round(n * 1000) / 1000;

function latency(samples: readonly number[]): Latency {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { n: s.length, medianMs: round3(median), p99Ms: round3(at(0.99)), meanMs: round3(s.reduce((a, b) => a + b, 0) / s.length) };
}

// Round trips, counted where the drivers send: every pg Client.query and PGlite exec/query call is
// one message to the server and its answer.
let roundTrips = 0;
function countRoundTrips(): void {
  const patch = (proto: Record<string, unknown>, name: string) => {
    const original = proto[name] as (...args: unknown[]) => unknown;
    proto[name] = function (this: unknown, ...args: unknown[]) {
      roundTrips++;
      return original.apply(this, args);
    };
  };
  patch(pg.Client.prototype as unknown as Record<string, unknown>, 'query');
  patch(PGlite.prototype as unknown as Record<string, unknown>, 'exec');
  patch(PGlite.prototype as unknown as Record<string, unknown>, 'query');
}

async function trips(fn: () => Promise<unknown>): Promise<number> {
  const before = roundTrips;
  await fn();
  return roundTrips - before;
}

interface Variant {
  label: string;
  read: (id: number) => Promise<unknown>;
}

interface SequentialResult {
  variant: string;
  roundTrips: number;
  latency: Latency;
  readsPerSecond: number;
}

async function sequential(variants: readonly Variant[], n: number, warmup: number): Promise<SequentialResult[]> {
  const samples = variants.map(() => [] as number[]);
  for (let i = 0; i < warmup; i++) for (const v of variants) await v.read(1 + (i % ROWS));
  for (let i = 0; i < n; i++) {
    // Alternate read by read (order rotated), so drift in the shared machine's load hits all alike.
    for (let k = 0; k < variants.length; k++) {
      const j = (k + i) % variants.length;
      const t0 = performance.now();
      await variants[j]!.read(1 + ((i * 7) % ROWS));
      samples[j]!.push(performance.now() - t0);
    }
  }
  const out: SequentialResult[] = [];
  for (const [j, v] of variants.entries()) {
    const l = latency(samples[j]!);
    out.push({ variant: v.label, roundTrips: await trips(() => v.read(1)), latency: l, readsPerSecond: Math.round(1000 / l.meanMs) });
  }
  return out;
}

interface ConcurrentResult {
  variant: string;
  readers: number;
  reads: number;
  readsPerSecond: number;
  latency: Latency;
}

/** `READERS` readers at once per variant, in blocks of `perBlock` reads each, `rounds` rounds rotated. */
async function concurrent(variants: readonly Variant[], perBlock: number, rounds: number): Promise<ConcurrentResult[]> {
  const samples = variants.map(() => [] as number[]);
  const wall = variants.map(() => 0);
  const block = async (j: number, keep: boolean) => {
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: READERS }, async (_, w) => {
        for (let i = 0; i < perBlock; i++) {
          const s = performance.now();
          await variants[j]!.read(1 + ((w * 131 + i * 7) % ROWS));
          if (keep) samples[j]!.push(performance.now() - s);
        }
      }),
    );
    if (keep) wall[j]! += performance.now() - t0;
  };
  for (let j = 0; j < variants.length; j++) await block(j, false);
  for (let r = 0; r < rounds; r++) for (let k = 0; k < variants.length; k++) await block((k + r) % variants.length, true);
  return variants.map((v, j) => ({
    variant: v.label,
    readers: READERS,
    reads: samples[j]!.length,
    readsPerSecond: Math.round(samples[j]!.length / (wall[j]! / 1000)),
    latency: latency(samples[j]!),
  }));
}

interface EngineResult {
  engine: string;
  sequential: SequentialResult[];
  concurrent?: ConcurrentResult[];
}

async function benchEngine(label: string, database: Database, plane: DataPlane, stage: StageRef, n: number, log: (l: string) => void): Promise<EngineResult> {
  const caller: Caller = { kind: 'user', principalId: randomUUID(), roles: ['tenant-admin'], requestId: 'bench-1' };
  const bareTable = sql.id(stage.schema, 'items');
  const variants: Variant[] = [
    {
      label: 'bare pooled connection',
      read: (id) => sql`select id, label, owner_id from ${bareTable} where id = ${id}`.execute(database.db),
    },
    {
      label: 'stage session',
      read: (id) => runAsStage(plane, stage, caller, (s) => s.db.selectFrom('items').select(['id', 'label', 'owner_id']).where('id', '=', id).executeTakeFirst()),
    },
    {
      label: 'stage session, RLS table',
      read: (id) =>
        runAsStage(plane, stage, caller, (s) => s.db.selectFrom('owned_items').select(['id', 'label', 'owner_id']).where('id', '=', id).executeTakeFirst()),
    },
  ];
  log(`${label}: sequential, ${n} reads per variant`);
  const seq = await sequential(variants, n, Math.max(200, n / 10));
  for (const r of seq) log(`${label}: ${r.variant}: median ${r.latency.medianMs} ms, p99 ${r.latency.p99Ms} ms, ${r.roundTrips} round trips`);
  let conc: ConcurrentResult[] | undefined;
  if (database.engine === 'postgres') {
    conc = await concurrent(variants.slice(0, 2), Math.ceil(n / READERS / 2), 4);
    for (const r of conc) log(`${label}: ${READERS} readers, ${r.variant}: ${r.readsPerSecond} reads/s, median ${r.latency.medianMs} ms`);
  }
  return { engine: label, sequential: seq, ...(conc ? { concurrent: conc } : {}) };
}

/** A stage with a plain table and one under an RLS policy on the caller, 1000 rows each. */
async function setUp(database: Database): Promise<StageRef> {
  await migrate(database.db);
  const names = newStageStorageNames();
  await database.db.transaction().execute(async (trx) => {
    await createStageStorage(trx, names);
    await sql`set local role ${sql.id(names.role)}`.execute(trx);
    await sql`set local search_path = ${sql.id(names.schema)}`.execute(trx);
    await sql`create table items (id int primary key, label text not null, owner_id uuid not null)`.execute(trx);
    await sql`insert into items select g, 'item ' || g, gen_random_uuid() from generate_series(1, ${ROWS}) g`.execute(trx);
    await sql`create table owned_items (id int primary key, label text not null, owner_id uuid not null)`.execute(trx);
    await sql`insert into owned_items select g, 'item ' || g, gen_random_uuid() from generate_series(1, ${ROWS}) g`.execute(trx);
    await sql`alter table owned_items enable row level security`.execute(trx);
    await sql`create policy caller_rows on owned_items using (owner_id = nullif(current_setting('accord.user_id', true), '')::uuid)`.execute(trx);
  });
  return { tenantId: randomUUID(), stageId: randomUUID(), ...names };
}

const ms = (n: number) => n.toFixed(3);

function tables(results: EngineResult[]): string {
  const out: string[] = [];
  out.push('Sequential reads by primary key (one at a time, variants alternating)', '');
  out.push('| engine | variant | round trips | median ms | p99 ms | median ratio | p99 ratio | reads/s |', '|---|---|---:|---:|---:|---:|---:|---:|');
  for (const r of results) {
    const base = r.sequential[0]!;
    for (const v of r.sequential) {
      out.push(
        `| ${r.engine} | ${v.variant} | ${v.roundTrips} | ${ms(v.latency.medianMs)} | ${ms(v.latency.p99Ms)} | ${(v.latency.medianMs / base.latency.medianMs).toFixed(2)} | ${(v.latency.p99Ms / base.latency.p99Ms).toFixed(2)} | ${v.readsPerSecond} |`,
      );
    }
  }
  for (const r of results) {
    if (!r.concurrent) continue;
    const base = r.concurrent[0]!;
    out.push('', `${READERS} concurrent readers (${r.engine}, ${READERS}-connection pools)`, '');
    out.push('| variant | reads | reads/s | ratio | median ms | p99 ms |', '|---|---:|---:|---:|---:|---:|');
    for (const v of r.concurrent) {
      out.push(`| ${v.variant} | ${v.reads} | ${v.readsPerSecond} | ${(v.readsPerSecond / base.readsPerSecond).toFixed(2)} | ${ms(v.latency.medianMs)} | ${ms(v.latency.p99Ms)} |`);
    }
  }
  return out.join('\n');
}

/** Runs the benchmark, prints markdown tables and writes bench/results/kernel.json. */
export async function run(): Promise<void> {
  const n = positiveInt('BENCH_N', 3000);
  const host = machine();
  const log = (line: string) => process.stderr.write(`${line}\n`);
  countRoundTrips();
  const results: EngineResult[] = [];
  const kmsDir = mkdtempSync(join(tmpdir(), 'accord-bench-kms-'));
  const kms = await openKms({ kms: 'local', dataDir: kmsDir });
  let server: PostgresServer | undefined;
  try {
    const pglite = await openDatabase({ dataDir: 'unused', inMemory: true });
    try {
      const stage = await setUp(pglite);
      const plane = await openDataPlane(pglite);
      results.push(await benchEngine('PGlite', pglite, plane, stage, n, log));
    } finally {
      await pglite.close();
    }
    log('starting a PostgreSQL server');
    server = await startPostgres({ tls: false });
    const url = await createOwnedDatabase(server.url, 'bench');
    const postgres = await openDatabase({ dataDir: 'unused', databaseUrl: url, maxConnections: READERS });
    try {
      const stage = await setUp(postgres);
      const plane = await openDataPlane(postgres, { databaseUrl: url, kms, maxConnections: READERS });
      try {
        results.push(await benchEngine('PostgreSQL', postgres, plane, stage, n, log));
      } finally {
        await plane.close();
      }
    } finally {
      await postgres.close();
    }
  } finally {
    await server?.stop();
    await kms.close();
    rmSync(kmsDir, { recursive: true, force: true });
  }
  const loadAtEnd = Math.round(loadavg()[0]! * 100) / 100;
  const header = `N = ${n}; ${host.cpuModel}, ${host.nproc} CPUs, Node ${host.node}, ${host.date} (1-min load ${host.loadAverage1m} at start, ${loadAtEnd} at end)`;
  process.stdout.write(`\n${header}\n\n${tables(results)}\n`);
  await mkdir(join(ROOT, 'bench', 'results'), { recursive: true });
  await writeFile(
    RESULTS,
    `${JSON.stringify(
      {
        benchmark: 'kernel',
        description: 'read by primary key: stage session (runAsStage) vs the same query on a bare pooled connection; sequential and 8 concurrent readers (PostgreSQL)',
        machine: { ...host, loadAverage1mAtEnd: loadAtEnd },
        n,
        results,
      },
      null,
      2,
    )}\n`,
  );
  process.stderr.write(`results written to ${RESULTS}\n`);
}
