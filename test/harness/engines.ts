
import { type Database, type EngineName, migrate, openDatabase } from '../../src/db/index.ts';
import { createOwnedDatabase, getTestPostgres, type PostgresServer } from './postgres.ts';
import { atEnd } from './at-end.ts';

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

atEnd(async () => {
  for (const d of opened.splice(0)) await d.close().catch(() => {});
  if (server) await (await server).stop();
});

/** A new database on the run's PostgreSQL server, owned like production (see createOwnedDatabase). */
export async function newPostgresDatabaseUrl(): Promise<string> {
  return createOwnedDatabase((await testServer()).url, 'accord');
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
