import type { Command } from 'commander';
import { action, sessionClient, withJson } from './command.ts';
import { table } from './output.ts';

interface Stage {
  name: string;
  position: number;
  schema: string;
}
interface Tenant {
  name: string;
  displayName: string;
  region: string;
  createdAt: string;
  stages?: Stage[];
}

const seg = encodeURIComponent;
const stageTable = (stages: Stage[]) => table(stages, ['position', 'name', 'schema']);

/** `accord tenant ...` and `accord stage ...`. */
export function registerTenancyCommands(program: Command): void {
  const tenant = program.command('tenant').description('tenants (PLAT-2)');
  withJson(
    tenant
      .command('create <name>')
      .description('create a tenant with the stages development, test, production')
      .option('--display-name <text>', 'display name (default: the name)')
      .option('--region <label>', 'region label (default: "default")'),
  ).action(
    action(async (out, name: string, opts: { displayName?: string; region?: string }) => {
      const { client } = sessionClient();
      const t = await client.call<Tenant>('POST', '/api/v1/tenants', { name, displayName: opts.displayName, region: opts.region });
      out.result(t, (v: Tenant) => `Tenant ${v.name} created.\n${stageTable(v.stages ?? [])}`);
    }),
  );
  withJson(tenant.command('list').description('list the tenants you can see')).action(
    action(async (out) => {
      const { client } = sessionClient();
      const list = await client.call<Tenant[]>('GET', '/api/v1/tenants');
      out.result(list, (v: Tenant[]) => table(v, ['name', 'displayName', 'region', 'createdAt']));
    }),
  );
  withJson(tenant.command('show <name>').description('show a tenant and its stages')).action(
    action(async (out, name: string) => {
      const { client } = sessionClient();
      const t = await client.call<Tenant>('GET', `/api/v1/tenants/${seg(name)}`);
      out.result(t, (v: Tenant) => `${v.name} (${v.displayName}), region ${v.region}, created ${v.createdAt}\n${stageTable(v.stages ?? [])}`);
    }),
  );
  withJson(
    tenant
      .command('delete <name>')
      .description('delete a tenant with its stages, schemas, roles and users')
      .requiredOption('--confirm <name>', 'repeat the tenant name to confirm'),
  ).action(
    action(async (out, name: string, opts: { confirm: string }) => {
      const { client } = sessionClient();
      await client.call('DELETE', `/api/v1/tenants/${seg(name)}?confirm=${seg(opts.confirm)}`);
      out.result({ deleted: name }, () => `Tenant ${name} deleted.`);
    }),
  );

  const stage = program.command('stage').description("a tenant's stages");
  withJson(stage.command('list').description('list stages in order').requiredOption('--tenant <name>', 'tenant')).action(
    action(async (out, opts: { tenant: string }) => {
      const { client } = sessionClient();
      const list = await client.call<Stage[]>('GET', `/api/v1/tenants/${seg(opts.tenant)}/stages`);
      out.result(list, stageTable);
    }),
  );
  withJson(
    stage
      .command('delete <name>')
      .description("delete a stage: its keys first (crypto-shredding), then its schema and data")
      .requiredOption('--tenant <name>', 'tenant')
      .requiredOption('--confirm <name>', 'repeat the stage name to confirm'),
  ).action(
    action(async (out, name: string, opts: { tenant: string; confirm: string }) => {
      const { client } = sessionClient();
      await client.call('DELETE', `/api/v1/tenants/${seg(opts.tenant)}/stages/${seg(name)}?confirm=${seg(opts.confirm)}`);
      out.result({ deleted: name, tenant: opts.tenant }, () => `Stage ${name} deleted.`);
    }),
  );
  withJson(
    stage
      .command('create <name>')
      .description('create a stage (last, or after --after)')
      .requiredOption('--tenant <name>', 'tenant')
      .option('--after <stage>', 'insert after this stage'),
  ).action(
    action(async (out, name: string, opts: { tenant: string; after?: string }) => {
      const { client } = sessionClient();
      const s = await client.call<Stage>('POST', `/api/v1/tenants/${seg(opts.tenant)}/stages`, { name, after: opts.after });
      out.result(s, (v: Stage) => `Stage ${v.name} created at position ${v.position}.`);
    }),
  );
}
