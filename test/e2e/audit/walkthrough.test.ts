// The audit issue's acceptance walkthrough through the real CLI against a server on PostgreSQL
// (tampering needs a second, superuser connection to the same database while the server runs).
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { cli, EMAIL, fails, ok, PASSWORD, type Ready, ServerProcess } from '../../harness/cli.ts';
import { newPostgresDatabaseUrl, superuserUrl } from '../../harness/engines.ts';

interface AuditRecord {
  seq: number;
  action: string;
  outcome: string;
  reason: string | null;
  actor: { label: string | null };
}
interface VerifyReport {
  ok: boolean;
  chains: { chain: string; tenant: string | null; ok: boolean; firstBadSeq?: number; problem?: string }[];
}

describe('audit walkthrough through the CLI on PostgreSQL', { concurrency: false }, () => {
  let server: ServerProcess;
  let ready: Ready;
  let env: Record<string, string>;
  let dir: string;
  let dbUrl: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'accord-audit-e2e-'));
    dbUrl = await newPostgresDatabaseUrl();
    env = { ACCORD_CONFIG_DIR: join(dir, 'cli') };
    server = ServerProcess.spawn(['--port', '0', '--data-dir', join(dir, 'data')], { ACCORD_DATABASE_URL: dbUrl, ACCORD_AUDIT_CHECKPOINT_EVERY_MINUTES: '0.01' });
    ready = await server.ready();
    await writeFile(join(dir, 'ops.pw'), PASSWORD);
    await writeFile(join(dir, 'wrong.pw'), 'not the password at all');
    const token = ready.setup.token ?? '';
    ok(await cli(['setup', '--url', ready.url, '--ca-file', ready.caFile, '--token', token, '--email', EMAIL, '--password-file', join(dir, 'ops.pw'), '--json'], env));
    ok(await cli(['login', '--url', ready.url, '--ca-file', ready.caFile, '--email', EMAIL, '--password-file', join(dir, 'ops.pw'), '--json'], env));
    ok(await cli(['tenant', 'create', 'acme', '--display-name', 'Acme Corp', '--json'], env));
  });
  after(async () => server?.kill());

  test('a failed login is refused and leaves the saved session working', async () => {
    fails(await cli(['login', '--url', ready.url, '--email', EMAIL, '--password-file', join(dir, 'wrong.pw'), '--json'], env), 'IAM_INVALID_CREDENTIALS');
    ok(await cli(['tenant', 'list', '--json'], env));
  });

  test("the tenant's chain shows its creation and stages", async () => {
    const res = ok<{ records: AuditRecord[] }>(await cli(['audit', 'search', '--tenant', 'acme', '--json'], env));
    const actions = res.records.map((r) => r.action);
    assert.ok(actions.includes('tenant.created'));
    assert.equal(actions.filter((a) => a === 'stage.created').length, 3);
    assert.ok(res.records.every((r) => r.actor.label === EMAIL || r.action === 'audit.searched'));
  });

  test('the platform chain shows the failed login', async () => {
    const res = ok<{ records: AuditRecord[] }>(await cli(['audit', 'search', '--platform', '--action', 'auth.login', '--outcome', 'failure', '--json'], env));
    assert.equal(res.records.length, 1);
    assert.equal(res.records[0]?.reason, 'bad-password');
    assert.equal(res.records[0]?.actor.label, EMAIL);
  });

  test('invalid filters are refused with AUDIT_QUERY_INVALID', async () => {
    fails(await cli(['audit', 'search', '--from', 'yesterday', '--json'], env), 'AUDIT_QUERY_INVALID');
    fails(await cli(['audit', 'search', '--from', '2026-11-27T00:00:00Z', '--to', '2026-11-26T00:00:00Z', '--json'], env), 'AUDIT_QUERY_INVALID');
    fails(await cli(['audit', 'search', '--outcome', 'maybe', '--json'], env), 'AUDIT_QUERY_INVALID');
    fails(await cli(['audit', 'search', '--tenant', 'nope', '--json'], env), 'TENANCY_TENANT_NOT_FOUND');
  });

  test('every chain verifies, and exported checkpoints match', async () => {
    const cpDir = join(dir, 'checkpoints');
    // Checkpoints are signed by the server's timer (here every 0.6 s): give it a tick.
    await new Promise((r) => setTimeout(r, 2500));
    const report = ok<VerifyReport>(await cli(['audit', 'verify', '--json'], env));
    assert.equal(report.ok, true, JSON.stringify(report));
    assert.ok(report.chains.some((c) => c.tenant === 'acme'));
    assert.ok(report.chains.some((c) => c.chain === 'platform'));
    const exported = ok<{ written: number }>(await cli(['audit', 'checkpoints', 'export', '--dir', cpDir, '--json'], env));
    assert.ok(exported.written >= 2, 'a checkpoint per chain at least');
    assert.equal(ok<VerifyReport>(await cli(['audit', 'verify', '--checkpoints', cpDir, '--json'], env)).ok, true);
  });

  test('an UPDATE made directly in PostgreSQL by a superuser is reported with its chain and sequence', async () => {
    const client = new pg.Client({ connectionString: await superuserUrl(dbUrl) });
    await client.connect();
    let seq: number;
    try {
      // Even a superuser meets the append-only trigger; the attacker switches triggers off first.
      await assert.rejects(client.query(`update accord.audit_events set details = '{"x":1}' where seq = 2`), /append-only/);
      await client.query('begin');
      await client.query('set local session_replication_role = replica');
      const r = await client.query<{ seq: string }>(
        `update accord.audit_events set details = '{"tampered": true}' where chain_id <> 'platform' and action = 'stage.created' and seq = 3 returning seq`,
      );
      seq = Number(r.rows[0]?.seq);
      await client.query('commit');
    } finally {
      await client.end();
    }
    const res = await cli(['audit', 'verify', '--json'], env);
    assert.equal(res.code, 1, 'a failed verification exits 1');
    const report = JSON.parse(res.stdout) as VerifyReport;
    assert.equal(report.ok, false);
    const broken = report.chains.filter((c) => !c.ok);
    assert.equal(broken.length, 1);
    assert.equal(broken[0]?.tenant, 'acme');
    assert.equal(broken[0]?.firstBadSeq, seq);
    assert.equal(broken[0]?.problem, 'hash-mismatch');
  });

  test('the tenant chain exports as CEF', async () => {
    const res = await cli(['audit', 'export', '--tenant', 'acme', '--format', 'cef'], env);
    assert.equal(res.code, 0, res.stderr);
    const lines = res.stdout.trim().split('\n');
    assert.ok(lines.length >= 4);
    assert.ok(lines.every((l) => l.startsWith('CEF:0|Accord|Accord Platform|')));
    assert.match(lines[0] ?? '', /\|tenant\.created\|/);
  });
});
