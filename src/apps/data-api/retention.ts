// Retention (DATA-4): a job on the job queue purges the rows of entities with a `retention` rule
// once they are older than its days, in batches, each batch in one stage session (a system caller:
// row-level security lets it see and delete expired rows only, see compile/policies.ts) with an
// audit event carrying the count, in the same transaction as the deletion.
import { sql } from 'kysely';
import type { Db } from '../../db/index.ts';
import { enqueueJob, type JobStep } from '../../jobs/index.ts';
import { type DataPlane, runAsStage, unitOfWork } from '../../kernel/index.ts';
import { systemSource } from '../../audit-chain/index.ts';
import { expiredSql } from '../compile/policies.ts';
import { irFromJson } from '../compile/ir.ts';

export const RETENTION_JOB = 'data.retention';
export const RETENTION_BATCH = 500;

/** The retention job's step: one batch of one entity on one stage per call; done when none is left. */
export function retentionJobSteps(plane: DataPlane, clock: () => Date = () => new Date(), batch = RETENTION_BATCH): Map<string, JobStep> {
  const step: JobStep = async (db: Db, job) => {
    const tenantId = job.tenantId;
    if (!tenantId) return { done: true, progress: {} };
    const deployed = await db
      .selectFrom('accord.app_stage_state as s')
      .innerJoin('accord.app_revisions as r', (j) => j.onRef('r.tenant_id', '=', 's.tenant_id').onRef('r.app', '=', 's.app').onRef('r.id', '=', 's.revision'))
      .innerJoin('accord.stages as st', 'st.id', 's.stage_id')
      .select(['s.app', 's.stage_id', 'r.ir', 'st.schema_name', 'st.role_name'])
      .where('s.tenant_id', '=', tenantId)
      .orderBy('s.stage_id')
      .orderBy('s.app')
      .execute();
    const purged = { ...((job.progress.purged as Record<string, number> | undefined) ?? {}) };
    const now = clock().toISOString();
    for (const d of deployed) {
      const app = irFromJson(typeof d.ir === 'string' ? JSON.parse(d.ir) : d.ir);
      for (const e of app.entities) {
        const expired = expiredSql(e, 't');
        if (!expired) continue;
        const n = await runAsStage(plane, { tenantId, stageId: d.stage_id, schema: d.schema_name, role: d.role_name }, { kind: 'system', principalId: null, roles: [], requestId: `retention-${job.id}` }, async (s) => {
          await sql`select set_config('accord.retention_now', ${now}, true)`.execute(s.db);
          const gone = await sql<{ id: string }>`
            delete from ${sql.id(d.schema_name, e.table)} where id in (
              select t.id from ${sql.id(d.schema_name, e.table)} as t where ${sql.raw(expired)} order by t.id limit ${batch}
            ) returning id`.execute(s.db);
          if (gone.rows.length > 0) {
            await s.audit({
              action: 'data.retention.purged',
              target: { type: 'app-entity', id: `${d.app}/${e.name}` },
              outcome: 'success',
              details: { app: d.app, entity: e.name, count: gone.rows.length, days: e.retention?.days, before: now },
            });
          }
          return gone.rows.length;
        });
        if (n > 0) {
          const k = `${d.stage_id}/${d.app}/${e.name}`;
          purged[k] = (purged[k] ?? 0) + n;
          // One batch per step: the runner renews its lease between steps.
          return { done: false, progress: { purged } };
        }
      }
    }
    return { done: true, progress: { purged } };
  };
  return new Map([[RETENTION_JOB, step]]);
}

/** How often each node looks for tenants whose retention rules are due (start.ts). */
export const RETENTION_INTERVAL_MS = 3_600_000;

/**
 * Enqueues one retention job for every tenant that has an app with a `retention` rule deployed
 * on some stage, unless one is already pending or running for it: every node calls this on its
 * interval, and the tenant row lock makes two nodes agree on one job. Returns the tenants it
 * enqueued a job for.
 */
export async function scheduleRetention(db: Db): Promise<string[]> {
  const deployed = await db
    .selectFrom('accord.app_stage_state as s')
    .innerJoin('accord.app_revisions as r', (j) => j.onRef('r.tenant_id', '=', 's.tenant_id').onRef('r.app', '=', 's.app').onRef('r.id', '=', 's.revision'))
    .select(['s.tenant_id', 'r.ir'])
    .execute();
  const due = new Set<string>();
  for (const d of deployed) if (irFromJson(typeof d.ir === 'string' ? JSON.parse(d.ir) : d.ir).entities.some((e) => e.retention !== null)) due.add(d.tenant_id);
  const enqueued: string[] = [];
  for (const tenantId of [...due].sort()) {
    const made = await unitOfWork(db, systemSource, async ({ trx }) => {
      await trx.selectFrom('accord.tenants').select('id').where('id', '=', tenantId).forUpdate().executeTakeFirst();
      const waiting = await trx.selectFrom('accord.jobs').select('id').where('kind', '=', RETENTION_JOB).where('tenant_id', '=', tenantId).where('state', 'in', ['pending', 'running']).executeTakeFirst();
      if (waiting) return false;
      await enqueueJob(trx, RETENTION_JOB, {}, tenantId);
      return true;
    });
    if (made) enqueued.push(tenantId);
  }
  return enqueued;
}
