// Reading what runs on a stage. Writing it (deploy, promote, rollback) is the lifecycle's job.
import type { Db, Trx } from '../../db/index.ts';
import { type AppIR, irFromJson } from '../compile/ir.ts';

export interface DeployedApp {
  readonly app: string;
  readonly revision: string;
  readonly version: string;
  readonly deployedAt: Date;
  readonly ir: AppIR;
}

/** The revision running on a stage for one app, or null when the app is not deployed there. */
export async function deployedApp(db: Db | Trx, stageId: string, app: string): Promise<DeployedApp | null> {
  const row = await db
    .selectFrom('accord.app_stage_state as s')
    .innerJoin('accord.app_revisions as r', (j) => j.onRef('r.tenant_id', '=', 's.tenant_id').onRef('r.app', '=', 's.app').onRef('r.id', '=', 's.revision'))
    .select(['s.app', 's.revision', 's.deployed_at', 'r.version', 'r.ir'])
    .where('s.stage_id', '=', stageId)
    .where('s.app', '=', app)
    .executeTakeFirst();
  if (!row) return null;
  return { app: row.app, revision: row.revision, version: row.version, deployedAt: row.deployed_at, ir: irFromJson(row.ir) };
}
