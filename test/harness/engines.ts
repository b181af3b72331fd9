import { randomBytes } from 'node:crypto';
import { after } from 'node:test';
import pg from 'pg';
import { type Database, type EngineName, migrate, openDatabase } from '../../src/db/index.ts';
import { createDatabase, getTestPostgres, type PostgresServer } from './postgres.ts';

/** One storage engine as the suites see it: every integration suite runs once per engine. */
export interface TestEngine {
  readonly name: EngineName;
  /** A fresh, empty, migrated catalog database. Closed automatically at the end of the file. */
  open(opts?: { migrate?: boolean }): Promise<Database>;
  /** For PostgreSQL: a fresh empty database URL, connecting as a non-superuser owner like production. */
  newDatabaseUrl?(): Promise<string>;
}

let server: Promise<PostgresServer> | undefined;

/** The run's PostgreSQL server (or this file's own when run alone), stopped after the file. */
export function testServer(): Promise<PostgresServer> {
  server ??= getTestPostgres();
  return server;
}
const opened: Database[] = [];

after(async () => {
  for (const d of opened.splice(0)) await d.close().catch(() => {});
  if (server) await (await server).stop();
});

/**
 * A new database on the run's PostgreSQL server, owned by a new login role that has CREATEROLE
 * but is not a superuser: the privileges a production deployment gives Accord, so the tests
 * prove stage schemas and roles work without superuser powers.
 */
export async function newPostgresDatabaseUrl(): Promise<string> {
  const s = await testServer();
  const url = await createDatabase(s.url, 'accord');
  const dbName = new URL(url).pathname.slice(1);
  const role = `app_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: s.url });
  await admin.connect();
  try {
    await admin.query(`create role ${role} login createrole`);
    await admin.query(`alter database ${dbName} owner to ${role}`);
  } finally {
    await admin.end();
  }
  // The public schema's owner is pg_database_owner, which the new database owner now is.
  const u = new URL(url);
  u.username = role;
  return u.toString();
}

/** The superuser URL of the run's server (for tamper and inspection steps in tests). */
export async function superuserUrl(dbUrl: string): Promise<string> {
  const u = new URL(dbUrl);
  u.username = new URL((await testServer()).url).username;
  return u.toString();
}

async function track(d: Promise<Database>, doMigrate: boolean): Promise<Database> {
  const db = await d;
  opened.push(db);
  if (doMigrate) await migrate(db.db);
  return db;
}

/** PGlite in memory and PostgreSQL (the harness server). */
export function engines(): TestEngine[] {
  return [
    {
      name: 'pglite',
      open: (o = {}) => track(openDatabase({ dataDir: 'unused', inMemory: true }), o.migrate !== false),
    },
    {
      name: 'postgres',
      open: async (o = {}) => track(openDatabase({ dataDir: 'unused', databaseUrl: await newPostgresDatabaseUrl() }), o.migrate !== false),
      newDatabaseUrl: newPostgresDatabaseUrl,
    },
  ];
}
