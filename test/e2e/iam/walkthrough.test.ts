// The IAM issue's acceptance walkthrough through the real CLI and server processes over HTTPS, on
// both engines: a developer with MFA, a tenant policy requiring MFA, an API client used with curl;
// then the scripted checks: lockout with Retry-After, stage-limited access for the user and the
// client, refresh-token reuse killing the session, an expired client secret refused.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { cli, EMAIL, ok, PASSWORD, type Ready, ServerProcess } from '../../harness/cli.ts';
import { newPostgresDatabaseUrl } from '../../harness/engines.ts';

const run = promisify(execFile);

/** RFC 6238 TOTP (SHA-1, 6 digits, 30 s), written here independently of the server's code. */
function totp(base32: string, at: number): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const ch of base32.replace(/=+$/, '').toUpperCase()) bits += alphabet.indexOf(ch).toString(2).padStart(5, '0');
  const key = Buffer.from((bits.match(/.{8}/g) ?? []).map((b) => Number.parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 30_000)));
  const mac = createHmac('sha1', key).update(counter).digest();
  const offset = (mac[mac.length - 1] as number) & 0xf;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, '0');
}

interface Http {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: Record<string, unknown>;
}

function call(ready: Ready, ca: string, method: string, path: string, opts: { token?: string; body?: unknown } = {}): Promise<Http> {
  const url = new URL(path, ready.url);
  const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method,
        ca,
        headers: {
          ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
          ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

const engines = [
  { name: 'PGlite', env: async (): Promise<Record<string, string>> => ({}) },
  { name: 'PostgreSQL', env: async (): Promise<Record<string, string>> => ({ ACCORD_DATABASE_URL: await newPostgresDatabaseUrl() }) },
];

for (const engine of engines) {
  describe(`the IAM acceptance walkthrough through the CLI on ${engine.name}`, { concurrency: false }, () => {
    let dir: string;
    let server: ServerProcess;
    let ready: Ready;
    let ca: string;
    const config = { ops: '', admin: '', alice: '' };
    const as = (who: keyof typeof config, ...args: string[]) => cli(args, { ACCORD_CONFIG_DIR: config[who] });
    const profile = async (who: keyof typeof config) => JSON.parse(await readFile(join(config[who], 'profile.json'), 'utf8')) as { token: string; refreshToken: string };
    let totpSecret = '';
    let recoveryCodes: string[] = [];
    let lastStep = 0;
    let client = { clientId: '', clientSecret: '' };
    // A code for a time step never used before (the server refuses replays of a step).
    const freshCode = () => {
      const now = Date.now();
      const step = Math.max(Math.floor(now / 30_000), lastStep + 1);
      lastStep = step;
      return totp(totpSecret, step * 30_000);
    };

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'accord-iam-walkthrough-'));
      for (const who of Object.keys(config) as (keyof typeof config)[]) {
        config[who] = join(dir, `config-${who}`);
        await mkdir(config[who], { mode: 0o700 });
      }
      await writeFile(join(dir, 'ops.pw'), `${PASSWORD}\n`);
      await writeFile(join(dir, 'alice.pw'), 'wonderland rabbit hole\n');
      await writeFile(join(dir, 'admin.pw'), 'orchard lemon tree grove\n');
      server = ServerProcess.spawn(['--data-dir', join(dir, 'data'), '--port', '0'], await engine.env());
      ready = await server.ready();
      ca = await readFile(ready.caFile, 'utf8');
      ok(await as('ops', 'setup', '--url', ready.url, '--ca-file', ready.caFile, '--token', ready.setup.token ?? '', '--email', EMAIL, '--password-file', join(dir, 'ops.pw'), '--json'));
      ok(await as('ops', 'login', '--url', ready.url, '--ca-file', ready.caFile, '--email', EMAIL, '--password-file', join(dir, 'ops.pw'), '--json'));
      ok(await as('ops', 'tenant', 'create', 'acme', '--json'));
      ok(await as('ops', 'user', 'create', 'admin@acme.test', '--tenant', 'acme', '--password-file', join(dir, 'admin.pw'), '--json'));
      ok(await as('ops', 'role', 'grant', 'tenant-admin', '--tenant', 'acme', '--user', 'admin@acme.test', '--json'));
      ok(await as('admin', 'login', '--url', ready.url, '--ca-file', ready.caFile, '--email', 'admin@acme.test', '--password-file', join(dir, 'admin.pw'), '--json'));
    });
    after(async () => {
      await server?.kill();
      await rm(dir, { recursive: true, force: true });
    });

    test('a tenant admin creates alice and grants her developer on development only', async () => {
      const u = ok<{ email: string; status: string }>(await as('admin', 'user', 'create', 'alice@acme.test', '--tenant', 'acme', '--password-file', join(dir, 'alice.pw'), '--json'));
      assert.equal(u.email, 'alice@acme.test');
      ok(await as('admin', 'role', 'grant', 'developer', '--tenant', 'acme', '--user', 'alice@acme.test', '--stage', 'development', '--json'));
      ok(await as('alice', 'login', '--url', ready.url, '--ca-file', ready.caFile, '--email', 'alice@acme.test', '--password-file', join(dir, 'alice.pw'), '--json'));
    });

    test('alice enrols TOTP: the otpauth URI and ten recovery codes, confirmed with a real code', async () => {
      const enrol = ok<{ otpauthUri: string; recoveryCodes: string[] }>(await as('alice', 'mfa', 'enroll', '--json'));
      const uri = new URL(enrol.otpauthUri);
      assert.equal(uri.protocol, 'otpauth:');
      totpSecret = uri.searchParams.get('secret') ?? '';
      assert.ok(totpSecret.length >= 32);
      assert.equal(enrol.recoveryCodes.length, 10);
      assert.equal(new Set(enrol.recoveryCodes).size, 10);
      recoveryCodes = enrol.recoveryCodes;
      ok(await as('alice', 'mfa', 'confirm', '--code', freshCode(), '--json'));
    });

    test('the tenant admin requires MFA for the tenant; alice then needs a code to sign in', async () => {
      const p = ok<{ requireMfa: boolean }>(await as('admin', 'tenant', 'policy', 'set', 'acme', '--require-mfa', 'true', '--json'));
      assert.equal(p.requireMfa, true);
      const login = ['login', '--email', 'alice@acme.test', '--password-file', join(dir, 'alice.pw'), '--json'];
      const without = await as('alice', ...login);
      assert.notEqual(without.code, 0);
      assert.match(without.stdout, /--totp/);
      const signedIn = ok<{ status: string }>(await as('alice', ...login, '--totp', freshCode()));
      assert.equal(signedIn.status, 'signed-in');
    });

    test('alice may read the development stage but not production, nor administer it', async () => {
      const { token } = await profile('alice');
      assert.equal((await call(ready, ca, 'GET', '/api/v1/tenants/acme/stages/development/policy', { token })).status, 200);
      const prod = await call(ready, ca, 'GET', '/api/v1/tenants/acme/stages/production/policy', { token });
      assert.equal(prod.status, 403);
      assert.equal(prod.json.code, 'IAM_FORBIDDEN');
      const admin = await call(ready, ca, 'PATCH', '/api/v1/tenants/acme/stages/production/policy', { token, body: { sessionIdleSeconds: 3600 } });
      assert.equal(admin.status, 403);
    });

    test('an API client created for development gets a token with curl; it works on development only', async () => {
      client = ok<{ clientId: string; clientSecret: string }>(
        await as('admin', 'client', 'create', 'ci-bot', '--tenant', 'acme', '--role', 'developer', '--stage', 'development', '--expires-in', '90d', '--json'),
      );
      assert.match(client.clientSecret, /^acs_/);
      const { stdout } = await run('curl', ['--silent', '--cacert', ready.caFile, '-u', `${client.clientId}:${client.clientSecret}`, '-d', 'grant_type=client_credentials', `${ready.url}/oauth/token`]);
      const token = JSON.parse(stdout) as { access_token: string; token_type: string; expires_in: number };
      assert.equal(token.token_type, 'Bearer');
      assert.ok(token.expires_in > 0 && token.expires_in <= 900);
      assert.equal((await call(ready, ca, 'GET', '/api/v1/tenants/acme/stages/development/policy', { token: token.access_token })).status, 200);
      const prod = await call(ready, ca, 'GET', '/api/v1/tenants/acme/stages/production/policy', { token: token.access_token });
      assert.equal(prod.status, 403);
    });

    test('a reused refresh token kills the whole session', async () => {
      const { refreshToken } = await profile('alice');
      const first = await call(ready, ca, 'POST', '/api/v1/auth/refresh', { body: { refreshToken } });
      assert.equal(first.status, 200);
      const reuse = await call(ready, ca, 'POST', '/api/v1/auth/refresh', { body: { refreshToken } });
      assert.equal(reuse.status, 401);
      assert.equal(reuse.json.code, 'IAM_REFRESH_REUSED');
      // The thief's pair is dead too: the new refresh token and the new access token.
      const again = await call(ready, ca, 'POST', '/api/v1/auth/refresh', { body: { refreshToken: first.json.refreshToken } });
      assert.equal(again.json.code, 'IAM_SESSION_ENDED');
      const use = await call(ready, ca, 'GET', '/api/v1/auth/session', { token: String(first.json.accessToken) });
      assert.equal(use.json.code, 'IAM_SESSION_ENDED');
    });

    test('an expired client secret is refused', async () => {
      const rotated = ok<{ clientSecret: string }>(await as('admin', 'client', 'rotate', 'ci-bot', '--tenant', 'acme', '--overlap', '1s', '--json'));
      await new Promise((r) => setTimeout(r, 1500));
      const tokenWith = async (secret: string) => {
        const { stdout } = await run('curl', ['--silent', '--cacert', ready.caFile, '-u', `${client.clientId}:${secret}`, '-d', 'grant_type=client_credentials', `${ready.url}/oauth/token`]);
        return JSON.parse(stdout) as { access_token?: string; code?: string };
      };
      assert.equal((await tokenWith(client.clientSecret)).code, 'IAM_CLIENT_INVALID');
      assert.ok((await tokenWith(rotated.clientSecret)).access_token);
    });

    test("the access review lists alice's and the client's grants with who granted them and their last use", async () => {
      const grants = ok<{ kind: string; principal: { type: string; label: string }; role: string; stage: string | null; grantedBy: string | null; lastUsedAt: string | null }[]>(
        await as('admin', 'access', 'review', '--tenant', 'acme', '--json'),
      );
      const alice = grants.find((g) => g.principal.label === 'alice@acme.test');
      assert.deepEqual({ role: alice?.role, stage: alice?.stage, grantedBy: alice?.grantedBy }, { role: 'developer', stage: 'development', grantedBy: 'admin@acme.test' });
      assert.ok(alice?.lastUsedAt, 'alice used her grant on the development stage');
      const bot = grants.find((g) => g.principal.type === 'client' && g.principal.label === 'ci-bot');
      assert.equal(bot?.role, 'developer');
      assert.ok(bot?.lastUsedAt, 'the client used its grant');
      // Sessions: alice (back in with a recovery code: the reuse above ended her saved session) sees
      // hers; the admin ends them all, and her saved session stops working.
      ok(await as('alice', 'login', '--email', 'alice@acme.test', '--password-file', join(dir, 'alice.pw'), '--recovery-code', recoveryCodes[0] as string, '--json'));
      const mine = ok<{ id: string; current: boolean }[]>(await as('alice', 'session', 'list', '--json'));
      assert.ok(mine.some((x) => x.current));
      const ended = ok<{ revoked: number }>(await as('admin', 'session', 'revoke', '--tenant', 'acme', '--user', 'alice@acme.test', '--all', '--json'));
      assert.ok(ended.revoked >= 1);
      const after = await as('alice', 'session', 'list', '--json');
      assert.notEqual(after.code, 0);
      assert.match(after.stdout, /IAM_SESSION_ENDED|IAM_REFRESH_REUSED/);
    });

    test('a custom role is defined, granted, and revoked through a review campaign, all from the CLI', async () => {
      ok(await as('admin', 'role', 'create', 'evidence-reader', '--tenant', 'acme', '--permissions', 'tenant:read,audit:read', '--description', 'reads the audit trail', '--json'));
      await writeFile(join(dir, 'bob.pw'), 'a reviewer passphrase of his own\n');
      ok(await as('admin', 'user', 'create', 'bob@acme.test', '--tenant', 'acme', '--password-file', join(dir, 'bob.pw'), '--json'));
      ok(await as('admin', 'role', 'grant', 'evidence-reader', '--tenant', 'acme', '--user', 'bob@acme.test', '--json'));
      const started = ok<{ id: string; counts: { items: number } }>(await as('admin', 'access', 'campaign', 'start', '--tenant', 'acme', '--name', 'Q4 review', '--json'));
      assert.ok(started.counts.items >= 3);
      const shown = ok<{ items: { id: string; role: string; principal: { label: string } }[] }>(await as('admin', 'access', 'campaign', 'show', started.id, '--tenant', 'acme', '--json'));
      const bobs = shown.items.find((i) => i.principal.label === 'bob@acme.test' && i.role === 'evidence-reader');
      assert.ok(bobs, 'the campaign lists the custom-role grant');
      ok(await as('admin', 'access', 'campaign', 'decide', started.id, bobs.id, '--revoke', '--note', 'moved to another team', '--tenant', 'acme', '--json'));
      const closed = ok<{ closedAt: string | null; counts: { revoked: number } }>(await as('admin', 'access', 'campaign', 'close', started.id, '--tenant', 'acme', '--json'));
      assert.ok(closed.closedAt);
      assert.equal(closed.counts.revoked, 1);
      const users = ok<{ email: string; grants: unknown[] }[]>(await as('admin', 'user', 'list', '--tenant', 'acme', '--json'));
      assert.deepEqual(users.find((u) => u.email === 'bob@acme.test')?.grants, [], 'the revoked grant is gone');
      const evidence = ok<{ items: { decision: string | null; decidedBy: string | null; note: string | null; principal: { label: string } }[] }>(
        await as('admin', 'access', 'campaign', 'show', started.id, '--tenant', 'acme', '--json'),
      );
      const decided = evidence.items.find((i) => i.principal.label === 'bob@acme.test');
      assert.deepEqual({ decision: decided?.decision, by: decided?.decidedBy, note: decided?.note }, { decision: 'revoke', by: 'admin@acme.test', note: 'moved to another team' });
    });

    test('six wrong passwords for alice lock her account, with Retry-After, and the right one is refused too', async () => {
      const attempt = (password: string) => call(ready, ca, 'POST', '/api/v1/auth/login', { body: { email: 'alice@acme.test', password } });
      const answers: Http[] = [];
      for (let i = 0; i < 6; i++) answers.push(await attempt(`wrong password number ${i}`));
      assert.deepEqual(
        answers.slice(0, 3).map((a) => a.json.code),
        ['IAM_INVALID_CREDENTIALS', 'IAM_INVALID_CREDENTIALS', 'IAM_INVALID_CREDENTIALS'],
      );
      const last = answers[5] as Http;
      assert.equal(last.status, 429);
      assert.equal(last.json.code, 'IAM_LOCKED');
      assert.ok(Number(last.headers['retry-after']) > 0);
      const right = await attempt('wonderland rabbit hole');
      assert.equal(right.json.code, 'IAM_LOCKED');
    });

    test('every step is in the audit trail', async () => {
      const events = ok<{ records: { action: string }[] }>(await as('ops', 'audit', 'search', '--tenant', 'acme', '--limit', '500', '--json'));
      const actions = new Set(events.records.map((e) => e.action));
      for (const a of ['user.created', 'role.granted', 'mfa.totp.enrolled', 'mfa.totp.confirmed', 'tenant.policy.changed', 'client.created', 'client.token.issued', 'auth.refresh', 'client.secret.rotated', 'role.created', 'access.review.started', 'access.review.decided', 'access.review.closed', 'role.revoked', 'session.revoked']) {
        assert.ok(actions.has(a), `${a} audited (have: ${[...actions].sort().join(', ')})`);
      }
    });
  });
}
