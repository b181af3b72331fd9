// A real, throwaway PostgreSQL server for tests: initdb into a fresh temporary directory, start
// `postgres` on a free loopback port (optionally with TLS from a throwaway CA), and tear it all
// down again. Tuned for speed, never for durability.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { chown, mkdir, mkdtemp, open, readdir, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { createCertificateAuthority, issueServerCertificate } from './tls.ts';

const execFileAsync = promisify(execFile);

/** Environment variable carrying the superuser URL of the test run's shared server. */
export const PG_URL_ENV = 'ACCORD_TEST_PG_URL';
/** Environment variable carrying the CA PEM file that signed the shared server's certificate. */
export const PG_CA_FILE_ENV = 'ACCORD_TEST_PG_CA_FILE';
/** Overrides the directory holding `initdb` and `postgres` (default: newest Debian install). */
export const PG_BIN_ENV = 'ACCORD_TEST_PG_BIN';

/** A running test PostgreSQL server. */
export interface PostgresServer {
  /** Superuser connection URL on 127.0.0.1, without TLS parameters. */
  url: string;
  host: string;
  port: number;
  /** CA PEM file that signed the server certificate, when TLS is on. */
  caFile?: string;
  /** Creates an empty database with a unique name and returns its (superuser) URL. */
  createDatabase(prefix?: string): Promise<string>;
  /** Fast shutdown, then removes the temporary directory. Idempotent. */
  stop(): Promise<void>;
}

/** Options for {@link startPostgres}. */
export interface StartPostgresOptions {
  /** Serve TLS with a throwaway CA (exposed as `caFile`). Default true. */
  tls?: boolean;
}

interface OsUser {
  uid: number;
  gid: number;
}

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 30_000;
const SUPERUSER = 'postgres';

// Servers still running, so a run that dies without calling stop() does not leave them behind.
const live = new Map<number, { dir: string; dataDir: string }>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', killAllSync);
}

/**
 * Immediate shutdown of every server this process started and did not stop. Synchronous, so it is
 * safe in a process 'exit' handler (runners call process.exit from their signal handlers).
 */
export function killAllSync(): void {
  for (const [pid, { dir, dataDir }] of live) {
    live.delete(pid);
    try {
      process.kill(pid, 'SIGQUIT');
    } catch {
      // already gone
    }
    // The postmaster is our child, so it stays a zombie until the event loop reaps it and
    // kill(pid, 0) keeps succeeding; its pid file disappears when it has really finished.
    const pidFile = join(dataDir, 'postmaster.pid');
    const deadline = Date.now() + 5_000;
    const cell = new Int32Array(new SharedArrayBuffer(4));
    while (existsSync(pidFile) && Date.now() < deadline) Atomics.wait(cell, 0, 0, 20);
    rmSync(dir, { recursive: true, force: true });
  }
}

async function findBinDir(): Promise<string> {
  const override = process.env[PG_BIN_ENV];
  if (override) return override;
  const root = '/usr/lib/postgresql';
  let versions: string[] = [];
  try {
    versions = (await readdir(root)).filter((v) => /^\d+(\.\d+)?$/.test(v));
  } catch {
    // not installed; reported below
  }
  versions.sort((a, b) => Number.parseFloat(b) - Number.parseFloat(a));
  for (const v of versions) {
    const bin = join(root, v, 'bin');
    if (existsSync(join(bin, 'initdb')) && existsSync(join(bin, 'postgres'))) return bin;
  }
  throw new Error(
    `PostgreSQL server binaries not found in ${root}/<version>/bin; install the 'postgresql' package or set ${PG_BIN_ENV}`,
  );
}

async function lookupOsUser(name: string): Promise<OsUser> {
  try {
    const [uid, gid] = await Promise.all([
      execFileAsync('id', ['-u', name]).then((r) => Number(r.stdout.trim())),
      execFileAsync('id', ['-g', name]).then((r) => Number(r.stdout.trim())),
    ]);
    return { uid, gid };
  } catch (err) {
    throw new Error(`running as root, but OS user '${name}' does not exist (initdb refuses to run as root)`, {
      cause: err,
    });
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function logTail(logFile: string, lines = 40): Promise<string> {
  try {
    return (await readFile(logFile, 'utf8')).trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no server log)';
  }
}

function childOptions(owner: OsUser | undefined, cwd: string) {
  // spawn's uid/gid switch user like `runuser -u postgres` would, but the pid we get back is the
  // postmaster itself, which is what shutdown needs to signal.
  return { cwd, ...(owner ? { uid: owner.uid, gid: owner.gid } : {}) };
}

/** Resolves true when `p` settles within `ms`, false otherwise; never keeps the process alive. */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([p.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function databaseUrl(baseUrl: string, database: string): string {
  const u = new URL(baseUrl);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

/** Superuser `CREATE DATABASE` with a unique, valid identifier; returns the new database's URL. */
export async function createDatabase(superuserUrl: string, prefix = 'test'): Promise<string> {
  const stem = prefix.toLowerCase().replace(/[^a-z0-9_]/g, '_').replace(/^[^a-z_]/, '_$&').slice(0, 40) || 'test';
  const name = `${stem}_${randomBytes(6).toString('hex')}`;
  const client = new pg.Client({ connectionString: superuserUrl });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE "${name}"`);
  } finally {
    await client.end();
  }
  return databaseUrl(superuserUrl, name);
}

async function waitUntilReady(url: string, child: ChildProcess, exited: Promise<unknown>): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`postgres exited during startup (code ${child.exitCode ?? child.signalCode})`);
    }
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
    client.on('error', () => {}); // a refused socket may also emit 'error' after connect() rejects
    try {
      await client.connect();
      await client.query('select 1');
      await client.end();
      return;
    } catch (err) {
      lastError = err;
      await client.end().catch(() => {});
    }
    await settlesWithin(exited, 100);
  }
  throw new Error(`postgres did not accept connections within ${READY_TIMEOUT_MS / 1000} s`, { cause: lastError });
}

/** Starts a fresh PostgreSQL server in a temporary directory; call `stop()` when done. */
export async function startPostgres(opts: StartPostgresOptions = {}): Promise<PostgresServer> {
  const tls = opts.tls ?? true;
  const bin = await findBinDir();
  const owner = process.getuid?.() === 0 ? await lookupOsUser('postgres') : undefined;
  const dir = await mkdtemp(join(tmpdir(), 'accord-pg-'));
  const dataDir = join(dir, 'data');
  const socketDir = join(dir, 'sock');
  const logFile = join(dir, 'postgres.log');
  const own = async (path: string) => {
    if (owner) await chown(path, owner.uid, owner.gid);
  };

  try {
    await own(dir);
    await mkdir(socketDir, { mode: 0o700 });
    await own(socketDir);
    try {
      await execFileAsync(
        join(bin, 'initdb'),
        // Trust auth is acceptable only because the server listens on loopback and a private socket dir.
        ['-D', dataDir, '-U', SUPERUSER, '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions'],
        childOptions(owner, dir),
      );
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string };
      throw new Error(`initdb failed:\n${e.stderr ?? ''}${e.stdout ?? ''}`, { cause: err });
    }

    const settings: Record<string, string> = {
      listen_addresses: '127.0.0.1',
      unix_socket_directories: socketDir,
      fsync: 'off',
      synchronous_commit: 'off',
      full_page_writes: 'off',
      max_connections: '200',
    };
    let caFile: string | undefined;
    if (tls) {
      const tlsDir = join(dir, 'tls');
      await mkdir(tlsDir, { mode: 0o700 });
      const ca = await createCertificateAuthority(tlsDir);
      const cert = await issueServerCertificate(ca, tlsDir, {
        commonName: 'localhost',
        ipAddresses: ['127.0.0.1'],
      });
      // postgres insists its key file is owned by it (or root) and not group/world readable.
      for (const path of [tlsDir, cert.certFile, cert.keyFile]) await own(path);
      Object.assign(settings, { ssl: 'on', ssl_cert_file: cert.certFile, ssl_key_file: cert.keyFile });
      caFile = ca.certFile;
    }

    // The chosen port can be taken between probing and binding; retry on that one failure.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const args = ['-D', dataDir, '-p', String(port)];
      for (const [k, v] of Object.entries(settings)) args.push('-c', `${k}=${v}`);
      const log = await open(logFile, 'a');
      let child: ChildProcess;
      try {
        // Own process group: a Ctrl-C aimed at the test run must not shut the server down under
        // running tests; the owner stops it (or the exit hook does).
        child = spawn(join(bin, 'postgres'), args, {
          ...childOptions(owner, dir),
          detached: true,
          stdio: ['ignore', log.fd, log.fd],
        });
      } finally {
        await log.close();
      }
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.once('error', () => {}); // spawn failures surface as an early exit below
      if (child.pid !== undefined) {
        live.set(child.pid, { dir, dataDir });
        installExitHook();
      }
      const url = `postgres://${SUPERUSER}@127.0.0.1:${port}/postgres`;
      try {
        await waitUntilReady(url, child, exited);
      } catch (err) {
        if (child.pid !== undefined) live.delete(child.pid);
        child.kill('SIGQUIT');
        await settlesWithin(exited, 5_000);
        const tail = await logTail(logFile);
        if (attempt < 3 && /could not (bind|create listen)/i.test(tail)) continue;
        throw new Error(`${(err as Error).message}\n--- server log (tail) ---\n${tail}`, { cause: err });
      }
      return makeServer({ url, port, caFile, child, exited, dir });
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

function makeServer(s: {
  url: string;
  port: number;
  caFile: string | undefined;
  child: ChildProcess;
  exited: Promise<void>;
  dir: string;
}): PostgresServer {
  let stopping: Promise<void> | undefined;
  const stop = async () => {
    const running = () => s.child.exitCode === null && s.child.signalCode === null;
    // SIGINT is PostgreSQL's "fast" shutdown: abort sessions, checkpoint, exit.
    if (running()) s.child.kill('SIGINT');
    for (const [signal, wait] of [
      ['SIGQUIT', STOP_TIMEOUT_MS],
      ['SIGKILL', 5_000],
    ] as const) {
      if (await settlesWithin(s.exited, wait)) break;
      s.child.kill(signal);
    }
    await s.exited;
    if (s.child.pid !== undefined) live.delete(s.child.pid);
    await rm(s.dir, { recursive: true, force: true });
  };
  return {
    url: s.url,
    host: '127.0.0.1',
    port: s.port,
    ...(s.caFile ? { caFile: s.caFile } : {}),
    createDatabase: (prefix) => createDatabase(s.url, prefix),
    stop: () => {
      stopping ??= stop();
      return stopping;
    },
  };
}

/**
 * The test run's shared server (from {@link PG_URL_ENV} / {@link PG_CA_FILE_ENV}, set by
 * test/run.ts) or, when a test file runs on its own, a private one. `stop()` only stops a server
 * this call started, so tests can call it unconditionally.
 */
export async function getTestPostgres(opts: StartPostgresOptions = {}): Promise<PostgresServer> {
  const url = process.env[PG_URL_ENV];
  const caFile = process.env[PG_CA_FILE_ENV];
  const wantTls = opts.tls ?? true;
  if (!url || (wantTls && !caFile)) return startPostgres(opts);
  const u = new URL(url);
  return {
    url,
    host: u.hostname,
    port: Number(u.port || 5432),
    ...(caFile ? { caFile } : {}),
    createDatabase: (prefix) => createDatabase(url, prefix),
    stop: async () => {},
  };
}

/**
 * A new database owned by a new login role that has CREATEROLE but is not a superuser: the
 * privileges a production deployment gives Accord. Returns the URL connecting as that role.
 */
export async function createOwnedDatabase(superuserUrl: string, prefix = 'accord'): Promise<string> {
  const url = await createDatabase(superuserUrl, prefix);
  const dbName = new URL(url).pathname.slice(1);
  const role = `${prefix}_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: superuserUrl });
  await admin.connect();
  try {
    await admin.query(`create role ${role} login createrole`);
    await admin.query(`alter database ${dbName} owner to ${role}`);
  } finally {
    await admin.end();
  }
  const u = new URL(url);
  u.username = role;
  return u.toString();
}
