// Requests → SQL. Reads are one statement each (row rule, field conditions, filter, keyset and
// limit in one SELECT); writes read the stored row, decide in TypeScript which rule applies
// (the evaluator is the reference semantics of the rules), and write with the rule's row
// condition repeated in the statement's WHERE; row-level security checks everything again.
import { type RawBuilder, sql } from 'kysely';
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
export async function run(s: StageSession, q: RawBuilder<unknown>): Promise<Row[]> {
  const r = await q.execute(s.db);
  return r.rows as Row[];
}

/** The stored values of a row in the rule evaluator's form (non-encrypted attributes). */
export function storedRow(e: EntityIR, row: Row): Record<string, unknown> {
  const out: Record<string, unknown> = { id: row.id };
  for (const a of e.attributes) if (!a.encrypted) out[a.name] = row[`f_${a.name}`] ?? null;
  return out;
}
