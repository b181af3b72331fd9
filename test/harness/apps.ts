// The one test-only app installer (issue 12). Until the lifecycle's deploy lands, every data-API
// test puts an app on a stage through here: compile the manifest, record the revision as running
// on the stage, and create the tables and RLS policies as the stage's owning role, as deploy
// will. Swapping this for the real deploy is a change in this file only.
import { sql } from 'kysely';
import { actionReader, type AppIR, compileDdl, compileManifestText, compilePolicies } from '../../src/apps/index.ts';
import type { Db } from '../../src/db/index.ts';
import { runtimeRoleOf } from '../../src/kernel/index.ts';

export interface InstallTarget {
  readonly tenantId: string;
  readonly stageId: string;
  readonly schema: string;
  /** The stage's owning role (`accord_st_*`). */
  readonly role: string;
}

/** Compiles manifest text and fails the test with its diagnostics when it is not valid. */
export function compileForTest(text: string, file = 'test.app.yaml', manifestPath?: string): { ir: AppIR; revision: string } {
  const c = compileManifestText(text, { file, readFile: manifestPath ? actionReader(manifestPath) : () => 'export default async () => {}' });
  if (!c.ok || !c.ir || !c.revision) throw new Error(`manifest ${file} is not valid:\n${c.errors.map((e) => `${e.code} ${e.pointer} ${e.message}`).join('\n')}`);
  return { ir: c.ir, revision: c.revision.hash };
}

/** Installs an app (manifest text) on a stage: revision, stage state, tables, policies. */
export async function installApp(db: Db, stage: InstallTarget, text: string, opts: { file?: string; manifestPath?: string } = {}): Promise<AppIR> {
  const { ir, revision } = compileForTest(text, opts.file, opts.manifestPath);
  await db.transaction().execute(async (trx) => {
    await trx
      .insertInto('accord.app_revisions')
      .values({ tenant_id: stage.tenantId, app: ir.name, id: revision, version: ir.version, ir: JSON.stringify(ir), manifest: text, created_by: null })
      .onConflict((oc) => oc.columns(['tenant_id', 'app', 'id']).doNothing())
      .execute();
    await trx.insertInto('accord.app_stage_state').values({ stage_id: stage.stageId, app: ir.name, tenant_id: stage.tenantId, revision, deployed_by: null }).execute();
    // As the owning role, so the runtime role gets its privileges by the schema's default privileges.
    await sql`set local role ${sql.id(stage.role)}`.execute(trx);
    for (const s of compileDdl(ir, { schema: stage.schema })) await sql.raw(s.sql).execute(trx);
    for (const s of compilePolicies(ir, { schema: stage.schema, runtimeRole: runtimeRoleOf(stage.role) })) await sql.raw(s.sql).execute(trx);
    await sql`reset role`.execute(trx);
  });
  return ir;
}
