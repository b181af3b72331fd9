// The lifecycle's operations over the catalog: compile an upload, resolve a revision reference,
// deploy (first stage only), promote (one stage on), roll back, list revisions and status, and
// stage settings. Routes call these; so can tests.
import type { AuditSource } from '../../audit-chain/index.ts';
import type { Keyring } from '../../crypto/keyring/index.ts';
import type { Db, EngineName } from '../../db/index.ts';
import { AccordError } from '../../errors/index.ts';
import { unitOfWork } from '../../kernel/index.ts';
import { listSecrets, setSecret } from '../../keys/index.ts';
import { listStages } from '../../tenancy/index.ts';
import { irFromJson, type SettingIR } from '../compile/ir.ts';
import { compileManifestText } from '../manifest/load.ts';
import { type DeployPhase, type DeployResult, deployRevision, type Plan, planDeployment, type RevisionInput, type StageRef } from './deploy.ts';
import { deployedApp } from './store.ts';

export interface TenantRef {
  readonly id: string;
  readonly name: string;
}

export interface Upload {
  readonly manifest: string;
  readonly file?: string;
  readonly actions?: Readonly<Record<string, string>>;
}

/** Compiles an uploaded manifest on the server (the client's own compilation is not trusted). */
export function compileUpload(app: string, upload: Upload): RevisionInput {
  const actions = upload.actions ?? {};
  const r = compileManifestText(upload.manifest, { file: upload.file ?? 'manifest', readFile: (p) => (Object.hasOwn(actions, p) ? actions[p] : undefined) });
  if (!r.ok || !r.ir || !r.revision) {
    const n = r.errors.length;
    throw new AccordError('APP_MANIFEST_INVALID', { message: `The manifest has ${n} error${n === 1 ? '' : 's'}.`, details: { errors: r.errors, warnings: r.warnings } });
  }
  if (r.ir.name !== app) throw new AccordError('APP_NAME_MISMATCH', { message: `The manifest is app ${r.ir.name}, not ${app}.`, details: { manifest: r.ir.name, path: app } });
  // Only the sources the revision uses are kept with it.
  const used = Object.fromEntries([...r.actionSources.entries()]);
  return { hash: r.revision.hash, ir: r.ir, manifest: upload.manifest, actions: used };
}

/** A revision of the app by `R<n>`, a hash prefix of at least 8 hex digits, or the full `sha256:` id. */
export async function resolveRevision(db: Db, tenantId: string, app: string, ref: string): Promise<RevisionInput & { seq: number; version: string }> {
  let q = db.selectFrom('accord.app_revisions').select(['id', 'ir', 'manifest', 'actions', 'seq', 'version']).where('tenant_id', '=', tenantId).where('app', '=', app);
  const label = /^R([1-9]\d{0,8})$/i.exec(ref);
  const hex = /^(?:sha256:)?([0-9a-f]{8,64})$/.exec(ref);
  if (label) q = q.where('seq', '=', Number(label[1]));
  else if (hex) q = q.where('id', 'like', `sha256:${hex[1]}%`);
  else throw new AccordError('APP_REVISION_NOT_FOUND', { message: `${ref} is not a revision reference (R<n>, a hash prefix or sha256:...).`, details: { revision: ref } });
  const rows = await q.limit(2).execute();
  const row = rows[0];
  if (!row || rows.length > 1) throw new AccordError('APP_REVISION_NOT_FOUND', { message: `${app} has ${rows.length ? 'several revisions matching' : 'no revision'} ${ref}.`, details: { app, revision: ref } });
  return { hash: row.id, ir: irFromJson(row.ir), manifest: row.manifest, actions: row.actions, seq: row.seq, version: row.version };
}

async function ranOn(db: Db, stageId: string, app: string, revision: string): Promise<boolean> {
  const r = await db.selectFrom('accord.app_deployments').select('id').where('stage_id', '=', stageId).where('app', '=', app).where('revision', '=', revision).limit(1).executeTakeFirst();
  return r !== undefined;
}

export interface LifecycleDeps {
  readonly db: Db;
  readonly engine: EngineName;
  readonly keyring: Keyring;
  /** Test seam passed to every deployment (see deploy.ts). */
  readonly onPhase?: (phase: DeployPhase) => Promise<void> | void;
}

const phaseHook = (deps: LifecycleDeps) => (deps.onPhase ? { onPhase: deps.onPhase } : {});

const firstStage = async (db: Db, tenantId: string) => (await listStages(db, tenantId))[0] as StageRef;

/** The impact analysis of a manifest against a stage. */
export async function planUpload(deps: LifecycleDeps, stage: StageRef, app: string, upload: Upload & { allowDataLoss?: boolean }): Promise<Plan> {
  return planDeployment(deps.db, { engine: deps.engine, stage, revision: compileUpload(app, upload), ...(upload.allowDataLoss ? { allowDataLoss: true } : {}) });
}

/** Deploys a manifest: a new revision goes to the tenant's first stage only. */
export async function deployUpload(
  deps: LifecycleDeps,
  source: AuditSource,
  tenant: TenantRef,
  stage: StageRef,
  app: string,
  upload: Upload & { allowDataLoss?: boolean },
  userId: string | null,
): Promise<DeployResult> {
  const first = await firstStage(deps.db, tenant.id);
  if (first.id !== stage.id) throw new AccordError('APP_DEPLOY_FIRST_STAGE', { message: `Manifests are deployed to ${first.name}; promote the revision to reach ${stage.name}.`, details: { stage: stage.name, first: first.name } });
  const revision = compileUpload(app, upload);
  return deployRevision(deps.db, { engine: deps.engine, source, tenant, stage, revision, kind: 'deploy', userId, ...phaseHook(deps), ...(upload.allowDataLoss ? { allowDataLoss: true } : {}) });
}

function compareVersions(a: string, b: string): number {
  // Versions were validated as semantic versions; build metadata does not order.
  const parse = (v: string) => {
    const [core, pre] = (v.split('+')[0] as string).split(/-(.*)/s) as [string, string | undefined];
    return { nums: core.split('.').map(Number), pre };
  };
  const x = parse(a);
  const y = parse(b);
  for (let i = 0; i < 3; i++) if ((x.nums[i] ?? 0) !== (y.nums[i] ?? 0)) return (x.nums[i] ?? 0) - (y.nums[i] ?? 0);
  if (x.pre === y.pre) return 0;
  if (x.pre === undefined) return 1;
  if (y.pre === undefined) return -1;
  const xs = x.pre.split('.');
  const ys = y.pre.split('.');
  for (let i = 0; i < Math.max(xs.length, ys.length); i++) {
    const p = xs[i];
    const q = ys[i];
    if (p === undefined) return -1;
    if (q === undefined) return 1;
    if (p === q) continue;
    const pn = /^\d+$/.test(p);
    const qn = /^\d+$/.test(q);
    if (pn && qn) return Number(p) - Number(q);
    if (pn) return -1;
    if (qn) return 1;
    return p < q ? -1 : 1;
  }
  return 0;
}

/**
 * Promotes a revision one stage on: by default what runs on the stage before `target`; an explicit
 * one must have run there. The last stage (production) takes no lower version than it runs.
 */
export async function promote(deps: LifecycleDeps, source: AuditSource, tenant: TenantRef, target: StageRef, app: string, ref: string | undefined, userId: string | null): Promise<DeployResult> {
  const stages = await listStages(deps.db, tenant.id);
  const i = stages.findIndex((s) => s.id === target.id);
  if (i <= 0) throw new AccordError('APP_PROMOTE_TARGET', { message: `${target.name} is the first stage: deploy a manifest to it instead.`, details: { stage: target.name } });
  const prev = stages[i - 1] as StageRef;
  let revision: RevisionInput & { seq: number; version: string };
  if (ref === undefined) {
    const running = await deployedApp(deps.db, prev.id, app);
    if (!running) throw new AccordError('APP_NOT_DEPLOYED', { message: `${app} does not run on ${prev.name}; nothing to promote to ${target.name}.`, details: { app, stage: prev.name } });
    revision = await resolveRevision(deps.db, tenant.id, app, running.revision);
  } else {
    revision = await resolveRevision(deps.db, tenant.id, app, ref);
  }
  if (!(await ranOn(deps.db, prev.id, app, revision.hash))) {
    throw new AccordError('APP_REVISION_NEVER_RAN', { message: `R${revision.seq} never ran on ${prev.name}; a revision reaches ${target.name} only from there.`, details: { revision: revision.hash, stage: prev.name } });
  }
  if (i === stages.length - 1) {
    const running = await deployedApp(deps.db, target.id, app);
    if (running && compareVersions(revision.version, running.version) < 0) {
      throw new AccordError('APP_VERSION_DOWNGRADE', {
        message: `${target.name} runs ${app} ${running.version}; R${revision.seq} is ${revision.version}. Use rollback to go back.`,
        details: { running: running.version, revision: revision.version },
      });
    }
  }
  return deployRevision(deps.db, { engine: deps.engine, source, tenant, stage: target, revision, kind: 'promote', userId, ...phaseHook(deps) });
}

/** Rolls a stage back (or forward) to a revision that ran on it before. */
export async function rollback(deps: LifecycleDeps, source: AuditSource, tenant: TenantRef, stage: StageRef, app: string, ref: string, userId: string | null): Promise<DeployResult> {
  const revision = await resolveRevision(deps.db, tenant.id, app, ref);
  if (!(await ranOn(deps.db, stage.id, app, revision.hash))) {
    throw new AccordError('APP_REVISION_NEVER_RAN', { message: `R${revision.seq} never ran on ${stage.name}; rollback only returns to a revision the stage ran.`, details: { revision: revision.hash, stage: stage.name } });
  }
  return deployRevision(deps.db, { engine: deps.engine, source, tenant, stage, revision, kind: 'rollback', userId, ...phaseHook(deps) });
}

/** Every revision of an app, newest first, with the stages it runs on and its deployments. */
export async function listRevisions(db: Db, tenantId: string, app: string) {
  const revs = await db.selectFrom('accord.app_revisions').select(['id', 'seq', 'version', 'created_at']).where('tenant_id', '=', tenantId).where('app', '=', app).orderBy('seq', 'desc').execute();
  if (revs.length === 0) throw new AccordError('APP_NOT_DEPLOYED', { message: `${app} has no revisions in this tenant.`, details: { app } });
  const deployments = await db
    .selectFrom('accord.app_deployments as d')
    .innerJoin('accord.stages as s', 's.id', 'd.stage_id')
    .select(['d.id', 'd.revision', 'd.kind', 'd.deployed_at', 's.name as stage'])
    .where('d.tenant_id', '=', tenantId)
    .where('d.app', '=', app)
    .orderBy('d.deployed_at')
    .execute();
  const running = await db
    .selectFrom('accord.app_stage_state as a')
    .innerJoin('accord.stages as s', 's.id', 'a.stage_id')
    .select(['a.revision', 's.name as stage'])
    .where('a.tenant_id', '=', tenantId)
    .where('a.app', '=', app)
    .orderBy('s.position')
    .execute();
  return revs.map((r) => ({
    label: `R${r.seq}`,
    revision: r.id,
    version: r.version,
    createdAt: r.created_at.toISOString(),
    runningOn: running.filter((x) => x.revision === r.id).map((x) => x.stage),
    deployments: deployments.filter((d) => d.revision === r.id).map((d) => ({ id: d.id, stage: d.stage, kind: d.kind, at: d.deployed_at.toISOString() })),
  }));
}

/** What runs on each stage of the tenant. */
export async function appStatus(db: Db, tenantId: string, app: string) {
  const stages = await listStages(db, tenantId);
  const out = [];
  for (const s of stages) {
    const d = await deployedApp(db, s.id, app);
    const seq = d ? (await db.selectFrom('accord.app_revisions').select('seq').where('tenant_id', '=', tenantId).where('app', '=', app).where('id', '=', d.revision).executeTakeFirst())?.seq : undefined;
    out.push({ stage: s.name, position: s.position, ...(d ? { label: `R${seq}`, revision: d.revision, version: d.version, deployedAt: d.deployedAt.toISOString() } : { label: null, revision: null, version: null, deployedAt: null }) });
  }
  return { app, stages: out };
}

/** The name under which a secret setting lives in the stage secrets store. */
const secretName = (app: string, name: string) => `app.${app}.${name}`;

async function settingsOf(db: Db, stage: StageRef, app: string): Promise<readonly SettingIR[]> {
  const d = await deployedApp(db, stage.id, app);
  if (!d) throw new AccordError('APP_NOT_DEPLOYED', { message: `${app} does not run on ${stage.name}.`, details: { app, stage: stage.name } });
  return d.ir.settings;
}

/** A stage's settings of an app: the value in effect and where it comes from; secret ones masked. */
export async function listSettings(db: Db, stage: StageRef, app: string) {
  const declared = await settingsOf(db, stage, app);
  const stored = await db.selectFrom('accord.app_settings').select(['name', 'value']).where('stage_id', '=', stage.id).where('app', '=', app).execute();
  const secrets = new Set((await listSecrets(db, stage.id)).map((s) => s.name));
  return declared.map((s) => {
    if (s.secret) return { name: s.name, type: s.type, secret: true, value: secrets.has(secretName(app, s.name)) ? '********' : null, source: secrets.has(secretName(app, s.name)) ? 'stage' : 'unset' };
    const v = stored.find((x) => x.name === s.name);
    if (v) return { name: s.name, type: s.type, secret: false, value: v.value as string | boolean, source: 'stage' };
    const manifest = s.stages.find((x) => x.stage === stage.name);
    if (manifest) return { name: s.name, type: s.type, secret: false, value: manifest.value, source: 'manifest-stage' };
    return { name: s.name, type: s.type, secret: false, value: s.default, source: s.default === null ? 'unset' : 'default' };
  });
}

const VALUE: Record<SettingIR['type'], RegExp> = { text: /^[\s\S]{0,65536}$/, integer: /^-?\d{1,18}$/, decimal: /^-?\d{1,30}(\.\d{1,30})?$/, boolean: /^(true|false)$/ };

/** Sets a stage's value of a setting the running revision declares; a secret one goes to the stage secrets store. */
export async function setSetting(
  deps: LifecycleDeps,
  source: AuditSource,
  tenant: TenantRef,
  stage: StageRef,
  app: string,
  name: string,
  value: string,
  userId: string | null,
  authorize: (secret: boolean) => void = () => {},
) {
  const s = (await settingsOf(deps.db, stage, app)).find((x) => x.name === name);
  if (!s) throw new AccordError('APP_SETTING_UNKNOWN', { message: `${app} declares no setting ${name}.`, details: { app, setting: name } });
  authorize(s.secret);
  if (!VALUE[s.type].test(value)) throw new AccordError('APP_SETTING_VALUE_INVALID', { message: `${name} is a ${s.type} setting.`, details: { setting: name, type: s.type } });
  if (s.secret) {
    await setSecret(deps.db, deps.keyring, source, { tenantId: tenant.id, stageId: stage.id, stageName: stage.name }, secretName(app, name), value);
    return { name, secret: true, value: '********' };
  }
  const stored = s.type === 'boolean' ? value === 'true' : value;
  await unitOfWork(deps.db, source, async (w) => {
    await w.trx
      .insertInto('accord.app_settings')
      .values({ stage_id: stage.id, app, name, value: JSON.stringify(stored), updated_by: userId })
      .onConflict((oc) => oc.columns(['stage_id', 'app', 'name']).doUpdateSet({ value: JSON.stringify(stored), updated_by: userId, updated_at: new Date() }))
      .execute();
    await w.audit({ tenantId: tenant.id, action: 'app.setting.set', target: { type: 'app-setting', id: `${stage.name}/${app}/${name}` }, outcome: 'success', details: { value: stored } });
  });
  return { name, secret: false, value: stored };
}
