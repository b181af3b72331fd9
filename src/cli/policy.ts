import type { Command } from 'commander';
import { formatDuration, parseDuration } from '../config/index.ts';
import { action, sessionClient, withJson } from './command.ts';
import { cliError, table } from './output.ts';

const seg = encodeURIComponent;

interface TenantPolicy {
  requireMfa: boolean;
  mfaRequiredRoles: string[];
  sessionIdleSeconds: number;
  sessionAbsoluteSeconds: number;
  sessionFromDefaults: boolean;
}
interface StagePolicy {
  sessionIdleSeconds: number;
  sessionAbsoluteSeconds: number;
  sessionFromDefaults: boolean;
}
interface SessionOut {
  id: string;
  kind: string;
  stage: string | null;
  current: boolean;
  createdAt: string;
  lastSeenAt: string;
  absoluteExpiresAt: string;
  sourceIp: string | null;
  authMethods: string[];
}

/** `12h`, `30m`, `45d` or `default` (null: back to the platform default). */
function seconds(value: string | undefined, flag: string): number | null | undefined {
  if (value === undefined) return undefined;
  if (value === 'default') return null;
  const s = parseDuration(value);
  if (s === undefined) throw cliError('CLI_USAGE', `${flag} must be a duration such as 30m, 12h or 7d, or "default".`);
  return s;
}

function bool(value: string | undefined, flag: string): boolean | undefined {
  if (value === undefined) return undefined;
  if (value === 'true' || value === 'false') return value === 'true';
  throw cliError('CLI_USAGE', `${flag} must be true or false.`);
}

const describeSessions = (p: { sessionIdleSeconds: number; sessionAbsoluteSeconds: number; sessionFromDefaults: boolean }) =>
  `sessions: idle ${formatDuration(p.sessionIdleSeconds)}, absolute ${formatDuration(p.sessionAbsoluteSeconds)}${p.sessionFromDefaults ? ' (platform default)' : ''}`;
const describeTenant = (p: TenantPolicy) =>
  `MFA required: ${p.requireMfa ? 'everyone' : p.mfaRequiredRoles.length > 0 ? `roles ${p.mfaRequiredRoles.join(', ')}` : 'no'}\n${describeSessions(p)}`;

/** `accord tenant policy ...`, `accord stage policy ...` and `accord session ...`. */
export function registerPolicyCommands(program: Command): void {
  const find = (name: string) => {
    const cmd = program.commands.find((c) => c.name() === name);
    if (!cmd) throw new Error(`the ${name} command must be registered first`);
    return cmd;
  };

  const tenantPolicy = find('tenant').command('policy').description("a tenant's MFA requirement and console session timeouts");
  withJson(tenantPolicy.command('show <tenant>').description('show the policy')).action(
    action(async (out, tenant: string) => {
      const { client } = sessionClient();
      out.result(await client.call<TenantPolicy>('GET', `/api/v1/tenants/${seg(tenant)}/policy`), describeTenant);
    }),
  );
  withJson(
    tenantPolicy
      .command('set <tenant>')
      .description('change the policy (tenant admins)')
      .option('--require-mfa <bool>', 'true: every console user of the tenant must use MFA')
      .option('--mfa-roles <roles>', 'comma-separated roles whose holders must use MFA ("" for none)')
      .option('--session-idle <duration>', 'idle timeout, 5m to 45d, or "default"')
      .option('--session-absolute <duration>', 'absolute timeout, 1h to 45d, or "default"'),
  ).action(
    action(async (out, tenant: string, opts: { requireMfa?: string; mfaRoles?: string; sessionIdle?: string; sessionAbsolute?: string }) => {
      const body = {
        requireMfa: bool(opts.requireMfa, '--require-mfa'),
        mfaRequiredRoles: opts.mfaRoles === undefined ? undefined : opts.mfaRoles.split(',').map((r) => r.trim()).filter(Boolean),
        sessionIdleSeconds: seconds(opts.sessionIdle, '--session-idle'),
        sessionAbsoluteSeconds: seconds(opts.sessionAbsolute, '--session-absolute'),
      };
      const changes = Object.fromEntries(Object.entries(body).filter(([, v]) => v !== undefined));
      if (Object.keys(changes).length === 0) throw cliError('CLI_USAGE', 'Nothing to change: give --require-mfa, --mfa-roles, --session-idle or --session-absolute.');
      const { client } = sessionClient();
      out.result(await client.call<TenantPolicy>('PATCH', `/api/v1/tenants/${seg(tenant)}/policy`, changes), describeTenant);
    }),
  );

  const stagePolicy = find('stage').command('policy').description("a stage's end-user session timeouts");
  withJson(stagePolicy.command('show <stage>').description('show the policy').requiredOption('--tenant <name>', 'tenant')).action(
    action(async (out, stage: string, opts: { tenant: string }) => {
      const { client } = sessionClient();
      out.result(await client.call<StagePolicy>('GET', `/api/v1/tenants/${seg(opts.tenant)}/stages/${seg(stage)}/policy`), describeSessions);
    }),
  );
  withJson(
    stagePolicy
      .command('set <stage>')
      .description('change the end-user session timeouts of a stage')
      .requiredOption('--tenant <name>', 'tenant')
      .option('--session-idle <duration>', 'idle timeout, 5m to 45d, or "default"')
      .option('--session-absolute <duration>', 'absolute timeout, 1h to 45d, or "default"'),
  ).action(
    action(async (out, stage: string, opts: { tenant: string; sessionIdle?: string; sessionAbsolute?: string }) => {
      const changes = Object.fromEntries(
        Object.entries({ sessionIdleSeconds: seconds(opts.sessionIdle, '--session-idle'), sessionAbsoluteSeconds: seconds(opts.sessionAbsolute, '--session-absolute') }).filter(
          ([, v]) => v !== undefined,
        ),
      );
      if (Object.keys(changes).length === 0) throw cliError('CLI_USAGE', 'Nothing to change: give --session-idle or --session-absolute.');
      const { client } = sessionClient();
      out.result(await client.call<StagePolicy>('PATCH', `/api/v1/tenants/${seg(opts.tenant)}/stages/${seg(stage)}/policy`, changes), describeSessions);
    }),
  );

  const session = program.command('session').description('live sessions: yours, or (tenant admins) a user\'s');
  const sessionTable = (list: SessionOut[]) =>
    table(
      list.map((s) => ({ id: s.id, current: s.current ? '*' : '', kind: s.stage ? `${s.kind}@${s.stage}` : s.kind, since: s.createdAt, lastSeen: s.lastSeenAt, ip: s.sourceIp ?? '', mfa: s.authMethods.join('+') })),
      ['id', 'current', 'kind', 'since', 'lastSeen', 'ip', 'mfa'],
    );
  withJson(
    session
      .command('list')
      .description('list live sessions (yours, or with --tenant and --user a user\'s)')
      .option('--tenant <name>', 'tenant of the user')
      .option('--user <email>', 'the user (needs user:manage)'),
  ).action(
    action(async (out, opts: { tenant?: string; user?: string }) => {
      if ((opts.tenant === undefined) !== (opts.user === undefined)) throw cliError('CLI_USAGE', 'Give both --tenant and --user, or neither.');
      const { client } = sessionClient();
      const path = opts.user ? `/api/v1/tenants/${seg(opts.tenant as string)}/users/${seg(opts.user)}/sessions` : '/api/v1/auth/sessions';
      out.result(await client.call<SessionOut[]>('GET', path), sessionTable);
    }),
  );
  withJson(
    session
      .command('revoke [id]')
      .description('end a session: one of yours by id, or a user\'s (one by id, or --all)')
      .option('--tenant <name>', 'tenant of the user')
      .option('--user <email>', 'the user (needs user:manage)')
      .option('--all', "end all the user's sessions"),
  ).action(
    action(async (out, id: string | undefined, opts: { tenant?: string; user?: string; all?: boolean }) => {
      const { client } = sessionClient();
      if (opts.user && opts.tenant) {
        if (!id && !opts.all) throw cliError('CLI_USAGE', 'Give a session id or --all.');
        const q = id ? `?id=${seg(id)}` : '';
        const r = await client.call<{ revoked: number }>('DELETE', `/api/v1/tenants/${seg(opts.tenant)}/users/${seg(opts.user)}/sessions${q}`);
        out.result(r, (v: { revoked: number }) => `Ended ${v.revoked} session(s) of ${opts.user}.`);
        return;
      }
      if (opts.user || opts.tenant || opts.all) throw cliError('CLI_USAGE', 'Give both --tenant and --user to end another user\'s sessions.');
      if (!id) throw cliError('CLI_USAGE', 'Give the id of the session to end (see `accord session list`).');
      await client.call('DELETE', `/api/v1/auth/sessions/${seg(id)}`);
      out.result({ revoked: 1 }, () => `Session ${id} ended.`);
    }),
  );
}
