// The lifecycle walkthrough (README.md, "Apps: deploy, promote, roll back") through the
// real CLI against a server process, on both engines, in a copy of examples/ so the edit step
// does not touch the repository; then the lifecycle's bad input, each with its catalog code and
// nothing changed.
import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cli, EMAIL, fails, ok, PASSWORD, type Ready, ROOT, ServerProcess, STACK_LINE } from '../../harness/cli.ts';
import { newPostgresDatabaseUrl } from '../../harness/engines.ts';

interface Deployed {
  changed: boolean;
  label: string;
  message: string;
  to: { revision: string; version: string };
  steps: { kind: string; name: string; class: string }[];
  dataLoss: { entity: string; attribute?: string; effect: string }[];
}
interface Status {
  stages: { stage: string; label: string | null; version: string | null }[];
}

const MANIFEST = 'examples/expenses/expenses.app.yaml';

for (const engine of ['PGlite', 'PostgreSQL'] as const) {
  describe(`the app lifecycle walkthrough through the CLI on ${engine}`, { concurrency: false }, () => {
    let dir: string;
    let work: string;
    let configDir: string;
    let server: ServerProcess | undefined;
    let ready: Ready;
    const accord = (...args: string[]) => cli(args, { ACCORD_CONFIG_DIR: configDir }, work);
    const status = async () => ok<Status>(await accord('app', 'status', 'expenses', '--tenant', 'acme', '--json')).stages.map((s) => [s.stage, s.label]);

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'accord-lifecycle-'));
      work = join(dir, 'clone');
      configDir = join(dir, 'config');
      await mkdir(configDir, { mode: 0o700 });
      await cp(join(ROOT, 'examples'), join(work, 'examples'), { recursive: true });
      const pw = join(dir, 'ops.pw');
      await writeFile(pw, `${PASSWORD}\n`, { mode: 0o600 });
      const env: Record<string, string> = engine === 'PostgreSQL' ? { ACCORD_DATABASE_URL: await newPostgresDatabaseUrl() } : {};
      server = ServerProcess.spawn(['--data-dir', join(dir, 'data'), '--port', '0'], env);
      ready = await server.ready();
      ok(await accord('setup', '--url', ready.url, '--ca-file', ready.caFile, '--token', ready.setup.token ?? '', '--email', EMAIL, '--password-file', pw, '--json'));
      ok(await accord('login', '--url', ready.url, '--ca-file', ready.caFile, '--email', EMAIL, '--password-file', pw, '--json'));
      ok(await accord('tenant', 'create', 'acme', '--display-name', 'Acme Corp', '--json'));
    });

    after(async () => {
      await server?.kill();
      await rm(dir, { recursive: true, force: true });
    });

    test('validate, deploy to development as R1, promote to test and production', async () => {
      ok(await accord('app', 'validate', MANIFEST, '--json'));
      const r1 = ok<Deployed>(await accord('app', 'deploy', MANIFEST, '--tenant', 'acme', '--json'));
      assert.equal(r1.label, 'R1');
      assert.equal(r1.changed, true);
      assert.equal(ok<Deployed>(await accord('app', 'promote', 'expenses', '--tenant', 'acme', '--to', 'test', '--json')).label, 'R1');
      assert.equal(ok<Deployed>(await accord('app', 'promote', 'expenses', '--tenant', 'acme', '--to', 'production', '--json')).label, 'R1');
      assert.deepEqual(await status(), [
        ['development', 'R1'],
        ['test', 'R1'],
        ['production', 'R1'],
      ]);
    });

    test('deploying the same manifest again is a no-op that says so', async () => {
      const again = ok<Deployed>(await accord('app', 'deploy', MANIFEST, '--tenant', 'acme', '--json'));
      assert.equal(again.changed, false);
      assert.match(again.message, /already runs on development/);
    });

    test("a stage setting is set on production and listed there, and a secret one is never printed", async () => {
      const r = await accord('app', 'settings', 'set', 'expenses', 'approvalLimit', '500', '--tenant', 'acme', '--stage', 'production');
      assert.equal(r.code, 0, r.stderr);
      const list = ok<{ name: string; value: unknown; source: string }[]>(await accord('app', 'settings', 'list', 'expenses', '--tenant', 'acme', '--stage', 'production', '--json'));
      assert.deepEqual(list.find((s) => s.name === 'approvalLimit'), { name: 'approvalLimit', type: 'decimal', secret: false, value: '500', source: 'stage' });
      const dev = ok<{ name: string; value: unknown; source: string }[]>(await accord('app', 'settings', 'list', 'expenses', '--tenant', 'acme', '--stage', 'development', '--json'));
      assert.equal(dev.find((s) => s.name === 'approvalLimit')?.source, 'default');
      await writeFile(join(dir, 'erp.txt'), 'erp-key-123');
      ok(await accord('app', 'settings', 'set', 'expenses', 'erpApiKey', '--value-file', join(dir, 'erp.txt'), '--tenant', 'acme', '--stage', 'production', '--json'));
      const after = await accord('app', 'settings', 'list', 'expenses', '--tenant', 'acme', '--stage', 'production', '--json');
      assert.doesNotMatch(after.stdout, /erp-key-123/);
      assert.equal(ok<{ name: string; value: unknown }[]>(after).find((s) => s.name === 'erpApiKey')?.value, '********');
      fails(await accord('app', 'settings', 'set', 'expenses', 'approvalLimit', 'lots', '--tenant', 'acme', '--stage', 'production', '--json'), 'APP_SETTING_VALUE_INVALID');
    });

    test('after dropping notes, adding an index and bumping the version, the plan shows the drop as data loss', async () => {
      const path = join(work, MANIFEST);
      let text = await readFile(path, 'utf8');
      text = text
        .replace('      notes:    { type: text, classification: confidential, encrypted: true }\n', '')
        .replace('fields: [title, amount, currency, iban, notes, category, status]', 'fields: [title, amount, currency, iban, category, status]')
        .replace('      - [owner, status]\n', '      - [owner, status]\n      - [category, status]\n')
        .replace('version: 1.0.0', 'version: 1.1.0');
      await writeFile(path, text);
      const plan = ok<Deployed & { unchanged: boolean }>(await accord('app', 'plan', MANIFEST, '--tenant', 'acme', '--json'));
      assert.deepEqual(plan.dataLoss, [{ entity: 'Claim', attribute: 'notes', effect: 'hidden' }]);
      assert.ok(plan.steps.some((s) => s.kind === 'create-index'));
      assert.deepEqual(await status(), [
        ['development', 'R1'],
        ['test', 'R1'],
        ['production', 'R1'],
      ]);
    });

    test('the deploy applies R2 and keeps the column; the rollback returns development to R1', async () => {
      const d = await accord('app', 'deploy', MANIFEST, '--tenant', 'acme');
      assert.equal(d.code, 0, d.stderr);
      assert.match(d.stdout, /as R2 .* on development.*kept hidden: Claim\.notes/);
      const back = ok<Deployed>(await accord('app', 'rollback', 'expenses', '--tenant', 'acme', '--stage', 'development', '--revision', 'R1', '--json'));
      assert.equal(back.label, 'R1');
      assert.deepEqual(back.dataLoss, []);
      const revs = ok<{ label: string; runningOn: string[] }[]>(await accord('app', 'revisions', 'expenses', '--tenant', 'acme', '--json'));
      assert.deepEqual(
        revs.map((r) => [r.label, r.runningOn]),
        [
          ['R2', []],
          ['R1', ['development', 'test', 'production']],
        ],
      );
    });

    test('bad input is refused with its catalog code and changes nothing', async () => {
      const before = await status();
      // R2 never ran on test (development is back on R1, but R2 ran there: promote to production skips test).
      fails(await accord('app', 'promote', 'expenses', '--tenant', 'acme', '--to', 'production', '--revision', 'R2', '--json'), 'APP_REVISION_NEVER_RAN');
      fails(await accord('app', 'rollback', 'expenses', '--tenant', 'acme', '--stage', 'development', '--revision', 'R9', '--json'), 'APP_REVISION_NOT_FOUND');
      fails(await accord('app', 'rollback', 'expenses', '--tenant', 'acme', '--stage', 'test', '--revision', 'R2', '--json'), 'APP_REVISION_NEVER_RAN');
      fails(await accord('app', 'promote', 'expenses', '--tenant', 'acme', '--to', 'development', '--json'), 'APP_PROMOTE_TARGET');
      await writeFile(join(work, 'bomb.yaml'), `app: expenses\nversion: 1.0.0\na: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n`);
      const bomb = fails(await accord('app', 'deploy', 'bomb.yaml', '--tenant', 'acme', '--json'), 'APP_MANIFEST_INVALID');
      assert.ok(JSON.stringify(bomb.details).includes('APP_YAML_ALIAS_LIMIT'));
      await writeFile(join(work, 'big.yaml'), `app: expenses\nversion: 1.0.0\ndescription: "${'x'.repeat(1024 * 1024)}"\n`);
      fails(await accord('app', 'deploy', 'big.yaml', '--tenant', 'acme', '--json'), 'APP_MANIFEST_INVALID');
      assert.deepEqual(await status(), before);
    });

    test('two deploys at once: one applies, the other waits and finds nothing to do', async () => {
      const path = join(work, MANIFEST);
      await writeFile(path, (await readFile(path, 'utf8')).replace('version: 1.1.0', 'version: 1.2.0'));
      const [a, b] = await Promise.all([accord('app', 'deploy', MANIFEST, '--tenant', 'acme', '--json'), accord('app', 'deploy', MANIFEST, '--tenant', 'acme', '--json')]);
      const results = [ok<Deployed>(a), ok<Deployed>(b)].map((r) => r.changed).sort();
      assert.deepEqual(results, [false, true]);
      assert.doesNotMatch(a.stdout + a.stderr + b.stdout + b.stderr, STACK_LINE);
    });
  });
}
