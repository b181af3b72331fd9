// The data inventory (DATA-4): per app, stage, entity and attribute, its classification, whether it
// is encrypted and searchable, which roles can read it and on which rows (derived from the rules:
// the entity's read rule and the attribute's field rule), and the table's estimated row count
// (the planner's statistics, read from the catalog: no tenant row is read).
import { sql } from 'kysely';
import type { Db } from '../../db/index.ts';
import { type AppIR, irFromJson } from '../compile/ir.ts';

export interface InventoryReader {
  readonly role: string;
  /** The entity's read condition for the role (CEL as written); null: every row. */
  readonly rows: string | null;
  /** The field rule's condition; null: none beyond the row condition. */
  readonly field: string | null;
}

export interface InventoryEntry {
  readonly app: string;
  readonly stage: string;
  readonly revision: string;
  readonly entity: string;
  readonly estimatedRows: number | null;
  readonly attributes: readonly {
    readonly name: string;
    readonly classification: string;
    readonly encrypted: boolean;
    readonly searchable: boolean;
    readonly readers: readonly InventoryReader[];
  }[];
  readonly retention: { readonly days: number; readonly from: string | null } | null;
}

function readersOf(app: AppIR, entity: string, attribute: string): InventoryReader[] {
  const e = app.entities.find((x) => x.name === entity);
  if (!e) return [];
  const field = e.access.fields.find((f) => f.attribute === attribute);
  const out: InventoryReader[] = [];
  for (const r of e.access.read) {
    if (!field) {
      out.push({ role: r.role, rows: r.where?.source ?? null, field: null });
      continue;
    }
    for (const f of field.rules.filter((x) => x.role === r.role)) out.push({ role: r.role, rows: r.where?.source ?? null, field: f.where?.source ?? null });
  }
  return out.sort((a, b) => (a.role < b.role ? -1 : a.role > b.role ? 1 : 0));
}

/** The inventory of every app deployed on any stage of a tenant. */
export async function dataInventory(db: Db, tenantId: string): Promise<InventoryEntry[]> {
  const deployed = await db
    .selectFrom('accord.app_stage_state as s')
    .innerJoin('accord.app_revisions as r', (j) => j.onRef('r.tenant_id', '=', 's.tenant_id').onRef('r.app', '=', 's.app').onRef('r.id', '=', 's.revision'))
    .innerJoin('accord.stages as st', 'st.id', 's.stage_id')
    .select(['s.app', 's.revision', 'r.ir', 'st.name as stage', 'st.schema_name', 'st.position'])
    .where('s.tenant_id', '=', tenantId)
    .orderBy('s.app')
    .orderBy('st.position')
    .execute();
  const out: InventoryEntry[] = [];
  for (const d of deployed) {
    const app = irFromJson(typeof d.ir === 'string' ? JSON.parse(d.ir) : d.ir);
    for (const e of app.entities) {
      const est = await sql<{ n: string | null }>`
        select case when c.reltuples < 0 then null else c.reltuples::bigint::text end as n
        from pg_class c join pg_namespace ns on ns.oid = c.relnamespace
        where ns.nspname = ${d.schema_name} and c.relname = ${e.table}`.execute(db);
      const n = est.rows[0]?.n;
      out.push({
        app: d.app,
        stage: d.stage,
        revision: d.revision,
        entity: e.name,
        estimatedRows: n === null || n === undefined ? null : Number(n),
        attributes: e.attributes.map((a) => ({ name: a.name, classification: a.classification, encrypted: a.encrypted, searchable: a.searchable, readers: readersOf(app, e.name, a.name) })),
        retention: e.retention,
      });
    }
  }
  return out;
}
