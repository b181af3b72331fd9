import type { Command } from 'commander';
import { action, sessionClient, withJson } from './command.ts';
import { cliError, table } from './output.ts';

const seg = encodeURIComponent;

interface Settings {
  mode: string;
  paranoiaLevel: number;
  threshold: number;
}
interface Exclusion {
  id: string;
  ruleId: number;
  field: string;
  justification: string;
  expiresAt: string;
  active: boolean;
}
interface WafEvent {
  reference: string;
  at: string;
  blocked: boolean;
  method: string;
  route: string;
  score: number;
  ruleIds: number[];
  fields: string[];
}

const base = (tenant: string, stage: string) => `/api/v1/tenants/${seg(tenant)}/stages/${seg(stage)}/waf`;
const describe = (s: Settings) => `mode ${s.mode}, paranoia level ${s.paranoiaLevel}, threshold ${s.threshold}`;

function int(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw cliError('CLI_USAGE', `${flag} must be a whole number.`);
  return Number(value);
}

/** `accord waf show|set|exclude|exclusions|unexclude|events`: a stage's firewall. */
export function registerWafCommands(program: Command): void {
  const waf = program.command('waf').description("a stage's web application firewall: mode, paranoia level, threshold, rule exclusions, events");
  const scoped = (cmd: Command) => withJson(cmd.requiredOption('--tenant <name>', 'tenant').requiredOption('--stage <name>', 'stage'));

  scoped(waf.command('show').description('show the settings')).action(
    action(async (out, opts: { tenant: string; stage: string }) => {
      const { client } = sessionClient();
      out.result(await client.call<Settings>('GET', base(opts.tenant, opts.stage)), describe);
    }),
  );
  scoped(
    waf
      .command('set')
      .description('change the mode (off, detect, block), the paranoia level (1-4) or the inbound threshold')
      .option('--mode <mode>', 'off, detect or block')
      .option('--paranoia <level>', '1 (default) to 4')
      .option('--threshold <score>', 'inbound anomaly score that blocks (default 5)'),
  ).action(
    action(async (out, opts: { tenant: string; stage: string; mode?: string; paranoia?: string; threshold?: string }) => {
      if (opts.mode !== undefined && !['off', 'detect', 'block'].includes(opts.mode)) throw cliError('CLI_USAGE', '--mode must be off, detect or block.');
      const changes = { ...(opts.mode ? { mode: opts.mode } : {}), ...(opts.paranoia ? { paranoiaLevel: int(opts.paranoia, '--paranoia') } : {}), ...(opts.threshold ? { threshold: int(opts.threshold, '--threshold') } : {}) };
      if (Object.keys(changes).length === 0) throw cliError('CLI_USAGE', 'Give --mode, --paranoia or --threshold.');
      const { client } = sessionClient();
      out.result(await client.call<Settings>('PATCH', base(opts.tenant, opts.stage), changes), describe);
    }),
  );
  scoped(
    waf
      .command('exclude <ruleId>')
      .description('stop one rule inspecting one field (ARGS:name, or * for every field) until an expiry')
      .requiredOption('--field <field>', 'the field as events name it, e.g. ARGS:json.notes, or *')
      .requiredOption('--reason <text>', 'why (kept with the exclusion and in the audit trail)')
      .requiredOption('--expires <iso-date>', 'when it stops applying (at most a year ahead)'),
  ).action(
    action(async (out, ruleId: string, opts: { tenant: string; stage: string; field: string; reason: string; expires: string }) => {
      const expires = new Date(opts.expires);
      if (Number.isNaN(expires.getTime())) throw cliError('CLI_USAGE', '--expires must be a date, e.g. 2027-01-31 or 2027-01-31T12:00:00Z.');
      const { client } = sessionClient();
      const body = { ruleId: int(ruleId, 'ruleId'), field: opts.field, justification: opts.reason, expiresAt: expires.toISOString() };
      out.result(await client.call<Exclusion>('POST', `${base(opts.tenant, opts.stage)}/exclusions`, body), (e: Exclusion) => `exclusion ${e.id}: rule ${e.ruleId} on ${e.field} until ${e.expiresAt}`);
    }),
  );
  scoped(waf.command('exclusions').description('list the rule exclusions')).action(
    action(async (out, opts: { tenant: string; stage: string }) => {
      const { client } = sessionClient();
      out.result(await client.call<Exclusion[]>('GET', `${base(opts.tenant, opts.stage)}/exclusions`), (list: Exclusion[]) =>
        table(list.map((e) => ({ id: e.id, rule: e.ruleId, field: e.field, until: e.expiresAt, active: e.active ? 'yes' : 'expired', reason: e.justification })), ['id', 'rule', 'field', 'until', 'active', 'reason']),
      );
    }),
  );
  scoped(waf.command('unexclude <id>').description('remove a rule exclusion')).action(
    action(async (out, id: string, opts: { tenant: string; stage: string }) => {
      const { client } = sessionClient();
      await client.call('DELETE', `${base(opts.tenant, opts.stage)}/exclusions/${seg(id)}`);
      out.result({ removed: id }, () => `exclusion ${id} removed`);
    }),
  );
  scoped(
    waf
      .command('events')
      .description('the detections, newest first (rule ids, scores, field names, redacted excerpts)')
      .option('--limit <n>', 'how many (default 100, at most 500)')
      .option('--reference <id>', 'the one event a blocked caller was given'),
  ).action(
    action(async (out, opts: { tenant: string; stage: string; limit?: string; reference?: string }) => {
      const q = new URLSearchParams();
      if (opts.limit) q.set('limit', String(int(opts.limit, '--limit')));
      if (opts.reference) q.set('reference', opts.reference);
      const { client } = sessionClient();
      out.result(await client.call<WafEvent[]>('GET', `${base(opts.tenant, opts.stage)}/events${q.size ? `?${q}` : ''}`), (list: WafEvent[]) =>
        table(list.map((e) => ({ at: e.at, reference: e.reference, outcome: e.blocked ? 'blocked' : 'detected', request: `${e.method} ${e.route}`, score: e.score, rules: e.ruleIds.join(','), fields: e.fields.join(',') })), ['at', 'reference', 'outcome', 'request', 'score', 'rules', 'fields']),
      );
    }),
  );
}
