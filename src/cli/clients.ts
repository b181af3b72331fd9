import type { Command } from 'commander';
import { action, sessionClient, withJson } from './command.ts';
import { table } from './output.ts';

const seg = encodeURIComponent;

interface Grant {
  role: string;
  stage: string | null;
}
interface Issued {
  name: string;
  clientId: string;
  clientSecret: string;
  expiresAt: string;
  grants: Grant[];
  previousSecrets?: { id: string; expiresAt: string }[];
}
interface ClientOut {
  name: string;
  clientId: string;
  createdAt: string;
  expiresAt: string;
  revokedAt: string | null;
  lastUsedAt: string | null;
  grants: Grant[];
  secrets: { id: string; createdAt: string; expiresAt: string; revoked: boolean }[];
}

const WARNING = 'Store the client secret now: it is not shown again (only its hash is kept).';
const grantText = (grants: readonly Grant[]) => grants.map((g) => (g.stage ? `${g.role}@${g.stage}` : g.role)).join(', ');
const collect = (value: string, previous: string[] = []) => [...previous, value];

function secretText(what: string, v: Issued): string {
  return [
    `${what}`,
    `client id:     ${v.clientId}`,
    `client secret: ${v.clientSecret}`,
    `expires:       ${v.expiresAt}`,
    `grants:        ${grantText(v.grants)}`,
    ...(v.previousSecrets?.length ? v.previousSecrets.map((p) => `previous secret ${p.id} now expires ${p.expiresAt}`) : []),
    WARNING,
  ].join('\n');
}

/** `accord client ...`: API clients (OAuth2 client credentials) of a tenant. */
export function registerClientCommands(program: Command): void {
  const client = program.command('client').description("a tenant's API clients (OAuth2 client credentials at /oauth/token)");
  withJson(
    client
      .command('create <name>')
      .description('create an API client; prints its client id and secret once')
      .requiredOption('--tenant <name>', 'tenant')
      .requiredOption('--role <role>', 'role to give the client (repeatable; role@stage limits it to a stage)', collect)
      .option('--stage <name>', 'limit the roles given without @stage to this stage')
      .option('--expires-in <duration>', 'lifetime of the secret: 1h to 2y (default 90d)'),
  ).action(
    action(async (out, name: string, opts: { tenant: string; role: string[]; stage?: string; expiresIn?: string }) => {
      const grants = opts.role.map((r) => {
        const at = r.indexOf('@');
        const stage = at < 0 ? opts.stage : r.slice(at + 1);
        return { role: at < 0 ? r : r.slice(0, at), ...(stage ? { stage } : {}) };
      });
      const { client: api } = sessionClient();
      const v = await api.call<Issued>('POST', `/api/v1/tenants/${seg(opts.tenant)}/clients`, { name, grants, ...(opts.expiresIn ? { expiresIn: opts.expiresIn } : {}) });
      out.result({ ...v, warning: WARNING }, (x: Issued) => secretText(`API client ${x.name} created in ${opts.tenant}.`, x));
    }),
  );
  withJson(client.command('list').description('API clients with their grants (never a secret)').requiredOption('--tenant <name>', 'tenant')).action(
    action(async (out, opts: { tenant: string }) => {
      const { client: api } = sessionClient();
      const list = await api.call<ClientOut[]>('GET', `/api/v1/tenants/${seg(opts.tenant)}/clients`);
      out.result(list, (v: ClientOut[]) =>
        table(
          v.map((c) => ({
            name: c.name,
            clientId: c.clientId,
            status: c.revokedAt ? 'revoked' : Date.parse(c.expiresAt) <= Date.now() ? 'expired' : 'active',
            expires: c.expiresAt,
            lastUsed: c.lastUsedAt ?? '-',
            grants: grantText(c.grants),
          })),
          ['name', 'clientId', 'status', 'expires', 'lastUsed', 'grants'],
        ),
      );
    }),
  );
  withJson(client.command('show <name>').description('one API client with its grants and secrets (never a secret itself)').requiredOption('--tenant <name>', 'tenant')).action(
    action(async (out, name: string, opts: { tenant: string }) => {
      const { client: api } = sessionClient();
      const c = await api.call<ClientOut>('GET', `/api/v1/tenants/${seg(opts.tenant)}/clients/${seg(name)}`);
      out.result(c, (v: ClientOut) =>
        [
          `name:       ${v.name}`,
          `client id:  ${v.clientId}`,
          `created:    ${v.createdAt}`,
          `expires:    ${v.expiresAt}`,
          `revoked:    ${v.revokedAt ?? '-'}`,
          `last used:  ${v.lastUsedAt ?? '-'}`,
          `grants:     ${grantText(v.grants)}`,
          'secrets:',
          table(
            v.secrets.map((s) => ({ id: s.id, created: s.createdAt, expires: s.expiresAt, state: s.revoked ? 'revoked' : Date.parse(s.expiresAt) <= Date.now() ? 'expired' : 'live' })),
            ['id', 'created', 'expires', 'state'],
          ),
        ].join('\n'),
      );
    }),
  );
  withJson(
    client
      .command('rotate <name>')
      .description('issue a new secret (printed once); the previous ones keep working for the overlap')
      .requiredOption('--tenant <name>', 'tenant')
      .option('--overlap <duration>', 'how long the previous secrets stay valid: 0 to 30d (default 24h)')
      .option('--expires-in <duration>', 'lifetime of the new secret: 1h to 2y (default 90d)'),
  ).action(
    action(async (out, name: string, opts: { tenant: string; overlap?: string; expiresIn?: string }) => {
      const { client: api } = sessionClient();
      const v = await api.call<Issued>('POST', `/api/v1/tenants/${seg(opts.tenant)}/clients/${seg(name)}/rotate`, {
        ...(opts.overlap ? { overlap: opts.overlap } : {}),
        ...(opts.expiresIn ? { expiresIn: opts.expiresIn } : {}),
      });
      out.result({ ...v, warning: WARNING }, (x: Issued) => secretText(`New secret for API client ${x.name}.`, x));
    }),
  );
  withJson(client.command('revoke <name>').description('revoke an API client and all its secrets; its tokens stop working at once').requiredOption('--tenant <name>', 'tenant')).action(
    action(async (out, name: string, opts: { tenant: string }) => {
      const { client: api } = sessionClient();
      await api.call('DELETE', `/api/v1/tenants/${seg(opts.tenant)}/clients/${seg(name)}`);
      out.result({ revoked: name, tenant: opts.tenant }, () => `API client ${name} revoked.`);
    }),
  );
}
