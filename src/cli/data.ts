import type { Command } from 'commander';
import { action, sessionClient, withJson } from './command.ts';
import { table } from './output.ts';

const seg = encodeURIComponent;

interface Inventory {
  tenant: string;
  entries: {
    app: string;
    stage: string;
    entity: string;
    estimatedRows: number | null;
    attributes: { name: string; classification: string; encrypted: boolean; searchable: boolean; readers: { role: string; rows: string | null; field: string | null }[] }[];
  }[];
}

/** `accord data inventory`: what data a tenant's apps hold, how it is protected, who reads it. */
export function registerDataCommands(program: Command): void {
  const data = program.command('data').description("a tenant's app data (DATA-4)");
  withJson(data.command('inventory').description('classification, encryption and readers of every attribute of every deployed app').requiredOption('--tenant <name>', 'tenant')).action(
    action(async (out, opts: { tenant: string }) => {
      const { client } = sessionClient();
      const inv = await client.call<Inventory>('GET', `/api/v1/tenants/${seg(opts.tenant)}/data/inventory`);
      out.result(inv, (v: Inventory) =>
        table(
          v.entries.flatMap((e) =>
            e.attributes.map((a) => ({
              app: e.app,
              stage: e.stage,
              entity: e.entity,
              attribute: a.name,
              class: a.classification,
              encrypted: a.encrypted ? (a.searchable ? 'yes, searchable' : 'yes') : 'no',
              readers: a.readers.map((r) => `${r.role}${r.rows || r.field ? ` (${[r.rows, r.field].filter(Boolean).join(' && ')})` : ''}`).join(', '),
              rows: e.estimatedRows ?? '?',
            })),
          ),
          ['app', 'stage', 'entity', 'attribute', 'class', 'encrypted', 'readers', 'rows'],
        ),
      );
    }),
  );
}
