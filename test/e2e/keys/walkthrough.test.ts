// The data-protection issue's acceptance walkthrough through the real CLI and server processes:
// local KMS on PGlite, the root key in SoftHSM on PostgreSQL, the refusals at start (wrong PIN,
// unknown token, missing module, wrong or missing passphrase, lost root key file), and a rotation
// job killed with SIGKILL half-way and resumed by the next start.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { Keyring } from '../../../src/crypto/keyring/index.ts';
import { openKms } from '../../../src/crypto/kms/index.ts';
import { openDatabase } from '../../../src/db/index.ts';
import { readSecret } from '../../../src/keys/index.ts';
import { type CliResult, cli, EMAIL, fails, ok, PASSWORD, type Ready, ServerProcess } from '../../harness/cli.ts';
import { newPostgresDatabaseUrl } from '../../harness/engines.ts';
import { createSoftHsmToken, type SoftHsmToken } from '../../harness/softhsm.ts';

interface KeyStatus {
  tenant: string;
  provider: string;
  rootKeyId: string;
  kek: { version: number; state: string; rootKeyId: string }[];
  stages: { stage: string; deks: { version: number; state: string; kekVersion: number; values: number }[] }[];
  jobs: { id: string; kind: string; state: string; progress: Record<string, unknown>; attempts: number; lastAttemptFailed: boolean }[];
}
type Job = KeyStatus['jobs'][number];
interface Rotated {
  kind: 'kek' | 'dek';
  version: number;
  jobId: string;
}

const STAGES = ['development', 'test', 'production'];
const JOB_TIMEOUT_MS = 30_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every server this file starts, so the `after` hooks can kill them and the scans can read them. */
const servers: ServerProcess[] = [];
after(async () => {
  for (const s of servers) await s.kill();
});

function spawnServer(dataDir: string, env: Record<string, string>, logLevel = 'info'): ServerProcess {
  // `info` by default (the later --log-level wins over the harness's `warn`) so the secret scan
  // has request logs to look at.
  const s = ServerProcess.spawn(['--port', '0', '--data-dir', dataDir, '--log-level', logLevel], env);
  servers.push(s);
  return s;
}

/**
 * Starts a server that must refuse: returns its exit and output as a CliResult for `fails()`.
 * A server that comes up instead is stopped and the test fails (rather than hanging).
 */
async function refusedStart(dataDir: string, env: Record<string, string>): Promise<CliResult> {
  // `warn`: with `info`, log lines share stdout with the `--json` error document.
  const s = spawnServer(dataDir, env, 'warn');
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    s.exited.then(() => 'exited' as const),
    s.ready().then(
      () => 'ready' as const,
      () => 'exited' as const,
    ),
    new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), 60_000);
    }),
  ]);
  clearTimeout(timer);
  if (outcome !== 'exited') {
    await s.kill();
    assert.fail(`accord start was expected to refuse, but it ${outcome === 'ready' ? 'started' : 'neither started nor exited'}\n${s.stdout}\n${s.stderr}`);
  }
  const { code } = await s.exited;
  return { code, stdout: s.stdout, stderr: s.stderr };
}

/** Creates the first operator and logs the CLI in (profile under `cliEnv.ACCORD_CONFIG_DIR`). */
async function setupAndLogin(ready: Ready, dir: string, cliEnv: Record<string, string>): Promise<void> {
  const pw = join(dir, 'ops.pw');
  await writeFile(pw, PASSWORD);
  ok(await cli(['setup', '--url', ready.url, '--ca-file', ready.caFile, '--token', ready.setup.token ?? '', '--email', EMAIL, '--password-file', pw, '--json'], cliEnv));
  await login(ready, dir, cliEnv);
}

/** Logs the CLI in again, e.g. after a restart on a new port. */
async function login(ready: Ready, dir: string, cliEnv: Record<string, string>): Promise<void> {
  ok(await cli(['login', '--url', ready.url, '--ca-file', ready.caFile, '--email', EMAIL, '--password-file', join(dir, 'ops.pw'), '--json'], cliEnv));
}

/**
 * Sets stage secrets straight over the API with the CLI's session: keep-alive HTTPS, 16 requests
 * in flight (one CLI process per secret would cost about a second each).
 */
async function putSecrets(ready: Ready, cliEnv: Record<string, string>, stage: string, secrets: Iterable<[string, string]>): Promise<void> {
  const profile = JSON.parse(readFileSync(join(cliEnv.ACCORD_CONFIG_DIR as string, 'profile.json'), 'utf8')) as { token: string; ca: string };
  const agent = new Agent({ keepAlive: true, maxSockets: 16, ca: profile.ca });
  const port = new URL(ready.url).port;
  const put = (name: string, value: string) =>
    new Promise<void>((resolve, reject) => {
      const body = JSON.stringify({ value });
      const req = request(
        {
          host: '127.0.0.1',
          port,
          servername: 'localhost',
          agent,
          method: 'PUT',
          path: `/api/v1/tenants/acme/stages/${stage}/secrets/${name}`,
          headers: { authorization: `Bearer ${profile.token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            text += c;
          });
          res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`PUT ${name}: ${res.statusCode} ${text}`))));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  const queue = [...secrets];
  try {
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let next = queue.shift(); next; next = queue.shift()) await put(next[0], next[1]);
      }),
    );
  } finally {
    agent.destroy();
  }
}

async function status(cliEnv: Record<string, string>, tenant = 'acme'): Promise<KeyStatus> {
  return ok<KeyStatus>(await cli(['keys', 'status', '--tenant', tenant, '--json'], cliEnv));
}

/** Polls `probe` until `done` holds, at most `timeoutMs`; fails with the last value seen. */
async function until<T>(what: string, probe: () => Promise<T>, done: (v: T) => boolean, timeoutMs = JOB_TIMEOUT_MS, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (done(v)) return v;
    if (Date.now() > deadline) assert.fail(`${what}: not reached within ${timeoutMs} ms; last seen ${JSON.stringify(v)}`);
    await sleep(everyMs);
  }
}

/** Polls `keys status` until the job is done; asserts it finished without an error. */
async function jobDone(cliEnv: Record<string, string>, jobId: string, timeoutMs = JOB_TIMEOUT_MS): Promise<{ status: KeyStatus; job: Job }> {
  const s = await until(
    `job ${jobId} done`,
    () => status(cliEnv),
    (v) => v.jobs.find((j) => j.id === jobId)?.state === 'done',
    timeoutMs,
  );
  const job = s.jobs.find((j) => j.id === jobId) as Job;
  assert.equal(job.lastAttemptFailed, false, `job ${jobId} ran without error`);
  return { status: s, job };
}

const deksOf = (s: KeyStatus, stage: string) => s.stages.find((x) => x.stage === stage)?.deks.map((d) => [d.version, d.state, d.values]);

/** Asserts that none of `needles` occurs in the servers' captured output. */
function assertNotInOutput(procs: readonly ServerProcess[], needles: readonly string[]): void {
  const text = procs.map((p) => p.stdout + p.stderr).join('\n');
  assert.ok(text.length > 0, 'there is captured output to scan');
  const found = needles.filter((n) => text.includes(n));
  assert.deepEqual(found, [], 'secret values or PINs in server output');
}

/** The tenant's chain (and the platform's, with `platform`) as exported JSON lines. */
async function exportedAudit(cliEnv: Record<string, string>, platform: boolean): Promise<string> {
  let text = '';
  for (const scope of platform ? [['--tenant', 'acme'], ['--platform']] : [['--tenant', 'acme']]) {
    const r = await cli(['audit', 'export', ...scope, '--format', 'jsonl'], cliEnv);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.ok(r.stdout.includes('"action"'), 'the export holds records');
    text += r.stdout;
  }
  return text;
}

async function secretFile(dir: string, name: string, value: string): Promise<string> {
  const f = join(dir, `${name}.value`);
  await writeFile(f, `${value}\n`, { mode: 0o600 });
  return f;
}

// The four suites share nothing but the PostgreSQL server, so they run side by side (each one's
// steps stay in order); most of the time goes into starting CLI and server processes.
describe('data protection end to end', { concurrency: true }, () => {
  describe('keys walkthrough through the CLI with the local KMS on PGlite', { concurrency: false }, () => {
    let server: ServerProcess;
    let dir: string;
    let cliEnv: Record<string, string>;
    const secrets = { SMTP_PASSWORD: `smtp-${randomBytes(12).toString('hex')}`, API_TOKEN: `tok-${randomBytes(12).toString('hex')}` };

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'accord-keys-local-'));
      cliEnv = { ACCORD_CONFIG_DIR: join(dir, 'cli') };
      server = spawnServer(join(dir, 'data'), {});
      const ready = await server.ready();
      assert.equal(ready.engine, 'pglite');
      await setupAndLogin(ready, dir, cliEnv);
      ok(await cli(['tenant', 'create', 'acme', '--display-name', 'Acme Corp', '--json'], cliEnv));
    });
    after(async () => {
      await server?.kill();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    test('a new tenant has KEK v1 active under the local root key and a v1 data key on every stage', async () => {
      const s = await status(cliEnv);
      assert.equal(s.tenant, 'acme');
      assert.equal(s.provider, 'local');
      assert.match(s.rootKeyId, /^local:[0-9a-f]{16}:v1$/);
      assert.deepEqual(s.kek.map((k) => [k.version, k.state, k.rootKeyId]), [[1, 'active', s.rootKeyId]]);
      assert.deepEqual(s.stages.map((x) => x.stage), STAGES);
      for (const st of s.stages) assert.deepEqual(st.deks.map((d) => [d.version, d.state, d.kekVersion, d.values]), [[1, 'active', 1, 0]], st.stage);
      assert.ok(existsSync(join(dir, 'data', 'kms', 'root-keys.json')), 'the local root key file was generated under the data dir');
    });

    test('secrets set through the CLI are listed by name with masked values only', async () => {
      for (const [name, value] of Object.entries(secrets)) {
        const r = ok<{ name: string; keyVersion: number }>(
          await cli(['secret', 'set', name, '--tenant', 'acme', '--stage', 'development', '--value-file', await secretFile(dir, name, value), '--json'], cliEnv),
        );
        assert.deepEqual(r, { name, keyVersion: 1 });
      }
      const res = await cli(['secret', 'list', '--tenant', 'acme', '--stage', 'development', '--json'], cliEnv);
      const list = ok<{ name: string; value: string; keyVersion: number }[]>(res);
      assert.deepEqual(list.map((x) => [x.name, x.value, x.keyVersion]), [
        ['API_TOKEN', '********', 1],
        ['SMTP_PASSWORD', '********', 1],
      ]);
      for (const v of Object.values(secrets)) assert.ok(!res.stdout.includes(v), 'a listed value is never the secret');
    });

    test('rotating the tenant KEK makes v2 active, and its job rewraps every data key and destroys v1', async () => {
      const r = ok<Rotated>(await cli(['keys', 'rotate', '--tenant', 'acme', '--json'], cliEnv));
      assert.equal(r.kind, 'kek');
      assert.equal(r.version, 2);
      assert.match(r.jobId, /^[0-9a-f-]{36}$/);
      const { status: s, job } = await jobDone(cliEnv, r.jobId);
      assert.equal(job.kind, 'keys.rewrap-tenant');
      assert.deepEqual(s.kek.map((k) => [k.version, k.state]), [[2, 'active']], 'only KEK v2 remains');
      for (const st of s.stages) assert.deepEqual(st.deks.map((d) => [d.version, d.kekVersion]), [[1, 2]], st.stage);
      assert.deepEqual(deksOf(s, 'development'), [[1, 'active', 2]], 'the two secrets are still under DEK v1');
      assert.deepEqual(job.progress.destroyedVersions, [1]);
    });

    test('rotating the development data key re-encrypts its values under v2 and destroys v1', async () => {
      const r = ok<Rotated>(await cli(['keys', 'rotate', '--tenant', 'acme', '--stage', 'development', '--json'], cliEnv));
      assert.equal(r.kind, 'dek');
      assert.equal(r.version, 2);
      const { status: s, job } = await jobDone(cliEnv, r.jobId);
      assert.equal(job.kind, 'keys.reencrypt-stage');
      assert.equal(job.progress.reencrypted, 2);
      assert.deepEqual(deksOf(s, 'development'), [[2, 'active', 2]]);
      assert.deepEqual(deksOf(s, 'test'), [[1, 'active', 0]], 'other stages keep their data key');
      assert.deepEqual(deksOf(s, 'production'), [[1, 'active', 0]]);
    });

    test('deleting the tenant shreds its keys: it is gone, and the platform audit trail says what was destroyed', async () => {
      assert.deepEqual(ok(await cli(['tenant', 'delete', 'acme', '--confirm', 'acme', '--json'], cliEnv)), { deleted: 'acme' });
      fails(await cli(['keys', 'status', '--tenant', 'acme', '--json'], cliEnv), 'TENANCY_TENANT_NOT_FOUND');
      const res = ok<{ records: { action: string; details: { name?: string; keysDestroyed?: unknown } }[] }>(
        await cli(['audit', 'search', '--platform', '--action', 'tenant.deleted', '--json'], cliEnv),
      );
      assert.equal(res.records.length, 1);
      assert.equal(res.records[0]?.details.name, 'acme');
      assert.deepEqual(res.records[0]?.details.keysDestroyed, { tenantKekVersions: [2], stageDataKeys: 3 });
    });

    test('no secret value appears in the server output', () => {
      assertNotInOutput([server], Object.values(secrets));
    });
  });

  describe('keys walkthrough with the root key in SoftHSM on PostgreSQL', { concurrency: false }, () => {
    const PIN = `pin-${randomBytes(6).toString('hex')}`;
    const LABEL = 'accord';
    let token: SoftHsmToken;
    let dir: string;
    let dbUrl: string;
    let serverEnv: Record<string, string>;
    let cliEnv: Record<string, string>;
    let server: ServerProcess;
    let ready: Ready;
    const started: ServerProcess[] = [];
    let oldRoot: string;
    const secrets: Record<string, string> = {
      SMTP_PASSWORD: `smtp-${randomBytes(12).toString('hex')}`,
      API_TOKEN: `tok-${randomBytes(12).toString('hex')}`,
      WEBHOOK_KEY: `hook-${randomBytes(12).toString('hex')}`,
    };

    before(async () => {
      token = await createSoftHsmToken({ label: LABEL, pin: PIN, soPin: `so-${PIN}` });
      dir = await mkdtemp(join(tmpdir(), 'accord-keys-hsm-'));
      dbUrl = await newPostgresDatabaseUrl();
      await writeFile(join(dir, 'pin.txt'), `${PIN}\n`, { mode: 0o600 });
      serverEnv = {
        ACCORD_DATABASE_URL: dbUrl,
        ACCORD_KMS: 'pkcs11',
        ACCORD_PKCS11_MODULE: token.module,
        ACCORD_PKCS11_TOKEN_LABEL: LABEL,
        ACCORD_PKCS11_PIN_FILE: join(dir, 'pin.txt'),
        ...token.env,
      };
      cliEnv = { ACCORD_CONFIG_DIR: join(dir, 'cli') };
      server = spawnServer(join(dir, 'data'), serverEnv);
      started.push(server);
      ready = await server.ready();
      assert.equal(ready.engine, 'postgres');
      await setupAndLogin(ready, dir, cliEnv);
      ok(await cli(['tenant', 'create', 'acme', '--display-name', 'Acme Corp', '--json'], cliEnv));
    });
    after(async () => {
      for (const s of started) await s.kill();
      await token?.cleanup();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    test('keys status names the pkcs11 provider, and no local root key file exists', async () => {
      const s = await status(cliEnv);
      assert.equal(s.provider, 'pkcs11');
      assert.match(s.rootKeyId, /^pkcs11:[0-9a-f]{16}:v1$/);
      oldRoot = s.rootKeyId;
      assert.deepEqual(s.kek.map((k) => [k.version, k.state, k.rootKeyId]), [[1, 'active', s.rootKeyId]]);
      for (const st of s.stages) assert.deepEqual(st.deks.map((d) => [d.version, d.kekVersion]), [[1, 1]], st.stage);
      assert.ok(!existsSync(join(dir, 'data', 'kms', 'root-keys.json')), 'no local key file next to an HSM');
    });

    test('with secrets set, a tenant KEK rotation under the HSM root key rewraps every data key and leaves only KEK v2', async () => {
      await putSecrets(ready, cliEnv, 'development', Object.entries(secrets));
      const r = ok<Rotated>(await cli(['keys', 'rotate', '--tenant', 'acme', '--json'], cliEnv));
      assert.deepEqual([r.kind, r.version], ['kek', 2]);
      const { status: s } = await jobDone(cliEnv, r.jobId);
      assert.deepEqual(s.kek.map((k) => [k.version, k.state]), [[2, 'active']]);
      assert.ok(s.stages.every((st) => st.deks.every((d) => d.kekVersion === 2)));
    });

    test('rotating the root key in the HSM rewraps the tenant KEK and retires the old root key', async () => {
      const r = ok<{ rootKeyId: string; jobId: string }>(await cli(['keys', 'rotate-root', '--json'], cliEnv));
      assert.match(r.rootKeyId, /^pkcs11:[0-9a-f]{16}:v2$/);
      assert.notEqual(r.rootKeyId, oldRoot);
      // The root job belongs to no tenant, so `keys status --tenant` does not list it: its row is
      // polled in the catalog, its effect is checked through the CLI.
      const client = new pg.Client({ connectionString: dbUrl });
      await client.connect();
      try {
        const job = await until(
          'root job done',
          async () => (await client.query<{ state: string; error: string | null; progress: { retiredRootKeys?: string[] } }>('select state, error, progress from accord.jobs where id = $1', [r.jobId])).rows[0],
          (j) => j?.state === 'done',
        );
        assert.equal(job?.error, null);
        assert.deepEqual(job?.progress.retiredRootKeys, [oldRoot], 'the old root key was destroyed in the HSM');
      } finally {
        await client.end();
      }
      const s = await status(cliEnv);
      assert.equal(s.rootKeyId, r.rootKeyId);
      assert.deepEqual(s.kek.map((k) => [k.version, k.rootKeyId]), [[2, r.rootKeyId]], 'the tenant KEK is wrapped under the new root key');
    });

    test('after a restart the secrets still decrypt: a data-key rotation re-encrypts all of them without a job error', async () => {
      await server.stop();
      server = spawnServer(join(dir, 'data'), serverEnv);
      started.push(server);
      await login(await server.ready(), dir, cliEnv);
      const before = await status(cliEnv);
      assert.equal(before.provider, 'pkcs11');
      assert.match(before.rootKeyId, /:v2$/, 'the HSM kept the new root key');
      const r = ok<Rotated>(await cli(['keys', 'rotate', '--tenant', 'acme', '--stage', 'development', '--json'], cliEnv));
      assert.deepEqual([r.kind, r.version], ['dek', 2]);
      // A fresh process has nothing cached: every value goes root key (HSM) → KEK → DEK v1 → plain.
      const { status: s, job } = await jobDone(cliEnv, r.jobId);
      assert.equal(job.progress.reencrypted, Object.keys(secrets).length);
      assert.equal(job.attempts, 1, 'no failed attempt before it');
      assert.deepEqual(deksOf(s, 'development'), [[2, 'active', Object.keys(secrets).length]]);
    });

    test('neither the secret values nor the PIN appear in the server output or the audit trail', async () => {
      assertNotInOutput(started, [...Object.values(secrets), PIN]);
      const audit = await exportedAudit(cliEnv, true);
      assert.ok(audit.includes('"key.root.rotated"') && audit.includes('"secret.set"'));
      assert.deepEqual([...Object.values(secrets), PIN].filter((v) => audit.includes(v)), []);
    });
  });

  describe('the server refuses to start on a KMS problem and never falls back to the local provider', { concurrency: false }, () => {
    const PIN = `pin-${randomBytes(6).toString('hex')}`;
    const WRONG_PIN = `pin-${randomBytes(6).toString('hex')}`;
    const LABEL = 'accord-refusals';
    let token: SoftHsmToken;
    let dir: string;
    let dbUrl: string;
    const rootKeyFile = (dataDir: string) => join(dataDir, 'kms', 'root-keys.json');

    before(async () => {
      token = await createSoftHsmToken({ label: LABEL, pin: PIN, soPin: `so-${PIN}` });
      dir = await mkdtemp(join(tmpdir(), 'accord-keys-refuse-'));
      await writeFile(join(dir, 'pin.txt'), PIN, { mode: 0o600 });
      await writeFile(join(dir, 'wrong-pin.txt'), WRONG_PIN, { mode: 0o600 });
      // Shared by the PKCS#11 refusals: none of them gets as far as writing a key.
      dbUrl = await newPostgresDatabaseUrl();
    });
    after(async () => {
      await token?.cleanup();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    async function pkcs11Start(name: string, overrides: Record<string, string>): Promise<{ r: CliResult; dataDir: string }> {
      const dataDir = join(dir, name);
      const env = {
        ACCORD_DATABASE_URL: dbUrl,
        ACCORD_KMS: 'pkcs11',
        ACCORD_PKCS11_MODULE: token.module,
        ACCORD_PKCS11_TOKEN_LABEL: LABEL,
        ACCORD_PKCS11_PIN_FILE: join(dir, 'pin.txt'),
        ...token.env,
        ...overrides,
      };
      return { r: await refusedStart(dataDir, env), dataDir };
    }

    test('a wrong PKCS#11 PIN is refused with CRYPTO_KMS_PIN_WRONG, without showing either PIN', async () => {
      const { r, dataDir } = await pkcs11Start('wrong-pin', { ACCORD_PKCS11_PIN_FILE: join(dir, 'wrong-pin.txt') });
      fails(r, 'CRYPTO_KMS_PIN_WRONG');
      assert.ok(!existsSync(rootKeyFile(dataDir)), 'no local root key was made instead');
      for (const pin of [PIN, WRONG_PIN]) assert.ok(!(r.stdout + r.stderr).includes(pin), 'no PIN in the output');
    });

    test('an unknown token label is refused with CRYPTO_KMS_TOKEN_NOT_FOUND', async () => {
      const { r, dataDir } = await pkcs11Start('no-token', { ACCORD_PKCS11_TOKEN_LABEL: 'no-such-token' });
      const err = fails(r, 'CRYPTO_KMS_TOKEN_NOT_FOUND');
      assert.equal(err.details?.tokenLabel, 'no-such-token');
      assert.ok(!existsSync(rootKeyFile(dataDir)));
    });

    test('a PKCS#11 module file that does not exist is refused with CRYPTO_KMS_UNAVAILABLE', async () => {
      const { r, dataDir } = await pkcs11Start('no-module', { ACCORD_PKCS11_MODULE: join(dir, 'missing', 'libpkcs11.so') });
      fails(r, 'CRYPTO_KMS_UNAVAILABLE');
      assert.ok(!existsSync(rootKeyFile(dataDir)));
    });

    describe('a local root key sealed with a passphrase', { concurrency: false }, () => {
      let dataDir: string;
      let env: Record<string, string>;
      let sealed: string;
      const PASSPHRASE = `pass-${randomBytes(12).toString('hex')}`;
      const WRONG = `pass-${randomBytes(12).toString('hex')}`;

      before(async () => {
        dataDir = join(dir, 'sealed');
        await writeFile(join(dir, 'passphrase.txt'), PASSPHRASE, { mode: 0o600 });
        await writeFile(join(dir, 'wrong-passphrase.txt'), WRONG, { mode: 0o600 });
        env = { ACCORD_DATABASE_URL: await newPostgresDatabaseUrl(), ACCORD_ROOT_KEY_PASSPHRASE_FILE: join(dir, 'passphrase.txt') };
        const s = spawnServer(dataDir, env);
        const ready = await s.ready();
        const cliEnv = { ACCORD_CONFIG_DIR: join(dir, 'sealed-cli') };
        await setupAndLogin(ready, dir, cliEnv);
        ok(await cli(['tenant', 'create', 'acme', '--json'], cliEnv));
        await s.stop();
        assertNotInOutput([s], [PASSPHRASE]);
        sealed = await readFile(rootKeyFile(dataDir), 'utf8');
        assert.equal((JSON.parse(sealed) as { protection: string }).protection !== 'none', true, 'the key file is sealed');
        assert.ok(!sealed.includes(PASSPHRASE));
      });

      test('a restart with a wrong passphrase is refused with CRYPTO_KMS_PASSPHRASE_WRONG and leaves the key file alone', async () => {
        const r = await refusedStart(dataDir, { ...env, ACCORD_ROOT_KEY_PASSPHRASE_FILE: join(dir, 'wrong-passphrase.txt') });
        fails(r, 'CRYPTO_KMS_PASSPHRASE_WRONG');
        assert.ok(!(r.stdout + r.stderr).includes(WRONG) && !(r.stdout + r.stderr).includes(PASSPHRASE));
        assert.equal(await readFile(rootKeyFile(dataDir), 'utf8'), sealed);
      });

      test('a restart without the passphrase is refused with CRYPTO_KMS_PASSPHRASE_REQUIRED', async () => {
        const { ACCORD_ROOT_KEY_PASSPHRASE_FILE: _, ...withoutPassphrase } = env;
        fails(await refusedStart(dataDir, withoutPassphrase), 'CRYPTO_KMS_PASSPHRASE_REQUIRED');
        assert.equal(await readFile(rootKeyFile(dataDir), 'utf8'), sealed);
      });

      test('once tenants exist, a deleted root key file is refused with CRYPTO_KMS_ROOT_KEY_MISSING instead of a new root key', async () => {
        await rm(rootKeyFile(dataDir));
        fails(await refusedStart(dataDir, env), 'CRYPTO_KMS_ROOT_KEY_MISSING');
        assert.ok(!existsSync(rootKeyFile(dataDir)), 'no new root key was generated');
      });
    });
  });

  describe('a rotation job killed with SIGKILL half-way resumes on restart and every value stays decryptable (PostgreSQL)', { concurrency: false }, () => {
    const COUNT = 500;
    let dir: string;
    let dataDir: string;
    let dbUrl: string;
    let env: Record<string, string>;
    let cliEnv: Record<string, string>;
    const started: ServerProcess[] = [];
    let server: ServerProcess;
    let ready: Ready;
    let db: pg.Client;
    let jobId: string;
    const values = new Map<string, string>();

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'accord-keys-crash-'));
      dataDir = join(dir, 'data');
      dbUrl = await newPostgresDatabaseUrl();
      env = { ACCORD_DATABASE_URL: dbUrl };
      cliEnv = { ACCORD_CONFIG_DIR: join(dir, 'cli') };
      server = spawnServer(dataDir, env);
      started.push(server);
      ready = await server.ready();
      await setupAndLogin(ready, dir, cliEnv);
      ok(await cli(['tenant', 'create', 'acme', '--json'], cliEnv));
      db = new pg.Client({ connectionString: dbUrl });
      await db.connect();
    });
    after(async () => {
      for (const s of started) await s.kill();
      await db?.end().catch(() => {});
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    test(`${COUNT} secrets set over keep-alive HTTPS land under development DEK v1`, async (t) => {
      for (let i = 0; i < COUNT; i++) values.set(`S${String(i).padStart(5, '0')}`, `v${i}-${randomBytes(16).toString('hex')}`);
      const t0 = Date.now();
      await putSecrets(ready, cliEnv, 'development', values);
      t.diagnostic(`${COUNT} secrets set in ${Date.now() - t0} ms`);
      assert.deepEqual(deksOf(await status(cliEnv), 'development'), [[1, 'active', COUNT]]);
    });

    test('a server killed with SIGKILL in the middle of the re-encryption leaves values under both key versions', async (t) => {
      const r = ok<Rotated>(await cli(['keys', 'rotate', '--tenant', 'acme', '--stage', 'development', '--json'], cliEnv));
      assert.deepEqual([r.kind, r.version], ['dek', 2]);
      jobId = r.jobId;
      // Polled straight from the catalog: a batch of 100 takes milliseconds, a CLI call much longer.
      const seen = await until(
        'the job half-way',
        async () => (await db.query<{ state: string; progress: { reencrypted?: number } }>('select state, progress from accord.jobs where id = $1', [r.jobId])).rows[0],
        (j) => j?.state === 'done' || (j?.state === 'running' && (j.progress.reencrypted ?? 0) > 0 && (j.progress.reencrypted ?? 0) < COUNT),
        JOB_TIMEOUT_MS,
        2,
      );
      server.child.kill('SIGKILL');
      const exit = await server.exited;
      assert.equal(seen?.state, 'running', 'the job was caught before it finished');
      assert.equal(exit.signal, 'SIGKILL');
      const split = await db.query<{ key_version: number; n: string }>(
        `select s.key_version, count(*) as n from accord.stage_secrets s join accord.stages st on st.id = s.stage_id
          where st.name = 'development' group by s.key_version order by s.key_version`,
      );
      const counts = Object.fromEntries(split.rows.map((x) => [x.key_version, Number(x.n)]));
      t.diagnostic(`killed at reencrypted=${seen?.progress.reencrypted}; in the database: ${JSON.stringify(counts)}`);
      assert.ok((counts[1] ?? 0) > 0 && (counts[2] ?? 0) > 0, `values under both versions: ${JSON.stringify(counts)}`);
      assert.equal((counts[1] ?? 0) + (counts[2] ?? 0), COUNT);
      const job = (await db.query<{ state: string }>('select state from accord.jobs where id = $1', [r.jobId])).rows[0];
      assert.equal(job?.state, 'running', 'the dead node still holds the job');
    });

    test('the restarted server resumes the job after the lease: all values move to v2 and DEK v1 is destroyed', async (t) => {
      const t0 = Date.now();
      server = spawnServer(dataDir, env);
      started.push(server);
      await login(await server.ready(), dir, cliEnv);
      const { status: s, job } = await jobDone(cliEnv, jobId, 45_000);
      t.diagnostic(`resumed and finished ${Date.now() - t0} ms after the restart (attempts ${job.attempts}, progress ${JSON.stringify(job.progress)})`);
      assert.equal(job.attempts, 2, 'claimed again after the first claim died');
      assert.deepEqual(deksOf(s, 'development'), [[2, 'active', COUNT]]);
      const versions = await db.query<{ key_version: number; n: string }>(
        `select s.key_version, count(*) as n from accord.stage_secrets s join accord.stages st on st.id = s.stage_id
          where st.name = 'development' group by s.key_version`,
      );
      assert.deepEqual(versions.rows.map((x) => [x.key_version, Number(x.n)]), [[2, COUNT]]);
      const deks = await db.query<{ version: number }>(
        `select d.version from accord.stage_deks d join accord.stages st on st.id = d.stage_id where st.name = 'development' order by d.version`,
      );
      assert.deepEqual(deks.rows.map((d) => d.version), [2], 'the old data key row is gone');
    });

    test('no secret value or root key material appears in the server output or the audit trail, before or after the crash', async () => {
      const file = JSON.parse(await readFile(join(dataDir, 'kms', 'root-keys.json'), 'utf8')) as { keys: { key: string }[] };
      const keyMaterial = file.keys.flatMap((k) => [k.key, Buffer.from(k.key, 'base64').toString('hex')]);
      assert.ok(keyMaterial.length > 0);
      assertNotInOutput(started, [...values.values(), ...keyMaterial]);
      const audit = await exportedAudit(cliEnv, false);
      assert.ok(audit.includes('"key.destroyed"'));
      assert.deepEqual([...values.values(), ...keyMaterial].filter((v) => audit.includes(v)), []);
    });

    test('after the crash and the resumed job every value decrypts to what was set', async () => {
      await server.stop();
      const ids = (await db.query<{ tenant_id: string; stage_id: string }>(
        `select t.id as tenant_id, st.id as stage_id from accord.tenants t join accord.stages st on st.tenant_id = t.id
          where t.name = 'acme' and st.name = 'development'`,
      )).rows[0];
      assert.ok(ids);
      // The server has stopped, so opening its local key store here races with nobody.
      const kms = await openKms({ kms: 'local', dataDir, createIfMissing: false });
      const database = await openDatabase({ dataDir, databaseUrl: dbUrl, maxConnections: 2 });
      try {
        const keyring = new Keyring(kms);
        let checked = 0;
        for (const [name, value] of values) {
          assert.equal(await readSecret(database.db, keyring, ids.tenant_id, ids.stage_id, name), value, name);
          checked++;
        }
        assert.equal(checked, COUNT);
      } finally {
        await database.close();
        await kms.close();
      }
    });
  });
});
