// Running the real CLI and server as child processes, for end-to-end tests.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { request } from 'node:https';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = join(ROOT, 'bin', 'accord.js');
export const PASSWORD = 'correct horse battery staple';
export const EMAIL = 'ops@example.test';
export const READY_TIMEOUT_MS = 90_000;
export const STACK_LINE = /^\s+at /m;

/** The environment children get: ours without any ACCORD_* (the harness sets some), plus `extra`. */
export function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ACCORD_')) env[k] = v;
  return { ...env, ...extra };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `accord ...args` to completion (in the repository, or in `cwd`). */
export function cli(args: readonly string[], env: Record<string, string>, cwd: string = ROOT): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d;
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d;
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The JSON document a `--json` command printed on stdout. */
export function parsed<T = unknown>(r: CliResult): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`stdout is not one JSON document (exit ${r.code}):\n${r.stdout}\n--- stderr\n${r.stderr}`);
  }
}

/** Asserts a successful `--json` command and returns its document. */
export function ok<T = unknown>(r: CliResult): T {
  assert.equal(r.code, 0, `exit 0 expected, got ${r.code}\n${r.stdout}\n${r.stderr}`);
  return parsed<T>(r);
}

/** Asserts a failed `--json` command: non-zero exit and `{"error":{"code": code}}` on stdout. */
export function fails(r: CliResult, code: string): { code: string; message: string; details?: Record<string, unknown> } {
  assert.notEqual(r.code, 0, `non-zero exit expected\n${r.stdout}\n${r.stderr}`);
  const doc = parsed<{ error: { code: string; message: string; details?: Record<string, unknown> } }>(r);
  assert.deepEqual(Object.keys(doc), ['error']);
  assert.equal(doc.error.code, code, `error code\n${r.stdout}`);
  assert.equal(typeof doc.error.message, 'string');
  assert.doesNotMatch(r.stdout + r.stderr, STACK_LINE, 'no stack trace');
  return doc.error;
}

export interface Ready {
  event: 'ready';
  url: string;
  engine: string;
  database: string;
  caFile: string;
  caFingerprint: string;
  setup: { state: string; token?: string; expiresAt?: string };
}

/** An `accord start` child process. */
export class ServerProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stdout = '';
  stderr = '';

  private constructor(child: ChildProcess) {
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    child.stdout?.on('data', (d: Buffer) => {
      this.stdout += d;
    });
    child.stderr?.on('data', (d: Buffer) => {
      this.stderr += d;
    });
  }

  static spawn(args: readonly string[], env: Record<string, string>): ServerProcess {
    const child = spawn(process.execPath, [BIN, 'start', '--json', '--log-level', 'warn', ...args], {
      cwd: ROOT,
      env: childEnv(env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.once('error', () => {}); // surfaces as an exit
    return new ServerProcess(child);
  }

  /** The first stdout line that is the `ready` event; rejects if the process exits first. */
  ready(): Promise<Ready> {
    return new Promise((resolve, reject) => {
      let done = false;
      const finish = (fn: () => void) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.child.stdout?.off('data', check);
        fn();
      };
      const check = () => {
        for (const line of this.stdout.split('\n')) {
          try {
            const doc = JSON.parse(line) as Partial<Ready>;
            if (doc?.event === 'ready') return finish(() => resolve(doc as Ready));
          } catch {
            // not JSON: a log line or a partial line
          }
        }
      };
      const timer = setTimeout(
        () => finish(() => reject(new Error(`no ready line within ${READY_TIMEOUT_MS} ms\n${this.stdout}\n${this.stderr}`))),
        READY_TIMEOUT_MS,
      );
      this.child.stdout?.on('data', check);
      void this.exited.then(({ code, signal }) => {
        check();
        finish(() => reject(new Error(`accord start exited (${code ?? signal}) before ready\n${this.stdout}\n${this.stderr}`)));
      });
      check();
    });
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** SIGTERM and wait for the exit. */
  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.running) this.child.kill('SIGTERM');
    return this.exited;
  }

  /** For `after` hooks: SIGTERM, then SIGKILL if it lingers. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(t);
  }
}

/** A plain HTTPS GET trusting only the server's CA. */
export function get(url: string, ca: string, headers: Record<string, string> = {}): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = request({ host: '127.0.0.1', port: u.port, path: u.pathname, servername: 'localhost', ca, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body }));
    });
    req.on('error', reject);
    req.end();
  });
}

