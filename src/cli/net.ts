import type { Command } from 'commander';
import { action, sessionClient, withJson } from './command.ts';
import { cliError } from './output.ts';
import { table } from './output.ts';

const seg = encodeURIComponent;

interface RuleOut {
  id: string;
  action: string;
  cidr: string;
  note: string;
  createdAt: string;
}

interface StageNetwork {
  rules: RuleOut[];
  rateLimits: Record<string, { limit: number; windowSeconds: number }>;
  effectiveRateLimits: Record<string, { limit: number; windowSeconds: number }>;
  corsOrigins: string[];
}

/** `--stage tenant/stage` as the API path of that stage's network settings; absent: the control plane. */
function base(stage: string | undefined): string {
  if (stage === undefined) return '/api/v1/network';
  const m = /^([^/]+)\/([^/]+)$/.exec(stage);
  if (!m) throw cliError('CLI_USAGE', `--stage takes tenant/stage, e.g. acme/production (got ${JSON.stringify(stage)}).`);
  return `/api/v1/tenants/${seg(m[1] as string)}/stages/${seg(m[2] as string)}/network`;
}

const rulesTable = (rules: RuleOut[]) => table(rules.map((r) => ({ id: r.id, action: r.action, cidr: r.cidr, note: r.note })), ['id', 'action', 'cidr', 'note']);

/** `accord net ...`: IP allow/deny lists, stage rate limits and CORS origins (NET-2). */
export function registerNetCommands(program: Command): void {
  const net = program.command('net').description('network perimeter: IP allow/deny lists (control plane or --stage), rate limits and CORS per stage');
  for (const verb of ['allow', 'deny'] as const) {
    withJson(
      net
        .command(`${verb} <cidr>`)
        .description(`${verb} an IPv4/IPv6 address or CIDR range (the control plane, or --stage's data plane and sign-in)`)
        .option('--stage <tenant/stage>', 'the stage whose list it is (default: the control plane, operators only)')
        .option('--note <text>', 'why'),
    ).action(
      action(async (out, cidr: string, opts: { stage?: string; note?: string }) => {
        const { client } = sessionClient();
        const path = opts.stage === undefined ? '/api/v1/network/rules' : `${base(opts.stage)}/rules`;
        const r = await client.call<RuleOut>('POST', path, { action: verb, cidr, ...(opts.note ? { note: opts.note } : {}) });
        out.result(r, (v: RuleOut) => `${v.action} ${v.cidr} added to ${opts.stage ?? 'the control plane'} (rule ${v.id}).`);
      }),
    );
  }
  withJson(net.command('list').description('the rules (and, with --stage, its rate limits and CORS origins)').option('--stage <tenant/stage>', 'a stage (default: the control plane)')).action(
    action(async (out, opts: { stage?: string }) => {
      const { client } = sessionClient();
      if (opts.stage === undefined) {
        const rules = await client.call<RuleOut[]>('GET', '/api/v1/network/rules');
        out.result(rules, (v: RuleOut[]) => (v.length === 0 ? 'No rules: the control plane accepts every address.' : rulesTable(v)));
        return;
      }
      const s = await client.call<StageNetwork>('GET', base(opts.stage));
      out.result(s, (v: StageNetwork) =>
        [
          v.rules.length === 0 ? 'No rules: the stage accepts every address.' : rulesTable(v.rules),
          `rate limits: ${Object.entries(v.effectiveRateLimits).map(([k, q]) => `${k} ${q.limit}/${q.windowSeconds}s${k in v.rateLimits ? ' (stage)' : ''}`).join(', ') || 'none'}`,
          `CORS origins: ${v.corsOrigins.join(', ') || 'none'}`,
        ].join('\n'),
      );
    }),
  );
  withJson(net.command('remove <rule>').description('remove a rule by its id or CIDR').option('--stage <tenant/stage>', 'a stage (default: the control plane)')).action(
    action(async (out, rule: string, opts: { stage?: string }) => {
      const { client } = sessionClient();
      const path = opts.stage === undefined ? `/api/v1/network/rules/${seg(rule)}` : `${base(opts.stage)}/rules/${seg(rule)}`;
      const r = await client.call<RuleOut>('DELETE', path);
      out.result(r, (v: RuleOut) => `${v.action} ${v.cidr} removed from ${opts.stage ?? 'the control plane'}.`);
    }),
  );
  withJson(
    net
      .command('set')
      .description("set a stage's rate limits and CORS origins")
      .requiredOption('--stage <tenant/stage>', 'the stage')
      .option('--rate-limit <kind=limit/seconds...>', 'a quota: ip=100/60, user=600/60, client=..., tenant=...; kind=default takes the platform\'s again')
      .option('--cors-origin <origin...>', 'origins allowed to call the stage from a browser (replaces the list)')
      .option('--no-cors', 'allow no origin'),
  ).action(
    action(async (out, opts: { stage: string; rateLimit?: string[]; corsOrigin?: string[]; cors?: boolean }) => {
      const rateLimits: Record<string, { limit: number; windowSeconds: number } | null> = {};
      for (const item of opts.rateLimit ?? []) {
        const m = /^(ip|user|client|tenant)=(?:(\d+)\/(\d+)|(default))$/.exec(item);
        if (!m) throw cliError('CLI_USAGE', `--rate-limit takes kind=limit/seconds (ip, user, client, tenant) or kind=default (got ${JSON.stringify(item)}).`);
        rateLimits[m[1] as string] = m[4] ? null : { limit: Number(m[2]), windowSeconds: Number(m[3]) };
      }
      const body = {
        ...(opts.rateLimit ? { rateLimits } : {}),
        ...(opts.corsOrigin ? { corsOrigins: opts.corsOrigin } : opts.cors === false ? { corsOrigins: [] } : {}),
      };
      if (Object.keys(body).length === 0) throw cliError('CLI_USAGE', 'Give --rate-limit, --cors-origin or --no-cors.');
      const { client } = sessionClient();
      const r = await client.call<{ rateLimits: Record<string, { limit: number; windowSeconds: number }>; corsOrigins: string[] }>('PATCH', base(opts.stage), body);
      out.result(r, (v: typeof r) => `Stage ${opts.stage}: rate limits ${Object.entries(v.rateLimits).map(([k, q]) => `${k} ${q.limit}/${q.windowSeconds}s`).join(', ') || 'as the platform'}; CORS origins ${v.corsOrigins.join(', ') || 'none'}.`);
    }),
  );

  const security = program.commands.find((c) => c.name() === 'security') ?? program.command('security').description('security reports');
  withJson(security.command('surface').description('the attack-surface report: endpoints and TLS, anonymous routes, limits and IP lists, findings')).action(
    action(async (out) => {
      const { client } = sessionClient();
      const r = await client.call<{ findings: { severity: string; id: string; message: string }[]; anonymousRoutes: unknown[]; endpoints: { url: string }[] }>('GET', '/api/v1/security/surface');
      out.result(r, (v: typeof r) =>
        [
          `endpoints: ${v.endpoints.map((e) => e.url).join(', ')}`,
          `anonymous routes: ${v.anonymousRoutes.length}`,
          `findings (${v.findings.length}):`,
          ...v.findings.map((f) => `  [${f.severity}] ${f.id}: ${f.message}`),
        ].join('\n'),
      );
    }),
  );
}
