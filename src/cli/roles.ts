import type { Command } from 'commander';
import { action, sessionClient, withJson } from './command.ts';
import { cliError, table } from './output.ts';

const seg = encodeURIComponent;

interface RoleOut {
  name: string;
  description: string;
  permissions: string[];
  builtIn: boolean;
}

interface AppRoleOut {
  id: string;
  user: string | null;
  client: string | null;
  app: string;
  role: string;
  stage: string;
  grantedAt: string;
  grantedBy: string | null;
  lastUsedAt: string | null;
}

/** `a,b, c` → ['a', 'b', 'c']; empty entries are a usage error. */
function permissionList(value: string): string[] {
  const list = value.split(',').map((p) => p.trim());
  if (list.some((p) => p === '')) throw cliError('CLI_USAGE', '--permissions takes a comma-separated list such as tenant:read,audit:read.');
  return list;
}

const describeRole = (r: RoleOut) => `${r.name}${r.builtIn ? ' (built-in)' : ''}: ${r.permissions.join(' ')}${r.description ? `\n  ${r.description}` : ''}`;

/**
 * Adds custom-role commands to `accord role` (created with the grant commands in users.ts) and
 * registers `accord app-role`.
 */
export function registerRoleCommands(program: Command): void {
  const role = program.commands.find((c) => c.name() === 'role');
  if (!role) throw new Error('the role command must be registered first (registerUserCommands)');

  withJson(
    role
      .command('create <name>')
      .description("define a custom role on a tenant from the permission catalog (only permissions you hold on the whole tenant)")
      .requiredOption('--tenant <name>', 'tenant')
      .requiredOption('--permissions <list>', 'comma-separated permissions, e.g. tenant:read,audit:read')
      .option('--description <text>', 'what the role is for'),
  ).action(
    action(async (out, name: string, opts: { tenant: string; permissions: string; description?: string }) => {
      const { client } = sessionClient();
      const r = await client.call<RoleOut>('POST', `/api/v1/tenants/${seg(opts.tenant)}/roles`, {
        name,
        permissions: permissionList(opts.permissions),
        ...(opts.description === undefined ? {} : { description: opts.description }),
      });
      out.result(r, (v: RoleOut) => `Role ${v.name} created in ${opts.tenant}: ${v.permissions.join(' ')}.`);
    }),
  );
  withJson(
    role
      .command('update <name>')
      .description("change a custom role's permissions or description (applies to every holder at once)")
      .requiredOption('--tenant <name>', 'tenant')
      .option('--permissions <list>', 'the new comma-separated permission list (replaces the old one)')
      .option('--description <text>', 'the new description'),
  ).action(
    action(async (out, name: string, opts: { tenant: string; permissions?: string; description?: string }) => {
      if (opts.permissions === undefined && opts.description === undefined) throw cliError('CLI_USAGE', 'Give --permissions, --description or both.');
      const { client } = sessionClient();
      const r = await client.call<RoleOut>('PATCH', `/api/v1/tenants/${seg(opts.tenant)}/roles/${seg(name)}`, {
        ...(opts.permissions === undefined ? {} : { permissions: permissionList(opts.permissions) }),
        ...(opts.description === undefined ? {} : { description: opts.description }),
      });
      out.result(r, (v: RoleOut) => `Role ${v.name} updated: ${v.permissions.join(' ')}.`);
    }),
  );
  withJson(role.command('delete <name>').description('delete a custom role nobody holds').requiredOption('--tenant <name>', 'tenant')).action(
    action(async (out, name: string, opts: { tenant: string }) => {
      const { client } = sessionClient();
      await client.call('DELETE', `/api/v1/tenants/${seg(opts.tenant)}/roles/${seg(name)}`);
      out.result({ deleted: name, tenant: opts.tenant }, () => `Role ${name} deleted from ${opts.tenant}.`);
    }),
  );
  withJson(role.command('show').description("the roles usable on a tenant: built-in and custom, with their permissions").requiredOption('--tenant <name>', 'tenant')).action(
    action(async (out, opts: { tenant: string }) => {
      const { client } = sessionClient();
      const list = await client.call<RoleOut[]>('GET', `/api/v1/tenants/${seg(opts.tenant)}/roles`);
      out.result(list, (v: RoleOut[]) => v.map(describeRole).join('\n'));
    }),
  );

  const appRole = program.command('app-role').description('app roles granted to tenant users and API clients per app and stage');
  const refOptions = (cmd: Command) =>
    cmd
      .requiredOption('--tenant <name>', 'tenant')
      .requiredOption('--stage <name>', 'stage')
      .option('--user <email>', 'the user (or --client)')
      .option('--client <name>', 'the API client (or --user)')
      .requiredOption('--app <name>', 'the app')
      .requiredOption('--role <name>', "the app's role");
  // Exactly one holder; the server checks it too, this only gives the usage error first.
  const holder = (o: { user?: string; client?: string }): { user: string } | { client: string } => {
    if ((o.user === undefined) === (o.client === undefined)) throw cliError('CLI_USAGE', 'Give exactly one of --user and --client.');
    return o.user !== undefined ? { user: o.user } : { client: o.client as string };
  };
  const holderText = (v: { user: string | null; client: string | null }) => (v.user ?? `client ${v.client}`);
  const base = (o: { tenant: string; stage: string }) => `/api/v1/tenants/${seg(o.tenant)}/stages/${seg(o.stage)}/app-roles`;
  withJson(refOptions(appRole.command('grant').description('grant an app role to a user or API client on one stage'))).action(
    action(async (out, opts: { tenant: string; stage: string; user?: string; client?: string; app: string; role: string }) => {
      const who = holder(opts);
      const { client } = sessionClient();
      const g = await client.call<AppRoleOut>('POST', base(opts), { ...who, app: opts.app, role: opts.role });
      out.result(g, (v: AppRoleOut) => `Granted ${v.app}/${v.role} on ${v.stage} to ${holderText(v)}.`);
    }),
  );
  withJson(refOptions(appRole.command('revoke').description('revoke an app-role grant'))).action(
    action(async (out, opts: { tenant: string; stage: string; user?: string; client?: string; app: string; role: string }) => {
      const who = holder(opts);
      const { client } = sessionClient();
      await client.call('DELETE', `${base(opts)}?${new URLSearchParams({ ...who, app: opts.app, role: opts.role })}`);
      const text = 'user' in who ? who.user : `client ${who.client}`;
      out.result({ revoked: opts.role, app: opts.app, ...who, tenant: opts.tenant, stage: opts.stage }, () => `Revoked ${opts.app}/${opts.role} on ${opts.stage} from ${text}.`);
    }),
  );
  withJson(
    appRole
      .command('list')
      .description("a stage's app-role grants")
      .requiredOption('--tenant <name>', 'tenant')
      .requiredOption('--stage <name>', 'stage')
      .option('--app <name>', 'only this app')
      .option('--user <email>', 'only this user')
      .option('--client <name>', 'only this API client'),
  ).action(
    action(async (out, opts: { tenant: string; stage: string; app?: string; user?: string; client?: string }) => {
      const { client } = sessionClient();
      const q = new URLSearchParams({ ...(opts.app ? { app: opts.app } : {}), ...(opts.user ? { user: opts.user } : {}), ...(opts.client ? { client: opts.client } : {}) }).toString();
      const list = await client.call<AppRoleOut[]>('GET', `${base(opts)}${q ? `?${q}` : ''}`);
      out.result(list, (v: AppRoleOut[]) =>
        table(
          v.map((g) => ({ user: holderText(g), app: g.app, role: g.role, granted: g.grantedAt.slice(0, 10), by: g.grantedBy ?? '', 'last-used': g.lastUsedAt?.slice(0, 10) ?? 'never' })),
          ['user', 'app', 'role', 'granted', 'by', 'last-used'],
        ),
      );
    }),
  );
}
