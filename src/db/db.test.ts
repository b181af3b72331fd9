import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { sql } from 'kysely';
import { engines, newPostgresDatabaseUrl, testServer } from '../../test/harness/engines.ts';
import { createCertificateAuthority } from '../../test/harness/tls.ts';
import { isAccordError } from '../errors/index.ts';
import { migrate, migrationsApplied, openDatabase } from './index.ts';
import { migrations } from './migrations/index.ts';

for (const engine of engines()) {
  describe(`catalog database on ${engine.name}`, () => {
    test('migrations create the accord schema and a second run applies nothing', async () => {
      const d = await engine.open({ migrate: false });
      assert.equal(await migrationsApplied(d.db), false);
      const first = await migrate(d.db);
      assert.deepEqual(first.applied, Object.keys(migrations));
      assert.equal(await migrationsApplied(d.db), true);
      const second = await migrate(d.db);
      assert.deepEqual(second.applied, []);
      const tables = await sql<{ tablename: string }>`select tablename from pg_tables where schemaname = 'accord' order by 1`.execute(d.db);
      assert.ok(tables.rows.map((r) => r.tablename).includes('tenants'));
    });

    test('a transaction that fails leaves nothing behind', async () => {
      const d = await engine.open();
      await assert.rejects(
        d.db.transaction().execute(async (trx) => {
          await trx.insertInto('accord.tenants').values({ name: 'ghost', display_name: 'G', region: 'r' }).execute();
          throw new Error('boom');
        }),
        /boom/,
      );
      const rows = await d.db.selectFrom('accord.tenants').selectAll().execute();
      assert.equal(rows.length, 0);
    });

    test('savepoints roll back part of a transaction and release the rest into its commit', async () => {
      const d = await engine.open();
      const insert = (trx: typeof d.db, name: string) => trx.insertInto('accord.tenants').values({ name, display_name: name, region: 'r' }).execute();
      const trx = await d.db.startTransaction().execute();
      await insert(trx, 'kept');
      const sp1 = await trx.savepoint('first').execute();
      await insert(sp1, 'undone');
      const back = await sp1.rollbackToSavepoint('first').execute();
      const sp2 = await back.savepoint('second "quoted"').execute();
      await insert(sp2, 'released');
      await (await sp2.releaseSavepoint('second "quoted"').execute()).commit().execute();
      const rows = await d.db.selectFrom('accord.tenants').select('name').orderBy('name').execute();
      assert.deepEqual(rows.map((r) => r.name), ['kept', 'released']);
    });

    test('a savepoint rolled back after a failed statement lets the transaction go on', async () => {
      const d = await engine.open();
      const trx = await d.db.startTransaction().execute();
      const sp = await trx.savepoint('attempt').execute();
      await assert.rejects(sql`select 1 / 0`.execute(sp), /division by zero/);
      const back = await sp.rollbackToSavepoint('attempt').execute();
      await back.insertInto('accord.tenants').values({ name: 'after', display_name: 'A', region: 'r' }).execute();
      await back.commit().execute();
      assert.equal((await d.db.selectFrom('accord.tenants').select('name').execute()).length, 1);
    });

    test('bigint columns arrive as numbers on this engine', async () => {
      const d = await engine.open();
      const r = await sql<{ n: number }>`select count(*) as n from accord.tenants`.execute(d.db);
      assert.equal(typeof r.rows[0]?.n, 'number');
    });
  });
}

describe('PostgreSQL engine', () => {
  test('two nodes migrating at once both succeed and apply each migration once', async () => {
    const url = await newPostgresDatabaseUrl();
    const [a, b] = await Promise.all([openDatabase({ dataDir: 'x', databaseUrl: url }), openDatabase({ dataDir: 'x', databaseUrl: url })]);
    try {
      const results = await Promise.all([migrate(a.db), migrate(b.db)]);
      assert.deepEqual(results.flatMap((r) => r.applied).sort(), Object.keys(migrations));
      const rows = await sql<{ name: string }>`select name from accord.kysely_migration`.execute(a.db);
      assert.equal(rows.rows.length, Object.keys(migrations).length);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('an unreachable server is a DB_UNREACHABLE error that does not reveal the password', async () => {
    await assert.rejects(
      openDatabase({ dataDir: 'x', databaseUrl: 'postgres://accord:topsecretpw@127.0.0.1:1/accord' }),
      (e) => isAccordError(e, 'DB_UNREACHABLE') && !e.message.includes('topsecretpw') && e.message.includes('127.0.0.1:1'),
    );
  });

  test('sslmode=verify-full connects with the right CA and refuses a server the CA did not sign', async () => {
    const server = await testServer();
    assert.ok(server.caFile, 'the harness server runs with TLS');
    const base = new URL(await newPostgresDatabaseUrl());
    base.hostname = 'localhost';
    const good = new URL(base);
    good.search = `sslmode=verify-full&sslrootcert=${encodeURIComponent(server.caFile)}`;
    const d = await openDatabase({ dataDir: 'x', databaseUrl: good.toString() });
    try {
      const r = await sql<{ ssl: boolean }>`select ssl from pg_stat_ssl where pid = pg_backend_pid()`.execute(d.db);
      assert.equal(r.rows[0]?.ssl, true);
    } finally {
      await d.close();
    }
    // A CA that did not sign the server's certificate: verification must fail, not fall back.
    const ca = await createCertificateAuthority(mkdtempSync(join(tmpdir(), 'accord-ca-')));
    const bad = new URL(base);
    bad.search = `sslmode=verify-full&sslrootcert=${encodeURIComponent(ca.certFile)}`;
    await assert.rejects(openDatabase({ dataDir: 'x', databaseUrl: bad.toString() }), (e) => isAccordError(e, 'DB_UNREACHABLE'));
  });
});

describe('PGlite engine', () => {
  test('a second opener of the same data directory is refused while the first holds it', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'accord-pglite-'));
    const first = await openDatabase({ dataDir });
    try {
      await assert.rejects(openDatabase({ dataDir }), (e) => isAccordError(e, 'DB_DATA_DIR_LOCKED'));
      // The refusal did not disturb the holder.
      await migrate(first.db);
      assert.equal(await migrationsApplied(first.db), true);
    } finally {
      await first.close();
    }
    assert.equal(existsSync(join(dataDir, 'accord.lock')), false, 'closing releases the lock');
    const again = await openDatabase({ dataDir });
    try {
      assert.equal(await migrationsApplied(again.db), true, 'data persisted across opens');
    } finally {
      await again.close();
    }
  });

  test('a lock left by a dead process is taken over', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'accord-pglite-'));
    const { hostname } = await import('node:os');
    // pid 2^22+1 is above Linux's pid_max default, so no live process has it.
    writeFileSync(join(dataDir, 'accord.lock'), JSON.stringify({ pid: 4194305, host: hostname(), since: 'earlier' }));
    const d = await openDatabase({ dataDir });
    await d.close();
  });
});

for (const engine of engines()) {
  test(`bytea columns arrive as Buffers on ${engine.name}`, async () => {
    const d = await engine.open();
    const r = await sql<{ b: Buffer }>`select '\\x0102ff'::bytea as b`.execute(d.db);
    assert.ok(Buffer.isBuffer(r.rows[0]?.b));
    assert.equal(r.rows[0]?.b.toString('hex'), '0102ff');
  });
}
