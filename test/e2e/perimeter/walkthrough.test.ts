// The README's perimeter walkthrough, through the real CLI and server processes over HTTPS, on
// both engines: `accord net ...`, `accord security surface --json`, a 429 from an anonymous
// flood (with curl, as the README shows it), and the operator's way back in with
// `accord operator unlock` on the node.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { cli, EMAIL, fails, ok, PASSWORD, type Ready, ServerProcess } from '../../harness/cli.ts';
import { newPostgresDatabaseUrl } from '../../harness/engines.ts';

const run = promisify(execFile);

const engines = [
  { name: 'PGlite', env: async (): Promise<Record<string, string>> => ({}) },
  { name: 'PostgreSQL', env: async (): Promise<Record<string, string>> => ({ ACCORD_DATABASE_URL: await newPostgresDatabaseUrl() }) },
];

interface Rule {
  id: string;
  action: string;
  cidr: string;
}

for (const engine of engines) {
  describe(`the perimeter walkthrough through the CLI on ${engine.name}`, { concurrency: false }, () => {
    let dir: string;
    let env: Record<string, string>;
    let server: ServerProcess;
    let ready: Ready;
    let configDir: string;
    const accord = (...args: string[]) => cli(args, { ACCORD_CONFIG_DIR: configDir });

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'accord-perimeter-walkthrough-'));
      configDir = join(dir, 'config');
      await mkdir(configDir, { mode: 0o700 });
      await writeFile(join(dir, 'ops.pw'), `${PASSWORD}\n`);
      env = await engine.env();
      server = ServerProcess.spawn(['--data-dir', join(dir, 'data'), '--port', '0'], env);
      ready = await server.ready();
      ok(await accord('setup', '--url', ready.url, '--ca-file', ready.caFile, '--token', ready.setup.token ?? '', '--email', EMAIL, '--password-file', join(dir, 'ops.pw'), '--json'));
      ok(await accord('login', '--url', ready.url, '--ca-file', ready.caFile, '--email', EMAIL, '--password-file', join(dir, 'ops.pw'), '--json'));
      ok(await accord('tenant', 'create', 'acme', '--json'));
    });
    after(async () => {
      await server?.kill();
      await rm(dir, { recursive: true, force: true });
    });

    test('accord net: deny on the control plane, allow on a stage, list, stage limits and CORS, remove', async () => {
      const denied = ok<Rule>(await accord('net', 'deny', '203.0.113.0/24', '--note', 'abuse', '--json'));
      assert.equal(denied.cidr, '203.0.113.0/24');
      ok(await accord('net', 'allow', '10.0.0.0/8', '--stage', 'acme/production', '--json'));
      const stage = ok<{ rules: Rule[]; corsOrigins: string[] }>(await accord('net', 'list', '--stage', 'acme/production', '--json'));
      assert.deepEqual(stage.rules.map((r) => `${r.action} ${r.cidr}`), ['allow 10.0.0.0/8']);
      const set = ok<{ rateLimits: { ip?: { limit: number } }; corsOrigins: string[] }>(
        await accord('net', 'set', '--stage', 'acme/production', '--rate-limit', 'ip=60/60', '--cors-origin', 'https://app.example.com', '--json'),
      );
      assert.equal(set.rateLimits.ip?.limit, 60);
      assert.deepEqual(set.corsOrigins, ['https://app.example.com']);
      const control = ok<Rule[]>(await accord('net', 'list', '--json'));
      assert.deepEqual(control.map((r) => r.cidr), ['203.0.113.0/24']);
      // Bad input: a catalog code, a non-zero exit, nothing changed.
      fails(await accord('net', 'deny', '203.0.113.0/99', '--json'), 'PERIMETER_RULE_INVALID');
      fails(await accord('net', 'set', '--stage', 'acme', '--no-cors', '--json'), 'CLI_USAGE');
      fails(await accord('net', 'remove', '198.51.100.0/24', '--json'), 'PERIMETER_RULE_NOT_FOUND');
      assert.equal(ok<Rule[]>(await accord('net', 'list', '--json')).length, 1);
      // The production stage's data plane now refuses loopback, which is not in 10.0.0.0/8.
      const { stdout } = await run('curl', ['--silent', '--cacert', ready.caFile, '-H', 'content-type: application/json', '-d', '{"email":"a@b.test","password":"x"}', `${ready.url}/t/acme/production/auth/login`]);
      assert.equal((JSON.parse(stdout) as { code: string }).code, 'PERIMETER_ADDRESS_DENIED');
      ok(await accord('net', 'remove', '10.0.0.0/8', '--stage', 'acme/production', '--json'));
    });

    test('accord security surface --json reports endpoints with TLS, anonymous routes, lists and findings', async () => {
      const r = ok<{
        endpoints: { url: string; tls: { protocols: string[]; tls12Suites: string[]; certificate: { daysLeft: number } } }[];
        anonymousRoutes: { method: string; url: string }[];
        controlPlane: { deny: string[] };
        stages: { stage: string; corsOrigins: string[] }[];
        findings: { id: string }[];
      }>(await accord('security', 'surface', '--json'));
      const tls = r.endpoints[0]?.tls;
      assert.deepEqual(tls?.protocols, ['TLSv1.2', 'TLSv1.3']);
      assert.ok(tls?.tls12Suites.every((s) => /^ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$/.test(s)));
      assert.ok((tls?.certificate.daysLeft ?? 0) > 30);
      assert.ok(r.anonymousRoutes.some((x) => x.url === '/api/v1/auth/login'));
      assert.deepEqual(r.controlPlane.deny, ['203.0.113.0/24']);
      assert.deepEqual(r.stages.find((s) => s.stage === 'acme/production')?.corsOrigins, ['https://app.example.com']);
      assert.ok(r.findings.some((f) => f.id === 'control-plane-open'));
    });

    test('a locked operator gets back in with accord operator unlock on the node', async () => {
      const wrong = join(dir, 'wrong.pw');
      await writeFile(wrong, 'not the password at all\n');
      for (let i = 0; i < 3; i++) await accord('login', '--email', EMAIL, '--password-file', wrong, '--json');
      fails(await accord('login', '--email', EMAIL, '--password-file', join(dir, 'ops.pw'), '--json'), 'IAM_LOCKED');
      // PGlite holds its data directory: the node is stopped first. PostgreSQL: while it runs.
      if (engine.name === 'PGlite') await server.stop();
      const unlocked = ok<{ email: string; wasLocked: boolean }>(
        await cli(['operator', 'unlock', EMAIL, '--data-dir', join(dir, 'data'), '--json'], { ACCORD_CONFIG_DIR: configDir, ...env }),
      );
      assert.deepEqual([unlocked.email, unlocked.wasLocked], [EMAIL, true]);
      if (engine.name === 'PGlite') {
        server = ServerProcess.spawn(['--data-dir', join(dir, 'data'), '--port', new URL(ready.url).port], env);
        ready = await server.ready();
      }
      ok(await accord('login', '--email', EMAIL, '--password-file', join(dir, 'ops.pw'), '--json'));
    });
    test('an anonymous flood gets 429 with Retry-After and RateLimit headers (curl, as in the README)', async () => {
      // One curl for the 200 requests (one connection, one after the other): 200 curl processes
      // take long enough on a busy machine for the bucket to refill most of the flood.
      const url = `${ready.url}/api/v1/tenants`;
      const { stdout: written } = await run('curl', ['--silent', '--cacert', ready.caFile, '--write-out', '%{http_code}\n', ...Array.from({ length: 200 }, () => ['--output', '/dev/null', url]).flat()]);
      const codes = written.trim().split('\n');
      assert.equal(codes.length, 200);
      // The default anonymous quota is 120 a minute as a burst (the earlier steps of this
      // walkthrough spent a few of them from this address); the bucket refills 2 a second while
      // curl runs, so a few more get through among the refusals.
      assert.deepEqual(new Set(codes), new Set(['401', '429']));
      const first = codes.indexOf('429');
      assert.ok(first >= 60 && first <= 120, `the burst is admitted (and refused by the authorizer) until the quota is spent: first 429 at ${first}`);
      assert.deepEqual(new Set(codes.slice(0, first)), new Set(['401']));
      assert.ok(codes.filter((c) => c === '401').length <= 130, 'beyond the burst only the refill gets through');
      assert.ok(codes.filter((c) => c === '429').length >= 70);
      // The next request right away is refused while the flood goes on (retried until a refusal:
      // one token comes back every half second).
      let stdout = '';
      for (let i = 0; i < 20 && !/^HTTP\/1\.1 429/.test(stdout); i++) {
        stdout = (await run('curl', ['--silent', '--include', '--cacert', ready.caFile, `${ready.url}/api/v1/tenants`])).stdout;
      }
      assert.match(stdout, /^HTTP\/1\.1 429/);
      assert.match(stdout, /^retry-after: \d+\r?$/im);
      assert.match(stdout, /^ratelimit-policy: "ip";q=120;w=60\r?$/im);
      assert.match(stdout, /"code":"PERIMETER_RATE_LIMITED"/);
      // The signed-in operator is not held back by the anonymous quota of the same address.
      ok(await accord('tenant', 'list', '--json'));
    });

  });
}
