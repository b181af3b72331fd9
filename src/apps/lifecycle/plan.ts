// The migration engine's planner: the live schema of the app's tables (snapshot.ts) and the new
// IR become classified steps. It plans from the catalog rather than from the previous IR alone, so
// a column kept hidden by an earlier deploy is reused when an attribute comes back (rollback), and
// a step interrupted by a crash is simply planned again. The previous IR is used for what the
// catalog cannot say: whether the running revision still works after a step, and rule changes.
import type { EngineName } from '../../db/index.ts';
import { attributeChecks, columnType, compileDdl, entityIndexes, foreignKeyName, literal, quoteIdent, type TableIndex, uniqueName } from '../compile/ddl.ts';
import { type AccessRuleIR, type AppIR, type AttributeIR, blindIndexColumn, type EntityIR, SYSTEM_COLUMNS } from '../compile/ir.ts';
import type { SchemaSnapshot, TableShape } from './snapshot.ts';

/**
 * Lock/rewrite class, from the lightest: `online` (no lock that blocks reads or writes beyond a
 * catalog update), `brief-lock` (an ACCESS EXCLUSIVE lock held for a catalog change only),
 * `scan` (reads the whole table while holding a lock that blocks writes), `rewrite` (rewrites the
 * table under an ACCESS EXCLUSIVE lock).
 */
export type LockClass = 'online' | 'brief-lock' | 'scan' | 'rewrite';

export interface Precheck {
  readonly description: string;
  /** A `select count(*) as n` over the stage's data; the step is refused when n > 0. */
  readonly sql: string;
  /** Filled in when the precheck ran. */
  readonly violations?: number;
}

export interface Step {
  readonly kind:
    | 'create-table'
    | 'add-column'
    | 'add-foreign-key'
    | 'create-index'
    | 'drop-index'
    | 'add-unique'
    | 'drop-unique'
    | 'add-check'
    | 'drop-check'
    | 'set-required'
    | 'drop-required'
    | 'set-default'
    | 'alter-type'
    | 'hide-column'
    | 'hide-table'
    | 'drop-column'
    | 'drop-table';
  readonly entity: string;
  readonly attribute?: string;
  /** The table, column, index or constraint the step is about. */
  readonly name: string;
  readonly class: LockClass;
  /** Whether the revision running now keeps working once the step is applied. */
  readonly compatible: boolean;
  readonly destructive: boolean;
  /**
   * `concurrent`: run before the deployment's transaction (CREATE INDEX CONCURRENTLY, PostgreSQL
   * only; recorded in app_pending_indexes first). `transaction`: in the deployment's transaction.
   */
  readonly phase: 'concurrent' | 'transaction';
  readonly sql: readonly string[];
  readonly precheck?: Precheck;
  readonly note?: string;
}

export interface PlanInput {
  readonly schema: string;
  readonly engine: EngineName;
  /** The revision running on the stage, if any. */
  readonly previous: AppIR | null;
  readonly next: AppIR;
  /** The live shape of every table the app has had on the stage, and of the next revision's tables. */
  readonly live: SchemaSnapshot;
  readonly allowDataLoss: boolean;
}

/** Thrown for a change the engine does not perform (a type change it cannot prove safe). */
export class UnsupportedChange extends Error {
  constructor(
    readonly entity: string,
    readonly attribute: string,
    readonly from: string,
    readonly to: string,
  ) {
    super(`${entity}.${attribute}: changing the column type from ${from} to ${to} is not supported`);
  }
}

/** The column type as format_type() spells it, for comparison with the catalog. */
export function catalogType(a: AttributeIR): string {
  const t = columnType(a);
  return t === 'timestamptz(3)' ? 'timestamp(3) with time zone' : t;
}

const SYSTEM = new Set<string>(Object.values(SYSTEM_COLUMNS));
const NUMERIC = /^numeric\((\d+),(\d+)\)$/;

/** Plans the steps that take the live schema to the next revision. Pure: reads nothing. */
export function planMigration(input: PlanInput): Step[] {
  const { schema, next, previous, live } = input;
  const steps: Step[] = [];
  const q = (table: string) => `${quoteIdent(schema)}.${quoteIdent(table)}`;
  const fresh = compileDdl(next, { schema });
  const concurrentOk = input.engine === 'postgres';

  for (const e of next.entities) {
    const shape = live[e.table];
    if (!shape) {
      // A new table is empty: its DDL, foreign keys and indexes are plain and immediate.
      for (const s of fresh.filter((x) => x.entity === e.name)) {
        const kind = s.kind === 'create-table' ? 'create-table' : s.kind === 'add-foreign-key' ? 'add-foreign-key' : 'create-index';
        steps.push({ kind, entity: e.name, name: s.name, class: 'online', compatible: true, destructive: false, phase: 'transaction', sql: [s.sql] });
      }
      continue;
    }
    const before = previous?.entities.find((x) => x.name === e.name);
    const t = q(e.table);
    for (const a of e.attributes) planAttribute(steps, { e, a, shape, t, before: before?.attributes.find((x) => x.name === a.name), q, concurrentOk, schema });
    planIndexes(steps, e, shape, t, concurrentOk, schema, previous !== null && before !== undefined);
    // Columns the next revision no longer has: hidden (kept, data intact), or dropped with consent.
    const known = new Set<string>([...SYSTEM, ...e.attributes.map((a) => a.column), ...e.attributes.filter((a) => a.searchable).map(blindIndexColumn)]);
    for (const [col, c] of Object.entries(shape.columns)) {
      if (known.has(col)) continue;
      const wasVisible = before?.attributes.some((a) => a.column === col || (a.searchable && blindIndexColumn(a) === col)) ?? false;
      if (input.allowDataLoss) {
        steps.push({
          kind: 'drop-column',
          entity: e.name,
          attribute: col,
          name: col,
          class: 'brief-lock',
          compatible: !wasVisible,
          destructive: true,
          phase: 'transaction',
          sql: [`ALTER TABLE ${t} DROP COLUMN ${quoteIdent(col)} CASCADE`],
          note: 'the column and its data are dropped (--allow-data-loss); an older revision redeployed gets it back empty',
        });
      } else {
        // Hidden, not dropped. A NOT NULL column without a default would refuse the next
        // revision's inserts (it does not know the column), so that constraint goes.
        steps.push({
          kind: 'hide-column',
          entity: e.name,
          attribute: col,
          name: col,
          class: c.notNull && c.default === null ? 'brief-lock' : 'online',
          compatible: true,
          destructive: false,
          phase: 'transaction',
          sql: c.notNull && c.default === null ? [`ALTER TABLE ${t} ALTER COLUMN ${quoteIdent(col)} DROP NOT NULL`] : [],
          note: 'kept with its data; the revision no longer reads or writes it',
        });
      }
    }
  }
  // Tables of entities the next revision no longer has.
  for (const table of Object.keys(live)) {
    if (next.entities.some((e) => e.table === table)) continue;
    const wasVisible = previous?.entities.some((e) => e.table === table) ?? false;
    if (input.allowDataLoss) {
      steps.push({ kind: 'drop-table', entity: table, name: table, class: 'brief-lock', compatible: !wasVisible, destructive: true, phase: 'transaction', sql: [`DROP TABLE ${q(table)} CASCADE`], note: 'the table and its rows are dropped (--allow-data-loss)' });
    } else if (wasVisible) {
      steps.push({ kind: 'hide-table', entity: table, name: table, class: 'online', compatible: true, destructive: false, phase: 'transaction', sql: [], note: 'kept with its rows; the revision no longer serves it' });
    }
  }
  return order(steps);
}

interface AttrCtx {
  readonly e: EntityIR;
  readonly a: AttributeIR;
  readonly shape: TableShape;
  readonly t: string;
  readonly before: AttributeIR | undefined;
  readonly q: (table: string) => string;
  readonly concurrentOk: boolean;
  readonly schema: string;
}

function planAttribute(steps: Step[], x: AttrCtx): void {
  const { e, a, shape, t, before } = x;
  const c = quoteIdent(a.column);
  const col = shape.columns[a.column];
  const base = { entity: e.name, attribute: a.name, destructive: false } as const;
  const want = catalogType(a);
  if (!col) {
    // A constant default is stored in the catalog (PostgreSQL 11+): no rewrite, no scan.
    const def = a.default !== null ? ` DEFAULT ${literal(a, a.default)}` : '';
    const notNull = a.required ? ' NOT NULL' : '';
    const needsRows = a.required && a.default === null;
    steps.push({
      ...base,
      kind: 'add-column',
      name: a.column,
      class: 'online',
      // The running revision does not write the column: fine unless it must have a value.
      compatible: !needsRows,
      phase: 'transaction',
      sql: [`ALTER TABLE ${t} ADD COLUMN ${c} ${columnType(a)}${def}${notNull}`],
      ...(needsRows ? { precheck: { description: `rows of ${e.name} that would have no ${a.name} (required, no default)`, sql: `SELECT count(*) AS n FROM ${t}` } } : {}),
    });
    if (a.searchable) steps.push({ ...base, kind: 'add-column', name: blindIndexColumn(a), class: 'online', compatible: true, phase: 'transaction', sql: [`ALTER TABLE ${t} ADD COLUMN ${quoteIdent(blindIndexColumn(a))} bytea`] });
  } else {
    if (col.type !== want) planType(steps, x, col.type, want);
    if (a.required && !col.notNull) {
      steps.push({
        ...base,
        kind: 'set-required',
        name: a.column,
        class: 'scan',
        compatible: before?.required ?? false,
        phase: 'transaction',
        sql: [`ALTER TABLE ${t} ALTER COLUMN ${c} SET NOT NULL`],
        precheck: { description: `rows of ${e.name} with no ${a.name}`, sql: `SELECT count(*) AS n FROM ${t} WHERE ${c} IS NULL` },
      });
    } else if (!a.required && col.notNull) {
      steps.push({ ...base, kind: 'drop-required', name: a.column, class: 'brief-lock', compatible: true, phase: 'transaction', sql: [`ALTER TABLE ${t} ALTER COLUMN ${c} DROP NOT NULL`] });
    }
    // Defaults are cheap to set; set whenever the running revision's differs or is unknown.
    const sameDefault = before !== undefined && before.default === a.default && (a.default === null) === (col.default === null);
    if (!sameDefault) {
      const sqlText = a.default === null ? `ALTER TABLE ${t} ALTER COLUMN ${c} DROP DEFAULT` : `ALTER TABLE ${t} ALTER COLUMN ${c} SET DEFAULT ${literal(a, a.default)}`;
      if (!(a.default === null && col.default === null)) steps.push({ ...base, kind: 'set-default', name: a.column, class: 'brief-lock', compatible: true, phase: 'transaction', sql: [sqlText] });
    }
    if (a.searchable && !shape.columns[blindIndexColumn(a)]) {
      steps.push({ ...base, kind: 'add-column', name: blindIndexColumn(a), class: 'online', compatible: true, phase: 'transaction', sql: [`ALTER TABLE ${t} ADD COLUMN ${quoteIdent(blindIndexColumn(a))} bytea`] });
    }
  }
  const exists = col !== undefined;
  // CHECK constraints: added NOT VALID (brief lock), then validated (a scan that lets reads run).
  const wantChecks = attributeChecks(e.table, a);
  const hadChecks = before && exists ? attributeChecks(e.table, before) : [];
  for (const k of wantChecks) {
    const had = hadChecks.find((h) => h.name === k.name);
    const present = shape.constraints[k.name] !== undefined;
    if (present && had && had.expr === k.expr) continue;
    const sqlText = [
      ...(present ? [`ALTER TABLE ${t} DROP CONSTRAINT ${quoteIdent(k.name)}`] : []),
      `ALTER TABLE ${t} ADD CONSTRAINT ${quoteIdent(k.name)} CHECK (${k.expr}) NOT VALID`,
      `ALTER TABLE ${t} VALIDATE CONSTRAINT ${quoteIdent(k.name)}`,
    ];
    steps.push({
      ...base,
      kind: 'add-check',
      name: k.name,
      class: 'scan',
      compatible: false,
      phase: 'transaction',
      sql: sqlText,
      ...(exists ? { precheck: { description: `rows of ${e.name} whose ${a.name} breaks ${k.expr}`, sql: `SELECT count(*) AS n FROM ${t} WHERE NOT (${k.expr})` } } : {}),
    });
  }
  if (exists) {
    // Checks of this column the next revision does not have: they only ever refuse writes.
    const prefix = `${e.table}_${a.column}_`;
    for (const [name, k] of Object.entries(x.shape.constraints)) {
      if (k.type !== 'c' || !name.startsWith(prefix) || wantChecks.some((w) => w.name === name)) continue;
      if (!/_(enum|min_length|max_length|min|max)$/.test(name)) continue;
      steps.push({ ...base, kind: 'drop-check', name, class: 'brief-lock', compatible: true, phase: 'transaction', sql: [`ALTER TABLE ${t} DROP CONSTRAINT ${quoteIdent(name)}`] });
    }
  }
  // Unique: the index first (concurrently on PostgreSQL), then the constraint on it (brief lock).
  const un = uniqueName(e.table, a);
  const hasUnique = x.shape.constraints[un] !== undefined;
  if (a.unique && !hasUnique) {
    const precheck = exists ? { description: `values of ${e.name}.${a.name} held by more than one row`, sql: `SELECT count(*) AS n FROM (SELECT ${c} FROM ${t} WHERE ${c} IS NOT NULL GROUP BY ${c} HAVING count(*) > 1) AS d` } : undefined;
    if (exists && x.concurrentOk) {
      steps.push({ ...base, kind: 'add-unique', name: un, class: 'online', compatible: false, phase: 'concurrent', sql: [`CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS ${quoteIdent(un)} ON ${t} (${c})`], ...(precheck ? { precheck } : {}) });
      steps.push({ ...base, kind: 'add-unique', name: un, class: 'brief-lock', compatible: false, phase: 'transaction', sql: [`ALTER TABLE ${t} ADD CONSTRAINT ${quoteIdent(un)} UNIQUE USING INDEX ${quoteIdent(un)}`] });
    } else {
      steps.push({ ...base, kind: 'add-unique', name: un, class: exists ? 'scan' : 'online', compatible: false, phase: 'transaction', sql: [`ALTER TABLE ${t} ADD CONSTRAINT ${quoteIdent(un)} UNIQUE (${c})`], ...(precheck ? { precheck } : {}) });
    }
  } else if (!a.unique && hasUnique) {
    steps.push({ ...base, kind: 'drop-unique', name: un, class: 'brief-lock', compatible: true, phase: 'transaction', sql: [`ALTER TABLE ${t} DROP CONSTRAINT ${quoteIdent(un)}`] });
  }
  // Foreign keys of references: NOT VALID, then validated.
  if (a.type.kind === 'reference') {
    const fk = foreignKeyName(e.table, a);
    const target = a.type.entity;
    const sameRef = before?.type.kind === 'reference' && before.type.entity === a.type.entity && before.type.onDelete === a.type.onDelete;
    const present = x.shape.constraints[fk] !== undefined;
    if (!present || !sameRef) {
      const onDelete = { restrict: 'RESTRICT', cascade: 'CASCADE', setNull: 'SET NULL' }[a.type.onDelete];
      const targetTable = x.q(target);
      steps.push({
        ...base,
        kind: 'add-foreign-key',
        name: fk,
        class: 'scan',
        compatible: false,
        phase: 'transaction',
        sql: [
          ...(present ? [`ALTER TABLE ${t} DROP CONSTRAINT ${quoteIdent(fk)}`] : []),
          `ALTER TABLE ${t} ADD CONSTRAINT ${quoteIdent(fk)} FOREIGN KEY (${c}) REFERENCES ${targetTable} (${quoteIdent(SYSTEM_COLUMNS.id)}) ON DELETE ${onDelete} NOT VALID`,
          `ALTER TABLE ${t} VALIDATE CONSTRAINT ${quoteIdent(fk)}`,
        ],
        ...(exists ? { precheck: { description: `rows of ${e.name} whose ${a.name} names no ${target}`, sql: `SELECT count(*) AS n FROM ${t} AS r WHERE r.${c} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ${targetTable} AS x WHERE x.${quoteIdent(SYSTEM_COLUMNS.id)} = r.${c})` } } : {}),
      });
    }
  } else if (x.shape.constraints[foreignKeyName(e.table, a)]) {
    steps.push({ ...base, kind: 'drop-check', name: foreignKeyName(e.table, a), class: 'brief-lock', compatible: true, phase: 'transaction', sql: [`ALTER TABLE ${t} DROP CONSTRAINT ${quoteIdent(foreignKeyName(e.table, a))}`] });
  }
}

// Widening a numeric keeps every value (PostgreSQL still rewrites when the scale changes);
// narrowing is refused by a precheck when a value would not fit. Other type changes are not done:
// add a new attribute and move the data in an action instead.
function planType(steps: Step[], x: AttrCtx, have: string, want: string): void {
  const { e, a, t } = x;
  const c = quoteIdent(a.column);
  const h = NUMERIC.exec(have);
  const w = NUMERIC.exec(want);
  if (!h || !w) throw new UnsupportedChange(e.name, a.name, have, want);
  const [hp, hs] = [Number(h[1]), Number(h[2])];
  const [wp, ws] = [Number(w[1]), Number(w[2])];
  const widening = wp - ws >= hp - hs && ws >= hs;
  const rewrite = ws !== hs;
  steps.push({
    entity: e.name,
    attribute: a.name,
    destructive: false,
    kind: 'alter-type',
    name: a.column,
    class: rewrite ? 'rewrite' : 'brief-lock',
    compatible: widening,
    phase: 'transaction',
    sql: [`ALTER TABLE ${t} ALTER COLUMN ${c} TYPE ${want}`],
    ...(widening
      ? {}
      : {
          precheck: {
            description: `rows of ${e.name} whose ${a.name} does not fit ${want}`,
            sql: `SELECT count(*) AS n FROM ${t} WHERE ${c} IS NOT NULL AND abs(round(${c}, ${ws})) >= 1e${wp - ws}`,
          },
          note: ws < hs ? `values are rounded to ${ws} decimal places` : undefined,
        }),
  } as Step);
}

function planIndexes(steps: Step[], e: EntityIR, shape: TableShape, t: string, concurrentOk: boolean, _schema: string, _known: boolean): void {
  const want = entityIndexes(e);
  const matches = (w: TableIndex, have: { columns: readonly string[]; unique: boolean; valid: boolean }) => have.valid && have.unique === w.unique && have.columns.join(',') === w.columns.join(',');
  for (const w of want) {
    const have = shape.indexes[w.name];
    if (have && matches(w, have)) continue;
    const cols = w.columns.map(quoteIdent).join(', ');
    const precheck = w.unique ? { description: `rows of ${e.name} sharing (${w.columns.join(', ')})`, sql: `SELECT count(*) AS n FROM (SELECT 1 FROM ${t} GROUP BY ${cols} HAVING count(*) > 1) AS d` } : undefined;
    const drop = have ? [`DROP INDEX ${concurrentOk ? 'CONCURRENTLY ' : ''}IF EXISTS ${quoteIdent(_schema)}.${quoteIdent(w.name)}`] : [];
    steps.push({
      entity: e.name,
      name: w.name,
      kind: 'create-index',
      class: concurrentOk ? 'online' : 'scan',
      compatible: !w.unique,
      destructive: false,
      phase: concurrentOk ? 'concurrent' : 'transaction',
      sql: [...drop, `CREATE ${w.unique ? 'UNIQUE ' : ''}INDEX ${concurrentOk ? 'CONCURRENTLY ' : ''}IF NOT EXISTS ${quoteIdent(w.name)} ON ${t} (${cols})`],
      ...(precheck ? { precheck } : {}),
    });
  }
  for (const [name, have] of Object.entries(shape.indexes)) {
    if (have.constraint || want.some((w) => w.name === name)) continue;
    // Indexes hold no data of their own: dropping one loses nothing a rollback cannot rebuild.
    steps.push({ entity: e.name, name, kind: 'drop-index', class: 'brief-lock', compatible: true, destructive: false, phase: 'transaction', sql: [`DROP INDEX IF EXISTS ${quoteIdent(_schema)}.${quoteIdent(name)}`] });
  }
}

// Creates before foreign keys (which may point at a table created later in the list), column
// additions before constraints and indexes over them.
const ORDER: Step['kind'][] = [
  'drop-index',
  'drop-check',
  'drop-unique',
  'drop-required',
  'create-table',
  'add-column',
  'alter-type',
  'set-default',
  'set-required',
  'add-check',
  'add-unique',
  'add-foreign-key',
  'create-index',
  'hide-column',
  'hide-table',
  'drop-column',
  'drop-table',
];
function order(steps: Step[]): Step[] {
  return steps.map((s, i) => ({ s, i })).sort((a, b) => ORDER.indexOf(a.s.kind) - ORDER.indexOf(b.s.kind) || a.i - b.i).map((x) => x.s);
}

/** One rule that differs between two revisions, for the impact analysis. */
export interface RuleChange {
  readonly entity: string;
  readonly operation: 'read' | 'create' | 'update' | 'delete' | `read:${string}`;
  readonly role: string;
  readonly change: 'added' | 'removed' | 'changed';
  readonly before?: string;
  readonly after?: string;
}

const ruleText = (r: AccessRuleIR): string =>
  JSON.stringify({ where: r.where?.source ?? null, check: r.check?.source ?? null, fields: r.fields, presets: r.presets.map((p) => [p.attribute, p.value.source]) });

/** Access rules added, removed or changed per entity, operation and role. */
export function ruleChanges(previous: AppIR | null, next: AppIR): RuleChange[] {
  const out: RuleChange[] = [];
  const rulesOf = (app: AppIR | null) => {
    const m = new Map<string, string>();
    for (const e of app?.entities ?? []) {
      for (const op of ['read', 'create', 'update', 'delete'] as const) for (const r of e.access[op]) m.set(`${e.name}\u0000${op}\u0000${r.role}`, ruleText(r));
      for (const f of e.access.fields) for (const r of f.rules) m.set(`${e.name}\u0000read:${f.attribute}\u0000${r.role}`, ruleText(r));
    }
    return m;
  };
  const a = rulesOf(previous);
  const b = rulesOf(next);
  const split = (k: string) => {
    const [entity, operation, role] = k.split('\u0000') as [string, RuleChange['operation'], string];
    return { entity, operation, role };
  };
  for (const [k, v] of b) {
    const old = a.get(k);
    if (old === undefined) out.push({ ...split(k), change: 'added', after: v });
    else if (old !== v) out.push({ ...split(k), change: 'changed', before: old, after: v });
  }
  for (const [k, v] of a) if (!b.has(k)) out.push({ ...split(k), change: 'removed', before: v });
  return out;
}
