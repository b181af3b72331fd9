import type { Command } from 'commander';
import { action, sessionClient, withJson } from './command.ts';
import { table } from './output.ts';
import { readArgFile } from './profile.ts';

const seg = encodeURIComponent;

interface UserOut {
  id: string;
  email: string;
  displayName: string;
  status: string;
  grants: { role: string; stage: string | null }[];
}

interface UnlockOut {
  email: string;
  wasLocked: boolean;
  failures: number;
}

/** `accord user ...` and `accord role ...`. */
export function registerUserCommands(program: Command): void {
  const user = program.command('user').description("a tenant's users (IAM-1)");
  withJson(
    user
      .command('create <email>')
      .description("create a user in the tenant's directory")
      .requiredOption('--tenant <name>', 'tenant')
      .requiredOption('--password-file <file>', 'file holding the initial password (12+ characters)')
      .option('--display-name <text>', 'display name'),
  ).action(
    action(async (out, email: string, opts: { tenant: string; passwordFile: string; displayName?: string }) => {
      const password = readArgFile(opts.passwordFile, '--password-file', { trimNewline: true });
      const { client } = sessionClient();
      const u = await client.call<UserOut>('POST', `/api/v1/tenants/${seg(opts.tenant)}/users`, { email, password, displayName: opts.displayName });
      out.result(u, (v: UserOut) => `User ${v.email} created in ${opts.tenant}.`);
    }),
  );
  withJson(user.command('list').description('users and their grants').requiredOption('--tenant <name>', 'tenant')).action(
    action(async (out, opts: { tenant: string }) => {
      const { client } = sessionClient();
      const list = await client.call<UserOut[]>('GET', `/api/v1/tenants/${seg(opts.tenant)}/users`);
      out.result(list, (v: UserOut[]) =>
        table(
          v.map((u) => ({ email: u.email, status: u.status, grants: u.grants.map((g) => (g.stage ? `${g.role}@${g.stage}` : g.role)).join(', ') })),
          ['email', 'status', 'grants'],
        ),
      );
    }),
  );
  for (const [name, status, what] of [
    ['disable', 'disabled', 'disable a user and end their sessions'],
    ['enable', 'active', 're-enable a user'],
  ] as const) {
    withJson(user.command(`${name} <email>`).description(what).requiredOption('--tenant <name>', 'tenant')).action(
      action(async (out, email: string, opts: { tenant: string }) => {
        const { client } = sessionClient();
        await client.call('PATCH', `/api/v1/tenants/${seg(opts.tenant)}/users/${seg(email)}`, { status });
        out.result({ email, status }, () => `User ${email} is now ${status}.`);
      }),
    );
  }
  withJson(
    user
      .command('unlock <email>')
      .description("end an email's sign-in lock and forget its failed attempts (without --tenant: an operator, any email)")
      .option('--tenant <name>', "the tenant whose user it is (a tenant administrator's unlock)"),
  ).action(
    action(async (out, email: string, opts: { tenant?: string }) => {
      const { client } = sessionClient();
      const r = opts.tenant
        ? await client.call<UnlockOut>('POST', `/api/v1/tenants/${seg(opts.tenant)}/users/${seg(email)}/unlock`)
        : await client.call<UnlockOut>('POST', '/api/v1/platform/unlock', { email });
      out.result(r, (v: UnlockOut) => `${v.email}: ${v.wasLocked ? 'lock ended' : 'was not locked'}, ${v.failures} failed attempt(s) forgotten.`);
    }),
  );
  withJson(user.command('delete <email>').description('delete a user with their grants and sessions').requiredOption('--tenant <name>', 'tenant')).action(
    action(async (out, email: string, opts: { tenant: string }) => {
      const { client } = sessionClient();
      await client.call('DELETE', `/api/v1/tenants/${seg(opts.tenant)}/users/${seg(email)}`);
      out.result({ deleted: email }, () => `User ${email} deleted.`);
    }),
  );

  const role = program.command('role').description('roles and grants (IAM-4)');
  withJson(role.command('list').description('the built-in roles and their permissions')).action(
    action(async (out) => {
      const { client } = sessionClient();
      const r = await client.call<{ roles: { name: string; permissions: string[] }[] }>('GET', '/api/v1/roles');
      out.result(r, (v: typeof r) => table(v.roles.map((x) => ({ role: x.name, permissions: x.permissions.join(' ') })), ['role', 'permissions']));
    }),
  );
  for (const verb of ['grant', 'revoke'] as const) {
    withJson(
      role
        .command(`${verb} <role>`)
        .description(verb === 'grant' ? 'grant a role to a user, optionally on one stage only' : 'revoke a grant')
        .requiredOption('--tenant <name>', 'tenant')
        .requiredOption('--user <email>', 'the user')
        .option('--stage <name>', 'limit the grant to this stage'),
    ).action(
      action(async (out, roleName: string, opts: { tenant: string; user: string; stage?: string }) => {
        const { client } = sessionClient();
        if (verb === 'grant') {
          await client.call('POST', `/api/v1/tenants/${seg(opts.tenant)}/grants`, { user: opts.user, role: roleName, ...(opts.stage ? { stage: opts.stage } : {}) });
        } else {
          const q = new URLSearchParams({ user: opts.user, role: roleName, ...(opts.stage ? { stage: opts.stage } : {}) });
          await client.call('DELETE', `/api/v1/tenants/${seg(opts.tenant)}/grants?${q}`);
        }
        out.result({ [verb === 'grant' ? 'granted' : 'revoked']: roleName, user: opts.user, tenant: opts.tenant, stage: opts.stage ?? null }, () =>
          `${verb === 'grant' ? 'Granted' : 'Revoked'} ${roleName}${opts.stage ? ` on ${opts.stage}` : ''} ${verb === 'grant' ? 'to' : 'from'} ${opts.user}.`,
        );
      }),
    );
  }
}
