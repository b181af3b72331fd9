// The stage schema as the catalog (pg_catalog) says it is, for the tables of one app. The engine
// plans from this, not from what the previous revision says it should be, and the last
// deployment's copy of it is the reference for drift: anything that differs was changed out of
// band. Validity of constraints and indexes is part of it, so a half-built index is visible.
import { sql } from 'kysely';
import { canonicalJson } from '../../audit-chain/index.ts';
import type { Db, Trx } from '../../db/index.ts';

export interface ColumnShape {
  readonly type: string;
  readonly notNull: boolean;
  readonly default: string | null;
}
export interface IndexShape {
  readonly columns: readonly string[];
  readonly unique: boolean;
  readonly valid: boolean;
  /** Backs a constraint (primary key, unique): managed through the constraint, not as an index. */
  readonly constraint: boolean;
}
export interface ConstraintShape {
  /** `c` check, `f` foreign key, `u` unique, `p` primary key. */
  readonly type: string;
  readonly definition: string;
}
export interface TableShape {
  readonly columns: Readonly<Record<string, ColumnShape>>;
  readonly indexes: Readonly<Record<string, IndexShape>>;
  readonly constraints: Readonly<Record<string, ConstraintShape>>;
}
/** Table name → shape; tables that do not exist are absent. */
export type SchemaSnapshot = Readonly<Record<string, TableShape>>;

type Conn = Db | Trx;

/** Reads the shape of `tables` in `schema` from the catalog. */
export async function readSnapshot(db: Conn, schema: string, tables: readonly string[]): Promise<SchemaSnapshot> {
  if (tables.length === 0) return {};
  const list = [...new Set(tables)];
  const cols = await sql<{ t: string; name: string; type: string; not_null: boolean; def: string | null }>`
    select c.relname as t, a.attname as name, format_type(a.atttypid, a.atttypmod) as type, a.attnotnull as not_null,
           pg_get_expr(d.adbin, d.adrelid) as def
      from pg_attribute a
      join pg_class c on c.oid = a.attrelid
      join pg_namespace n on n.oid = c.relnamespace
      left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
     where n.nspname = ${schema} and c.relkind = 'r' and c.relname = any(${list}::text[]) and a.attnum > 0 and not a.attisdropped
     order by c.relname, a.attnum`.execute(db);
  const idx = await sql<{ t: string; name: string; columns: string[]; is_unique: boolean; valid: boolean; con: boolean }>`
    select t.relname as t, i.relname as name, x.indisunique as is_unique, x.indisvalid as valid,
           exists (select 1 from pg_constraint k where k.conindid = x.indexrelid and k.contype in ('p', 'u')) as con,
           array(select a.attname::text from unnest(x.indkey) with ordinality as k(attnum, ord)
                   join pg_attribute a on a.attrelid = x.indrelid and a.attnum = k.attnum order by k.ord) as columns
      from pg_index x
      join pg_class i on i.oid = x.indexrelid
      join pg_class t on t.oid = x.indrelid
      join pg_namespace n on n.oid = t.relnamespace
     where n.nspname = ${schema} and t.relname = any(${list}::text[])`.execute(db);
  const cons = await sql<{ t: string; name: string; type: string; def: string }>`
    select t.relname as t, k.conname as name, k.contype::text as type, pg_get_constraintdef(k.oid) as def
      from pg_constraint k
      join pg_class t on t.oid = k.conrelid
      join pg_namespace n on n.oid = t.relnamespace
     where n.nspname = ${schema} and t.relname = any(${list}::text[])`.execute(db);
  const out: Record<string, { columns: Record<string, ColumnShape>; indexes: Record<string, IndexShape>; constraints: Record<string, ConstraintShape> }> = {};
  const table = (t: string) => {
    out[t] ??= { columns: {}, indexes: {}, constraints: {} };
    return out[t];
  };
  for (const r of cols.rows) table(r.t).columns[r.name] = { type: r.type, notNull: r.not_null, default: r.def };
  for (const r of idx.rows) table(r.t).indexes[r.name] = { columns: r.columns, unique: r.is_unique, valid: r.valid, constraint: r.con };
  for (const r of cons.rows) table(r.t).constraints[r.name] = { type: r.type, definition: r.def };
  return out;
}

/** One out-of-band difference between the recorded and the live schema. */
export interface DriftItem {
  readonly table: string;
  readonly object: 'table' | 'column' | 'index' | 'constraint';
  readonly name: string;
  readonly change: 'added' | 'removed' | 'changed';
  readonly expected?: unknown;
  readonly actual?: unknown;
}

// jsonb does not keep key order: compare the canonical form.
const same = (a: unknown, b: unknown) => canonicalJson(a) === canonicalJson(b);

function diffMap<V>(table: string, object: DriftItem['object'], expected: Readonly<Record<string, V>>, actual: Readonly<Record<string, V>>, out: DriftItem[]) {
  for (const [name, v] of Object.entries(expected)) {
    if (!(name in actual)) out.push({ table, object, name, change: 'removed', expected: v });
    else if (!same(v, actual[name])) out.push({ table, object, name, change: 'changed', expected: v, actual: actual[name] });
  }
  for (const [name, v] of Object.entries(actual)) if (!(name in expected)) out.push({ table, object, name, change: 'added', actual: v });
}

/**
 * The differences between what the last deployment recorded and the catalog now. Tables the
 * recording does not know are compared only when the live schema has them (a table the new
 * revision would create already existing is drift too).
 */
export function driftBetween(recorded: SchemaSnapshot, live: SchemaSnapshot): DriftItem[] {
  const out: DriftItem[] = [];
  for (const [t, shape] of Object.entries(recorded)) {
    const now = live[t];
    if (!now) {
      out.push({ table: t, object: 'table', name: t, change: 'removed' });
      continue;
    }
    diffMap(t, 'column', shape.columns, now.columns, out);
    diffMap(t, 'index', shape.indexes, now.indexes, out);
    diffMap(t, 'constraint', shape.constraints, now.constraints, out);
  }
  for (const t of Object.keys(live)) if (!(t in recorded)) out.push({ table: t, object: 'table', name: t, change: 'added' });
  return out;
}
