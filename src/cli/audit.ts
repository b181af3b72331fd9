import { existsSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import { readCheckpointFiles, type SignedCheckpoint, writeCheckpointFiles } from '../audit-chain/index.ts';
import { action, sessionClient, withJson } from './command.ts';
import { cliError, table } from './output.ts';

interface Scope {
  tenant?: string;
  platform?: boolean;
}
interface FilterOptions extends Scope {
  actor?: string;
  action?: string;
  target?: string;
  outcome?: string;
  from?: string;
  to?: string;
  limit?: string;
  cursor?: string;
}
interface ChainReport {
  chain: string;
  tenant: string | null;
  ok: boolean;
  records: number;
  lastSeq: number;
  /** Events not sealed yet, so not covered by the chain yet. */
  unsealed: number;
  firstBadSeq?: number;
  problem?: string;
  detail?: string;
}

const seg = encodeURIComponent;

function base(scope: Scope): string {
  if (scope.tenant && scope.platform) throw cliError('CLI_USAGE', 'Give --tenant or --platform, not both.');
  return scope.tenant ? `/api/v1/tenants/${seg(scope.tenant)}/audit` : '/api/v1/audit';
}

function queryString(o: FilterOptions, extra: Record<string, string | undefined> = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries({ actor: o.actor, action: o.action, target: o.target, outcome: o.outcome, from: o.from, to: o.to, limit: o.limit, cursor: o.cursor, ...extra })) {
    if (v !== undefined) q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

const filterOptions = (cmd: Command): Command =>
  cmd
    .option('--tenant <name>', "the tenant's chain")
    .option('--platform', 'the platform chain (the default without --tenant)')
    .option('--actor <id-or-email>', 'who acted')
    .option('--action <name>', 'an action, or a prefix like auth.*')
    .option('--target <type:id>', 'what was acted on')
    .option('--outcome <outcome>', 'success | failure | denied')
    .option('--from <time>', 'ISO 8601 time, inclusive')
    .option('--to <time>', 'ISO 8601 time, exclusive');

/** `accord audit search | export | verify | checkpoints export`. */
export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('the audit trail (AUD-1..3)');

  withJson(
    filterOptions(audit.command('search').description('search a chain, newest first'))
      .option('--limit <n>', 'records per page (1-500, default 100)')
      .option('--cursor <cursor>', 'continue from a previous page'),
  ).action(
    action(async (out, opts: FilterOptions) => {
      const { client } = sessionClient();
      const res = await client.call<{ records: { seq: number | null; time: string; action: string; outcome: string; actor: { label: string | null } }[]; nextCursor: string | null }>(
        'GET',
        `${base(opts)}${queryString(opts)}`,
      );
      out.result(res, (r: typeof res) => {
        // Records written moments ago have no sequence number until the sealer links them.
        const rows = r.records.map((x) => ({ seq: x.seq ?? 'unsealed', time: x.time, action: x.action, outcome: x.outcome, actor: x.actor.label ?? '-' }));
        return `${table(rows, ['seq', 'time', 'action', 'outcome', 'actor'])}${r.nextCursor ? `\nmore: --cursor ${r.nextCursor}` : ''}`;
      });
    }),
  );

  filterOptions(audit.command('export').description('export a chain to stdout, oldest first'))
    .option('--format <format>', 'jsonl | cef', 'jsonl')
    .option('--json', 'errors as JSON (the export itself is always the chosen format)')
    .action(
      action(async (_out, opts: FilterOptions & { format: string }) => {
        if (opts.format !== 'jsonl' && opts.format !== 'cef') throw cliError('CLI_USAGE', '--format must be jsonl or cef.');
        const { client } = sessionClient();
        const text = await client.call<string>('GET', `${base(opts)}/export${queryString(opts, { format: opts.format })}`);
        process.stdout.write(text);
      }),
    );

  withJson(
    audit
      .command('verify')
      .description('recompute the hash chains; exit 1 when any chain is broken')
      .option('--tenant <name>', "only this tenant's chain")
      .option('--platform', 'only the platform chain (with --tenant: both)')
      .option('--checkpoints <dir>', 'also check against checkpoints exported earlier (detects a truncated tail)'),
  ).action(
    action(async (out, opts: Scope & { checkpoints?: string }) => {
      let checkpoints: SignedCheckpoint[] | undefined;
      if (opts.checkpoints !== undefined) {
        if (!existsSync(opts.checkpoints) || !statSync(opts.checkpoints).isDirectory()) {
          throw cliError('CLI_FILE_UNREADABLE', `--checkpoints ${opts.checkpoints} is not a directory.`, { path: opts.checkpoints });
        }
        try {
          checkpoints = readCheckpointFiles(opts.checkpoints);
        } catch {
          throw cliError('CLI_FILE_UNREADABLE', `--checkpoints ${opts.checkpoints} holds files that are not exported checkpoints.`, { path: opts.checkpoints });
        }
      }
      const { client } = sessionClient();
      const res = await client.call<{ ok: boolean; chains: ChainReport[] }>('POST', '/api/v1/audit/verify', {
        ...(opts.tenant ? { tenant: opts.tenant } : {}),
        ...(opts.platform ? { platform: true } : {}),
        ...(checkpoints ? { checkpoints } : {}),
      });
      out.result(res, (r: typeof res) => {
        const rows = r.chains.map((c) => ({
          chain: c.tenant ?? c.chain,
          ok: c.ok ? 'ok' : 'BROKEN',
          records: c.records,
          lastSeq: c.lastSeq,
          unsealed: c.unsealed,
          problem: c.ok ? '' : `${c.problem} at ${c.firstBadSeq}: ${c.detail}`,
        }));
        return `${table(rows, ['chain', 'ok', 'records', 'lastSeq', 'unsealed', 'problem'])}\n${r.ok ? 'All chains verified.' : 'Verification FAILED.'}`;
      });
      if (!res.ok) process.exitCode = 1;
    }),
  );

  const checkpoints = audit.command('checkpoints').description('signed checkpoints');
  withJson(
    checkpoints
      .command('export')
      .description('write the signed checkpoints as files into a directory you keep outside the platform')
      .requiredOption('--dir <dir>', 'target directory')
      .option('--tenant <name>', "only this tenant's chain"),
  ).action(
    action(async (out, opts: { dir: string; tenant?: string }) => {
      const { client } = sessionClient();
      const res = await client.call<{ keyId: string; publicKeyPem: string; checkpoints: SignedCheckpoint[] }>(
        'GET',
        `/api/v1/audit/checkpoints${opts.tenant ? `?tenant=${seg(opts.tenant)}` : ''}`,
      );
      const written = writeCheckpointFiles(opts.dir, res.checkpoints);
      out.result({ dir: opts.dir, keyId: res.keyId, checkpoints: res.checkpoints.length, written }, (r: { written: number; checkpoints: number; dir: string }) =>
        `${r.written} new checkpoint files written to ${r.dir} (${r.checkpoints} in all).`,
      );
    }),
  );
}
