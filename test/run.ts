// `npm test`: typecheck and lint run alongside the tests against one shared PostgreSQL server.
// Usage: npm test [-- <substring>...]   (only test files whose path contains a substring)
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { killAllSync, PG_CA_FILE_ENV, PG_URL_ENV, type PostgresServer, startPostgres } from './harness/postgres.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const filters = process.argv.slice(2);

interface StepResult {
  name: string;
  ok: boolean;
  output: string;
  seconds: number;
}

const children = new Set<ChildProcess>();
const tapDir = await mkdtemp(join(tmpdir(), 'accord-test-'));

// Children run in their own process group so that a signal to us can take down everything they
// started (node --test spawns one process per file); the server goes via the harness exit hook.
function onSignal(signal: NodeJS.Signals, code: number): void {
  process.on(signal, () => {
    console.error(`\n${signal}: stopping test processes and PostgreSQL`);
    for (const child of children) {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    killAllSync();
    rmSync(tapDir, { recursive: true, force: true });
    process.exit(code);
  });
}
onSignal('SIGINT', 130);
onSignal('SIGTERM', 143);

/** Runs a command; `capture` buffers its output (to print later), otherwise it streams. */
function run(cmd: string, args: string[], opts: { capture: boolean; env?: NodeJS.ProcessEnv }): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      cwd: root,
      env: opts.env ?? process.env,
      detached: true,
      stdio: opts.capture ? ['ignore', 'pipe', 'pipe'] : ['ignore', 'inherit', 'inherit'],
    });
    children.add(child);
    let output = '';
    child.stdout?.on('data', (d: Buffer) => {
      output += d;
    });
    child.stderr?.on('data', (d: Buffer) => {
      output += d;
    });
    child.once('error', (err) => {
      output += `${err.message}\n`;
    });
    child.once('close', (code, signal) => {
      children.delete(child);
      resolve({ code: code ?? (signal ? 128 : 1), output });
    });
  });
}

async function timed(name: string, body: () => Promise<{ ok: boolean; output: string }>): Promise<StepResult> {
  const started = Date.now();
  let res: { ok: boolean; output: string };
  try {
    res = await body();
  } catch (err) {
    res = { ok: false, output: `${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n` };
  }
  return { name, ...res, seconds: (Date.now() - started) / 1000 };
}

async function captured(name: string, cmd: string, args: string[]): Promise<StepResult> {
  return timed(name, async () => {
    const { code, output } = await run(cmd, args, { capture: true });
    return { ok: code === 0, output };
  });
}

async function findTestFiles(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...(await findTestFiles(path)));
    else if (entry.isFile() && entry.name.endsWith('.test.ts')) found.push(path);
  }
  return found;
}

let passed = 0;
let failed = 0;

async function testStep(): Promise<StepResult> {
  return timed('test', async () => {
    const all = [...(await findTestFiles(join(root, 'src'))), ...(await findTestFiles(join(root, 'test')))]
      .map((f) => relative(root, f).split(sep).join('/'))
      .sort();
    const files = filters.length ? all.filter((f) => filters.some((s) => f.includes(s))) : all;
    if (files.length === 0) {
      const why = filters.length ? ` matching ${filters.map((s) => JSON.stringify(s)).join(' or ')}` : '';
      return { ok: false, output: `no test files${why}\n` };
    }

    let pg: PostgresServer | undefined;
    try {
      pg = await startPostgres({ tls: true });
      console.log(`── test: ${files.length} file(s), PostgreSQL at ${pg.url}`);
      const tapFile = join(tapDir, 'results.tap');
      const env = { ...process.env, [PG_URL_ENV]: pg.url, [PG_CA_FILE_ENV]: pg.caFile ?? '' };
      const { code } = await run(
        process.execPath,
        [
          '--import',
          'tsx',
          '--test',
          '--test-concurrency=2',
          '--test-reporter=spec',
          '--test-reporter-destination=stdout',
          // A second, machine-readable reporter for the counts, unaffected by what tests print.
          '--test-reporter=tap',
          `--test-reporter-destination=${tapFile}`,
          ...files,
        ],
        { capture: false, env },
      );
      const tap = existsSync(tapFile) ? await readFile(tapFile, 'utf8') : '';
      const count = (key: string) => Number(tap.match(new RegExp(`^# ${key} (\\d+)$`, 'm'))?.[1] ?? 0);
      passed = count('pass');
      // Cancelled tests (a file that crashed or timed out) did not pass either.
      failed = count('fail') + count('cancelled');
      if (!tap) return { ok: false, output: 'the test runner produced no results\n' };
      return { ok: code === 0 && failed === 0, output: '' };
    } finally {
      await pg?.stop();
    }
  });
}

// biome fails on a path that does not exist (bench/ may not yet).
const lintPaths = ['src', 'test', 'bench', 'bin'].filter((p) => existsSync(join(root, p)));
const [typecheck, lint, tests] = await Promise.all([
  captured('typecheck', 'npx', ['--no', '--', 'tsc', '--noEmit', '-p', 'tsconfig.json']),
  captured('lint', 'npx', ['--no', '--', 'biome', 'lint', ...lintPaths]),
  testStep(),
]);
await rm(tapDir, { recursive: true, force: true });

const steps = [typecheck, lint, tests];
for (const step of steps) {
  if (!step.output.trim()) continue;
  console.log(`\n── ${step.name} output`);
  process.stdout.write(step.output.endsWith('\n') ? step.output : `${step.output}\n`);
}
console.log('');
for (const step of steps) {
  console.log(`${step.ok ? 'ok    ' : 'FAILED'} ${step.name.padEnd(9)} ${step.seconds.toFixed(1)} s`);
}
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = steps.every((s) => s.ok) ? 0 : 1;
