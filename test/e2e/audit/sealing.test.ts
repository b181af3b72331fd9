// Sealing survives a crash: a real server process (`accord start`) commits audited requests, is
// killed with SIGKILL before its sealer links them into their chains, and the next start seals
// every one of them before it serves anything, leaving gap-free chains that verify. On both engines.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { EMAIL, PASSWORD, type Ready, ServerProcess } from '../../harness/cli.ts';
import { newPostgresDatabaseUrl } from '../../harness/engines.ts';

interface RecordOut {
  id: string;
  seq: number | null;
  hash: string | null;
  action: string;
}
interface VerifyOut {
  ok: boolean;
  chains: { chain: string; tenant: string | null; ok: boolean; records: number; lastSeq: number; unsealed: number; problem?: string; detail?: string }[];
}

/** One HTTPS request with a JSON body, trusting only the server's CA. */
function call(ready: Ready, ca: string, method: string, path: string, opts: { token?: string; body?: unknown } = {}): Promise<{ status: number; body: unknown }> {
  const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  const headers: Record<string, string> = {};
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (payload !== undefined) headers['content-type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: new URL(ready.url).port, path, method, servername: 'localhost', ca, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : null }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

// The sealer never runs on its own during the test (an hour's delay and interval): only the
// start-up pass seals, so what the first process committed is still unsealed when it dies.
const NO_SEALING = { ACCORD_AUDIT_SEAL_DELAY_MS: '3600000', ACCORD_AUDIT_SEAL_INTERVAL_MS: '3600000' };

for (const engine of ['pglite', 'postgres'] as const) {
  describe(`a server killed between commit and sealing, on ${engine}`, { concurrency: false }, () => {
    let dir: string;
    let env: Record<string, string>;
    let server: ServerProcess | undefined;
    const servers: ServerProcess[] = [];

    const start = async (extra: Record<string, string> = {}): Promise<{ ready: Ready; ca: string }> => {
      server = ServerProcess.spawn(['--port', '0', '--data-dir', join(dir, 'data')], { ...env, ...extra });
      servers.push(server);
      const ready = await server.ready();
      return { ready, ca: await readFile(ready.caFile, 'utf8') };
    };
    const search = async (s: { ready: Ready; ca: string }, token: string, path: string) => {
      const res = await call(s.ready, s.ca, 'GET', `${path}?limit=500`, { token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return (res.body as { records: RecordOut[] }).records;
    };

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), `accord-audit-kill-${engine}-`));
      env = { ...NO_SEALING, ...(engine === 'postgres' ? { ACCORD_DATABASE_URL: await newPostgresDatabaseUrl() } : {}) };
    });
    after(async () => {
      for (const s of servers) await s.kill();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    test('every event committed before the kill is sealed by the next start, in gap-free chains that verify', { timeout: 240_000 }, async () => {
      const first = await start();
      const setup = await call(first.ready, first.ca, 'POST', '/api/v1/setup', { body: { token: first.ready.setup.token, email: EMAIL, password: PASSWORD } });
      assert.equal(setup.status, 201, JSON.stringify(setup.body));
      const login = await call(first.ready, first.ca, 'POST', '/api/v1/auth/login', { body: { email: EMAIL, password: PASSWORD } });
      assert.equal(login.status, 200, JSON.stringify(login.body));
      const token = (login.body as { accessToken: string }).accessToken;
      const tenant = await call(first.ready, first.ca, 'POST', '/api/v1/tenants', { token, body: { name: 'acme' } });
      assert.equal(tenant.status, 201, JSON.stringify(tenant.body));
      // Anonymous refusals are counted into per-source summaries (issue 10), written when a window
      // closes: they add no record here.
      for (const path of ['/api/v1/tenants/acme', '/api/v1/tenants', '/api/v1/audit']) {
        assert.equal((await call(first.ready, first.ca, 'GET', path)).status, 401);
      }
      const acmeBefore = await search(first, token, '/api/v1/tenants/acme/audit');
      const platformBefore = await search(first, token, '/api/v1/audit');
      const committed = [...acmeBefore, ...platformBefore];
      const unsealed = committed.filter((r) => r.seq === null);
      // tenant.created and three stage.created on acme; setup and login on the platform.
      assert.ok(acmeBefore.filter((r) => r.seq === null).length >= 4, 'the tenant chain holds committed, unsealed events');
      assert.ok(platformBefore.filter((r) => r.seq === null).length >= 2, 'the platform chain holds committed, unsealed events');
      assert.ok(unsealed.every((r) => r.hash === null));

      server?.child.kill('SIGKILL');
      const exit = await server?.exited;
      assert.equal(exit?.signal, 'SIGKILL');

      // The next start seals what it finds (a start-up pass, then its sealer's periodic look, here
      // every 200 ms: the start-up pass waits only so long for transactions elsewhere on a shared
      // server, which hold the horizon back, to end).
      const second = await start({ ACCORD_AUDIT_SEAL_INTERVAL_MS: '200' });
      const relogin = await call(second.ready, second.ca, 'POST', '/api/v1/auth/login', { body: { email: EMAIL, password: PASSWORD } });
      assert.equal(relogin.status, 200, JSON.stringify(relogin.body));
      const token2 = (relogin.body as { accessToken: string }).accessToken;
      // Search does not seal: what it shows sealed, the restarted node sealed. Poll until it has.
      const sealedView = async (path: string) => {
        for (let attempt = 0; ; attempt++) {
          const records = await search(second, token2, path);
          const ids = new Set(records.filter((r) => r.seq !== null).map((r) => r.id));
          const before = path.includes('acme') ? acmeBefore : platformBefore;
          if (before.every((r) => ids.has(r.id)) || attempt >= 300) return records;
          await new Promise((r) => setTimeout(r, 200));
        }
      };
      for (const [name, path] of [
        ['acme', '/api/v1/tenants/acme/audit'],
        ['platform', '/api/v1/audit'],
      ] as const) {
        const records = await sealedView(path);
        const byId = new Map(records.map((r) => [r.id, r]));
        for (const r of name === 'acme' ? acmeBefore : platformBefore) {
          const now = byId.get(r.id);
          assert.ok(now, `${name}: event ${r.id} (${r.action}) is still there`);
          assert.equal(typeof now.seq, 'number', `${name}: ${r.action} ${r.id} was sealed after the restart`);
          assert.match(now.hash ?? '', /^[0-9a-f]{64}$/);
        }
        const seqs = records.flatMap((r) => (r.seq === null ? [] : [r.seq])).sort((a, b) => a - b);
        assert.deepEqual(
          seqs,
          Array.from({ length: seqs.length }, (_, i) => i + 1),
          `${name}: the sealed chain is exactly 1..${seqs.length}`,
        );
      }
      const verify = await call(second.ready, second.ca, 'POST', '/api/v1/audit/verify', { token: token2, body: {} });
      assert.equal(verify.status, 200, JSON.stringify(verify.body));
      const report = verify.body as VerifyOut;
      assert.deepEqual(
        report.chains.filter((c) => !c.ok),
        [],
      );
      assert.equal(report.ok, true);
      for (const c of report.chains) assert.equal(c.records, c.lastSeq, `${c.tenant ?? c.chain}: records == lastSeq`);
    });
  });
}
