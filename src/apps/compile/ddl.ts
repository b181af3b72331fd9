// IR → DDL for the entity tables of one stage schema. DDL cannot take parameters, so the few
// literals it needs (defaults and CHECK bounds) are rendered here from values the validator already
// proved to be of their type; identifiers are always quoted. Everything else in the platform is
// parameterized.
import { type AppIR, type AttributeIR, blindIndexColumn, type EntityIR, SYSTEM_COLUMNS } from './ir.ts';

export interface DdlStatement {
  readonly kind: 'create-table' | 'add-foreign-key' | 'create-index' | 'enable-rls' | 'create-policy';
  readonly entity: string;
  /** The table, constraint or index this statement creates. */
  readonly name: string;
  readonly sql: string;
}

export interface DdlOptions {
  /** The stage schema the tables go in. */
  readonly schema: string;
}

/** A double-quoted identifier. */
export const quoteIdent = (name: string): string => {
  if (name.includes('\u0000')) throw new TypeError('identifier holds NUL');
  return `"${name.replaceAll('"', '""')}"`;
};

/** A single-quoted string literal (standard_conforming_strings, as on every supported server). */
export const quoteLiteral = (value: string): string => {
  if (value.includes('\u0000')) throw new TypeError('literal holds NUL');
  return `'${value.replaceAll("'", "''")}'`;
};

const NUMBER = /^-?\d+(\.\d+)?$/;
const number = (s: string): string => {
  if (!NUMBER.test(s)) throw new TypeError(`not a number: ${s}`);
  return s;
};

/** The column type of an attribute (encrypted ones hold an envelope). */
export function columnType(a: AttributeIR): string {
  if (a.encrypted) return 'bytea';
  switch (a.type.kind) {
    case 'text':
    case 'enum':
      return 'text';
    case 'integer':
      return 'bigint';
    case 'decimal':
      return `numeric(${a.type.precision},${a.type.scale})`;
    case 'boolean':
      return 'boolean';
    case 'date':
      return 'date';
    // Milliseconds, as JavaScript and the rule evaluator see time.
    case 'datetime':
      return 'timestamptz(3)';
    case 'json':
      return 'jsonb';
    case 'uuid':
    case 'user':
    case 'reference':
      return 'uuid';
  }
}

/** A default or bound as an SQL literal of the attribute's type (validated values only). */
export function literal(a: AttributeIR, v: string | boolean): string {
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  switch (a.type.kind) {
    case 'integer':
    case 'decimal':
      return number(v);
    case 'date':
      return `${quoteLiteral(v)}::date`;
    case 'datetime':
      return `${quoteLiteral(v)}::timestamptz`;
    case 'uuid':
      return `${quoteLiteral(v)}::uuid`;
    default:
      return quoteLiteral(v);
  }
}

/** The CHECK constraints of an attribute, by name (the migration engine diffs these). */
export function attributeChecks(table: string, a: AttributeIR): { readonly name: string; readonly expr: string }[] {
  if (a.encrypted) return [];
  const c = quoteIdent(a.column);
  const out: { name: string; expr: string }[] = [];
  const named = (suffix: string, expr: string) => out.push({ name: `${table}_${a.column}_${suffix}`.slice(0, 63), expr });
  if (a.type.kind === 'enum') named('enum', `${c} IN (${a.type.values.map(quoteLiteral).join(', ')})`);
  if (a.minLength !== null) named('min_length', `char_length(${c}) >= ${a.minLength}`);
  if (a.maxLength !== null) named('max_length', `char_length(${c}) <= ${a.maxLength}`);
  if (a.min !== null) named('min', `${c} >= ${literal(a, a.min)}`);
  if (a.max !== null) named('max', `${c} <= ${literal(a, a.max)}`);
  // `pattern` is checked by the data API: JavaScript and POSIX regular expressions differ.
  return out;
}

/** The name of an attribute's unique constraint. */
export const uniqueName = (table: string, a: AttributeIR): string => `${table}_${a.column}_key`.slice(0, 63);
/** The name of a reference attribute's foreign key. */
export const foreignKeyName = (table: string, a: AttributeIR): string => `${table}_${a.column}_fkey`.slice(0, 63);

function checks(table: string, a: AttributeIR): string[] {
  return attributeChecks(table, a).map((k) => `CONSTRAINT ${quoteIdent(k.name)} CHECK (${k.expr})`);
}

function column(table: string, a: AttributeIR): string[] {
  const parts = [quoteIdent(a.column), columnType(a)];
  if (a.required) parts.push('NOT NULL');
  if (a.default !== null) parts.push(`DEFAULT ${literal(a, a.default)}`);
  if (a.unique) parts.push(`CONSTRAINT ${quoteIdent(uniqueName(table, a))} UNIQUE`);
  parts.push(...checks(table, a));
  const cols = [parts.join(' ')];
  if (a.searchable) cols.push(`${quoteIdent(blindIndexColumn(a))} bytea`);
  return cols;
}

function table(schema: string, e: EntityIR): string {
  const t = `${quoteIdent(schema)}.${quoteIdent(e.table)}`;
  const cols = [
    `${quoteIdent(SYSTEM_COLUMNS.id)} uuid PRIMARY KEY DEFAULT gen_random_uuid()`,
    // The row version: the data API's strong ETag, bumped by every update.
    `${quoteIdent(SYSTEM_COLUMNS.version)} bigint NOT NULL DEFAULT 1`,
    `${quoteIdent(SYSTEM_COLUMNS.createdAt)} timestamptz(3) NOT NULL DEFAULT now()`,
    `${quoteIdent(SYSTEM_COLUMNS.updatedAt)} timestamptz(3) NOT NULL DEFAULT now()`,
    ...e.attributes.flatMap((a) => column(e.table, a)),
  ];
  return `CREATE TABLE ${t} (\n  ${cols.join(',\n  ')}\n)`;
}

const ON_DELETE = { restrict: 'RESTRICT', cascade: 'CASCADE', setNull: 'SET NULL' } as const;

/**
 * The DDL that creates an app's tables from nothing, in an order that runs: tables, then foreign
 * keys (so references may form cycles), then indexes. The migration engine (later) diffs IRs rather
 * than this text. Seam: ownership by the stage role and RLS policies (part 2) are appended here.
 */
export function compileDdl(app: AppIR, opts: DdlOptions): readonly DdlStatement[] {
  const s = opts.schema;
  const q = (e: EntityIR) => `${quoteIdent(s)}.${quoteIdent(e.table)}`;
  const out: DdlStatement[] = app.entities.map((e) => ({ kind: 'create-table', entity: e.name, name: e.table, sql: table(s, e) }));
  for (const e of app.entities) {
    for (const a of e.attributes) {
      if (a.type.kind !== 'reference') continue;
      const target = app.entities.find((x) => x.name === (a.type as { entity: string }).entity) as EntityIR;
      const name = foreignKeyName(e.table, a);
      out.push({
        kind: 'add-foreign-key',
        entity: e.name,
        name,
        sql: `ALTER TABLE ${q(e)} ADD CONSTRAINT ${quoteIdent(name)} FOREIGN KEY (${quoteIdent(a.column)}) REFERENCES ${q(target)} (${quoteIdent(SYSTEM_COLUMNS.id)}) ON DELETE ${ON_DELETE[a.type.onDelete]}`,
      });
    }
  }
  for (const e of app.entities) {
    for (const ix of entityIndexes(e)) {
      out.push({ kind: 'create-index', entity: e.name, name: ix.name, sql: `CREATE ${ix.unique ? 'UNIQUE ' : ''}INDEX ${quoteIdent(ix.name)} ON ${q(e)} (${ix.columns.map((n) => quoteIdent(n)).join(', ')})` });
    }
  }
  return out;
}

/** An index an entity's table has besides its primary key and unique constraints. */
export interface TableIndex {
  readonly name: string;
  readonly columns: readonly string[];
  readonly unique: boolean;
}

/** The indexes of an entity's table: declared ones, blind indexes, and one per unindexed foreign key. */
export function entityIndexes(e: EntityIR): TableIndex[] {
  const out: TableIndex[] = [];
  const col = (n: string) => e.attributes.find((a) => a.name === n)?.column ?? n;
  for (const ix of e.indexes) out.push({ name: ix.name, columns: ix.attributes.map(col), unique: ix.unique });
  for (const a of e.attributes.filter((x) => x.searchable)) {
    out.push({ name: `${e.table}_${blindIndexColumn(a)}_idx`.toLowerCase().slice(0, 63), columns: [blindIndexColumn(a)], unique: false });
  }
  // Foreign keys are not indexed by PostgreSQL itself; deletes of the referenced row scan without one.
  for (const a of e.attributes.filter((x) => x.type.kind === 'reference' && !x.unique && !e.indexes.some((ix) => ix.attributes[0] === x.name))) {
    out.push({ name: `${e.table}_${a.column}_fk_idx`.toLowerCase().slice(0, 63), columns: [a.column], unique: false });
  }
  return out;
}
