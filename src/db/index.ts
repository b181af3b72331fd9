import { join, resolve } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, Migrator, PostgresDialect, type Transaction, sql } from 'kysely';
import pg from 'pg';
import { AccordError } from '../errors/index.ts';
import type { Catalog } from './catalog.ts';
import { lockDataDir } from './engines/data-dir-lock.ts';
import { PGliteDriver } from './engines/pglite-driver.ts';
import { migrations } from './migrations/index.ts';

export type * from './catalog.ts';
export { prepared } from './prepared.ts';

/** The catalog database handle every capability receives. */
export type Db = Kysely<Catalog>;
/** A transaction on the catalog; pass it down, never keep it. */
export type Trx = Transaction<Catalog>;
/** Either: functions that only read or write inside the caller's unit of work take this. */
export type DbOrTrx = Db | Trx;

export type EngineName = 'pglite' | 'postgres';

/** An opened database: the Kysely handle plus what the platform needs to know about the engine. */
export interface Database {
  readonly engine: EngineName;
  readonly db: Db;
  /** Where the data lives, without credentials, for messages and logs. */
  readonly location: string;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** PostgreSQL server URL; absent: embedded PGlite under `dataDir`. */
  databaseUrl?: string | undefined;
  dataDir: string;
  /** PGlite only: keep the data in memory (tests). */
  inMemory?: boolean;
  /** Pool size for PostgreSQL. */
  maxConnections?: number;
}

// Counts and sequence numbers fit in a double; strings for int8 would leak into every caller.
const INT8_OID = 20;
const BYTEA_OID = 17;

/** Opens the engine the options select and checks it answers. Does not migrate. */
export async function openDatabase(opts: OpenOptions): Promise<Database> {
  return opts.databaseUrl === undefined ? openPglite(opts) : openPostgres(opts.databaseUrl, opts.maxConnections ?? 10);
}

async function openPglite(opts: OpenOptions): Promise<Database> {
  const dataDir = resolve(opts.dataDir);
  const release = opts.inMemory ? () => {} : lockDataDir(dataDir);
  const location = opts.inMemory ? 'PGlite (in memory)' : `PGlite at ${join(dataDir, 'pgdata')}`;
  try {
    const pglite = await PGlite.create(opts.inMemory ? 'memory://' : join(dataDir, 'pgdata'), {
      // bytea as Buffer, as node-postgres gives it (PGlite's default is a bare Uint8Array).
      parsers: { [INT8_OID]: (v: string) => Number(v), [BYTEA_OID]: (v: string) => Buffer.from(v.slice(2), 'hex') },
    });
    const db = new Kysely<Catalog>({ dialect: pgliteDialect(pglite) });
    return {
      engine: 'pglite',
      db,
      location,
      async close() {
        await db.destroy();
        release();
      },
    };
  } catch (cause) {
    release();
    throw new AccordError('DB_UNREACHABLE', { message: `Cannot open ${location}.`, cause });
  }
}

function pgliteDialect(pglite: PGlite) {
  // Kysely's PostgreSQL adapter, compiler and introspector apply unchanged; only the driver differs.
  const base = new PostgresDialect({ pool: {} as pg.Pool });
  return {
    createAdapter: () => base.createAdapter(),
    createDriver: () => new PGliteDriver(pglite),
    createQueryCompiler: () => base.createQueryCompiler(),
    createIntrospector: (db: Kysely<unknown>) => base.createIntrospector(db),
  };
}

/** `user@host:port/db` without the password, for messages. */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `PostgreSQL at ${u.hostname}:${u.port || '5432'}${u.pathname}`;
  } catch {
    return 'PostgreSQL (unparseable URL)';
  }
}

async function openPostgres(url: string, max: number): Promise<Database> {
  const location = describeUrl(url);
  const pool = new pg.Pool({
    connectionString: url,
    max,
    connectionTimeoutMillis: 5000,
    types: {
      getTypeParser: ((oid: number, format?: string) =>
        oid === INT8_OID ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
    },
  });
  // An idle client losing its server must not crash the process; the next checkout reconnects.
  pool.on('error', () => {});
  try {
    const client = await pool.connect();
    client.release();
  } catch (cause) {
    await pool.end().catch(() => {});
    throw new AccordError('DB_UNREACHABLE', {
      message: `Cannot connect to ${location}: ${safeCause(cause)}`,
      details: { location },
      cause,
    });
  }
  const db = new Kysely<Catalog>({ dialect: new PostgresDialect({ pool }) });
  return { engine: 'postgres', db, location, close: () => db.destroy() };
}

/** The driver's reason, which names hosts and TLS problems but never the password. */
function safeCause(cause: unknown): string {
  const msg = cause instanceof Error ? cause.message : String(cause);
  return msg.replace(/postgres(ql)?:\/\/[^\s]*/g, '[url]');
}

/**
 * Applies pending catalog migrations. Safe from several nodes at once: Kysely's PostgreSQL
 * adapter takes an advisory lock around the run (the other nodes wait, then find nothing to do),
 * and the migrations run in one transaction.
 */
export async function migrate(db: Db): Promise<{ applied: string[] }> {
  await sql`create schema if not exists accord`.execute(db).catch(async (err) => {
    // Two nodes racing on `if not exists` can still collide in the catalog; the loser is fine.
    const exists = await sql`select 1 from pg_namespace where nspname = 'accord'`.execute(db);
    if (exists.rows.length === 0) throw err;
  });
  const migrator = new Migrator({
    db,
    migrationTableSchema: 'accord',
    provider: { getMigrations: async () => ({ ...migrations }) },
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error;
  return { applied: (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName) };
}

/** Whether every known migration is applied (readiness). */
export async function migrationsApplied(db: Db): Promise<boolean> {
  const migrator = new Migrator({
    db,
    migrationTableSchema: 'accord',
    provider: { getMigrations: async () => ({ ...migrations }) },
  });
  const list = await migrator.getMigrations();
  return list.every((m) => m.executedAt !== undefined);
}

/** Quotes an SQL identifier we generated ourselves (schema and role names). */
export function ident(name: string): ReturnType<typeof sql.id> {
  return sql.id(name);
}
