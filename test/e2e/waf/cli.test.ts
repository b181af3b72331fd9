// `accord waf ...` through the real CLI against a server process, on both engines: a stage's
// settings, a rule exclusion's life (added, listed, removed), the event a blocked request leaves,
// and bad input answered with its code and nothing changed.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from 'node:https';
import { cli, EMAIL, fails, ok, PASSWORD, type Ready, ServerProcess } from '../../harness/cli.ts';
import { newPostgresDatabaseUrl } from '../../harness/engines.ts';

interface Settings {
  mode: string;
  paranoiaLevel: number;
  threshold: number;
}
interface Exclusion {
  id: string;
  ruleId: number;
  field: string;
  justification: string;
  active: boolean;
}

const SQLI = "1' UNION SELECT password FROM users WHERE '1'='1";

/** An HTTPS GET of a path with its query string, trusting only the server's CA. */
function get(url: string, ca: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = request({ host: '127.0.0.1', port: u.port, path: `${u.pathname}${u.search}`, servername: 'localhost', ca, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}
const STAGE = ['--tenant', 'acme', '--stage', 'development'];

for (const engine of ['PGlite', 'PostgreSQL'] as const) {
  describe(`accord waf through the CLI on ${engine}`, { concurrency: false }, () => {
    let dir: string;
    let configDir: string;
    let server: ServerProcess | undefined;
    let ready: Ready;
    const accord = (...args: string[]) => cli(args, { ACCORD_CONFIG_DIR: configDir });

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'accord-waf-cli-'));
      configDir = join(dir, 'config');
      await mkdir(configDir, { mode: 0o700 });
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

    test('show gives the defaults (detect, PL1, 5) and set changes mode, paranoia level and threshold', async () => {
      assert.deepEqual(ok<Settings>(await accord('waf', 'show', ...STAGE, '--json')), { mode: 'detect', paranoiaLevel: 1, threshold: 5 });
      assert.deepEqual(ok<Settings>(await accord('waf', 'set', ...STAGE, '--mode', 'block', '--paranoia', '2', '--threshold', '10', '--json')), { mode: 'block', paranoiaLevel: 2, threshold: 10 });
      assert.deepEqual(ok<Settings>(await accord('waf', 'set', ...STAGE, '--paranoia', '1', '--threshold', '5', '--json')), { mode: 'block', paranoiaLevel: 1, threshold: 5 });
      assert.deepEqual(ok<Settings>(await accord('waf', 'show', ...STAGE, '--json')), { mode: 'block', paranoiaLevel: 1, threshold: 5 });
    });

    test('a blocked request leaves an event that events --reference finds, without the value', async () => {
      const ca = await readFile(ready.caFile, 'utf8');
      // The CLI's own session (what `accord login` saved) calls a stage route with an injection.
      const { token } = JSON.parse(await readFile(join(configDir, 'profile.json'), 'utf8')) as { token: string };
      const r = await get(`${ready.url}/api/v1/tenants/acme/stages/development/policy?filter=${encodeURIComponent(SQLI)}`, ca, { authorization: `Bearer ${token}` });
      assert.equal(r.status, 403, r.body);
      const problem = JSON.parse(r.body) as { code: string; details: { reference: string } };
      assert.equal(problem.code, 'WAF_BLOCKED');
      const events = ok<Array<{ reference: string; blocked: boolean; ruleIds: number[]; fields: string[] }>>(await accord('waf', 'events', ...STAGE, '--reference', problem.details.reference, '--json'));
      assert.equal(events.length, 1);
      assert.equal(events[0]?.blocked, true);
      assert.ok(events[0]?.fields.includes('ARGS:filter'), JSON.stringify(events[0]));
      assert.ok((events[0]?.ruleIds.length ?? 0) > 0);
      assert.ok(!JSON.stringify(events).includes(SQLI), 'the event never holds the full value');
    });

    test('an exclusion is added with its reason and expiry, listed as active, and removed', async () => {
      const expires = new Date(Date.now() + 30 * 86_400_000).toISOString().slice(0, 10);
      const e = ok<Exclusion>(await accord('waf', 'exclude', '942100', ...STAGE, '--field', 'ARGS:json.notes', '--reason', 'notes hold SQL samples', '--expires', expires, '--json'));
      assert.equal(e.ruleId, 942100);
      assert.equal(e.field, 'ARGS:json.notes');
      const listed = ok<Exclusion[]>(await accord('waf', 'exclusions', ...STAGE, '--json'));
      assert.deepEqual(
        listed.map((x) => [x.id, x.ruleId, x.active, x.justification]),
        [[e.id, 942100, true, 'notes hold SQL samples']],
      );
      assert.deepEqual(ok(await accord('waf', 'unexclude', e.id, ...STAGE, '--json')), { removed: e.id });
      assert.equal(ok<Exclusion[]>(await accord('waf', 'exclusions', ...STAGE, '--json')).filter((x) => x.active).length, 0);
      fails(await accord('waf', 'unexclude', e.id, ...STAGE, '--json'), 'WAF_EXCLUSION_NOT_FOUND');
    });

    test('bad input is refused with its code and changes nothing', async () => {
      fails(await accord('waf', 'set', ...STAGE, '--mode', 'maybe', '--json'), 'CLI_USAGE');
      fails(await accord('waf', 'set', ...STAGE, '--json'), 'CLI_USAGE');
      fails(await accord('waf', 'set', ...STAGE, '--paranoia', '5', '--json'), 'WAF_SETTINGS_INVALID');
      fails(await accord('waf', 'exclude', '942100', ...STAGE, '--field', '*', '--reason', 'r', '--expires', 'soon', '--json'), 'CLI_USAGE');
      fails(await accord('waf', 'exclude', '942100', ...STAGE, '--field', '*', '--reason', 'r', '--expires', '2001-01-01', '--json'), 'WAF_SETTINGS_INVALID');
      fails(await accord('waf', 'exclude', '1', ...STAGE, '--field', '*', '--reason', 'r', '--expires', new Date(Date.now() + 86_400_000).toISOString(), '--json'), 'WAF_SETTINGS_INVALID');
      assert.deepEqual(ok<Settings>(await accord('waf', 'show', ...STAGE, '--json')), { mode: 'block', paranoiaLevel: 1, threshold: 5 });
      assert.equal(ok<Exclusion[]>(await accord('waf', 'exclusions', ...STAGE, '--json')).filter((x) => x.active).length, 0);
    });
  });
}
