// The data-API tests' app installer: compiles a manifest and deploys it with the lifecycle's own
// deployRevision (tables, RLS policies, stage state, audit), straight onto the stage a test needs.
import { actionReader, type AppIR, compileManifestText, deployRevision } from '../../src/apps/index.ts';
import { systemSource } from '../../src/audit-chain/index.ts';
import type { Db, EngineName } from '../../src/db/index.ts';

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

/** Installs an app (manifest text) on a stage through the lifecycle's own deploy (any stage: tests put apps straight where they need them). */
export async function installApp(db: Db, engine: EngineName, stage: InstallTarget, text: string, opts: { file?: string; manifestPath?: string } = {}): Promise<AppIR> {
  const { ir, revision } = compileForTest(text, opts.file, opts.manifestPath);
  const row = await db
    .selectFrom('accord.stages as s')
    .innerJoin('accord.tenants as t', 't.id', 's.tenant_id')
    .select(['s.name', 's.position', 't.name as tenant'])
    .where('s.id', '=', stage.stageId)
    .executeTakeFirstOrThrow();
  await deployRevision(db, {
    engine,
    source: systemSource,
    tenant: { id: stage.tenantId, name: row.tenant },
    stage: { id: stage.stageId, name: row.name, position: row.position, schema: stage.schema, role: stage.role },
    revision: { hash: revision, ir, manifest: text, actions: {} },
    kind: 'deploy',
  });
  return ir;
}
