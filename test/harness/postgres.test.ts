import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { getTestPostgres, type PostgresServer } from './postgres.ts';
import { createCertificateAuthority } from './tls.ts';

let server: PostgresServer;

before(async () => {
  server = await getTestPostgres({ tls: true });
});

after(async () => {
  await server?.stop();
});

function withParams(url: string, params: Record<string, string>): string {
  const u = new URL(url);
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return u.toString();
}

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

test('the server accepts a verify-full TLS connection trusting only the harness CA', async () => {
  assert.ok(server.caFile, 'a TLS server exposes its CA file');
  for (const host of ['127.0.0.1', 'localhost']) {
    const u = new URL(server.url);
    u.hostname = host;
    const url = withParams(u.toString(), { sslmode: 'verify-full', sslrootcert: server.caFile });
    const rows = await query<{ ssl: boolean }>(url, 'select ssl from pg_stat_ssl where pid = pg_backend_pid()');
    assert.deepEqual(rows, [{ ssl: true }], `TLS in use when connecting to ${host}`);
  }
});

test('TLS verification fails when the client trusts a different CA', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'accord-wrong-ca-'));
  try {
    const wrongCa = await createCertificateAuthority(dir);
    const url = withParams(server.url, { sslmode: 'verify-full', sslrootcert: wrongCa.certFile });
    await assert.rejects(query(url, 'select 1'), (err: NodeJS.ErrnoException) => {
      assert.match(String(err.code), /^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?)$/);
      return true;
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the superuser URL connects without TLS parameters', async () => {
  const rows = await query<{ su: boolean }>(server.url, "select current_setting('is_superuser') = 'on' as su");
  assert.deepEqual(rows, [{ su: true }]);
});

test('createDatabase returns the URL of a new, empty database with a unique name', async () => {
  const [a, b] = await Promise.all([server.createDatabase('Harness-Check'), server.createDatabase('Harness-Check')]);
  assert.notEqual(a, b);
  const name = new URL(a).pathname.slice(1);
  assert.match(name, /^harness_check_[0-9a-f]{12}$/);
  const rows = await query<{ db: string; tables: number }>(
    a,
    "select current_database() as db, (select count(*)::int from pg_tables where schemaname = 'public') as tables",
  );
  assert.deepEqual(rows, [{ db: name, tables: 0 }]);
});
