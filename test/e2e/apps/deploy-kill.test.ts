// kill -9 of a real server process in the middle of a deployment, at each point between its
// phases (ACCORD_TEST_DEPLOY_PAUSE holds the deployment there), and on PostgreSQL also while a
// CREATE INDEX CONCURRENTLY is in progress. Afterwards the stage runs the old revision or the
// new one, never something between, and the next deployment works.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { cli, EMAIL, ok, PASSWORD, type Ready, ROOT, ServerProcess } from '../../harness/cli.ts';
import { newPostgresDatabaseUrl, superuserUrl } from '../../harness/engines.ts';

const MANIFEST = 'examples/expenses/expenses.app.yaml';
interface Deployed {
  changed: boolean;
  label: string;
}

const waitFor = async (what: () => Promise<boolean> | boolean, label: string, ms = 120_000) => {
  const end = Date.now() + ms;
  while (!(await what())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${label}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

for (const engine of ['PGlite', 'PostgreSQL'] as const) {
  describe(`kill -9 during a deployment on ${engine}`, { concurrency: false }, () => {
    let dir: string;
    let work: string;
    let configDir: string;
    let dataDir: string;
    let databaseUrl = '';
    let port = '0';
    let server: ServerProcess | undefined;
    let version = 0;
    const indexed: string[] = [];
    const accord = (...args: string[]) => cli(args, { ACCORD_CONFIG_DIR: configDir }, work);
    const label = async () => ok<{ stages: { stage: string; label: string | null }[] }>(await accord('app', 'status', 'expenses', '--tenant', 'acme', '--json')).stages[0]?.label;
    const start = async (env: Record<string, string> = {}): Promise<Ready> => {
      const dbEnv: Record<string, string> = databaseUrl ? { ACCORD_DATABASE_URL: databaseUrl } : {};
      server = ServerProcess.spawn(['--data-dir', dataDir, '--port', port], { ...dbEnv, ...env });
      const ready = await server.ready();
      port = new URL(ready.url).port;
      return ready;
    };
    const kill9 = async () => {
      server?.child.kill('SIGKILL');
      await server?.exited;
    };
    // The next manifest: a new version with one more index on an existing table.
    const nextManifest = async (attribute: string) => {
      version++;
      indexed.push(attribute);
      const base = await readFile(join(ROOT, MANIFEST), 'utf8');
      const text = base.replace('version: 1.0.0', `version: 1.0.${version}`).replace('      - [owner, status]\n', `      - [owner, status]\n${indexed.map((a) => `      - [${a}]\n`).join('')}`);
      await writeFile(join(work, MANIFEST), text);
    };

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'accord-kill-'));
      work = join(dir, 'clone');
      dataDir = join(dir, 'data');
      configDir = join(dir, 'config');
      await mkdir(configDir, { mode: 0o700 });
      await cp(join(ROOT, 'examples'), join(work, 'examples'), { recursive: true });
      if (engine === 'PostgreSQL') databaseUrl = await newPostgresDatabaseUrl();
      const pw = join(dir, 'ops.pw');
      await writeFile(pw, `${PASSWORD}\n`, { mode: 0o600 });
      const ready = await start();
      ok(await accord('setup', '--url', ready.url, '--ca-file', ready.caFile, '--token', ready.setup.token ?? '', '--email', EMAIL, '--password-file', pw, '--json'));
      ok(await accord('login', '--url', ready.url, '--ca-file', ready.caFile, '--email', EMAIL, '--password-file', pw, '--json'));
      ok(await accord('tenant', 'create', 'acme', '--display-name', 'Acme', '--json'));
      assert.equal(ok<Deployed>(await accord('app', 'deploy', MANIFEST, '--tenant', 'acme', '--json')).label, 'R1');
      await server?.stop();
    });

    after(async () => {
      await server?.kill();
      await rm(dir, { recursive: true, force: true });
    });

    const phases = engine === 'PostgreSQL' ? ['planned', 'concurrent-built', 'applied', 'committed'] : ['planned', 'applied', 'committed'];
    const attributes = ['title', 'currency', 'amount', 'category'];
    phases.forEach((phase, i) => {
      test(`killed at "${phase}", the stage runs the ${phase === 'committed' ? 'new' : 'old'} revision and the next deploy works`, async () => {
        const marker = join(dir, `paused-${phase}`);
        await start({ ACCORD_TEST_DEPLOY_PAUSE: `${phase}:${marker}` });
        const before = await label();
        await nextManifest(attributes[i] as string);
        const pending = accord('app', 'deploy', MANIFEST, '--tenant', 'acme', '--json');
        await waitFor(() => existsSync(marker), `the deployment to reach ${phase}`);
        await kill9();
        const r = await pending;
        assert.notEqual(r.code, 0, 'the CLI saw the server die');
        await start();
        const afterKill = await label();
        const expectedNew = `R${i + 2}`;
        if (phase === 'committed') assert.equal(afterKill, expectedNew);
        else assert.equal(afterKill, before);
        const again = ok<Deployed>(await accord('app', 'deploy', MANIFEST, '--tenant', 'acme', '--json'));
        assert.equal(again.changed, phase !== 'committed');
        assert.equal(await label(), expectedNew);
        await server?.stop();
      });
    });

    if (engine === 'PostgreSQL') {
      test('killed while CREATE INDEX CONCURRENTLY waits, the half-built index is dropped and built again by the next deploy', async () => {
        const admin = new pg.Client({ connectionString: await superuserUrl(databaseUrl) });
        await admin.connect();
        try {
          const schema = (await admin.query<{ s: string }>(`select schema_name as s from accord.stages where name = 'development'`)).rows[0]?.s as string;
          await admin.query(`insert into "${schema}"."Claim" (title, amount, owner) values ('Taxi', 12.5, gen_random_uuid())`);
          await start();
          const before = await label();
          await nextManifest('owner');
          // An open snapshot older than the build makes CREATE INDEX CONCURRENTLY wait at its end.
          const holder = new pg.Client({ connectionString: await superuserUrl(databaseUrl) });
          await holder.connect();
          await holder.query('begin isolation level repeatable read');
          await holder.query(`select count(*) from "${schema}"."Claim"`);
          const pendingDeploy = accord('app', 'deploy', MANIFEST, '--tenant', 'acme', '--json');
          await waitFor(async () => (await admin.query(`select 1 from pg_stat_activity where query ilike 'CREATE INDEX CONCURRENTLY%'`)).rowCount === 1, 'the concurrent build to start');
          await kill9();
          // The server is gone; its backend would finish the build once unblocked. Ending it
          // stands for the connection loss being noticed mid-build.
          await admin.query(`select pg_terminate_backend(pid) from pg_stat_activity where query ilike 'CREATE INDEX CONCURRENTLY%'`);
          await holder.query('rollback');
          await holder.end();
          await pendingDeploy;
          const left = await admin.query<{ valid: boolean }>(
            `select x.indisvalid as valid from pg_index x join pg_class i on i.oid = x.indexrelid join pg_namespace n on n.oid = i.relnamespace where n.nspname = $1 and i.relname like 'claim_owner_idx%'`,
            [schema],
          );
          assert.ok(left.rows.some((r) => !r.valid), 'an invalid index was left behind');
          await start();
          assert.equal(await label(), before);
          const again = ok<Deployed>(await accord('app', 'deploy', MANIFEST, '--tenant', 'acme', '--json'));
          assert.equal(again.changed, true);
          const now = await admin.query<{ valid: boolean }>(
            `select x.indisvalid as valid from pg_index x join pg_class i on i.oid = x.indexrelid join pg_namespace n on n.oid = i.relnamespace where n.nspname = $1 and i.relname like 'claim_owner_idx%'`,
            [schema],
          );
          assert.ok(now.rows.length >= 1 && now.rows.every((r) => r.valid), 'only valid indexes remain');
          assert.equal((await admin.query('select * from accord.app_pending_indexes')).rowCount, 0);
          assert.equal((await admin.query(`select title from "${schema}"."Claim" where title = 'Taxi'`)).rowCount, 1, 'the data is intact');
        } finally {
          await admin.end();
        }
      });
    }
  });
}
