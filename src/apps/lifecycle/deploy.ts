// Deploy, promote and roll back: one function, `deployRevision`, applies a revision to a stage.
//
// Order of work, and why it survives a kill -9 at any point:
//  1. The stage is held (PostgreSQL: a session advisory lock on one connection, released by the
//     server when the process dies; PGlite: the one connection itself).
//  2. Leftovers of an interrupted deployment are cleared: indexes recorded in app_pending_indexes
//     were built outside a transaction by a deployment that never committed, so they are dropped.
//  3. Drift: the live catalog must equal the snapshot the last deployment recorded.
//  4. The plan, and its prechecks against the stage's data (read only).
//  5. PostgreSQL only: CREATE INDEX CONCURRENTLY for existing tables, each recorded first.
//  6. One transaction: every other step (as the stage's owner role, under lock_timeout, retried),
//     the app's RLS policies replaced, the new snapshot, app_stage_state, app_deployments, the
//     pending-index rows removed, the audit record. Until it commits the stage runs the old
//     revision; after, the new one.
import { sql } from 'kysely';
import type { AuditSource } from '../../audit-chain/index.ts';
import type { Db, EngineName } from '../../db/index.ts';
import { AccordError } from '../../errors/index.ts';
import { refuse, runtimeRoleOf, unitOfWork, type Work } from '../../kernel/index.ts';
import { quoteIdent } from '../compile/ddl.ts';
import type { AppIR } from '../compile/ir.ts';
import { irFromJson } from '../compile/ir.ts';
import { compilePolicies } from '../compile/policies.ts';
import { type Precheck, planMigration, type RuleChange, ruleChanges, type Step, UnsupportedChange } from './plan.ts';
import { type DriftItem, driftBetween, readSnapshot, type SchemaSnapshot } from './snapshot.ts';

/** The stage a deployment goes to (the tenancy's Stage, as far as the lifecycle needs it). */
export interface StageRef {
  readonly id: string;
  readonly name: string;
  readonly position: number;
  /** The stage schema (`st_<hex>`). */
  readonly schema: string;
  /** The role that owns the schema (`accord_st_<hex>`); DDL runs as it. */
  readonly role: string;
}

/** A revision to deploy: new (from a manifest) or read back from app_revisions. */
export interface RevisionInput {
  readonly hash: string;
  readonly ir: AppIR;
  readonly manifest: string;
  readonly actions: Readonly<Record<string, string>>;
}

/** Points between a deployment's phases (for the kill tests). */
export type DeployPhase = 'planned' | 'concurrent-built' | 'applied' | 'committed';

export interface DeployOptions {
  readonly engine: EngineName;
  readonly source: AuditSource;
  readonly tenant: { readonly id: string; readonly name: string };
  readonly stage: StageRef;
  readonly revision: RevisionInput;
  readonly kind: 'deploy' | 'promote' | 'rollback';
  readonly allowDataLoss?: boolean;
  /** The user behind it (recorded on the deployment), if any. */
  readonly userId?: string | null;
  /** How long a second deployment to the same stage waits for the first (PostgreSQL). Default 10 s. */
  readonly waitMillis?: number;
  /** Test seam: called between the phases (kill tests stop the process here). */
  readonly onPhase?: (phase: DeployPhase) => Promise<void> | void;
}

export interface DataLossItem {
  readonly entity: string;
  readonly attribute?: string;
  /** `hidden`: kept with its data, no longer served; `dropped`: removed with --allow-data-loss. */
  readonly effect: 'hidden' | 'dropped';
}

export interface Plan {
  readonly app: string;
  readonly stage: string;
  readonly from: { readonly revision: string; readonly version: string } | null;
  readonly to: { readonly revision: string; readonly version: string };
  /** The stage already runs this revision: nothing to do. */
  readonly unchanged: boolean;
  readonly steps: readonly Step[];
  /** Whether every precheck found no offending row. */
  readonly prechecksPassed: boolean;
  readonly dataLoss: readonly DataLossItem[];
  readonly ruleChanges: readonly RuleChange[];
  readonly drift: readonly DriftItem[];
}

export interface DeployResult extends Plan {
  readonly changed: boolean;
  readonly label: string;
  readonly deploymentId: string | null;
  readonly message: string;
}

const LOCK_RETRIES = 3;
const LOCK_TIMEOUT = '3s';
const LOCK_ID = 'accord.app-deploy';

interface StageState {
  revision: string;
  version: string;
  ir: AppIR;
  snapshot: SchemaSnapshot;
  tables: string[];
}

async function stageState(db: Db, stageId: string, app: string): Promise<StageState | null> {
  const row = await db
    .selectFrom('accord.app_stage_state as s')
    .innerJoin('accord.app_revisions as r', (j) => j.onRef('r.tenant_id', '=', 's.tenant_id').onRef('r.app', '=', 's.app').onRef('r.id', '=', 's.revision'))
    .select(['s.revision', 's.schema_snapshot', 's.tables', 'r.version', 'r.ir'])
    .where('s.stage_id', '=', stageId)
    .where('s.app', '=', app)
    .executeTakeFirst();
  if (!row) return null;
  return { revision: row.revision, version: row.version, ir: irFromJson(row.ir), snapshot: (row.schema_snapshot ?? {}) as SchemaSnapshot, tables: row.tables };
}

/**
 * Holds the stage for the whole deployment on one connection. On PostgreSQL a session-level
 * advisory lock: it spans the concurrent index builds (outside any transaction) and dies with
 * the connection if the process is killed. A second deployment polls for it up to `waitMillis`,
 * then fails with APP_DEPLOY_IN_PROGRESS. On PGlite the connection itself is the lock.
 */
async function holdStage<T>(db: Db, engine: EngineName, stageId: string, waitMillis: number, fn: (conn: Db) => Promise<T>): Promise<T> {
  return db.connection().execute(async (conn) => {
    if (engine === 'pglite') return fn(conn);
    const deadline = Date.now() + waitMillis;
    for (;;) {
      const r = await sql<{ ok: boolean }>`select pg_try_advisory_lock(hashtext(${LOCK_ID}), hashtext(${stageId})) as ok`.execute(conn);
      if (r.rows[0]?.ok) break;
      if (Date.now() >= deadline) throw new AccordError('APP_DEPLOY_IN_PROGRESS', { message: 'Another deployment to this stage is running; retry when it has finished.' });
      await new Promise((r) => setTimeout(r, 100));
    }
    try {
      return await fn(conn);
    } finally {
      await sql`select pg_advisory_unlock(hashtext(${LOCK_ID}), hashtext(${stageId}))`.execute(conn).catch(() => {});
    }
  });
}

// Indexes a deployment built CONCURRENTLY and never committed (the process died, or the
// transaction failed): they are not part of any recorded state, so they go.
async function clearPending(conn: Db, engine: EngineName, stage: StageRef, app: string): Promise<void> {
  const rows = await conn.selectFrom('accord.app_pending_indexes').select('index_name').where('stage_id', '=', stage.id).where('app', '=', app).execute();
  for (const r of rows) {
    const name = `${quoteIdent(stage.schema)}.${quoteIdent(r.index_name)}`;
    await sql.raw(`DROP INDEX ${engine === 'postgres' ? 'CONCURRENTLY ' : ''}IF EXISTS ${name}`).execute(conn);
    await conn.deleteFrom('accord.app_pending_indexes').where('stage_id', '=', stage.id).where('index_name', '=', r.index_name).execute();
  }
}

async function runPrechecks(conn: Db, stage: StageRef, steps: readonly Step[]): Promise<Step[]> {
  const checks = steps.filter((s) => s.precheck);
  if (checks.length === 0) return [...steps];
  const results = new Map<Step, number>();
  await conn.transaction().execute(async (trx) => {
    await sql.raw(`SET LOCAL ROLE ${quoteIdent(stage.role)}`).execute(trx);
    await sql`SET TRANSACTION READ ONLY`.execute(trx).catch(() => {});
    for (const s of checks) {
      const r = await sql.raw<{ n: number | string }>((s.precheck as Precheck).sql).execute(trx);
      results.set(s, Number(r.rows[0]?.n ?? 0));
    }
  });
  return steps.map((s) => (s.precheck ? { ...s, precheck: { ...s.precheck, violations: results.get(s) ?? 0 } } : s));
}

function dataLossOf(steps: readonly Step[]): DataLossItem[] {
  const out: DataLossItem[] = [];
  for (const s of steps) {
    if (s.kind === 'hide-column') out.push({ entity: s.entity, attribute: s.name, effect: 'hidden' });
    if (s.kind === 'drop-column') out.push({ entity: s.entity, attribute: s.name, effect: 'dropped' });
    if (s.kind === 'hide-table') out.push({ entity: s.entity, effect: 'hidden' });
    if (s.kind === 'drop-table') out.push({ entity: s.entity, effect: 'dropped' });
  }
  return out;
}

function withoutIndexes(s: SchemaSnapshot, names: ReadonlySet<string>): SchemaSnapshot {
  if (names.size === 0) return s;
  return Object.fromEntries(Object.entries(s).map(([t, shape]) => [t, { ...shape, indexes: Object.fromEntries(Object.entries(shape.indexes).filter(([n]) => !names.has(n))) }]));
}

interface Planned extends Plan {
  readonly state: StageState | null;
}

async function planOn(conn: Db, opts: Pick<DeployOptions, 'engine' | 'stage' | 'revision' | 'allowDataLoss'>): Promise<Planned> {
  const { stage, revision } = opts;
  const next = revision.ir;
  const state = await stageState(conn, stage.id, next.name);
  const tables = [...new Set([...(state?.tables ?? []), ...next.entities.map((e) => e.table)])];
  // Leftovers of an interrupted build are not drift: the next deployment drops them (a plan,
  // which changes nothing, just leaves them out).
  const pending = new Set((await conn.selectFrom('accord.app_pending_indexes').select('index_name').where('stage_id', '=', stage.id).where('app', '=', next.name).execute()).map((r) => r.index_name));
  const live = withoutIndexes(await readSnapshot(conn, stage.schema, tables), pending);
  const drift = driftBetween(state?.snapshot ?? {}, live);
  const base = {
    app: next.name,
    stage: stage.name,
    from: state ? { revision: state.revision, version: state.version } : null,
    to: { revision: revision.hash, version: next.version },
    state,
    ruleChanges: ruleChanges(state?.ir ?? null, next),
    drift,
  };
  if (state?.revision === revision.hash) return { ...base, unchanged: true, steps: [], prechecksPassed: true, dataLoss: [] };
  let steps: Step[];
  try {
    steps = planMigration({ schema: stage.schema, engine: opts.engine, previous: state?.ir ?? null, next, live, allowDataLoss: opts.allowDataLoss === true });
  } catch (err) {
    if (err instanceof UnsupportedChange) {
      throw new AccordError('APP_MIGRATION_UNSUPPORTED', {
        message: `${err.message}; add a new attribute and move the data instead.`,
        details: { entity: err.entity, attribute: err.attribute, from: err.from, to: err.to },
      });
    }
    throw err;
  }
  // Prechecks read tables that exist; with drift the shapes are not what the plan assumes.
  if (drift.length === 0) steps = await runPrechecks(conn, stage, steps);
  const prechecksPassed = steps.every((s) => !s.precheck || s.precheck.violations === 0);
  return { ...base, unchanged: false, steps, prechecksPassed, dataLoss: dataLossOf(steps) };
}

/** The impact analysis of deploying `revision` to `stage`: steps, prechecks run, data loss, rule changes, drift. Changes nothing. */
export async function planDeployment(db: Db, opts: Pick<DeployOptions, 'engine' | 'stage' | 'revision' | 'allowDataLoss'>): Promise<Plan> {
  return db.connection().execute(async (conn) => {
    const { state: _state, ...plan } = await planOn(conn, opts);
    return plan;
  });
}

const isLockTimeout = (err: unknown) => (err as { code?: unknown })?.code === '55P03';

/**
 * Applies a revision to a stage: plan, prechecks, migration, policies and the deployment record,
 * atomically (see the top of this file). Deploying what already runs is a no-op that says so.
 * Callable from tests and from the routes alike.
 */
export async function deployRevision(db: Db, opts: DeployOptions): Promise<DeployResult> {
  const { stage, revision, engine, tenant } = opts;
  const app = revision.ir.name;
  return holdStage(db, engine, stage.id, opts.waitMillis ?? 10_000, async (conn) => {
    await clearPending(conn, engine, stage, app);
    const plan = await planOn(conn, opts);
    const { state, ...publicPlan } = plan;
    const labelOf = async () => {
      const r = await conn.selectFrom('accord.app_revisions').select('seq').where('tenant_id', '=', tenant.id).where('app', '=', app).where('id', '=', revision.hash).executeTakeFirst();
      return r ? `R${r.seq}` : '';
    };
    if (plan.unchanged) {
      return { ...publicPlan, changed: false, label: await labelOf(), deploymentId: null, message: `${app} ${revision.ir.version} (${revision.hash.slice(7, 19)}) already runs on ${stage.name}; nothing to do.` };
    }
    const target = { type: 'app', id: `${stage.name}/${app}` };
    if (plan.drift.length > 0) {
      // Out-of-band changes to a stage schema are a security event as much as a failed deploy.
      const err = new AccordError('APP_SCHEMA_DRIFT', {
        message: `The tables of ${app} on ${stage.name} were changed outside Accord (${plan.drift.length} difference${plan.drift.length === 1 ? '' : 's'}); nothing was deployed.`,
        details: { drift: plan.drift },
      });
      return refuse(conn, opts.source, err, { tenantId: tenant.id, action: 'app.drift.detected', target, outcome: 'failure', reason: err.code, details: { revision: revision.hash, drift: plan.drift } });
    }
    if (!plan.prechecksPassed) {
      const failed = plan.steps.filter((s) => s.precheck && (s.precheck.violations ?? 0) > 0).map((s) => ({ step: s.kind, entity: s.entity, name: s.name, check: s.precheck?.description, rows: s.precheck?.violations }));
      const err = new AccordError('APP_MIGRATION_PRECHECK_FAILED', { message: `The stage's data does not allow this migration: ${failed.map((f) => `${f.rows} ${f.check}`).join('; ')}.`, details: { failed } });
      return refuse(conn, opts.source, err, { tenantId: tenant.id, action: 'app.deploy.refused', target, outcome: 'failure', reason: err.code, details: { revision: revision.hash, failed } });
    }
    await opts.onPhase?.('planned');
    // Concurrent index builds (PostgreSQL), each recorded before it starts.
    const concurrent = plan.steps.filter((s) => s.phase === 'concurrent');
    const built: string[] = [];
    try {
      for (const s of concurrent) {
        await conn.insertInto('accord.app_pending_indexes').values({ stage_id: stage.id, app, index_name: s.name, revision: revision.hash }).onConflict((oc) => oc.columns(['stage_id', 'index_name']).doNothing()).execute();
        built.push(s.name);
        await sql.raw(`SET ROLE ${quoteIdent(stage.role)}`).execute(conn);
        try {
          for (const stmt of s.sql) await sql.raw(stmt).execute(conn);
        } finally {
          await sql`RESET ROLE`.execute(conn);
        }
      }
      if (concurrent.length) await opts.onPhase?.('concurrent-built');
      const result = await applyInTransaction(conn, opts, plan, state);
      await opts.onPhase?.('committed');
      return { ...publicPlan, ...result };
    } catch (err) {
      // Best effort: the next deployment clears whatever this leaves.
      await clearPending(conn, engine, stage, app).catch(() => {});
      if (isLockTimeout(err)) throw new AccordError('APP_MIGRATION_LOCK_TIMEOUT', { message: `The tables of ${app} on ${stage.name} stayed locked by other work; nothing changed. Retry later.` });
      const code = (err as { code?: unknown })?.code;
      if (code === '23505' || code === '23502' || code === '23514' || code === '23503') {
        throw new AccordError('APP_MIGRATION_PRECHECK_FAILED', { message: `Rows written during the deployment do not allow the migration (${String((err as Error).message).slice(0, 200)}); nothing changed.` });
      }
      throw err;
    }
  });
}

async function applyInTransaction(conn: Db, opts: DeployOptions, plan: Planned, state: StageState | null): Promise<Omit<DeployResult, keyof Plan>> {
  // A lock wait longer than lock_timeout aborts the transaction rather than queueing every
  // reader of the table behind our ACCESS EXCLUSIVE request; we retry a few times, then give up.
  for (let attempt = 1; ; attempt++) {
    try {
      return await unitOfWork(conn, opts.source, (w) => applySteps(w, opts, plan, state));
    } catch (err) {
      if (!isLockTimeout(err) || attempt >= LOCK_RETRIES) throw err;
      await new Promise((r) => setTimeout(r, 200 * attempt));
    }
  }
}

async function applySteps(w: Work, opts: DeployOptions, plan: Planned, state: StageState | null): Promise<Omit<DeployResult, keyof Plan>> {
  const { trx } = w;
  const { stage, revision, tenant } = opts;
  const ir = revision.ir;
  const app = ir.name;
  await sql.raw(`SET LOCAL lock_timeout = '${LOCK_TIMEOUT}'`).execute(trx);
  // The revision row (immutable; a promotion or rollback finds it there already).
  const existing = await trx.selectFrom('accord.app_revisions').select('seq').where('tenant_id', '=', tenant.id).where('app', '=', app).where('id', '=', revision.hash).executeTakeFirst();
  let seq = existing?.seq;
  if (seq === undefined) {
    const max = await trx.selectFrom('accord.app_revisions').select((eb) => eb.fn.max('seq').as('m')).where('tenant_id', '=', tenant.id).where('app', '=', app).executeTakeFirst();
    seq = Number(max?.m ?? 0) + 1;
    await trx
      .insertInto('accord.app_revisions')
      .values({ tenant_id: tenant.id, app, id: revision.hash, version: ir.version, ir: JSON.stringify(ir), manifest: revision.manifest, actions: JSON.stringify(revision.actions) as unknown as Record<string, string>, created_by: opts.userId ?? null, seq })
      .execute();
  }
  // The stage's DDL runs as its owner, so the tables are the owner's and the default privileges
  // give the runtime role its DML.
  await sql.raw(`SET LOCAL ROLE ${quoteIdent(stage.role)}`).execute(trx);
  for (const s of plan.steps.filter((x) => x.phase === 'transaction')) for (const stmt of s.sql) await sql.raw(stmt).execute(trx);
  const tables = [...new Set([...(state?.tables ?? []), ...ir.entities.map((e) => e.table)])];
  const existingTables = Object.keys(await readSnapshot(trx, stage.schema, tables));
  // All of the app's policies are replaced: no stale one survives a change of rules.
  const policies = await sql<{ t: string; name: string }>`select tablename as t, policyname as name from pg_policies where schemaname = ${stage.schema} and tablename = any(${existingTables}::text[])`.execute(trx);
  for (const p of policies.rows) await sql.raw(`DROP POLICY ${quoteIdent(p.name)} ON ${quoteIdent(stage.schema)}.${quoteIdent(p.t)}`).execute(trx);
  const runtimeRole = runtimeRoleOf(stage.role);
  for (const p of compilePolicies(ir, { schema: stage.schema, runtimeRole })) await sql.raw(p.sql).execute(trx);
  await sql`RESET ROLE`.execute(trx);
  await opts.onPhase?.('applied');
  const remaining = tables.filter((t) => existingTables.includes(t));
  const snapshot = await readSnapshot(trx, stage.schema, remaining);
  const now = new Date();
  await trx
    .insertInto('accord.app_stage_state')
    .values({ stage_id: stage.id, app, tenant_id: tenant.id, revision: revision.hash, deployed_at: now, deployed_by: opts.userId ?? null, schema_snapshot: JSON.stringify(snapshot), tables: remaining })
    .onConflict((oc) => oc.columns(['stage_id', 'app']).doUpdateSet({ revision: revision.hash, deployed_at: now, deployed_by: opts.userId ?? null, schema_snapshot: JSON.stringify(snapshot), tables: remaining }))
    .execute();
  const steps = plan.steps.map((s) => ({ kind: s.kind, entity: s.entity, name: s.name, class: s.class, phase: s.phase, destructive: s.destructive, ...(s.precheck ? { precheck: s.precheck.description, violations: s.precheck.violations } : {}) }));
  const dep = await trx
    .insertInto('accord.app_deployments')
    .values({ tenant_id: tenant.id, stage_id: stage.id, app, revision: revision.hash, previous_revision: state?.revision ?? null, kind: opts.kind, steps: JSON.stringify(steps), deployed_by: opts.userId ?? null })
    .returning('id')
    .executeTakeFirstOrThrow();
  await trx.deleteFrom('accord.app_pending_indexes').where('stage_id', '=', stage.id).where('app', '=', app).execute();
  const action = { deploy: 'app.deployed', promote: 'app.promoted', rollback: 'app.rolled-back' }[opts.kind];
  await w.audit({
    tenantId: tenant.id,
    action,
    target: { type: 'app', id: `${stage.name}/${app}` },
    outcome: 'success',
    details: { revision: revision.hash, label: `R${seq}`, version: ir.version, previous: state?.revision ?? null, deployment: dep.id, steps: steps.length },
  });
  const dropped = plan.dataLoss.filter((d) => d.effect === 'dropped');
  if (dropped.length > 0) {
    // Consent to data loss is its own record: what was dropped, on whose word.
    await w.audit({ tenantId: tenant.id, action: 'app.data-dropped', target: { type: 'app', id: `${stage.name}/${app}` }, outcome: 'success', details: { revision: revision.hash, deployment: dep.id, dropped } });
  }
  const verb = { deploy: 'Deployed', promote: 'Promoted', rollback: 'Rolled back to' }[opts.kind];
  const hidden = plan.dataLoss.filter((d) => d.effect === 'hidden');
  const extra = [hidden.length ? `kept hidden: ${hidden.map((d) => (d.attribute ? `${d.entity}.${d.attribute}` : d.entity)).join(', ')}` : '', dropped.length ? `dropped: ${dropped.map((d) => (d.attribute ? `${d.entity}.${d.attribute}` : d.entity)).join(', ')}` : '']
    .filter(Boolean)
    .join('; ');
  return {
    changed: true,
    label: `R${seq}`,
    deploymentId: dep.id,
    message: `${verb} ${app} ${ir.version} as R${seq} (${revision.hash.slice(7, 19)}) on ${stage.name}: ${plan.steps.length} step${plan.steps.length === 1 ? '' : 's'}${extra ? `; ${extra}` : ''}.`,
  };
}
