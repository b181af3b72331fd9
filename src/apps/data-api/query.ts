// Requests → SQL. Reads are one statement each (row rule, field conditions, filter, keyset and
// limit in one SELECT); writes read the stored row, decide in TypeScript which rule applies
// (the evaluator is the reference semantics of the rules), and write with the rule's row
// condition repeated in the statement's WHERE; row-level security checks everything again.
import { CompiledQuery, type RawBuilder, sql } from 'kysely';
import type { StageSession } from '../../kernel/index.ts';
import type { AttributeIR, EntityIR } from '../compile/ir.ts';
import { compileRule, type Expr, parameterBindings, type SqlBindings } from '../rules/index.ts';
import { type EntityPlan, isTrue } from './plan.ts';
import { outputValue, paramCast } from './values.ts';

export interface Caller {
  readonly user: string;
  readonly roles: readonly string[];
  readonly now: Date;
}

/** The alias every statement gives the entity's table. */
export const T = 't';

export const columnOf = (e: EntityIR) => (name: string) => (name === 'id' ? 'id' : (e.attributes.find((a) => a.name === name)?.column ?? name));

export function bindings(e: EntityIR, c: Caller): SqlBindings {
  return parameterBindings({ table: T, column: columnOf(e), auth: { user: c.user, roles: c.roles }, now: c.now });
}

export const tableRef = (schema: string, e: EntityIR): RawBuilder<unknown> => sql`${sql.id(schema, e.table)} as ${sql.id(T)}`;

/** A rule condition for the WHERE clause; `true` compiles to nothing special. */
export function cond(plan: EntityPlan, e: Expr, c: Caller): RawBuilder<unknown> {
  return isTrue(e) ? sql`true` : compileRule(e, plan.attrs, bindings(plan.entity, c));
}

/** How a column is selected so both engines give the same JavaScript value. */
export function columnExpr(a: AttributeIR): RawBuilder<unknown> {
  const col = sql.ref(`${T}.${a.column}`);
  if (a.encrypted) return col;
  switch (a.type.kind) {
    case 'integer':
    case 'decimal':
    case 'date':
      return sql`${col}::text`;
    default:
      return col;
  }
}

export const param = (a: AttributeIR, v: unknown): RawBuilder<unknown> => {
  if (v === null) return sql`NULL`;
  const value = a.type.kind === 'json' && !a.encrypted ? JSON.stringify(v) : v;
  return sql`${value}::${sql.raw(paramCast(a))}`;
};

/** The select list of a record: system columns, the chosen readable attributes, their row conditions. */
export function selectList(plan: EntityPlan, fields: readonly string[], c: Caller, extra: readonly RawBuilder<unknown>[] = []): RawBuilder<unknown> {
  const parts: RawBuilder<unknown>[] = [sql.ref(`${T}.id`), sql`${sql.ref(`${T}._version`)}::text as "_version"`, sql.ref(`${T}._created_at`), sql.ref(`${T}._updated_at`)];
  for (const name of fields) {
    const f = plan.readable.get(name);
    if (!f) continue;
    parts.push(sql`${columnExpr(f.attribute)} as ${sql.id(`f_${name}`)}`);
    if (!isTrue(f.when)) parts.push(sql`(${cond(plan, f.when, c)}) is true as ${sql.id(`r_${name}`)}`);
  }
  parts.push(...extra);
  return sql.join(parts);
}

export type Row = Record<string, unknown>;

/** Which of the selected fields the caller may see on this row. */
export function visibleFields(plan: EntityPlan, fields: readonly string[], row: Row): string[] {
  return fields.filter((n) => {
    const f = plan.readable.get(n);
    return f !== undefined && (isTrue(f.when) || row[`r_${n}`] === true);
  });
}

/** A record as JSON; `decrypt` opens encrypted fields. */
export function recordOf(plan: EntityPlan, fields: readonly string[], row: Row, decrypt: (a: AttributeIR, id: string, v: Uint8Array) => unknown): Record<string, unknown> {
  const out: Record<string, unknown> = { id: row.id };
  for (const n of visibleFields(plan, fields, row)) {
    const a = (plan.readable.get(n) as { attribute: AttributeIR }).attribute;
    const v = row[`f_${n}`];
    out[n] = v === null || v === undefined ? null : a.encrypted ? decrypt(a, row.id as string, v as Uint8Array) : outputValue(a, v);
  }
  out._version = Number(row._version);
  out._createdAt = toIso(row._created_at);
  out._updatedAt = toIso(row._updated_at);
  return out;
}

const toIso = (v: unknown) => (v instanceof Date ? v.toISOString() : new Date(String(v)).toISOString());

/** Runs a built statement in the session. */
export async function run(s: StageSession, q: RawBuilder<unknown> | CompiledQuery): Promise<Row[]> {
  const r = 'execute' in q ? await q.execute(s.db) : await s.db.executeQuery(q);
  return r.rows as Row[];
}

// ---- statement templates ----

/** Stand-ins for what changes from request to request, found again among the compiled parameters. */
const USER = Object.freeze({ standIn: 'user' });
const NOW = Object.freeze({ standIn: 'now' });
const STAND_IN_CALLER = (roles: readonly string[]): Caller => ({ user: USER as unknown as string, roles, now: { toISOString: () => NOW } as unknown as Date });

interface Template {
  readonly sql: string;
  readonly parameters: readonly unknown[];
  /** Per parameter: -1 keep, -2 the caller's user, -3 the time, else the index in `args`. */
  readonly slots: readonly number[];
}

const TEMPLATES_PER_PLAN = 500;
const templates = new WeakMap<EntityPlan, Map<string, Template>>();

/**
 * A statement compiled once per plan and `shape`, then run with each request's values in place of
 * the stand-ins it was compiled with: building the rule conditions and compiling them through
 * Kysely on every request cost more CPU than PostgreSQL's own work for a primary-key read.
 * `build` gets a caller whose user and time are stand-ins, and stand-ins for `args`, each to be
 * used as a plain parameter value; everything else in the statement must follow from the plan
 * (revision, entity, role set) and from `shape`, which therefore names the schema, the fields and
 * every other choice the statement depends on. Values still travel as bind parameters.
 */
export function templated(s: StageSession, plan: EntityPlan, shape: string, caller: Caller, args: readonly unknown[], build: (c: Caller, args: readonly unknown[]) => RawBuilder<unknown>): CompiledQuery {
  let perPlan = templates.get(plan);
  if (!perPlan) {
    perPlan = new Map();
    templates.set(plan, perPlan);
  }
  let t = perPlan.get(shape);
  if (!t) {
    const standIns = args.map(() => ({}));
    const compiled = build(STAND_IN_CALLER(caller.roles), standIns).compile(s.db);
    const slots = compiled.parameters.map((p) => (p === USER ? -2 : p === NOW ? -3 : standIns.indexOf(p as object)));
    if (standIns.some((_, i) => !slots.includes(i))) throw new Error(`templated statement does not use every argument as a value: ${compiled.sql}`);
    t = { sql: compiled.sql, parameters: compiled.parameters, slots };
    if (perPlan.size >= TEMPLATES_PER_PLAN) perPlan.delete(perPlan.keys().next().value as string);
    perPlan.set(shape, t);
  }
  const now = caller.now.toISOString();
  const { parameters, slots } = t;
  const values = new Array<unknown>(slots.length);
  for (let i = 0; i < slots.length; i++) {
    const slot = slots[i] as number;
    values[i] = slot === -1 ? parameters[i] : slot === -2 ? caller.user : slot === -3 ? now : args[slot];
  }
  return CompiledQuery.raw(t.sql, values);
}

/** The stored values of a row in the rule evaluator's form (non-encrypted attributes). */
export function storedRow(e: EntityIR, row: Row): Record<string, unknown> {
  const out: Record<string, unknown> = { id: row.id };
  for (const a of e.attributes) if (!a.encrypted) out[a.name] = row[`f_${a.name}`] ?? null;
  return out;
}
