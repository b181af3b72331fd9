// Start-up time: from spawning `accord start` until /readyz answers 200, cold (empty data
// directory / fresh database) and warm (second start on the same data), on PGlite and PostgreSQL,
// next to two baselines that say what a Node process and the CLI cost by themselves.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { type PostgresServer, startPostgres } from '../test/harness/postgres.ts';
import { createOwnedDatabase, machine } from './lib.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin', 'accord.js');
const RESULTS = join(ROOT, 'bench', 'results', 'startup.json');
const POLL_MS = 20;
const TIMEOUT_MS = 120_000;

/** Our environment without ACCORD_* (a developer's own settings must not leak into the runs). */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ACCORD_')) env[k] = v;
  return { ...env, ...extra };
}

/** Milliseconds from spawn to exit of a short-lived process. */
function timeProcess(args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, args, { cwd: ROOT, env: cleanEnv(), stdio: 'ignore' });
    child.once('error', reject);
    child.once('exit', (code) => {
      const ms = performance.now() - t0;
      if (code === 0) resolve(ms);
      else reject(new Error(`${args.join(' ')} exited ${code}`));
    });
  });
}

interface Ready {
  url: string;
  caFile: string;
}

/** Resolves with the `ready` line of an `accord start` child; rejects if it exits first. */
function readyLine(child: ChildProcess, output: { text: string }): Promise<Ready> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line within ${TIMEOUT_MS} ms\n${output.text}`)), TIMEOUT_MS);
    const check = () => {
      for (const line of output.text.split('\n')) {
        try {
          const doc = JSON.parse(line) as { event?: string } & Ready;
          if (doc.event === 'ready') {
            clearTimeout(timer);
            child.stdout?.off('data', check);
            return resolve(doc);
          }
        } catch {
          // a log line or a partial line
        }
      }
    };
    child.stdout?.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`accord start exited (${code}) before ready\n${output.text}`));
    });
  });
}

function readyzStatus(url: string, ca: string): Promise<number> {
  return new Promise((resolve) => {
    const u = new URL('/readyz', url);
    const req = request({ host: '127.0.0.1', port: u.port, path: u.pathname, servername: 'localhost', ca, timeout: 5_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}

interface StartSample {
  /** Spawn until the `ready` line on stdout (the listener is up). */
  readyLineMs: number;
  /** Spawn until /readyz answered 200. */
  readyzMs: number;
}

/**
 * One `accord start`, timed until /readyz answers 200, then stopped with SIGTERM. With `--port 0`
 * the port (and, on a cold start, the CA) exist only once the ready line names them, so polling
 * every POLL_MS starts from there.
 */
async function timeStart(dataDir: string, env: Record<string, string>): Promise<StartSample> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [BIN, 'start', '--json', '--port', '0', '--data-dir', dataDir, '--log-level', 'warn'], {
    cwd: ROOT,
    env: cleanEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = { text: '' };
  child.stdout.on('data', (d: Buffer) => {
    output.text += d;
  });
  child.stderr.on('data', (d: Buffer) => {
    output.text += d;
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    const ready = await readyLine(child, output);
    const readyLineMs = performance.now() - t0;
    const ca = await readFile(ready.caFile, 'utf8');
    for (;;) {
      if ((await readyzStatus(ready.url, ca)) === 200) break;
      if (performance.now() - t0 > TIMEOUT_MS) throw new Error(`/readyz not 200 within ${TIMEOUT_MS} ms`);
      await sleep(POLL_MS);
    }
    return { readyLineMs, readyzMs: performance.now() - t0 };
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const code = await exited;
    if (code !== 0) console.error(`warning: accord start exited ${code} after SIGTERM\n${output.text}`);
  }
}


interface Summary {
  runs: number;
  medianMs: number;
  minMs: number;
  maxMs: number;
  samplesMs: number[];
}

function summarise(samples: number[]): Summary {
  const s = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  const round = (n: number) => Math.round(n * 10) / 10;
  return { runs: s.length, medianMs: round(median), minMs: round(s[0]!), maxMs: round(s.at(-1)!), samplesMs: samples.map(round) };
}


/** Runs the benchmark, prints a markdown table and writes bench/results/startup.json. */
export async function run(): Promise<void> {
  const runs = Number(process.env.BENCH_RUNS ?? 5);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`BENCH_RUNS must be a positive integer, got ${process.env.BENCH_RUNS}`);
  const host = machine();
  const work = await mkdtemp(join(tmpdir(), 'accord-bench-startup-'));
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const cases: { name: string; ready: Summary; readyLine?: Summary }[] = [];
  let server: PostgresServer | undefined;
  try {
    // Warm the file-system cache and tsx's compile cache so the first measured run is not an outlier.
    log('warm-up (not counted)');
    await timeProcess(['-e', '0']);
    await timeProcess([BIN, '--version']);
    await mkdir(join(work, 'warmup'));
    await timeStart(join(work, 'warmup', 'data'), {});

    for (const [name, args] of [
      ['baseline: `node -e "0"`', ['-e', '0']],
      ['baseline: `accord --version`', [BIN, '--version']],
    ] as const) {
      const samples: number[] = [];
      for (let i = 0; i < runs; i++) samples.push(await timeProcess([...args]));
      cases.push({ name, ready: summarise(samples) });
      log(`${name}: ${samples.map((n) => n.toFixed(0)).join(' ')} ms`);
    }

    log('starting a PostgreSQL server for the PostgreSQL runs');
    server = await startPostgres({ tls: false });
    const engines: { label: string; env: () => Promise<Record<string, string>> }[] = [
      { label: 'PGlite', env: async () => ({}) },
      { label: 'PostgreSQL', env: async () => ({ ACCORD_DATABASE_URL: await createOwnedDatabase(server!.url, 'bench') }) },
    ];
    for (const engine of engines) {
      const cold: StartSample[] = [];
      const warm: StartSample[] = [];
      for (let i = 0; i < runs; i++) {
        const dataDir = join(work, `${engine.label.toLowerCase()}-${i}`, 'data');
        const env = await engine.env();
        cold.push(await timeStart(dataDir, env));
        warm.push(await timeStart(dataDir, env));
        log(`${engine.label} run ${i + 1}/${runs}: cold ${cold.at(-1)!.readyzMs.toFixed(0)} ms, warm ${warm.at(-1)!.readyzMs.toFixed(0)} ms`);
      }
      for (const [kind, samples] of [
        ['cold', cold],
        ['warm', warm],
      ] as const) {
        cases.push({
          name: `${engine.label} ${kind}`,
          ready: summarise(samples.map((s) => s.readyzMs)),
          readyLine: summarise(samples.map((s) => s.readyLineMs)),
        });
      }
    }
  } finally {
    await server?.stop();
    await rm(work, { recursive: true, force: true });
  }

  const nodeBase = cases[0]!.ready.medianMs;
  const cliBase = cases[1]!.ready.medianMs;
  const ratio = (n: number, base: number) => `${(n / base).toFixed(1)}×`;
  const rows = [
    '| case | median ms | min ms | max ms | ready line, median ms | median ÷ `node -e "0"` | median ÷ `accord --version` |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...cases.map(
      (c) =>
        `| ${c.name} | ${c.ready.medianMs.toFixed(0)} | ${c.ready.minMs.toFixed(0)} | ${c.ready.maxMs.toFixed(0)} | ${
          c.readyLine ? c.readyLine.medianMs.toFixed(0) : '–'
        } | ${ratio(c.ready.medianMs, nodeBase)} | ${ratio(c.ready.medianMs, cliBase)} |`,
    ),
  ];
  const header = `${runs} runs each; ${host.cpuModel}, ${host.nproc} CPUs, Node ${host.node}, ${host.date} (1-min load ${host.loadAverage1m} at start)`;
  process.stdout.write(`\n${header}\n\n${rows.join('\n')}\n`);

  await mkdir(join(ROOT, 'bench', 'results'), { recursive: true });
  await writeFile(
    RESULTS,
    `${JSON.stringify(
      {
        benchmark: 'startup',
        description: 'ms from spawning `accord start --port 0` until GET /readyz answers 200 (polled every 20 ms after the ready line)',
        machine: host,
        runs,
        cases,
      },
      null,
      2,
    )}\n`,
  );
  process.stderr.write(`results written to ${RESULTS}\n`);
}
