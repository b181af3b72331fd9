// The key hierarchy's cost, on PGlite (in memory) and PostgreSQL (a local server from the test
// harness): (a) getting a stage DEK through the Keyring with a warm cache (a map lookup) and a cold
// one (a new Keyring per call: read the DEK and KEK rows, KMS unwrap of the KEK, local AES-GCM
// unwrap of the DEK), for the `local` provider and `pkcs11` (a SoftHSM2 token); (b) the rotation
// jobs: re-encryption of N stage secrets after a DEK rotation (rows/s) and the rewrap of a tenant's
// DEKs after a KEK rotation (ms), timed as `JobRunner.drain()` after `rotateKeys()`.
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { systemSource } from '../src/audit-chain/index.ts';
import { encryptField, type FieldContext } from '../src/crypto/field/index.ts';
import { dekAad, Keyring, kekAad, unwrapKey } from '../src/crypto/keyring/index.ts';
import { type KmsProvider, openLocalKms, openPkcs11Kms } from '../src/crypto/kms/index.ts';
import { type Database, type Db, migrate, openDatabase } from '../src/db/index.ts';
import { JobRunner } from '../src/jobs/index.ts';
import { keyJobSteps, readSecret, rotateKeys } from '../src/keys/index.ts';
import { createTenant } from '../src/tenancy/index.ts';
import { type PostgresServer, startPostgres } from '../test/harness/postgres.ts';
import { createSoftHsmToken } from '../test/harness/softhsm.ts';
import { createOwnedDatabase, machine, positiveInt } from './lib.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESULTS = process.env.BENCH_RESULTS_FILE ?? join(ROOT, 'bench', 'results', 'crypto-keys.json');
const WARMUP = 200;
/** Secrets inserted per statement when filling the stage (not timed). */
const INSERT_BATCH = 500;
const silentLogger = pino({ level: 'silent' });



const round1 = (n: number) => Math.round(n * 10) / 10;
const round3 = (n: number) => Math.round(n * 1000) / 1000;


interface Latency {
  n: number;
  opsPerSecond: number;
  medianUs: number;
  p99Us: number;
}

/** Sequential calls of `op`, each timed; ops/s from the total. */
async function sequential(n: number, op: () => Promise<unknown>): Promise<Latency> {
  for (let i = 0; i < WARMUP; i++) await op();
  const samples: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await op();
    samples.push(performance.now() - t);
  }
  const total = performance.now() - t0;
  const s = samples.sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
  return { n, opsPerSecond: Math.round((n * 1000) / total), medianUs: round1(at(0.5) * 1000), p99Us: round1(at(0.99) * 1000) };
}

interface LatencyResult {
  engine: string;
  provider: string;
  /** keyring.dek() with the DEK in the cache: a map lookup, no database, no KMS. */
  warm: Latency;
  /** keyring.activeDek() with a warm cache: still one query for the active version. */
  warmActive: Latency;
  /** new Keyring(kms).dek(): two row reads, KMS unwrap of the KEK, local unwrap of the DEK. */
  cold: Latency;
  /** The cold path's cryptography alone (rows read beforehand): KMS unwrap + unwrapKey(). */
  coldCryptoOnly: Latency;
}

async function benchLatency(engine: string, db: Db, provider: string, kms: KmsProvider, n: number, log: (s: string) => void): Promise<LatencyResult> {
  const keyring = new Keyring(kms);
  const tenant = await createTenant(db, keyring, systemSource, { name: `lat-${randomBytes(4).toString('hex')}` });
  const stageId = tenant.stages[0]!.id;
  const check = (dek: { key: Buffer } | undefined) => {
    if (dek?.key.length !== 32) throw new Error('no data key');
  };
  const warm = await sequential(n, async () => check(await keyring.dek(db, stageId, 1)));
  const warmActive = await sequential(n, async () => check(await keyring.activeDek(db, stageId)));
  const cold = await sequential(n, async () => check(await new Keyring(kms).dek(db, stageId, 1)));
  const kekRow = await db.selectFrom('accord.tenant_keks').select(['root_key_id', 'wrapped']).where('tenant_id', '=', tenant.id).where('version', '=', 1).executeTakeFirstOrThrow();
  const dekRow = await db.selectFrom('accord.stage_deks').select(['wrapped']).where('stage_id', '=', stageId).where('version', '=', 1).executeTakeFirstOrThrow();
  const coldCryptoOnly = await sequential(n, async () => {
    const kek = await kms.unwrap(kekRow.root_key_id, kekRow.wrapped, kekAad(tenant.id, 1));
    const dek = unwrapKey(kek, dekRow.wrapped, dekAad(stageId, 1));
    kek.fill(0);
    check({ key: dek });
    dek.fill(0);
  });
  log(`${engine}, ${provider}: dek() warm ${warm.medianUs} µs, activeDek() warm ${warmActive.medianUs} µs, cold ${cold.medianUs} µs (crypto alone ${coldCryptoOnly.medianUs} µs)`);
  return { engine, provider, warm, warmActive, cold, coldCryptoOnly };
}

interface RotationResult {
  engine: string;
  rows: number;
  /** One entry per DEK rotation: seconds of JobRunner.drain() re-encrypting `rows` secrets. */
  dekRounds: { toVersion: number; seconds: number; rowsPerSecond: number }[];
  dekMedianRowsPerSecond: number;
  /** One entry per KEK rotation: ms of JobRunner.drain() rewrapping the tenant's DEKs. */
  kekRounds: { toVersion: number; deksRewrapped: number; ms: number }[];
  kekMedianMs: number;
  /** setSecret-free fill: encryptField + multi-row insert, for context (not the job). */
  fillRowsPerSecond: number;
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

// Must equal the context src/keys/service.ts binds stage secrets to, or the job cannot decrypt them
// (it would fail, not skip: the run checks every row moved to the new version).
const secretContext = (tenantId: string, stageId: string, name: string): FieldContext => ({
  tenant: tenantId,
  stage: stageId,
  entity: 'accord.stage-secret',
  field: 'value',
  recordId: name,
});

async function benchRotation(engine: string, db: Db, kms: KmsProvider, rows: number, rounds: number, log: (s: string) => void): Promise<RotationResult> {
  const keyring = new Keyring(kms);
  const tenant = await createTenant(db, keyring, systemSource, { name: `rot-${randomBytes(4).toString('hex')}` });
  const stage = tenant.stages[0]!;
  const deksPerTenant = tenant.stages.length;

  const t0 = performance.now();
  const dek = await keyring.activeDek(db, stage.id);
  for (let i = 0; i < rows; i += INSERT_BATCH) {
    const values = [];
    for (let j = i; j < Math.min(rows, i + INSERT_BATCH); j++) {
      const name = `SECRET_${String(j).padStart(6, '0')}`;
      // A typical secret setting: a 40-character token.
      const envelope = encryptField(dek, randomBytes(30).toString('base64'), secretContext(tenant.id, stage.id, name));
      values.push({ stage_id: stage.id, name, envelope, key_version: dek.version });
    }
    await db.insertInto('accord.stage_secrets').values(values).execute();
  }
  const fillRowsPerSecond = Math.round((rows * 1000) / (performance.now() - t0));

  const drain = async (): Promise<number> => {
    const t = performance.now();
    await new JobRunner(db, keyJobSteps(keyring, systemSource), silentLogger).drain();
    return performance.now() - t;
  };
  const checkJob = async (jobId: string) => {
    const job = await db.selectFrom('accord.jobs').select(['state', 'error']).where('id', '=', jobId).executeTakeFirstOrThrow();
    if (job.state !== 'done') throw new Error(`rotation job ${jobId} is ${job.state}: ${job.error ?? ''}`);
  };

  // Warm-up (not counted): one small rotation of each kind on another tenant.
  const spare = await createTenant(db, keyring, systemSource, { name: `warm-${randomBytes(4).toString('hex')}` });
  await rotateKeys(db, keyring, systemSource, spare, spare.stages[0]!);
  await rotateKeys(db, keyring, systemSource, spare);
  await drain();

  const dekRounds: RotationResult['dekRounds'] = [];
  for (let r = 0; r < rounds; r++) {
    const rot = await rotateKeys(db, keyring, systemSource, tenant, stage);
    const ms = await drain();
    await checkJob(rot.jobId);
    const moved = await db
      .selectFrom('accord.stage_secrets')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('stage_id', '=', stage.id)
      .where('key_version', '=', rot.version)
      .executeTakeFirstOrThrow();
    if (Number(moved.n) !== rows) throw new Error(`only ${moved.n} of ${rows} secrets were re-encrypted to v${rot.version}`);
    dekRounds.push({ toVersion: rot.version, seconds: round3(ms / 1000), rowsPerSecond: Math.round((rows * 1000) / ms) });
    log(`${engine}: DEK v${rot.version}: ${rows} secrets re-encrypted in ${(ms / 1000).toFixed(2)} s (${Math.round((rows * 1000) / ms)} rows/s)`);
  }
  // Still decryptable from a cold keyring (another node): the first, a middle and the last secret.
  for (const j of [0, Math.floor(rows / 2), rows - 1]) {
    const v = await readSecret(db, new Keyring(kms), tenant.id, stage.id, `SECRET_${String(j).padStart(6, '0')}`);
    if (v?.length !== 40) throw new Error('a re-encrypted secret does not read back');
  }

  const kekRounds: RotationResult['kekRounds'] = [];
  for (let r = 0; r < rounds; r++) {
    const rot = await rotateKeys(db, keyring, systemSource, tenant);
    const ms = await drain();
    await checkJob(rot.jobId);
    const stale = await db.selectFrom('accord.stage_deks').select('stage_id').where('tenant_id', '=', tenant.id).where('kek_version', '<>', rot.version).execute();
    if (stale.length > 0) throw new Error(`${stale.length} DEKs were not rewrapped under KEK v${rot.version}`);
    kekRounds.push({ toVersion: rot.version, deksRewrapped: deksPerTenant, ms: round3(ms) });
    log(`${engine}: KEK v${rot.version}: ${deksPerTenant} DEKs rewrapped in ${ms.toFixed(1)} ms`);
  }
  return {
    engine,
    rows,
    dekRounds,
    dekMedianRowsPerSecond: Math.round(median(dekRounds.map((d) => d.rowsPerSecond))),
    kekRounds,
    kekMedianMs: round3(median(kekRounds.map((k) => k.ms))),
    fillRowsPerSecond,
  };
}

function tables(latency: LatencyResult[], rotation: RotationResult[]): string {
  const us = (n: number) => (n < 10 ? n.toFixed(1) : String(Math.round(n)));
  const out: string[] = [];
  out.push('(a) Getting a stage DEK through the Keyring, sequential', '');
  out.push('| engine | provider | path | ops/s | median µs | p99 µs |', '|---|---|---|---:|---:|---:|');
  for (const r of latency) {
    for (const [path, l] of [
      ['warm: `dek()`, cached', r.warm],
      ['warm: `activeDek()` (one query for the active version)', r.warmActive],
      ['cold: `new Keyring().dek()` (2 row reads + KMS unwrap + DEK unwrap)', r.cold],
      ['cold, cryptography alone (KMS unwrap + DEK unwrap)', r.coldCryptoOnly],
    ] as const) {
      out.push(`| ${r.engine} | ${r.provider} | ${path} | ${l.opsPerSecond} | ${us(l.medianUs)} | ${us(l.p99Us)} |`);
    }
  }
  out.push('', '(b) Rotation jobs (`rotateKeys()` then `JobRunner.drain()`, batches of 100 rows per transaction)', '');
  out.push('| engine | job | work | median | each round |', '|---|---|---|---:|---|');
  for (const r of rotation) {
    out.push(
      `| ${r.engine} | DEK rotation: re-encrypt stage secrets | ${r.rows} rows | ${r.dekMedianRowsPerSecond} rows/s | ${r.dekRounds.map((d) => `${d.rowsPerSecond}`).join(', ')} rows/s |`,
    );
    out.push(
      `| ${r.engine} | KEK rotation: rewrap the tenant's DEKs | ${r.kekRounds[0]?.deksRewrapped ?? 0} DEKs | ${r.kekMedianMs.toFixed(1)} ms | ${r.kekRounds.map((k) => k.ms.toFixed(1)).join(', ')} ms |`,
    );
  }
  out.push('', `For context, filling the stage (encryptField + ${INSERT_BATCH}-row inserts, no job): ${rotation.map((r) => `${r.engine} ${r.fillRowsPerSecond} rows/s`).join(', ')}.`);
  return out.join('\n');
}

/** Runs the benchmark, prints markdown tables and writes bench/results/crypto-keys.json. */
export async function run(): Promise<void> {
  const n = positiveInt('BENCH_KEYS_N', 2000);
  const rows = positiveInt('BENCH_ROWS', 5000);
  const rounds = positiveInt('BENCH_ROUNDS', 3);
  const host = machine();
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const dir = await mkdtemp(join(tmpdir(), 'accord-bench-keys-'));
  const pin = randomBytes(8).toString('hex');
  const token = await createSoftHsmToken({ label: 'accord-bench-keys', pin, soPin: randomBytes(8).toString('hex') });
  // SoftHSM reads its config when the module is initialised (the first open below).
  process.env.SOFTHSM2_CONF = token.env.SOFTHSM2_CONF;
  const latency: LatencyResult[] = [];
  const rotation: RotationResult[] = [];
  let local: KmsProvider | undefined;
  let hsm: KmsProvider | undefined;
  let server: PostgresServer | undefined;
  try {
    local = await openLocalKms({ dir: join(dir, 'kms') });
    hsm = await openPkcs11Kms({ module: token.module, tokenLabel: 'accord-bench-keys', pin });
    const providers: [string, KmsProvider][] = [
      ['local', local],
      ['pkcs11 (SoftHSM2)', hsm],
    ];
    const bench = async (engine: string, database: Database) => {
      await migrate(database.db);
      for (const [name, kms] of providers) latency.push(await benchLatency(engine, database.db, name, kms, n, log));
      // The provider only matters for the one KEK unwrap per cold keyring; the jobs run on `local`.
      rotation.push(await benchRotation(engine, database.db, local!, rows, rounds, log));
    };
    const pglite = await openDatabase({ dataDir: 'unused', inMemory: true });
    try {
      await bench('PGlite', pglite);
    } finally {
      await pglite.close();
    }
    log('starting a PostgreSQL server');
    server = await startPostgres({ tls: false });
    const postgres = await openDatabase({ dataDir: 'unused', databaseUrl: await createOwnedDatabase(server.url, 'bench') });
    try {
      await bench('PostgreSQL', postgres);
    } finally {
      await postgres.close();
    }
  } finally {
    await hsm?.close();
    await local?.close();
    await server?.stop();
    await token.cleanup();
    await rm(dir, { recursive: true, force: true });
  }
  const loadAtEnd = Math.round(loadavg()[0]! * 100) / 100;
  const header = `Latency: ${n} calls per case after ${WARMUP} warm-up calls; rotation: ${rows} secrets, ${rounds} rounds; ${host.cpuModel}, ${host.nproc} CPUs, Node ${host.node}, ${host.date} (1-min load ${host.loadAverage1m} at start, ${loadAtEnd} at end)`;
  process.stdout.write(`\n${header}\n\n${tables(latency, rotation)}\n`);

  await mkdir(join(RESULTS, '..'), { recursive: true });
  await writeFile(
    RESULTS,
    `${JSON.stringify(
      {
        benchmark: 'crypto-keys',
        description:
          'Keyring DEK retrieval with a warm and a cold cache (local and pkcs11/SoftHSM2 providers) and rotation job throughput (DEK rotation: stage secrets re-encrypted per second; KEK rotation: ms to rewrap the DEKs), on PGlite in memory and PostgreSQL',
        machine: { ...host, loadAverage1mAtEnd: loadAtEnd },
        n,
        warmup: WARMUP,
        rows,
        rounds,
        latency,
        rotation,
      },
      null,
      2,
    )}\n`,
  );
  process.stderr.write(`results written to ${RESULTS}\n`);
}
