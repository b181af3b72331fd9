import { readFileSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import { actionReader, type CompiledManifest, compileDdl, compileManifestText, formatDiagnostic, manifestJsonSchema, SOURCE_LIMITS } from '../apps/index.ts';
import { AccordError } from '../errors/index.ts';
import { action, sessionClient, withJson } from './command.ts';
import { cliError, table } from './output.ts';
import { readArgFile } from './profile.ts';

const seg = encodeURIComponent;

/** Compiles a manifest file locally: no server, no database. */
function compileFile(path: string): CompiledManifest {
  let text: string;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new Error('not a file');
    // Read at most one byte over the limit; the compiler reports APP_MANIFEST_TOO_LARGE.
    text = st.size > SOURCE_LIMITS.maxBytes ? 'x'.repeat(SOURCE_LIMITS.maxBytes + 1) : readFileSync(path, 'utf8');
  } catch {
    throw cliError('CLI_FILE_UNREADABLE', `Cannot read the manifest ${path}.`, { path });
  }
  return compileManifestText(text, { file: path, readFile: actionReader(path) });
}

/** The error for a broken manifest; people also get one line per finding on stderr. */
function failed(r: CompiledManifest, json: boolean): AccordError {
  const n = r.errors.length;
  if (!json) for (const d of r.diagnostics) process.stderr.write(`${formatDiagnostic(d)}\n`);
  return new AccordError('APP_MANIFEST_INVALID', {
    message: `The manifest has ${n} error${n === 1 ? '' : 's'}${r.warnings.length ? ` and ${r.warnings.length} warning${r.warnings.length === 1 ? '' : 's'}` : ''}.`,
    details: { errors: r.errors, warnings: r.warnings },
  });
}

interface PlanStep {
  kind: string;
  entity: string;
  name: string;
  class: string;
  compatible: boolean;
  destructive: boolean;
  phase: string;
  precheck?: { description: string; violations?: number };
  note?: string;
}
interface PlanOut {
  app: string;
  stage: string;
  from: { revision: string; version: string } | null;
  to: { revision: string; version: string };
  unchanged: boolean;
  steps: PlanStep[];
  prechecksPassed: boolean;
  dataLoss: { entity: string; attribute?: string; effect: string }[];
  ruleChanges: { entity: string; operation: string; role: string; change: string }[];
  drift: { table: string; object: string; name: string; change: string }[];
}
interface DeployOut extends PlanOut {
  changed: boolean;
  label: string;
  message: string;
}

/** The body that uploads a manifest: its text and the action sources it names. */
function upload(path: string, json: boolean, allowDataLoss: boolean) {
  const r = compileFile(path);
  if (!r.ok || !r.ir) throw failed(r, json);
  return { app: r.ir.name, body: { manifest: readFileSync(path, 'utf8'), file: path, actions: Object.fromEntries(r.actionSources), ...(allowDataLoss ? { allowDataLoss: true } : {}) } };
}

async function firstStage(tenant: string): Promise<string> {
  const { client } = sessionClient();
  const stages = await client.call<{ name: string; position: number }[]>('GET', `/api/v1/tenants/${seg(tenant)}/stages`);
  const first = [...stages].sort((a, b) => a.position - b.position)[0];
  if (!first) throw cliError('CLI_USAGE', `Tenant ${tenant} has no stages.`);
  return first.name;
}

function describePlan(p: PlanOut): string {
  const lines = [`${p.app} on ${p.stage}: ${p.from ? `${p.from.version} (${p.from.revision.slice(7, 19)})` : 'not deployed'} -> ${p.to.version} (${p.to.revision.slice(7, 19)})`];
  if (p.unchanged) return `${lines[0]}\nAlready running; nothing to do.`;
  if (p.drift.length) lines.push(`DRIFT (deploy will be refused): ${p.drift.map((d) => `${d.table}.${d.name} ${d.change}`).join(', ')}`);
  for (const s of p.steps) {
    const pre = s.precheck ? ` precheck: ${s.precheck.violations ?? '?'} ${s.precheck.description}` : '';
    lines.push(`  ${s.kind} ${s.entity}.${s.name} [${s.class}${s.compatible ? '' : ', breaks the running revision'}${s.destructive ? ', DESTRUCTIVE' : ''}]${pre}`);
  }
  for (const d of p.dataLoss) lines.push(`  data: ${d.entity}${d.attribute ? `.${d.attribute}` : ''} ${d.effect === 'hidden' ? 'hidden (kept with its data)' : 'DROPPED'}`);
  for (const r of p.ruleChanges) lines.push(`  rule ${r.change}: ${r.entity} ${r.operation} for ${r.role}`);
  if (!p.prechecksPassed) lines.push('Prechecks failed: the deploy would be refused.');
  return lines.join('\n');
}

/** `accord app validate | compile | schema` (local) and the lifecycle commands (through the API). */
export function registerAppCommands(program: Command): void {
  const app = program.command('app').description('Model-driven apps: validate, compile, plan, deploy, promote, roll back');

  withJson(
    app
      .command('deploy <file>')
      .description("Deploy a manifest to the tenant's first stage (development) as a new revision")
      .requiredOption('--tenant <name>', 'tenant')
      .option('--allow-data-loss', 'drop the columns and tables the new revision no longer has (audited)'),
  ).action(
    action(async (out, file: string, opts: { tenant: string; allowDataLoss?: boolean }) => {
      const u = upload(file, out.json, opts.allowDataLoss === true);
      const stage = await firstStage(opts.tenant);
      const { client } = sessionClient();
      const r = await client.call<DeployOut>('POST', `/api/v1/tenants/${seg(opts.tenant)}/apps/${seg(u.app)}/stages/${seg(stage)}/deployments`, u.body);
      out.result(r, (v: DeployOut) => v.message);
    }),
  );

  withJson(
    app
      .command('plan <file>')
      .description('Impact analysis: the steps a deploy would run, their lock classes, prechecks against real data, data loss, rule changes')
      .requiredOption('--tenant <name>', 'tenant')
      .option('--stage <name>', 'stage to plan against (default: the first)')
      .option('--allow-data-loss', 'plan drops instead of hiding'),
  ).action(
    action(async (out, file: string, opts: { tenant: string; stage?: string; allowDataLoss?: boolean }) => {
      const u = upload(file, out.json, opts.allowDataLoss === true);
      const stage = opts.stage ?? (await firstStage(opts.tenant));
      const { client } = sessionClient();
      const r = await client.call<PlanOut>('POST', `/api/v1/tenants/${seg(opts.tenant)}/apps/${seg(u.app)}/stages/${seg(stage)}/plan`, u.body);
      out.result(r, describePlan);
    }),
  );

  withJson(
    app
      .command('promote <app>')
      .description('Promote the revision of the previous stage (or --revision, which must have run there) to a stage')
      .requiredOption('--tenant <name>', 'tenant')
      .requiredOption('--to <stage>', 'target stage')
      .option('--revision <ref>', 'R<n>, a hash prefix or the full revision id'),
  ).action(
    action(async (out, name: string, opts: { tenant: string; to: string; revision?: string }) => {
      const { client } = sessionClient();
      const r = await client.call<DeployOut>('POST', `/api/v1/tenants/${seg(opts.tenant)}/apps/${seg(name)}/stages/${seg(opts.to)}/promotions`, opts.revision ? { revision: opts.revision } : {});
      out.result(r, (v: DeployOut) => v.message);
    }),
  );

  withJson(
    app
      .command('rollback <app>')
      .description('Redeploy a revision the stage ran before')
      .requiredOption('--tenant <name>', 'tenant')
      .requiredOption('--stage <name>', 'stage')
      .requiredOption('--revision <ref>', 'R<n>, a hash prefix or the full revision id'),
  ).action(
    action(async (out, name: string, opts: { tenant: string; stage: string; revision: string }) => {
      const { client } = sessionClient();
      const r = await client.call<DeployOut>('POST', `/api/v1/tenants/${seg(opts.tenant)}/apps/${seg(name)}/stages/${seg(opts.stage)}/rollbacks`, { revision: opts.revision });
      out.result(r, (v: DeployOut) => v.message);
    }),
  );

  interface RevisionOut {
    label: string;
    revision: string;
    version: string;
    createdAt: string;
    runningOn: string[];
  }
  withJson(app.command('revisions <app>').description("An app's revisions, newest first, and where each runs").requiredOption('--tenant <name>', 'tenant')).action(
    action(async (out, name: string, opts: { tenant: string }) => {
      const { client } = sessionClient();
      const r = await client.call<RevisionOut[]>('GET', `/api/v1/tenants/${seg(opts.tenant)}/apps/${seg(name)}/revisions`);
      out.result(r, (v: RevisionOut[]) => table(v.map((x) => ({ label: x.label, version: x.version, revision: x.revision.slice(7, 19), running: x.runningOn.join(','), created: x.createdAt })), ['label', 'version', 'revision', 'running', 'created']));
    }),
  );

  interface StatusOut {
    app: string;
    stages: { stage: string; label: string | null; version: string | null; revision: string | null; deployedAt: string | null }[];
  }
  withJson(app.command('status <app>').description('What runs on each stage').requiredOption('--tenant <name>', 'tenant')).action(
    action(async (out, name: string, opts: { tenant: string }) => {
      const { client } = sessionClient();
      const r = await client.call<StatusOut>('GET', `/api/v1/tenants/${seg(opts.tenant)}/apps/${seg(name)}`);
      out.result(r, (v: StatusOut) => table(v.stages.map((s) => ({ stage: s.stage, label: s.label ?? '-', version: s.version ?? '-', since: s.deployedAt ?? '-' })), ['stage', 'label', 'version', 'since']));
    }),
  );

  const settings = app.command('settings').description("An app's per-stage settings");
  interface SettingOut {
    name: string;
    type: string;
    secret: boolean;
    value: unknown;
    source: string;
  }
  withJson(settings.command('list <app>').description('Settings in effect on a stage (secret values masked)').requiredOption('--tenant <name>', 'tenant').requiredOption('--stage <name>', 'stage')).action(
    action(async (out, name: string, opts: { tenant: string; stage: string }) => {
      const { client } = sessionClient();
      const r = await client.call<SettingOut[]>('GET', `/api/v1/tenants/${seg(opts.tenant)}/apps/${seg(name)}/stages/${seg(opts.stage)}/settings`);
      out.result(r, (v: SettingOut[]) => table(v.map((s) => ({ name: s.name, type: s.type, value: s.value === null ? '-' : String(s.value), source: s.source })), ['name', 'type', 'value', 'source']));
    }),
  );
  withJson(
    settings
      .command('set <app> <name> [value]')
      .description("Set a stage's value of a setting; secret settings take --value-file and are never printed")
      .requiredOption('--tenant <name>', 'tenant')
      .requiredOption('--stage <name>', 'stage')
      .option('--value-file <file>', 'read the value from a file (for secret settings)'),
  ).action(
    action(async (out, name: string, setting: string, value: string | undefined, opts: { tenant: string; stage: string; valueFile?: string }) => {
      if ((value === undefined) === (opts.valueFile === undefined)) throw cliError('CLI_USAGE', 'Give the value either as an argument or with --value-file.');
      const v = value ?? readArgFile(opts.valueFile as string, '--value-file', { trimNewline: true });
      const { client } = sessionClient();
      const r = await client.call<{ name: string; secret: boolean; value: unknown }>('PUT', `/api/v1/tenants/${seg(opts.tenant)}/apps/${seg(name)}/stages/${seg(opts.stage)}/settings/${seg(setting)}`, { value: v });
      out.result(r, (x: { name: string; secret: boolean; value: unknown }) => `${x.name} set on ${opts.stage}${x.secret ? ' (secret, stored encrypted)' : ` to ${String(x.value)}`}.`);
    }),
  );

  app
    .command('validate <file>')
    .description('Validate an app manifest (YAML or JSON) locally; lists every error and warning with its position')
    .option('--json', 'machine-readable output')
    .action(
      action(async (out, file: string) => {
        const r = compileFile(file);
        if (!r.ok || !r.ir || !r.revision) throw failed(r, out.json);
        const { ir, revision } = r;
        out.result(
          { valid: true, app: ir.name, version: ir.version, revision: revision.hash, entities: ir.entities.map((e) => e.name), warnings: r.warnings },
          () =>
            [
              `${ir.name} ${ir.version} is valid: revision ${revision.short}, ${ir.entities.length} entit${ir.entities.length === 1 ? 'y' : 'ies'}, ${ir.roles.length} role${ir.roles.length === 1 ? '' : 's'}`,
              ...r.warnings.map(formatDiagnostic),
            ].join('\n'),
        );
      }),
    );

  app
    .command('compile <file>')
    .description('Compile a manifest: its revision hash, IR and the DDL of its tables')
    .option('--schema <name>', 'the schema the DDL creates tables in', 'app')
    .option('--json', 'machine-readable output')
    .action(
      action(async (out, file: string, opts: { schema: string }) => {
        const r = compileFile(file);
        if (!r.ok || !r.ir || !r.revision) throw failed(r, out.json);
        const ddl = compileDdl(r.ir, { schema: opts.schema });
        out.result({ revision: r.revision.hash, ir: r.ir, ddl: ddl.map((s) => s.sql), warnings: r.warnings }, () => ddl.map((s) => `${s.sql};`).join('\n\n'));
      }),
    );

  app
    .command('schema')
    .description('Print the JSON Schema of the manifest (for editors)')
    .option('--json', 'accepted; the output is always JSON')
    .action(
      action(async () => {
        process.stdout.write(`${JSON.stringify(manifestJsonSchema(), null, 2)}\n`);
      }),
    );
}
