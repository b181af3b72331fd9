import type { Command } from 'commander';
import { action, sessionClient, withJson } from './command.ts';
import { cliError, table } from './output.ts';

const seg = encodeURIComponent;

interface GrantOut {
  id: string;
  kind: 'role' | 'app-role';
  principal: { type: 'user' | 'client'; id: string; label: string; status: string };
  role: string;
  app: string | null;
  stage: string | null;
  grantedAt: string;
  grantedBy: string | null;
  lastUsedAt: string | null;
}
interface Counts {
  items: number;
  confirmed: number;
  revoked: number;
  undecided: number;
}
interface ReviewOut {
  id: string;
  name: string;
  startedBy: string;
  startedAt: string;
  closedAt: string | null;
  closedBy: string | null;
  counts: Counts;
}
interface ItemOut {
  id: string;
  kind: 'role' | 'app-role';
  principal: { type: string; label: string };
  role: string;
  app: string | null;
  stage: string | null;
  lastUsedAt: string | null;
  decision: 'confirm' | 'revoke' | null;
  decidedBy: string | null;
  decidedAt: string | null;
  note: string | null;
}

const day = (iso: string | null, none: string) => (iso === null ? none : iso.slice(0, 10));
const what = (g: { kind: string; role: string; app: string | null }) => (g.kind === 'app-role' ? `${g.app}/${g.role}` : g.role);
const countsLine = (c: Counts) => `${c.items} items: ${c.confirmed} confirmed, ${c.revoked} revoked, ${c.undecided} undecided`;

/** `accord access review` (every grant with last use) and `accord access campaign ...` (review campaigns). */
export function registerAccessCommands(program: Command): void {
  const accessCmd = program.command('access').description('access reviews: who holds which grant, and review campaigns');
  withJson(accessCmd.command('review').description('every grant on a tenant with who granted it and when it was last used').requiredOption('--tenant <name>', 'tenant')).action(
    action(async (out, opts: { tenant: string }) => {
      const { client } = sessionClient();
      const list = await client.call<GrantOut[]>('GET', `/api/v1/tenants/${seg(opts.tenant)}/access-review`);
      out.result(list, (v: GrantOut[]) =>
        table(
          v.map((g) => ({
            principal: `${g.principal.type === 'client' ? 'client:' : ''}${g.principal.label}${g.principal.status === 'active' ? '' : ` (${g.principal.status})`}`,
            grant: what(g),
            stage: g.stage ?? (g.kind === 'role' ? '(all)' : ''),
            granted: day(g.grantedAt, ''),
            by: g.grantedBy ?? '',
            'last-used': day(g.lastUsedAt, 'never'),
          })),
          ['principal', 'grant', 'stage', 'granted', 'by', 'last-used'],
        ),
      );
    }),
  );

  const campaign = accessCmd.command('campaign').description('access review campaigns: snapshot every grant, confirm or revoke each, close');
  const tenantOpt = (cmd: Command) => cmd.requiredOption('--tenant <name>', 'tenant');
  const base = (tenant: string) => `/api/v1/tenants/${seg(tenant)}/access-reviews`;
  withJson(tenantOpt(campaign.command('start').description('start a campaign over every current grant').requiredOption('--name <text>', 'campaign name, e.g. "Q3 2025"'))).action(
    action(async (out, opts: { tenant: string; name: string }) => {
      const { client } = sessionClient();
      const r = await client.call<ReviewOut>('POST', base(opts.tenant), { name: opts.name });
      out.result(r, (v: ReviewOut) => `Campaign ${v.id} started: ${countsLine(v.counts)}.`);
    }),
  );
  withJson(tenantOpt(campaign.command('list').description("the tenant's campaigns"))).action(
    action(async (out, opts: { tenant: string }) => {
      const { client } = sessionClient();
      const list = await client.call<ReviewOut[]>('GET', base(opts.tenant));
      out.result(list, (v: ReviewOut[]) =>
        table(
          v.map((r) => ({ id: r.id, name: r.name, started: day(r.startedAt, ''), by: r.startedBy, closed: day(r.closedAt, 'open'), items: r.counts.items, undecided: r.counts.undecided })),
          ['id', 'name', 'started', 'by', 'closed', 'items', 'undecided'],
        ),
      );
    }),
  );
  withJson(tenantOpt(campaign.command('show <id>').description('a campaign with every item and its decision'))).action(
    action(async (out, id: string, opts: { tenant: string }) => {
      const { client } = sessionClient();
      const r = await client.call<ReviewOut & { items: ItemOut[] }>('GET', `${base(opts.tenant)}/${seg(id)}`);
      out.result(r, (v: typeof r) =>
        [
          `${v.name} (${v.closedAt ? `closed ${day(v.closedAt, '')} by ${v.closedBy}` : 'open'}): ${countsLine(v.counts)}`,
          table(
            v.items.map((i) => ({
              item: i.id,
              principal: `${i.principal.type === 'client' ? 'client:' : ''}${i.principal.label}`,
              grant: what(i),
              stage: i.stage ?? '',
              'last-used': day(i.lastUsedAt, 'never'),
              decision: i.decision ?? '-',
              by: i.decidedBy ?? '',
              note: i.note ?? '',
            })),
            ['item', 'principal', 'grant', 'stage', 'last-used', 'decision', 'by', 'note'],
          ),
        ].join('\n'),
      );
    }),
  );
  withJson(
    tenantOpt(
      campaign
        .command('decide <id> <itemId>')
        .description('confirm or revoke one item (revoking deletes the grant now; decisions are final)')
        .option('--confirm', 'keep the grant')
        .option('--revoke', 'remove the grant')
        .option('--note <text>', 'why (kept as evidence)'),
    ),
  ).action(
    action(async (out, id: string, itemId: string, opts: { tenant: string; confirm?: boolean; revoke?: boolean; note?: string }) => {
      if (opts.confirm === opts.revoke) throw cliError('CLI_USAGE', 'Give exactly one of --confirm and --revoke.');
      const { client } = sessionClient();
      const i = await client.call<ItemOut>('POST', `${base(opts.tenant)}/${seg(id)}/items/${seg(itemId)}`, {
        decision: opts.confirm ? 'confirm' : 'revoke',
        ...(opts.note === undefined ? {} : { note: opts.note }),
      });
      out.result(i, (v: ItemOut) => `${v.decision === 'confirm' ? 'Confirmed' : 'Revoked'} ${what(v)}${v.stage ? ` on ${v.stage}` : ''} of ${v.principal.label}.${v.note ? ` Note: ${v.note}` : ''}`);
    }),
  );
  withJson(tenantOpt(campaign.command('close <id>').description('close a campaign (no more decisions)'))).action(
    action(async (out, id: string, opts: { tenant: string }) => {
      const { client } = sessionClient();
      const r = await client.call<ReviewOut>('POST', `${base(opts.tenant)}/${seg(id)}/close`);
      out.result(r, (v: ReviewOut) => `Campaign ${v.name} closed: ${countsLine(v.counts)}.`);
    }),
  );
}
