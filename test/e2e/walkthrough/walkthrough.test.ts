// The acceptance walkthrough, through the real CLI (`node bin/accord.js ...` in child
// processes) against a server started as a child process, over HTTPS, on both engines; then the
// issue's bad-input list, each checked for its catalog code, a non-zero exit and no change.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ephemeralSigner } from '../../../src/audit-chain/index.ts';
import { loadConfig } from '../../../src/config/index.ts';
import { ensureBootstrap, hasOperator } from '../../../src/iam/index.ts';
import { buildApp, createLogger } from '../../../src/server/index.ts';
import { cli, EMAIL, fails, get, ok, PASSWORD, type Ready, ServerProcess, STACK_LINE } from '../../harness/cli.ts';
import { testKeyring } from '../../harness/keys.ts';
import { engines, newPostgresDatabaseUrl } from '../../harness/engines.ts';

interface StageOut {
  name: string;
  position: number;
  schema: string;
}
interface TenantOut {
  name: string;
  displayName: string;
  region: string;
  stages?: StageOut[];
}

const names = (stages: StageOut[]) => stages.map((s) => s.name);

interface EngineCase {
  name: 'PGlite' | 'PostgreSQL';
  /** Flags and environment of the first start and of the restart; both on the same data. */
  first(dataDir: string): Promise<{ args: string[]; env: Record<string, string> }>;
  restart(dataDir: string, port: string): { args: string[]; env: Record<string, string> };
}

let databaseUrl = '';
const cases: EngineCase[] = [
  {
    name: 'PGlite',
    first: async (dataDir) => ({ args: ['--data-dir', dataDir, '--port', '0'], env: {} }),
    restart: (dataDir, port) => ({ args: ['--data-dir', dataDir, '--port', port], env: {} }),
  },
  {
    name: 'PostgreSQL',
    // The walkthrough selects the server with ACCORD_DATABASE_URL; the restart uses the flag.
    first: async (dataDir) => {
      databaseUrl = await newPostgresDatabaseUrl();
      return { args: ['--data-dir', dataDir, '--port', '0'], env: { ACCORD_DATABASE_URL: databaseUrl } };
    },
    restart: (dataDir, port) => ({ args: ['--data-dir', dataDir, '--port', port, '--database-url', databaseUrl], env: {} }),
  },
];

for (const engine of cases) {
  describe(`the acceptance walkthrough through the CLI on ${engine.name}`, { concurrency: false }, () => {
    let dir: string;
    let dataDir: string;
    let configDir: string;
    let passwordFile: string;
    let server: ServerProcess | undefined;
    const extra: ServerProcess[] = [];
    let ready: Ready;
    let ca: string;
    let port: string;
    const accord = (...args: string[]) => cli(args, { ACCORD_CONFIG_DIR: configDir });
    const tenantNames = async () => ok<TenantOut[]>(await accord('tenant', 'list', '--json')).map((t) => t.name);
    const stageNames = async (tenant: string) => names(ok<StageOut[]>(await accord('stage', 'list', '--tenant', tenant, '--json')));

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'accord-walkthrough-'));
      dataDir = join(dir, 'data');
      configDir = join(dir, 'config');
      await mkdir(configDir, { mode: 0o700 });
      passwordFile = join(dir, 'ops.pw');
      await writeFile(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
      const { args, env } = await engine.first(dataDir);
      server = ServerProcess.spawn(args, env);
      ready = await server.ready();
      ca = await readFile(ready.caFile, 'utf8');
      port = new URL(ready.url).port;
    });

    after(async () => {
      await Promise.all([server?.kill(), ...extra.map((p) => p.kill())]);
      await rm(dir, { recursive: true, force: true });
    });

    test('start prints the HTTPS URL, the CA file and fingerprint, and a one-time setup token', async () => {
      assert.match(ready.url, /^https:\/\/localhost:\d+$/);
      assert.equal(ready.engine, engine.name === 'PGlite' ? 'pglite' : 'postgres');
      assert.equal(ready.caFile, join(dataDir, 'tls', 'ca.pem'));
      assert.match(ready.caFingerprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
      assert.equal(ready.setup.state, 'token-issued');
      assert.match(ready.setup.token ?? '', /^ast_/);
      const ttl = Date.parse(ready.setup.expiresAt ?? '') - Date.now();
      assert.ok(ttl > 50 * 60_000 && ttl <= 60 * 60_000, `setup token valid for about an hour (${ttl} ms)`);
      assert.ok(!ready.database.includes('@'), 'the database location carries no credentials');
      const health = await get(`${ready.url}/readyz`, ca);
      assert.equal(health.status, 200);
    });

    test('setup with a wrong token is refused with IAM_SETUP_TOKEN_INVALID and creates no operator', async () => {
      const r = await accord(
        'setup', '--url', ready.url, '--ca-file', ready.caFile, '--token', 'ast_not-the-token',
        '--email', EMAIL, '--password-file', passwordFile, '--json',
      );
      fails(r, 'IAM_SETUP_TOKEN_INVALID');
      const login = await accord('login', '--url', ready.url, '--ca-file', ready.caFile, '--email', EMAIL, '--password-file', passwordFile, '--json');
      fails(login, 'IAM_INVALID_CREDENTIALS');
    });

    test('setup with an unreadable --password-file fails with CLI_FILE_UNREADABLE and spends no token', async () => {
      for (const file of [join(dir, 'missing.pw'), dir]) {
        const r = await accord(
          'setup', '--url', ready.url, '--ca-file', ready.caFile, '--token', ready.setup.token ?? '',
          '--email', EMAIL, '--password-file', file, '--json',
        );
        const err = fails(r, 'CLI_FILE_UNREADABLE');
        assert.equal(err.details?.flag, '--password-file');
      }
      // The token is still valid: the next test spends it.
    });

    test('setup with the printed token creates the first operator', async () => {
      const r = await accord(
        'setup', '--url', ready.url, '--ca-file', ready.caFile, '--token', ready.setup.token ?? '',
        '--email', EMAIL, '--password-file', passwordFile, '--json',
      );
      assert.deepEqual(Object.keys(ok<{ userId: string; email: string }>(r)).sort(), ['email', 'userId']);
      assert.equal(ok<{ email: string }>(r).email, EMAIL);
    });

    test('the setup token cannot be used a second time (IAM_SETUP_DONE) and creates nobody', async () => {
      const r = await accord(
        'setup', '--url', ready.url, '--ca-file', ready.caFile, '--token', ready.setup.token ?? '',
        '--email', 'intruder@example.test', '--password-file', passwordFile, '--json',
      );
      fails(r, 'IAM_SETUP_DONE');
      const login = await accord(
        'login', '--url', ready.url, '--ca-file', ready.caFile, '--email', 'intruder@example.test', '--password-file', passwordFile, '--json',
      );
      fails(login, 'IAM_INVALID_CREDENTIALS');
      assert.ok(!existsSync(join(configDir, 'profile.json')), 'a failed login saves no profile');
    });

    test('a command without a saved login fails with CLI_NOT_LOGGED_IN', async () => {
      fails(await accord('tenant', 'list', '--json'), 'CLI_NOT_LOGGED_IN');
      fails(await accord('stage', 'list', '--tenant', 'acme', '--json'), 'CLI_NOT_LOGGED_IN');
    });

    test('API requests without a session get 401 with IAM_UNAUTHENTICATED', async () => {
      const res = await get(`${ready.url}/api/v1/tenants`, ca);
      assert.equal(res.status, 401);
      assert.match(res.type, /^application\/problem\+json/);
      assert.equal((JSON.parse(res.body) as { code: string }).code, 'IAM_UNAUTHENTICATED');
    });

    test('login saves the URL, CA and session in a profile readable by the owner only', async () => {
      const r = await accord('login', '--url', ready.url, '--ca-file', ready.caFile, '--email', EMAIL, '--password-file', passwordFile, '--json');
      const doc = ok<{ url: string; email: string }>(r);
      assert.equal(doc.url, ready.url);
      assert.equal(doc.email, EMAIL);
      const path = join(configDir, 'profile.json');
      assert.equal((await stat(path)).mode & 0o777, 0o600);
      const profile = JSON.parse(await readFile(path, 'utf8')) as { url: string; ca: string; token: string };
      assert.equal(profile.url, ready.url);
      assert.equal(profile.ca, ca);
      assert.ok(profile.token.length > 20);
      assert.ok(!JSON.stringify(profile).includes(PASSWORD), 'the password is not stored');
    });

    test('tenant create makes acme with its display name and the default stages', async () => {
      const t = ok<TenantOut>(await accord('tenant', 'create', 'acme', '--display-name', 'Acme Corp', '--json'));
      assert.equal(t.name, 'acme');
      assert.equal(t.displayName, 'Acme Corp');
      assert.deepEqual(names(t.stages ?? []), ['development', 'test', 'production']);
    });

    test('stage list gives development, test, production in order', async () => {
      const stages = ok<StageOut[]>(await accord('stage', 'list', '--tenant', 'acme', '--json'));
      assert.deepEqual(names(stages), ['development', 'test', 'production']);
      const positions = stages.map((s) => s.position);
      assert.deepEqual(positions, [...positions].sort((a, b) => a - b));
      assert.equal(new Set(stages.map((s) => s.schema)).size, 3, 'each stage has its own schema');
    });

    test('stage create --after test inserts uat between test and production', async () => {
      const s = ok<StageOut>(await accord('stage', 'create', 'uat', '--tenant', 'acme', '--after', 'test', '--json'));
      assert.equal(s.name, 'uat');
      assert.deepEqual(await stageNames('acme'), ['development', 'test', 'uat', 'production']);
    });

    test('tenant list contains acme', async () => {
      const list = ok<TenantOut[]>(await accord('tenant', 'list', '--json'));
      assert.deepEqual(
        list.map((t) => [t.name, t.displayName]),
        [['acme', 'Acme Corp']],
      );
    });

    test('an invalid tenant name is refused with TENANCY_TENANT_NAME_INVALID and creates nothing', async () => {
      // `--` so that a name starting with a hyphen reaches the server rather than the option parser.
      const bad = ['Bad_Name', 'a', '-acme', 'acme-', '1acme', 'admin'];
      const results = await Promise.all(bad.map((name) => accord('tenant', 'create', '--json', '--', name)));
      for (const r of results) fails(r, 'TENANCY_TENANT_NAME_INVALID');
      assert.deepEqual(await tenantNames(), ['acme']);
    });

    test('an invalid stage name is refused with TENANCY_STAGE_NAME_INVALID and creates nothing', async () => {
      const bad = ['Bad_Stage', 'x', 'qa--1', 'uat-'];
      const results = await Promise.all(bad.map((name) => accord('stage', 'create', name, '--tenant', 'acme', '--json')));
      for (const r of results) fails(r, 'TENANCY_STAGE_NAME_INVALID');
      assert.deepEqual(await stageNames('acme'), ['development', 'test', 'uat', 'production']);
    });

    test('a duplicate tenant is refused with TENANCY_TENANT_EXISTS and the first is unchanged', async () => {
      fails(await accord('tenant', 'create', 'acme', '--display-name', 'Other Corp', '--json'), 'TENANCY_TENANT_EXISTS');
      const list = ok<TenantOut[]>(await accord('tenant', 'list', '--json'));
      assert.deepEqual(
        list.map((t) => [t.name, t.displayName]),
        [['acme', 'Acme Corp']],
      );
      assert.deepEqual(await stageNames('acme'), ['development', 'test', 'uat', 'production']);
    });

    test('an unknown tenant is reported as TENANCY_TENANT_NOT_FOUND and nothing is created', async () => {
      fails(await accord('stage', 'list', '--tenant', 'nope', '--json'), 'TENANCY_TENANT_NOT_FOUND');
      fails(await accord('stage', 'create', 'qa', '--tenant', 'nope', '--json'), 'TENANCY_TENANT_NOT_FOUND');
      assert.deepEqual(await tenantNames(), ['acme']);
    });

    if (engine.name === 'PGlite') {
      test('a second start on the same data directory is refused while the first runs', async () => {
        const lockFile = join(dataDir, 'accord.lock');
        const lockBefore = await readFile(lockFile, 'utf8');
        const second = ServerProcess.spawn(['--data-dir', dataDir, '--port', '0'], {});
        extra.push(second);
        const { code } = await second.exited;
        assert.notEqual(code, 0);
        fails({ code, stdout: second.stdout, stderr: second.stderr }, 'DB_DATA_DIR_LOCKED');
        assert.equal(await readFile(lockFile, 'utf8'), lockBefore, 'the lock still names the first process');
        assert.equal((JSON.parse(lockBefore) as { pid: number }).pid, server?.child.pid);
        assert.ok(server?.running, 'the first server is still running');
        assert.equal((await get(`${ready.url}/readyz`, ca)).status, 200);
        assert.deepEqual(await tenantNames(), ['acme']);
      });
    }

    test('SIGTERM stops the server with exit code 0', async () => {
      const stopped = await server!.stop();
      assert.deepEqual(stopped, { code: 0, signal: null }, server!.stderr);
      if (engine.name === 'PGlite') assert.ok(!existsSync(join(dataDir, 'accord.lock')), 'the data directory lock is released');
    });

    test('a restart on the same data keeps the CA and issues no new setup token', async () => {
      const { args, env } = engine.restart(dataDir, port);
      server = ServerProcess.spawn(args, env);
      const again = await server.ready();
      assert.equal(again.url, ready.url);
      assert.equal(again.caFingerprint, ready.caFingerprint);
      assert.equal(await readFile(again.caFile, 'utf8'), ca);
      assert.deepEqual(again.setup, { state: 'ready' });
      assert.ok(!server.stdout.includes('ast_'), 'no setup token printed');
    });

    test('after the restart the saved profile still works and the tenant and its stages are there', async () => {
      const t = ok<TenantOut>(await accord('tenant', 'show', 'acme', '--json'));
      assert.equal(t.displayName, 'Acme Corp');
      assert.deepEqual(names(t.stages ?? []), ['development', 'test', 'uat', 'production']);
      assert.deepEqual(await stageNames('acme'), ['development', 'test', 'uat', 'production']);
      assert.deepEqual(await tenantNames(), ['acme']);
    });

    test('after the restart the setup token is still spent', async () => {
      const r = await accord(
        'setup', '--url', ready.url, '--ca-file', ready.caFile, '--token', ready.setup.token ?? '',
        '--email', 'late@example.test', '--password-file', passwordFile, '--json',
      );
      fails(r, 'IAM_SETUP_DONE');
    });
  });
}

describe('start-up refusals', { concurrency: false }, () => {
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'accord-refusals-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('an unknown configuration key in the environment stops start with CONFIG_UNKNOWN_KEY', async () => {
    const dataDir = join(dir, 'unknown-key');
    const r = await cli(['start', '--json', '--data-dir', dataDir, '--port', '0', '--log-level', 'warn'], { ACCORD_PORTT: '1' });
    const err = fails(r, 'CONFIG_UNKNOWN_KEY');
    assert.equal(err.details?.key, 'ACCORD_PORTT');
    assert.ok(!existsSync(dataDir), 'nothing was created');
  });

  test('an unreachable database stops start with DB_UNREACHABLE, a clear message and no stack trace', async () => {
    const args = ['start', '--data-dir', join(dir, 'unreachable'), '--port', '0', '--log-level', 'warn'];
    const url = 'postgres://nobody@127.0.0.1:1/x';
    const json = await cli([...args, '--json', '--database-url', url], {});
    const err = fails(json, 'DB_UNREACHABLE');
    assert.match(err.message, /127\.0\.0\.1:1/);
    const human = await cli([...args, '--database-url', url], {});
    assert.notEqual(human.code, 0);
    assert.match(human.stderr, /DB_UNREACHABLE/);
    assert.doesNotMatch(human.stdout + human.stderr, STACK_LINE);
    assert.ok(!human.stdout.includes('"event":"ready"'));
  });
});

describe('an expired setup token', () => {
  for (const engine of engines()) {
    test(`is refused with IAM_SETUP_TOKEN_INVALID and creates no operator (${engine.name})`, async () => {
      const database = await engine.open();
      const hourAndMore = 61 * 60_000;
      const issued = await ensureBootstrap(database.db, {}, new Date(Date.now() - hourAndMore));
      assert.equal(issued.state, 'token-issued');
      assert.ok(issued.state === 'token-issued' && issued.expiresAt.getTime() < Date.now());
      const config = loadConfig({ env: {}, flags: { dataDir: join(tmpdir(), 'accord-unused'), logLevel: 'silent' } });
      const app = await buildApp({ config, database, logger: createLogger('silent'), signer: ephemeralSigner(), keyring: await testKeyring() });
      try {
        const setup = (token: string) =>
          app.inject({ method: 'POST', url: '/api/v1/setup', payload: { token, email: EMAIL, password: PASSWORD } });
        const refused = await setup(issued.state === 'token-issued' ? issued.token : '');
        assert.equal(refused.statusCode, 401);
        assert.match(String(refused.headers['content-type']), /^application\/problem\+json/);
        assert.equal(refused.json<{ code: string }>().code, 'IAM_SETUP_TOKEN_INVALID');
        assert.equal(await hasOperator(database.db), false);
        // Control: a token issued now, on the same database, is accepted; so the expiry refused it.
        const fresh = await ensureBootstrap(database.db, {});
        assert.equal(fresh.state, 'token-issued');
        const accepted = await setup(fresh.state === 'token-issued' ? fresh.token : '');
        assert.equal(accepted.statusCode, 201, accepted.body);
        assert.equal(await hasOperator(database.db), true);
      } finally {
        await app.close();
      }
    });
  }
});
