// The HTTP request floor (issue 9, item 9): an authenticated `GET /api/v1/tenants/acme` served
// by the platform, a real `accord start` process over HTTPS (TLS, auth from the principal cache,
// authorization, two catalog reads: the tenant, then its stages), against a bare Fastify server
// over HTTPS with the same certificate, the same pool size and the same two SELECTs on the same
// database (bench/floor/bare.ts). autocannon, 10 connections, alternating rounds, in the same run,
// on PostgreSQL (the test harness's throwaway server) and on PGlite (each server its own copy).
//
// Knobs: BENCH_SECONDS (10 per round), BENCH_ROUNDS (3), BENCH_CONNECTIONS (10),
// BENCH_WARMUP_SECONDS (3), BENCH_COUNT=0 (skip counting database transactions
// per request on PostgreSQL, which costs 33 s), BENCH_ENGINES (postgres,pglite), BENCH_LOG_LEVEL (the platform's
// log level, default info as in production), BENCH_PROFILE=1 (both servers run under
// --cpu-prof; profiles and the rounds' time windows land in .bench-tmp/floor-profile/<engine>/;
// `node bench/floor/profile.ts <engine>` summarises them per request).
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import pg from 'pg';
import { type PostgresServer, startPostgres } from '../test/harness/postgres.ts';
import { createOwnedDatabase, machine, positiveInt } from './lib.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESULTS = join(ROOT, 'bench', 'results', 'floor.json');
const PROFILE_DIR = join(ROOT, '.bench-tmp', 'floor-profile');
const EMAIL = 'ops@floor.test';
const PASSWORD = 'floor benchmark passphrase, long enough';
const PATH = '/api/v1/tenants/acme';

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
const round2 = (n: number) => Math.round(n * 100) / 100;

/** The environment of a child: ours without any ACCORD_* (the config refuses unknown keys), plus `extra`. */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ACCORD_')) env[k] = v;
  return { ...env, ...extra };
}

/** Resolves with the first stdout line of `child` that is JSON with `event: 'ready'`. */
function readyLine<T>(child: ChildProcess, what: string, logFile: string): Promise<T> {
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer) => {
      out += d;
      for (const line of out.split('\n')) {
        try {
          const doc = JSON.parse(line) as { event?: string };
          if (doc.event === 'ready') {
            child.stdout?.off('data', onData);
            resolve(doc as T);
            return;
          }
        } catch {
          // not a complete JSON line yet
        }
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', async (code) => reject(new Error(`${what} exited (${code}) before ready:\n${out}\n${await readFile(logFile, 'utf8').catch(() => '')}`)));
  });
}

function spawnLogged(args: string[], env: NodeJS.ProcessEnv, logFile: string): ChildProcess {
  // The log lines (stderr with --json) go straight to a file, as a deployment's would: a pipe
  // drained by this process, which is busy generating load, fills up and stalls a server that
  // writes its log synchronously.
  const fd = openSync(logFile, 'a');
  try {
    return spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', fd] });
  } finally {
    closeSync(fd);
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(t);
}

/** One HTTPS request trusting only the platform's CA; the parsed JSON answer. */
function call(port: number, ca: string, method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = {};
    if (payload) headers['content-type'] = 'application/json';
    if (token) headers.authorization = `Bearer ${token}`;
    const req = request({ host: '127.0.0.1', port, path, method, servername: 'localhost', ca, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

interface Round {
  rps: number;
  p50: number;
  p99: number;
  requests: number;
  /** CPU time of the server process (all its threads) per request, in microseconds. */
  cpuUsPerRequest?: number;
  /** Bytes the platform logged per request. */
  logBytesPerRequest?: number;
}

/** User plus system CPU time of a process so far, in microseconds (Linux; undefined elsewhere). */
async function cpuUs(pid: number | undefined): Promise<number | undefined> {
  if (pid === undefined) return undefined;
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at field 3; utime and stime
    // are fields 14 and 15, in clock ticks of 10 ms.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return undefined;
  }
}

async function engineRun(engine: 'postgres' | 'pglite', opts: { seconds: number; rounds: number; connections: number; warmup: number }, pgServer?: PostgresServer) {
  const work = await mkdtemp(join(tmpdir(), `accord-floor-${engine}-`));
  const dataDir = join(work, 'platform');
  const logFile = join(work, 'platform.log');
  const databaseUrl = engine === 'postgres' && pgServer ? await createOwnedDatabase(pgServer.url, 'floor') : undefined;
  const profile = process.env.BENCH_PROFILE === '1';
  if (profile) await rm(join(PROFILE_DIR, engine), { recursive: true, force: true });
  // When profiling: the monotonic-clock windows (microseconds, the clock of V8's profiles) of
  // each measured round, so the profiles can be cut to the load they were under.
  const windows: Record<'platform' | 'bare', { startUs: number; endUs: number; requests: number }[]> = { platform: [], bare: [] };
  const platform = spawnLogged(
    [
      // One profile per thread (the tsx loader runs its own), named by process and thread id.
      ...(profile ? ['--cpu-prof', `--cpu-prof-dir=${join(PROFILE_DIR, engine, 'platform')}`] : []),
      join(ROOT, 'bin', 'accord.js'),
      'start',
      '--json',
      '--port',
      '0',
      '--data-dir',
      dataDir,
      '--log-level',
      process.env.BENCH_LOG_LEVEL ?? 'info',
    ],
    childEnv({
      ...(databaseUrl ? { ACCORD_DATABASE_URL: databaseUrl } : {}),
      ACCORD_BOOTSTRAP_EMAIL: EMAIL,
      ACCORD_BOOTSTRAP_PASSWORD: PASSWORD,
      // One token for the whole run (the default 300 s would expire mid-run).
      ACCORD_ACCESS_TOKEN_TTL_SECONDS: '900',
    }),
    logFile,
  );
  let bare: ChildProcess | undefined;
  let stats: pg.Client | undefined;
  try {
    const ready = await readyLine<{ url: string; caFile: string }>(platform, 'accord start', logFile);
    const port = Number(new URL(ready.url).port);
    const ca = await readFile(ready.caFile, 'utf8');
    const signIn = await call(port, ca, 'POST', '/api/v1/auth/login', { email: EMAIL, password: PASSWORD });
    const token = (signIn.json as { accessToken?: string }).accessToken;
    if (signIn.status !== 200 || !token) throw new Error(`sign-in failed: ${signIn.status} ${JSON.stringify(signIn.json)}`);
    const created = await call(port, ca, 'POST', '/api/v1/tenants', { name: 'acme' }, token);
    if (created.status !== 201) throw new Error(`tenant creation failed: ${created.status} ${JSON.stringify(created.json)}`);
    const shown = await call(port, ca, 'GET', PATH, undefined, token);
    if (shown.status !== 200) throw new Error(`GET ${PATH}: ${shown.status}`);

    bare = spawnLogged(
      [...(profile ? ['--cpu-prof', `--cpu-prof-dir=${join(PROFILE_DIR, engine, 'bare')}`] : []), '--import', 'tsx', join(ROOT, 'bench', 'floor', 'bare.ts')],
      childEnv({
        FLOOR_ENGINE: engine,
        FLOOR_TLS_DIR: join(dataDir, 'tls'),
        // The platform's pool: openDatabase's default of 10, which `accord start` uses.
        FLOOR_POOL: '10',
        ...(databaseUrl ? { FLOOR_DATABASE_URL: databaseUrl } : { FLOOR_DATA_DIR: join(work, 'bare-pglite'), FLOOR_SEED: JSON.stringify(shown.json) }),
      }),
      join(work, 'bare.log'),
    );
    const bareReady = await readyLine<{ port: number }>(bare, 'bare server', join(work, 'bare.log'));
    const bareShown = await call(bareReady.port, ca, 'GET', PATH);
    // Same work, same answer: the two servers must return the same document.
    if (JSON.stringify(bareShown.json) !== JSON.stringify(shown.json)) {
      throw new Error(`the bare server answers differently:\n${JSON.stringify(bareShown.json)}\n${JSON.stringify(shown.json)}`);
    }

    if (databaseUrl && pgServer && process.env.BENCH_COUNT !== '0') {
      stats = new pg.Client({ connectionString: pgServer.url });
      await stats.connect();
    }
    const dbName = databaseUrl ? new URL(databaseUrl).pathname.slice(1) : '';
    const xacts = async () => {
      if (!stats) return 0;
      await stats.query('select pg_stat_clear_snapshot()');
      const r = await stats.query<{ n: string }>('select xact_commit + xact_rollback as n from pg_stat_database where datname = $1', [dbName]);
      return Number(r.rows[0]?.n ?? 0);
    };
    const targets = {
      platform: { port, headers: { authorization: `Bearer ${token}` }, pid: platform.pid },
      bare: { port: bareReady.port, headers: {} as Record<string, string>, pid: bare.pid },
    };
    const fire = async (which: keyof typeof targets, seconds: number): Promise<Round> => {
      const t = targets[which];
      const log0 = which === 'platform' ? (await stat(logFile)).size : 0;
      const cpu0 = await cpuUs(t.pid);
      const startUs = Number(process.hrtime.bigint() / 1000n);
      const r = await autocannon({ url: `https://127.0.0.1:${t.port}${PATH}`, connections: opts.connections, duration: seconds, headers: t.headers });
      if (r.non2xx > 0 || r.errors > 0) throw new Error(`${which}: ${r.non2xx} non-2xx answers and ${r.errors} errors`);
      windows[which].push({ startUs, endUs: Number(process.hrtime.bigint() / 1000n), requests: r.requests.total });
      const cpu1 = await cpuUs(t.pid);
      const log1 = which === 'platform' ? (await stat(logFile)).size : 0;
      return {
        rps: r.requests.average,
        p50: r.latency.p50,
        p99: r.latency.p99,
        requests: r.requests.total,
        ...(cpu0 !== undefined && cpu1 !== undefined ? { cpuUsPerRequest: Math.round((cpu1 - cpu0) / r.requests.total) } : {}),
        ...(which === 'platform' ? { logBytesPerRequest: Math.round((log1 - log0) / r.requests.total) } : {}),
      };
    };
    // Database transactions per request (on PostgreSQL each autocommit statement is one, so this
    // counts the round trips that carry a query): a fixed number of requests, between readings
    // of pg_stat_database. A backend publishes its counters when it goes idle, at the latest
    // 10 s later (PGSTAT_IDLE_INTERVAL), hence the pauses.
    const perRequest: Record<string, number> = {};
    if (stats) {
      const settle = () => new Promise((r) => setTimeout(r, 11_000));
      const n = 2000;
      await settle();
      for (const which of ['platform', 'bare'] as const) {
        const x0 = await xacts();
        const r = await autocannon({ url: `https://127.0.0.1:${targets[which].port}${PATH}`, connections: opts.connections, amount: n, headers: targets[which].headers });
        await settle();
        perRequest[which] = round2(((await xacts()) - x0) / r.requests.total);
      }
    }
    await fire('platform', opts.warmup);
    await fire('bare', opts.warmup);
    windows.platform.length = 0;
    windows.bare.length = 0;
    const rounds: { platform: Round; bare: Round }[] = [];
    for (let i = 0; i < opts.rounds; i++) {
      // Alternate which goes first, so a drift in the machine's load does not favour one side.
      const first = i % 2 === 0 ? 'platform' : 'bare';
      const a = await fire(first, opts.seconds);
      const b = await fire(first === 'platform' ? 'bare' : 'platform', opts.seconds);
      const round = first === 'platform' ? { platform: a, bare: b } : { platform: b, bare: a };
      rounds.push(round);
      console.log(`${engine} round ${i + 1}: platform ${Math.round(round.platform.rps)} req/s, bare ${Math.round(round.bare.rps)} req/s`);
    }
    if (profile) await mkdir(join(PROFILE_DIR, engine), { recursive: true });
    if (profile) await writeFile(join(PROFILE_DIR, engine, 'windows.json'), `${JSON.stringify(windows)}\n`);
    const summary = (side: 'platform' | 'bare') => ({
      rps: Math.round(median(rounds.map((r) => r[side].rps))),
      p50: median(rounds.map((r) => r[side].p50)),
      p99: median(rounds.map((r) => r[side].p99)),
      cpuUsPerRequest: median(rounds.map((r) => r[side].cpuUsPerRequest ?? Number.NaN)),
      ...(stats ? { xactsPerRequest: perRequest[side] } : {}),
    });
    const p = summary('platform');
    const b = summary('bare');
    return {
      engine,
      platform: { ...p, logBytesPerRequest: median(rounds.map((r) => r.platform.logBytesPerRequest ?? 0)) },
      bare: b,
      ratio: round2(median(rounds.map((r) => r.platform.rps / r.bare.rps))),
      rounds,
    };
  } finally {
    await stats?.end().catch(() => {});
    if (bare) await stopChild(bare);
    await stopChild(platform);
    await rm(work, { recursive: true, force: true });
  }
}

export async function run(): Promise<void> {
  const opts = {
    seconds: positiveInt('BENCH_SECONDS', 10),
    rounds: positiveInt('BENCH_ROUNDS', 3),
    connections: positiveInt('BENCH_CONNECTIONS', 10),
    warmup: positiveInt('BENCH_WARMUP_SECONDS', 3),
  };
  const engines = (process.env.BENCH_ENGINES ?? 'postgres,pglite').split(',').map((e) => e.trim());
  const results: Record<string, unknown> = { machine: machine(), options: { ...opts, logLevel: process.env.BENCH_LOG_LEVEL ?? 'info' } };
  const rows: string[] = [];
  let server: PostgresServer | undefined;
  try {
    for (const engine of engines) {
      if (engine !== 'postgres' && engine !== 'pglite') throw new Error(`BENCH_ENGINES: unknown engine ${engine}`);
      if (engine === 'postgres') server ??= await startPostgres({ tls: false });
      const r = await engineRun(engine, opts, server);
      results[engine] = r;
      const x = (v: { xactsPerRequest?: number }) => (v.xactsPerRequest === undefined ? '–' : String(v.xactsPerRequest));
      rows.push(`| ${engine} | platform | ${r.platform.rps} | ${r.platform.p50} | ${r.platform.p99} | ${r.platform.cpuUsPerRequest} | ${x(r.platform)} | ${r.ratio} |`);
      rows.push(`| ${engine} | bare | ${r.bare.rps} | ${r.bare.p50} | ${r.bare.p99} | ${r.bare.cpuUsPerRequest} | ${x(r.bare)} | 1 |`);
    }
  } finally {
    await server?.stop();
  }
  (results.machine as { loadAverage1mEnd?: number }).loadAverage1mEnd = machine().loadAverage1m;
  console.log(JSON.stringify(results.machine));
  console.log('| engine | server | req/s (median of rounds) | p50 ms | p99 ms | server CPU µs / request | DB transactions / request | platform ÷ bare (req/s) |');
  console.log('|---|---|---:|---:|---:|---:|---:|---:|');
  for (const row of rows) console.log(row);
  await writeFile(RESULTS, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`written ${RESULTS}`);
}
