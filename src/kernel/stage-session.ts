import { type CompiledQuery, Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { type AuditEvent, type AuditSource, appendStageAuditEvent, auditWritten, chainIdFor, stageAuditStatement, stageAuditValues } from '../audit-chain/index.ts';
import type { KmsProvider } from '../crypto/kms/index.ts';
import { type Database, describeUrl, type EngineName } from '../db/index.ts';
import { AccordError } from '../errors/index.ts';
import { gatewayCredentials, gatewayRoleName } from './gateway.ts';
import { pipeline, type Statement, type StatementResult } from './pipeline.ts';

/**
 * Stage sessions: tenant data is read and written only inside one, a transaction in which
 *
 * - the stage's runtime role `accord_rt_<hex>` is the current role (it owns nothing, so the
 *   tables' row-level security applies to it, and it has no privilege on the catalog or on any
 *   other stage);
 * - the search path is the stage schema (then pg_temp, so a temporary table never shadows a
 *   stage table);
 * - the caller is in transaction-local settings for row-level-security policies:
 *   `accord.tenant_id`, `accord.stage_id`, `accord.user_id` (empty for none),
 *   `accord.principal_kind`, `accord.roles` (comma-separated), `accord.request_id`. Policies read
 *   them with `current_setting('accord.user_id', true)`; on a connection that has seen them once
 *   they read as '' (not null) outside a session, so write `nullif(current_setting(...), '')`.
 *
 * What the database confines, and what it cannot, is in docs/security.md ("Stage sessions").
 */

/** A stage as the catalog names it (accord.stages: id, tenant_id, schema_name, role_name). */
export interface StageRef {
  readonly tenantId: string;
  readonly stageId: string;
  /** `st_<16 hex>` */
  readonly schema: string;
  /** The owning role `accord_st_<16 hex>`; the session runs as its runtime twin. */
  readonly role: string;
}

/** Who the session acts for; what RLS policies see. */
export interface Caller {
  readonly kind: 'user' | 'client' | 'end-user' | 'system';
  /** The user's, end user's or API client's id; null for the system. */
  readonly principalId: string | null;
  /** Role names (platform, custom or app roles) the caller holds here. */
  readonly roles: readonly string[];
  readonly requestId: string;
  /** The request's audit view (address, user agent, label) for events written in the session. */
  readonly source?: AuditSource;
}

/** Stage tables are not in the catalog types: apps create them at deployment. */
// biome-ignore lint/suspicious/noExplicitAny: stage tables have no static types (apps define them at run time)
export type StageTables = Record<string, any>;

/**
 * The session's transaction. Kysely's `transaction`/`connection` are left out on purpose: the
 * session owns the transaction, and a nested BEGIN would end it early.
 */
export type StageDb = Omit<Kysely<StageTables>, 'transaction' | 'startTransaction' | 'connection' | 'destroy'>;

/** What a stage session's callback receives. */
export interface StageSession {
  readonly db: StageDb;
  readonly stage: StageRef;
  readonly caller: Caller;
  /**
   * Appends an audit event in this transaction, without leaving the stage role: an INSERT on the
   * event's columns that row-level security holds to the stage's tenant (migration 015); returns
   * its id.
   */
  audit(event: StageAuditEvent): Promise<string>;
  /**
   * The same event, written with the session's COMMIT (in the same transaction, in the same
   * round trip on PostgreSQL): for an event that is the session's last word, such as the audit of
   * what a read returned. Should it fail, the session fails and nothing it did commits.
   */
  auditAtCommit(event: StageAuditEvent): void;
  /**
   * Runs statements in order in one round trip on PostgreSQL (one after the other on PGlite),
   * for statements that do not wait on each other's answers (a write and the read of its row).
   * The first error fails the call, and the session with it.
   */
  batch(queries: readonly CompiledQuery[], opts?: BatchOptions): Promise<Record<string, unknown>[][]>;
  /**
   * The values of this event for STAGE_AUDIT_COLUMNS (src/audit-chain), in order, for a statement
   * that appends it itself (an audit decided by the rows a SELECT finds, in that statement).
   */
  auditValues(event: StageAuditEvent): readonly unknown[];
}

export interface BatchOptions {
  /**
   * The session's last statements: COMMIT (with the events given to auditAtCommit) goes in the
   * same round trip, and the session ends with them (a statement after it is refused). For a
   * read whose answer needs nothing more from the database; should the caller fail afterwards,
   * what the batch did stays committed.
   */
  readonly commit?: boolean;
}

/** An audit event from a stage session: its tenant, stage and actor come from the session. */
export type StageAuditEvent = Omit<AuditEvent, 'tenantId'>;

/** Where stage sessions run: the gateway pool on PostgreSQL, the one shared connection on PGlite. */
export interface DataPlane {
  readonly engine: EngineName;
  readonly gatewayRole: string;
  /** Closes the gateway pool (PostgreSQL); on PGlite the platform's database owns the connection. */
  close(): Promise<void>;
}

export interface OpenDataPlaneOptions {
  /** PostgreSQL: the platform's URL; the gateway connects to the same server and database. */
  readonly databaseUrl?: string | undefined;
  /** PostgreSQL: gateway pool size (default 10). */
  readonly maxConnections?: number;
  /** PostgreSQL: unwraps the gateway password (set on first use). */
  readonly kms?: KmsProvider;
}

interface Plane {
  readonly db: Kysely<StageTables>;
  /** PostgreSQL: the gateway pool, whose sessions pipeline their statements (pipeline.ts). */
  readonly pool?: GuardedPool;
  /** Sent before BEGIN, in the same round trip (PGlite: become the gateway). */
  readonly before: string;
  /** Sent after COMMIT or ROLLBACK, in the same round trip (PGlite: become the platform again). */
  readonly after: string;
}

const planes = new WeakMap<DataPlane, Plane>();

export const STAGE_SCHEMA = /^st_[0-9a-f]{16}$/;
export const STAGE_OWNER_ROLE = /^accord_st_[0-9a-f]{16}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// The request-id rule of the HTTP layer.
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;
// No commas (the list separator) and nothing a policy author would have to escape.
const ROLE_NAME = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;
const KINDS: ReadonlySet<string> = new Set(['user', 'client', 'end-user', 'system']);
const INT8_OID = 20;

/** The runtime role of a stage, from its owning role: `accord_st_<hex>` → `accord_rt_<hex>`. */
export function runtimeRoleOf(ownerRole: string): string {
  if (!STAGE_OWNER_ROLE.test(ownerRole)) throw new TypeError(`stage.role: not a stage role name: ${JSON.stringify(ownerRole)}`);
  return `accord_rt_${ownerRole.slice('accord_st_'.length)}`;
}

/**
 * Opens the data plane. PostgreSQL: a pool of its own logging in as the gateway role (password
 * from {@link gatewayCredentials}); PGlite: the platform's one connection, on which each session
 * switches its session user to the gateway role and back.
 */
export async function openDataPlane(database: Database, opts: OpenDataPlaneOptions = {}): Promise<DataPlane> {
  if (database.engine === 'pglite') {
    const gatewayRole = await gatewayRoleName(database.db);
    const who = await sql<{ u: string }>`select session_user::text as u`.execute(database.db);
    const platform = who.rows[0]!.u;
    const plane: DataPlane = { engine: 'pglite', gatewayRole, close: async () => {} };
    // The names are ours (the gateway's checked by its pattern, the session user read above) and
    // quoted as identifiers; SET SESSION AUTHORIZATION takes no parameters.
    planes.set(plane, {
      db: database.db as unknown as Kysely<StageTables>,
      before: `set session authorization ${quoteIdent(gatewayRole)}; `,
      // RESET ALL: settings a session changed session-wide (only SQL injected into it would) must
      // not follow the platform's own queries on the shared connection. It leaves the session
      // user and role alone, hence the explicit SET SESSION AUTHORIZATION before it.
      after: `; set session authorization ${quoteIdent(platform)}; reset all`,
    });
    return plane;
  }
  if (opts.databaseUrl === undefined || opts.kms === undefined) throw new TypeError('openDataPlane: PostgreSQL needs opts.databaseUrl and opts.kms');
  const { role, password } = await gatewayCredentials(database.db, opts.kms);
  const url = new URL(opts.databaseUrl);
  url.username = role;
  url.password = password;
  const pool = new pg.Pool({
    connectionString: url.toString(),
    max: opts.maxConnections ?? 10,
    connectionTimeoutMillis: 5000,
    types: {
      getTypeParser: ((oid: number, format?: string) =>
        oid === INT8_OID ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
    },
  });
  pool.on('error', () => {});
  const location = describeUrl(opts.databaseUrl);
  try {
    const client = await pool.connect();
    try {
      // The whole design rests on the login role holding nothing; refuse to run otherwise.
      const r = await client.query<{ ok: boolean }>(
        `select rolname = $1 and not rolsuper and not rolcreaterole and not rolcreatedb and not rolbypassrls and not rolinherit as ok
         from pg_roles where rolname = current_user`,
        [role],
      );
      if (r.rows[0]?.ok !== true) throw new Error(`the gateway role ${role} is not the plain NOINHERIT login role migration 007 made`);
    } finally {
      client.release();
    }
  } catch (cause) {
    await pool.end().catch(() => {});
    if (cause instanceof Error && cause.message.startsWith('the gateway role')) throw cause;
    throw new AccordError('DB_UNREACHABLE', { message: `Cannot connect to ${location} as the data-plane gateway role.`, details: { location }, cause });
  }
  const guarded = guardedPool(pool);
  const db = new Kysely<StageTables>({ dialect: new PostgresDialect({ pool: guarded }) });
  const plane: DataPlane = { engine: 'postgres', gatewayRole: role, close: () => db.destroy() };
  planes.set(plane, { db, before: '', after: '', pool: guarded });
  return plane;
}

/**
 * A connection must never go back to the pool inside a transaction: the next session would run
 * in it, with the previous one's role and caller. Sessions always end theirs; should a COMMIT or
 * ROLLBACK fail half-way, the connection is destroyed instead of reused.
 */
interface GuardedPool {
  connect(): Promise<pg.PoolClient>;
  end(): Promise<void>;
}

function guardedPool(pool: pg.Pool): GuardedPool {
  return {
    async connect() {
      const client = await pool.connect();
      const release = client.release.bind(client);
      const status = (client as unknown as { getTransactionStatus?(): string | null }).getTransactionStatus;
      client.release = (destroy?: boolean | Error) => release(destroy || (status !== undefined && status.call(client) !== 'I') || undefined);
      return client;
    },
    end: () => pool.end(),
  };
}

/**
 * Runs `fn` in a stage session (see the top of this file) and commits, or rolls back if it
 * throws. PostgreSQL: see runPipelined (BEGIN and the settings ride with the first statement,
 * events given to auditAtCommit with the COMMIT). PGlite (in-process, a round trip costs no
 * system call): BEGIN with the role and every setting, the caller's statements, COMMIT.
 */
export async function runAsStage<T>(plane: DataPlane, stage: StageRef, caller: Caller, fn: (session: StageSession) => Promise<T>): Promise<T> {
  const p = planes.get(plane);
  if (p === undefined) throw new TypeError('runAsStage: not a data plane from openDataPlane');
  if (p.pool) return runPipelined(p.pool, stage, caller, fn);
  const enter = p.before + enterSql(stage, caller);
  const atCommit: StageAuditEvent[] = [];
  return p.db.connection().execute(async (conn) => {
    const abort = async () => {
      try {
        await sql.raw(`rollback${p.after}`).execute(conn);
      } catch {
        // PGlite: become the platform again even if the rollback failed. PostgreSQL: the pool
        // destroys a connection still in a transaction (guardedPool).
        if (p.after) await sql.raw(p.after.slice('; '.length)).execute(conn).catch(() => {});
      }
    };
    try {
      await sql.raw(enter).execute(conn);
    } catch (err) {
      await abort();
      throw err;
    }
    let committed = false;
    let ended = false;
    // PostgreSQL answers COMMIT of a transaction an earlier error aborted with a ROLLBACK tag, not
    // an error; the caller must not believe its writes landed. PGlite reports no tag, so there a
    // `select 1` first fails in an aborted transaction.
    const commit = async () => {
      committed = true;
      for (const event of atCommit.splice(0)) await appendAudit(conn, stage, caller, event);
      const done = await sql.raw(p.after ? `select 1; commit${p.after}` : 'commit').execute(conn);
      if ((done.rows[0] as { command?: string } | undefined)?.command === 'ROLLBACK') {
        throw new Error('stage session rolled back: a statement in it failed');
      }
      ended = true;
    };
    const session = sessionOf(conn, stage, caller, atCommit, () => committed, async (queries, last) => {
      const out: Record<string, unknown>[][] = [];
      for (const q of queries) out.push((await conn.executeQuery(q)).rows as Record<string, unknown>[]);
      if (last) await commit();
      return out;
    });
    try {
      const result = await fn(session);
      if (!committed) await commit();
      return result;
    } catch (err) {
      // After a commit the session's work stands; the platform's connection was given back then.
      if (!ended) await abort();
      throw err;
    }
  });
}

// The same row builder as every other event (audit-chain); only the way in differs: a function
// the stage role may execute, since it cannot write the catalog itself.
function auditSource(caller: Caller): AuditSource {
  return (
    caller.source ?? {
      actor: { type: caller.kind === 'end-user' ? 'user' : caller.kind, id: caller.principalId, label: null, roles: [...caller.roles] },
      requestId: caller.requestId,
      sourceIp: null,
      userAgent: null,
    }
  );
}

/** The session both engines hand to `fn`; they differ in how a batch (and the COMMIT) goes out. */
function sessionOf(
  db: StageDb,
  stage: StageRef,
  caller: Caller,
  atCommit: StageAuditEvent[],
  committed: () => boolean,
  batch: (queries: readonly CompiledQuery[], last: boolean) => Promise<Record<string, unknown>[][]>,
): StageSession {
  return {
    db,
    stage,
    caller,
    audit: (event) => appendAudit(db, stage, caller, event),
    auditAtCommit: (event) => {
      atCommit.push(event);
    },
    batch: async (queries, opts) => {
      if (committed()) throw new Error('the stage session has committed');
      return batch(queries, opts?.commit === true);
    },
    auditValues: (event) => stageAuditValues(auditSource(caller), inStage(stage, event)).values,
  };
}

const inStage = (stage: StageRef, event: StageAuditEvent): AuditEvent => ({ ...event, tenantId: stage.tenantId, details: { ...event.details, stageId: stage.stageId } });

async function appendAudit(db: StageDb, stage: StageRef, caller: Caller, event: StageAuditEvent): Promise<string> {
  return appendStageAuditEvent(db, auditSource(caller), inStage(stage, event));
}

/**
 * A pooled PostgreSQL connection as a stage session uses it: its own Kysely instance (made once
 * per connection) whose first statement of a session carries the session's BEGIN and settings
 * in the same round trip.
 */
interface PipelinedConnection {
  readonly db: Kysely<StageTables>;
  /** Statements waiting to go out in front of the session's first one. */
  pending: Statement[];
  /** Whether the session's BEGIN went out (so there is a transaction to end). */
  started: boolean;
  /** Statements in one round trip, behind what is pending. */
  batch(statements: readonly Statement[]): Promise<StatementResult[]>;
}

const connections = new WeakMap<pg.PoolClient, PipelinedConnection>();

function pipelined(client: pg.PoolClient): PipelinedConnection {
  let c = connections.get(client);
  if (c) return c;
  const state: { pending: Statement[]; started: boolean } = { pending: [], started: false };
  // What Kysely's PostgreSQL driver calls; it releases nothing (the session does).
  const batch = (statements: readonly Statement[]) => {
    const prefix = state.pending;
    state.pending = [];
    state.started = true;
    return pipeline(client, [...prefix, ...statements]).then((r) => r.slice(prefix.length));
  };
  const facade = {
    query(text: string, values: unknown[]) {
      if (state.pending.length === 0) return client.query(text, values);
      return batch([{ text, values }]).then((r) => r[0]);
    },
    release() {},
  };
  const db = new Kysely<StageTables>({ dialect: new PostgresDialect({ pool: { connect: async () => facade, end: async () => {} } as unknown as pg.Pool }) });
  c = Object.assign(state, { db, batch });
  connections.set(client, c);
  return c;
}

/**
 * runAsStage on PostgreSQL. Round trips: the first statement (with BEGIN and the settings in
 * front of it), each further statement, and COMMIT with the events written at commit. A read
 * that audits what it returned is two.
 */
async function runPipelined<T>(pool: GuardedPool, stage: StageRef, caller: Caller, fn: (session: StageSession) => Promise<T>): Promise<T> {
  const enter = enterStatements(stage, caller);
  const client = await pool.connect();
  const c = pipelined(client);
  c.pending = enter;
  c.started = false;
  const atCommit: StageAuditEvent[] = [];
  let ended = false;
  const rollback = async () => {
    c.pending = [];
    if (!c.started || ended) return;
    // Should the rollback fail, the connection is still in a transaction and the guarded pool
    // destroys it on release.
    await client.query('rollback').catch(() => {});
  };
  const source = auditSource(caller);
  let committed = false;
  // The session's COMMIT, behind `statements` and the events given to auditAtCommit, in one
  // round trip; resolves with the results of `statements`.
  const commit = async (statements: readonly Statement[]) => {
    committed = true;
    const audits = atCommit.splice(0).map((e) => stageAuditStatement(source, inStage(stage, e)));
    const results = await c.batch([...statements, ...audits, { text: 'commit', values: [] }]);
    // COMMIT of a transaction an earlier error aborted answers with a ROLLBACK tag.
    if (results[results.length - 1]?.command === 'ROLLBACK') throw new Error('stage session rolled back: a statement in it failed');
    ended = true;
    auditWritten(chainIdFor(stage.tenantId));
    return results.slice(0, statements.length);
  };
  try {
    const session = sessionOf(c.db, stage, caller, atCommit, () => committed, async (queries, last) => {
      const statements = queries.map((q) => ({ text: q.sql, values: q.parameters }));
      return (await (last ? commit(statements) : c.batch(statements))).map((r) => r.rows);
    });
    try {
      const result = await fn(session);
      // Nothing was sent: no transaction to end.
      if (!committed && (c.started || atCommit.length > 0)) await commit([]);
      return result;
    } catch (err) {
      await rollback();
      throw err;
    }
  } finally {
    c.pending = [];
    client.release();
  }
}

/**
 * PGlite's way in: `begin; select set_config(...), ...` as one simple-protocol message, so the role
 * and the settings cost no round trip of their own (PostgreSQL sends {@link enterStatements} in
 * front of the session's first statement instead). A simple-protocol message carries no parameters, so
 * every value goes in as `convert_from(decode('<hex>', 'hex'), 'UTF8')`: a hex digit string cannot
 * end its literal or change meaning whatever the session's settings (standard_conforming_strings
 * included), so no value, even one that slipped past the checks below, can become SQL. The checks
 * are about meaning: policies cast these settings to uuid.
 */
export function enterSql(stage: StageRef, caller: Caller): string {
  const settings = sessionSettings(stage, caller);
  return `begin; select ${settings.map(([k, v]) => `set_config('${k}', ${hexText(v)}, true)`).join(', ')}`;
}

/** The session's settings, after the checks on their meaning (policies cast them to uuid). */
function sessionSettings(stage: StageRef, caller: Caller): [string, string][] {
  if (!STAGE_SCHEMA.test(stage.schema)) throw new TypeError(`stage.schema: not a stage schema name: ${JSON.stringify(stage.schema)}`);
  const role = runtimeRoleOf(stage.role);
  if (!UUID.test(stage.tenantId)) throw new TypeError('stage.tenantId: not a uuid');
  if (!UUID.test(stage.stageId)) throw new TypeError('stage.stageId: not a uuid');
  if (!KINDS.has(caller.kind)) throw new TypeError(`caller.kind: one of ${[...KINDS].join(', ')}`);
  if (caller.principalId !== null && !UUID.test(caller.principalId)) throw new TypeError('caller.principalId: not a uuid');
  if (!REQUEST_ID.test(caller.requestId)) throw new TypeError('caller.requestId: 1-64 of A-Z a-z 0-9 . _ : -');
  for (const [i, r] of caller.roles.entries()) {
    if (!ROLE_NAME.test(r)) throw new TypeError(`caller.roles[${i}]: not a role name`);
  }
  const settings: [string, string][] = [
    ['role', role],
    ['search_path', `${quoteIdent(stage.schema)}, pg_temp`],
    ['accord.tenant_id', stage.tenantId.toLowerCase()],
    ['accord.stage_id', stage.stageId.toLowerCase()],
    ['accord.user_id', caller.principalId?.toLowerCase() ?? ''],
    ['accord.principal_kind', caller.kind],
    ['accord.roles', caller.roles.join(',')],
    ['accord.request_id', caller.requestId],
  ];
  return settings;
}

/** enterSql as extended-protocol statements, the values as bind parameters (PostgreSQL's pipeline). */
export function enterStatements(stage: StageRef, caller: Caller): Statement[] {
  const settings = sessionSettings(stage, caller);
  return [
    { text: 'begin', values: [] },
    { text: `select ${settings.map(([k], i) => `set_config('${k}', $${i + 1}, true)`).join(', ')}`, values: settings.map(([, v]) => v) },
  ];
}

const hexText = (v: string) => `convert_from(decode('${Buffer.from(v, 'utf8').toString('hex')}', 'hex'), 'UTF8')`;

function quoteIdent(name: string): string {
  // Only names of ours reach here; the pattern keeps the quoting trivially right.
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new TypeError(`not an identifier of ours: ${JSON.stringify(name)}`);
  return `"${name}"`;
}
