// The data API's operations on one entity for one caller, inside one stage session.
import { randomUUID } from 'node:crypto';
import { type RawBuilder, sql } from 'kysely';
import { STAGE_AUDIT_COLUMNS, STAGE_AUDIT_TYPES } from '../../audit-chain/index.ts';
import type { Keyring } from '../../crypto/keyring/index.ts';
import type { Db } from '../../db/index.ts';
import { AccordError } from '../../errors/index.ts';
import type { StageSession } from '../../kernel/index.ts';
import type { AccessRuleIR, AppIR, AttributeIR, EntityIR } from '../compile/ir.ts';
import { entityOf } from '../compile/ir.ts';
import { attributesOf, type Expr, evaluateRule, evaluateValue } from '../rules/index.ts';
import { type CryptScope, indexEntry, openValue, type StageKeys, sealValue } from './crypt.ts';
import { type CursorMac, decodeCursor, encodeCursor, queryHash } from './cursor.ts';
import { type CompiledFilter, compileFilter, compileParams } from './filter.ts';
import { both, type EntityPlan, entityPlan, isTrue, listPolicy } from './plan.ts';
import { type Caller, columnExpr, cond, param, type Row, recordOf, run, selectList, storedRow, T, tableRef, templated } from './query.ts';
import { inputValue, type ValueProblem } from './values.ts';

export interface DataApiDeps {
  readonly db: Db;
  readonly keyring: Keyring;
  readonly cursorMac: CursorMac;
}

/** Everything one request needs about where it runs and who asks. */
export interface RequestScope {
  readonly deps: DataApiDeps;
  readonly app: AppIR;
  readonly revision: string;
  readonly tenantId: string;
  readonly stageId: string;
  readonly schema: string;
  readonly caller: Caller;
  /** The stage's keys (loaded before the session) when the app has encrypted attributes. */
  readonly keys?: StageKeys;
  /**
   * Test-only: leave the rules out of the generated SQL, so only row-level security stands
   * between the caller and the rows (the suite that shows the database alone refuses them).
   */
  readonly appRulesOff?: boolean;
}

export const LIST_LIMITS = Object.freeze({ default: 20, max: 100 });
const SENSITIVE = new Set(['confidential', 'restricted']);

export function planFor(scope: RequestScope, entityName: string): EntityPlan {
  const e = entityOf(scope.app, entityName);
  if (!e) throw new AccordError('DATA_ENTITY_NOT_FOUND', { details: { entity: entityName } });
  return entityPlan(scope.revision, e, scope.caller.roles);
}

const crypt = (scope: RequestScope, e: EntityIR): CryptScope => ({ tenantId: scope.tenantId, stageId: scope.stageId, entity: e.name });

/** The rule condition as the generated SQL applies it (true when the test switch is on). */
const rule = (scope: RequestScope, plan: EntityPlan, e: Expr | null, c: Caller = scope.caller): RawBuilder<unknown> => (scope.appRulesOff || e === null ? sql`true` : cond(plan, e, c));

const keysOf = (scope: RequestScope): StageKeys => {
  if (!scope.keys) throw new Error('the stage keys were not loaded for an app with encrypted attributes');
  return scope.keys;
};

function decryptor(scope: RequestScope, plan: EntityPlan) {
  const c = crypt(scope, plan.entity);
  return (a: AttributeIR, id: string, v: Uint8Array) => openValue(keysOf(scope).all, c, a.name, id, v);
}

function chooseFields(plan: EntityPlan, fields: string | undefined): string[] {
  const all = [...plan.readable.keys()];
  if (fields === undefined || fields === '*' || fields === '') return all;
  const names = fields.split(',').map((f) => f.trim());
  for (const n of names) {
    if (n === '*' ) return all;
    if (n === 'id') continue;
    if (!plan.entity.attributes.some((a) => a.name === n)) throw new AccordError('DATA_QUERY_INVALID', { message: `fields: ${plan.entity.name} has no attribute ${n}.`, details: { parameter: 'fields', field: n } });
    if (!plan.readable.has(n)) throw new AccordError('DATA_QUERY_INVALID', { message: `fields: you may not read ${n}.`, details: { parameter: 'fields', field: n } });
  }
  return [...new Set(names.filter((n) => n !== 'id'))];
}

/** The filter's SQL: its expression, the conditions of the conditionally readable fields it names, blind indexes. */
function filterSql(scope: RequestScope, plan: EntityPlan, f: CompiledFilter, c: Caller): RawBuilder<unknown>[] {
  const out: RawBuilder<unknown>[] = [];
  if (f.expr) {
    out.push(cond(plan, f.expr, c));
    // Filtering on a field readable only on some rows must not reveal it on the others.
    for (const name of new Set(attributesOf(f.expr).map((a) => a.name))) {
      const when = plan.readable.get(name)?.when;
      if (when && !isTrue(when)) out.push(cond(plan, when, c));
    }
  }
  if (f.blind.length) {
    const key = keysOf(scope).index;
    for (const b of f.blind) {
      out.push(sql`${sql.ref(`${T}.${b.attribute.column}_bidx`)} = ${indexEntry(key, crypt(scope, plan.entity), b.attribute.name, b.value)}::bytea`);
      const when = plan.readable.get(b.attribute.name)?.when;
      if (when && !isTrue(when)) out.push(cond(plan, when, c));
    }
  }
  return out;
}

export interface ListQuery {
  readonly filter?: string;
  readonly sort?: string;
  readonly fields?: string;
  readonly limit?: number;
  readonly cursor?: string;
  readonly count?: 'none' | 'estimated' | 'exact';
  readonly params: ReadonlyMap<string, string>;
}

interface SortKey {
  readonly name: string;
  readonly desc: boolean;
  readonly column: RawBuilder<unknown>;
  readonly cast: string;
  /** Whether the column may hold NULL (PostgreSQL's order: last ascending, first descending). */
  readonly nullable: boolean;
}

function sortKeys(plan: EntityPlan, sort: string | undefined): SortKey[] {
  const keys: SortKey[] = [];
  for (const raw of (sort ?? '').split(',').filter((x) => x.trim() !== '')) {
    const t = raw.trim();
    const desc = t.startsWith('-');
    const name = desc || t.startsWith('+') ? t.slice(1) : t;
    if (name === 'id') continue;
    const f = plan.readable.get(name);
    // Only attributes every readable row shows (else the order would reveal hidden values), not
    // encrypted (ciphertext has no useful order), not json.
    if (!f || !isTrue(f.when) || f.attribute.encrypted || f.attribute.type.kind === 'json') {
      throw new AccordError('DATA_QUERY_INVALID', { message: `sort: ${name} is not a sortable attribute (readable on every row, not encrypted, not json).`, details: { parameter: 'sort', field: name } });
    }
    if (keys.some((k) => k.name === name)) continue;
    const a = f.attribute;
    keys.push({ name, desc, column: sql.ref(`${T}.${a.column}`), cast: castOf(a), nullable: !a.required });
  }
  // The unique tiebreaker: the id, in the direction of the last key.
  keys.push({ name: 'id', desc: keys.at(-1)?.desc ?? false, column: sql.ref(`${T}.id`), cast: 'uuid', nullable: false });
  return keys;
}

function castOf(a: AttributeIR): string {
  switch (a.type.kind) {
    case 'integer':
      return 'bigint';
    case 'decimal':
      return 'numeric';
    case 'date':
      return 'date';
    case 'datetime':
      return 'timestamptz';
    case 'boolean':
      return 'boolean';
    case 'uuid':
    case 'user':
    case 'reference':
      return 'uuid';
    default:
      return 'text';
  }
}

/** The cursor's values by key position, from those that are not NULL. */
function spread(nulls: readonly boolean[], present: readonly unknown[]): unknown[] {
  let k = 0;
  return nulls.map((n) => (n ? null : present[k++]));
}

/**
 * (k1, k2, …) after the cursor's values, each key in its own direction, in PostgreSQL's order of
 * NULLs (after every value ascending, before every value descending). `isNull` says which cursor
 * values are NULL (they are not parameters: the statement differs); `values` holds the others.
 */
function keysetAfter(keys: readonly SortKey[], isNull: readonly boolean[], values: readonly unknown[]): RawBuilder<unknown> {
  const v = (j: number) => sql`${values[j]}::${sql.raw((keys[j] as SortKey).cast)}`;
  const equal = (j: number) => (isNull[j] ? sql`${(keys[j] as SortKey).column} is null` : sql`${(keys[j] as SortKey).column} = ${v(j)}`);
  const after = (i: number): RawBuilder<unknown> | undefined => {
    const k = keys[i] as SortKey;
    if (isNull[i]) return k.desc ? sql`${k.column} is not null` : undefined;
    const beyond = sql`${k.column} ${sql.raw(k.desc ? '<' : '>')} ${v(i)}`;
    return k.nullable && !k.desc ? sql`(${beyond} or ${k.column} is null)` : beyond;
  };
  const ors: RawBuilder<unknown>[] = [];
  for (let i = 0; i < keys.length; i++) {
    const last = after(i);
    if (!last) continue;
    const ands: RawBuilder<unknown>[] = [];
    for (let j = 0; j < i; j++) ands.push(equal(j));
    ands.push(last);
    ors.push(sql`(${sql.join(ands, sql` and `)})`);
  }
  return ors.length ? sql`(${sql.join(ors, sql` or `)})` : sql`false`;
}

export async function listRecords(s: StageSession, scope: RequestScope, entityName: string, q: ListQuery) {
  const plan = planFor(scope, entityName);
  if (plan.read === null) throw new AccordError('DATA_FORBIDDEN', { details: { entity: entityName, operation: 'read' } });
  const lp = listPolicy(scope.revision, scope.app, plan.roles);
  const limit = q.limit ?? Math.min(LIST_LIMITS.default, lp.maxLimit);
  if (!Number.isInteger(limit) || limit < 1 || limit > lp.maxLimit) throw new AccordError('DATA_QUERY_INVALID', { message: `limit must be 1..${lp.maxLimit} (the list ceiling of your app roles).`, details: { parameter: 'limit', max: lp.maxLimit } });
  if (q.count === 'exact' && !lp.exactCount) throw new AccordError('DATA_COUNT_FORBIDDEN', { details: { entity: entityName } });
  const fields = chooseFields(plan, q.fields);
  const filter = q.filter ? compileFilter(plan, q.filter) : { expr: null, blind: [] };
  const params = compileParams(plan, q.params);
  const keys = sortKeys(plan, q.sort);
  const whereOf = (c: Caller) => [rule(scope, plan, plan.read, c), ...filterSql(scope, plan, filter, c), ...filterSql(scope, plan, params, c)];
  const qh = queryHash([scope.stageId, scope.revision, entityName, scope.caller.user, plan.roles, q.filter ?? '', [...q.params], keys.map((k) => [k.name, k.desc]), fields]);
  const after = q.cursor ? decodeCursor(scope.deps.cursorMac, qh, q.cursor, keys.length) : undefined;
  const order = sql.join(keys.map((k) => sql`${k.column} ${sql.raw(k.desc ? 'desc' : 'asc')}`));
  const sortVals = keys.map((k, i) => sql`${k.column}::text as ${sql.id(`s_${i}`)}`);
  const sensitive = sensitiveOf(plan, fields);
  const audited = sensitive.length > 0;
  // Audited: [page size + 1, page size, ...event, ...cursor]; else [page size + 1, ...cursor].
  const build = (c: Caller, args: readonly unknown[]) => {
    const [fetch, pageLimit] = audited ? args : [args[0], undefined];
    const event = audited ? args.slice(2, 2 + STAGE_AUDIT_COLUMNS.length) : [];
    const rest = args.slice(audited ? 2 + STAGE_AUDIT_COLUMNS.length : 1);
    const inner = sql`select ${selectList(plan, fields, c, sortVals)} from ${tableRef(scope.schema, plan.entity)} where ${sql.join(whereOf(c), sql` and `)} and ${after ? keysetAfter(keys, nulls, spread(nulls, rest)) : sql`true`} order by ${order} limit ${fetch}`;
    return audited ? withReadAudit(plan, sensitive, inner, event, pageLimit) : inner;
  };
  // NULL cursor values shape the statement (`is null`); the others are its parameters.
  const nulls = (after ?? []).map((v) => v === null);
  const cursorValues = (after ?? []).filter((v) => v !== null);
  const args = audited ? [limit + 1, limit, ...readEvent(s, scope, plan), ...cursorValues] : [limit + 1, ...cursorValues];
  // Blind-index entries are the stage key's: such a statement is built for the request alone.
  const shape = `list|${scope.schema}|${scope.appRulesOff ? 1 : 0}|${fields.join(',')}|${q.sort ?? ''}|${after ? nulls.map((n) => (n ? 0 : 1)).join('') : '-'}|${q.filter ?? ''}|${JSON.stringify([...q.params])}`;
  const main = filter.blind.length + params.blind.length > 0 ? build(scope.caller, args).compile(s.db) : templated(s, plan, shape, scope.caller, args, build);
  // The count, when asked for, goes in the same round trip, and the COMMIT with them.
  const whereSql = sql.join(whereOf(scope.caller), sql` and `);
  const countQuery =
    q.count === 'exact'
      ? sql`select count(*)::text as n from ${tableRef(scope.schema, plan.entity)} where ${whereSql}`.compile(s.db)
      : q.count === 'estimated'
        ? sql`explain (format json) select 1 from ${tableRef(scope.schema, plan.entity)} where ${whereSql}`.compile(s.db)
        : undefined;
  const [rows = [], counted] = await s.batch(countQuery ? [main, countQuery] : [main], { commit: true });
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  const next = rows.length > limit && last ? encodeCursor(scope.deps.cursorMac, qh, keys.map((_, i) => (last[`s_${i}`] as string | null) ?? null)) : null;
  const decrypt = decryptor(scope, plan);
  const items = page.map((r) => recordOf(plan, fields, r, decrypt));
  let count: number | undefined;
  if (q.count === 'exact') count = Number(counted?.[0]?.n ?? 0);
  else if (q.count === 'estimated') {
    const planJson = counted?.[0]?.['QUERY PLAN'];
    const parsed = typeof planJson === 'string' ? JSON.parse(planJson) : planJson;
    count = Math.round(Number(parsed?.[0]?.Plan?.['Plan Rows'] ?? 0));
  }
  return { items, next, ...(count === undefined ? {} : { count }) };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const notFound = () => new AccordError('DATA_NOT_FOUND');

/** One record by id with the row rule, as the caller may read it (a templated statement). */
function byIdQuery(s: StageSession, scope: RequestScope, plan: EntityPlan, id: string, fields: readonly string[]) {
  const shape = `id|${scope.schema}|${scope.appRulesOff ? 1 : 0}|${fields.join(',')}`;
  return templated(s, plan, shape, scope.caller, [id], (c, [idArg]) => sql`select ${selectList(plan, fields, c)} from ${tableRef(scope.schema, plan.entity)} where ${sql.ref(`${T}.id`)} = ${idArg}::uuid and ${rule(scope, plan, plan.read, c)}`);
}


/** The confidential and restricted fields among those selected, sorted (the audit's `fields`). */
const sensitiveOf = (plan: EntityPlan, fields: readonly string[]) => fields.filter((n) => SENSITIVE.has(plan.readable.get(n)?.attribute.classification ?? '')).sort();

/** The `data.read` event of a read, its ids, count and fields left for the statement to fill. */
const readEvent = (s: StageSession, scope: RequestScope, plan: EntityPlan) =>
  s.auditValues({
    action: 'data.read',
    target: { type: 'app-entity', id: `${scope.app.name}/${plan.entity.name}` },
    outcome: 'success',
    details: { app: scope.app.name, entity: plan.entity.name, ids: [], count: 0, fields: [] },
  });

/**
 * A read that appends its own `data.read` event (`inner` selects the rows, `pageLimit` of them
 * are returned): the event names the ids of the returned rows that show a confidential or
 * restricted field, and which of those fields they show, as only the database knows when it runs;
 * no such row, no event. The event's columns are parameters (`event`: the values of
 * STAGE_AUDIT_COLUMNS, details last, which the statement completes), and the INSERT is the one a
 * stage session may make (migration 015: row-level security holds it to the stage's tenant). So a
 * read that audits what it returned is one statement, and with `batch(…, { commit: true })` one
 * round trip. A data-modifying CTE runs to completion whether or not the query reads it. The rows
 * come back in `inner`'s order: a materialized CTE is scanned in the order it was written.
 */
function withReadAudit(plan: EntityPlan, sensitive: readonly string[], inner: RawBuilder<unknown>, event: readonly unknown[], pageLimit?: unknown): RawBuilder<unknown> {
  // Shown: readable on the row (its field condition) and not null.
  const flags = sensitive.map(
    (n, i) => sql`(${isTrue((plan.readable.get(n) as { when: Expr }).when) ? sql`true` : sql`_page.${sql.id(`r_${n}`)}`} and _page.${sql.id(`f_${n}`)} is not null) is true as ${sql.id(`v_${i}`)}`,
  );
  const any = sql`(${sql.join(sensitive.map((_, i) => sql.id(`v_${i}`)), sql` or `)})`;
  const names = sensitive.map((n, i) => sql`case when bool_or(${sql.id(`v_${i}`)}) then ${n}::text end`);
  return sql`with _rows as materialized (${inner}),
    _page as (select * from _rows ${pageLimit === undefined ? sql`` : sql`limit ${pageLimit}`}),
    _seen as (select id, ${sql.join(flags)} from _page),
    _aud as (
      insert into accord.audit_events (${sql.raw(STAGE_AUDIT_COLUMNS.join(', '))})
      select ${sql.join(event.slice(0, -1).map((v, i) => sql`${v}::${sql.raw(STAGE_AUDIT_TYPES[i] as string)}`))},
        jsonb_set(jsonb_set(jsonb_set(${event.at(-1)}::jsonb, '{ids}', a.ids), '{count}', to_jsonb(a.n)), '{fields}', to_jsonb(a.fields))
      from (
        select coalesce(jsonb_agg(id) filter (where ${any}), '[]'::jsonb) as ids, (count(*) filter (where ${any}))::int as n,
          array_remove(array[${sql.join(names)}]::text[], null) as fields
        from _seen
      ) as a
      where a.n > 0
    )
    select _rows.* from _rows`;
}

/** byIdQuery, auditing what it returns (withReadAudit). */
function byIdAuditedQuery(s: StageSession, scope: RequestScope, plan: EntityPlan, id: string, fields: readonly string[]) {
  const sensitive = sensitiveOf(plan, fields);
  if (sensitive.length === 0) return byIdQuery(s, scope, plan, id, fields);
  const shape = `id-audited|${scope.schema}|${scope.appRulesOff ? 1 : 0}|${fields.join(',')}`;
  return templated(s, plan, shape, scope.caller, [id, ...readEvent(s, scope, plan)], (c, [idArg, ...event]) =>
    withReadAudit(plan, sensitive, sql`select ${selectList(plan, fields, c)} from ${tableRef(scope.schema, plan.entity)} where ${sql.ref(`${T}.id`)} = ${idArg}::uuid and ${rule(scope, plan, plan.read, c)}`, event),
  );
}

export async function getRecord(s: StageSession, scope: RequestScope, entityName: string, id: string, fieldsParam?: string) {
  const plan = planFor(scope, entityName);
  if (plan.read === null) throw notFound();
  if (!UUID.test(id)) throw notFound();
  const fields = chooseFields(plan, fieldsParam);
  // The read, its audit event and the COMMIT in one round trip: nothing after it needs the database.
  const [rows] = await s.batch([byIdAuditedQuery(s, scope, plan, id, fields)], { commit: true });
  const row = rows?.[0];
  if (!row) throw notFound();
  return recordOf(plan, fields, row, decryptor(scope, plan));
}

// ---- writes ----

const bodyInvalid = (errors: readonly ValueProblem[]) =>
  new AccordError('DATA_BODY_INVALID', { message: `The record is not valid: ${errors.map((e) => `${e.field} ${e.problem}`).join('; ')}.`, details: { errors } });

/** Validates a body's values; unknown attributes and type errors are reported together. */
function parseBody(e: EntityIR, body: unknown): Map<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw bodyInvalid([{ field: '/', problem: 'must be a JSON object' }]);
  const errors: ValueProblem[] = [];
  const out = new Map<string, unknown>();
  for (const [k, v] of Object.entries(body as Record<string, unknown>)) {
    const a = e.attributes.find((x) => x.name === k);
    if (!a) {
      errors.push({ field: k, problem: 'is not an attribute of the entity' });
      continue;
    }
    const r = inputValue(a, v);
    if (r.ok) out.set(k, r.value);
    else errors.push({ field: k, problem: r.problem });
  }
  if (errors.length) throw bodyInvalid(errors);
  return out;
}

/** A value from the evaluator (presets) in the form the column and the evaluator take. */
function fromEvaluator(a: AttributeIR, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (typeof v === 'bigint') return v.toString();
  if (a.type.kind === 'datetime' && typeof v === 'number') return new Date(v).toISOString();
  return v;
}

function presetsOf(plan: EntityPlan, r: AccessRuleIR, scope: RequestScope): Map<string, unknown> {
  const m = new Map<string, unknown>();
  for (const p of r.presets) {
    const a = plan.entity.attributes.find((x) => x.name === p.attribute) as AttributeIR;
    m.set(p.attribute, fromEvaluator(a, evaluateValue(p.value.ast, plan.attrs, { row: {}, auth: { user: scope.caller.user, roles: scope.caller.roles }, now: scope.caller.now })));
  }
  return m;
}

/** Picks the first rule whose fields allow the body and whose check accepts the resulting row. */
function chooseRule(plan: EntityPlan, rules: readonly AccessRuleIR[], body: ReadonlyMap<string, unknown>, scope: RequestScope, base: Record<string, unknown>, old?: Record<string, unknown>, op: 'create' | 'update' = 'create') {
  let fieldsOk = false;
  for (const r of rules) {
    const allowed = r.fields ?? plan.entity.attributes.filter((a) => op === 'create' || !a.immutable).map((a) => a.name);
    const presets = presetsOf(plan, r, scope);
    if ([...body.keys()].some((k) => !allowed.includes(k) || presets.has(k))) continue;
    fieldsOk = true;
    const row: Record<string, unknown> = { ...base, ...Object.fromEntries(body), ...Object.fromEntries(presets) };
    const ok = r.check === null || evaluateRule(r.check.ast, plan.attrs, { row, ...(old ? { old } : {}), auth: { user: scope.caller.user, roles: scope.caller.roles }, now: scope.caller.now });
    if (ok) return { rule: r, row };
  }
  if (!fieldsOk) throw new AccordError('DATA_FIELD_FORBIDDEN', { details: { fields: [...body.keys()].sort() } });
  throw new AccordError('DATA_CHECK_FAILED');
}

/** References must name rows the caller can read. */
async function checkReferences(s: StageSession, scope: RequestScope, plan: EntityPlan, values: ReadonlyMap<string, unknown>) {
  for (const [name, v] of values) {
    const a = plan.entity.attributes.find((x) => x.name === name);
    if (a?.type.kind !== 'reference' || v === null) continue;
    const target = planFor(scope, a.type.entity);
    const rows = target.read === null ? [] : await run(s, sql`select 1 as ok from ${tableRef(scope.schema, target.entity)} where ${sql.ref(`${T}.id`)} = ${v}::uuid and ${rule(scope, target, target.read)}`);
    if (rows.length === 0) throw new AccordError('DATA_REFERENCE_INVALID', { details: { field: name } });
  }
}

/** Database refusals → catalog errors that reveal nothing about rows the caller cannot read. */
function mapDbError(plan: EntityPlan, err: unknown): never {
  const code = (err as { code?: string })?.code;
  if (code === '23505') {
    const constraint = String((err as { constraint?: string }).constraint ?? '');
    const field = plan.entity.attributes.find((a) => constraint === `${plan.entity.table}_${a.column}_key`.slice(0, 63))?.name;
    throw new AccordError('DATA_CONFLICT', { message: field ? `Another record already has this ${field}.` : 'Another record already has one of these unique values.', details: field ? { field } : {} });
  }
  if (code === '23503') throw new AccordError('DATA_REFERENCE_INVALID');
  if (code === '23514' || code === '23502' || code === '22P02' || code === '22003') throw new AccordError('DATA_BODY_INVALID', { message: 'The record breaks a constraint of the model.' });
  // Row-level security refused what the data API let through: fail closed, as a failed check.
  if (code === '42501') throw new AccordError('DATA_CHECK_FAILED');
  throw err;
}

async function sealed(scope: RequestScope, plan: EntityPlan, id: string, values: ReadonlyMap<string, unknown>): Promise<Map<string, RawBuilder<unknown>>> {
  const out = new Map<string, RawBuilder<unknown>>();
  const enc = plan.entity.attributes.filter((a) => a.encrypted && values.has(a.name));
  const dek = enc.length ? keysOf(scope).active : undefined;
  const ikey = enc.some((a) => a.searchable) ? keysOf(scope).index : undefined;
  for (const [name, v] of values) {
    const a = plan.entity.attributes.find((x) => x.name === name) as AttributeIR;
    if (a.encrypted && dek) {
      out.set(a.column, v === null ? sql`NULL::bytea` : sql`${sealValue(dek, crypt(scope, plan.entity), a.name, id, v)}::bytea`);
      if (a.searchable && ikey) out.set(`${a.column}_bidx`, v === null ? sql`NULL::bytea` : sql`${indexEntry(ikey, crypt(scope, plan.entity), a.name, String(v))}::bytea`);
    } else out.set(a.column, param(a, v));
  }
  return out;
}

async function auditWrite(s: StageSession, scope: RequestScope, plan: EntityPlan, action: string, id: string, fields: readonly string[]) {
  // The change and its event commit together (with the COMMIT, one round trip on PostgreSQL).
  s.auditAtCommit({
    action,
    target: { type: 'app-record', id: `${scope.app.name}/${plan.entity.name}/${id}` },
    outcome: 'success',
    details: { app: scope.app.name, entity: plan.entity.name, ids: [id], fields: [...fields].sort() },
  });
}

/** The record as the caller may read it after a write, audited like a read (byIdAuditedQuery). */
async function readBack(s: StageSession, scope: RequestScope, plan: EntityPlan, id: string): Promise<Record<string, unknown>> {
  if (plan.read === null) return { id };
  const fields = [...plan.readable.keys()];
  const row = (await run(s, byIdAuditedQuery(s, scope, plan, id, fields)))[0];
  return row ? recordOf(plan, fields, row, decryptor(scope, plan)) : { id };
}

export async function createRecord(s: StageSession, scope: RequestScope, entityName: string, body: unknown) {
  const plan = planFor(scope, entityName);
  if (plan.create.length === 0) throw new AccordError('DATA_FORBIDDEN', { details: { entity: entityName, operation: 'create' } });
  const values = parseBody(plan.entity, body);
  const defaults: Record<string, unknown> = {};
  for (const a of plan.entity.attributes) defaults[a.name] = a.default ?? null;
  const rules = scope.appRulesOff ? plan.create.map((r) => ({ ...r, check: null })) : plan.create;
  const { row } = chooseRule(plan, rules, values, scope, defaults);
  const missing = plan.entity.attributes.filter((a) => a.required && (row[a.name] === null || row[a.name] === undefined)).map((a) => ({ field: a.name, problem: 'is required' }));
  if (missing.length) throw bodyInvalid(missing);
  const all = new Map(plan.entity.attributes.map((a) => [a.name, row[a.name] ?? null] as const));
  await checkReferences(s, scope, plan, values);
  const id = randomUUID();
  const cols = await sealed(scope, plan, id, all);
  // The insert and the read of the new row in one round trip: no RETURNING, which row-level
  // security would refuse for a row the caller may create but not read.
  const insert = sql`insert into ${sql.id(scope.schema, plan.entity.table)} (id, ${sql.join([...cols.keys()].map((c) => sql.id(c)))}) values (${id}::uuid, ${sql.join([...cols.values()])})`.compile(s.db);
  // With the audit of the create and the COMMIT: one round trip for the whole create (two with
  // references to check). The read audits itself (byIdAuditedQuery).
  const fields = [...plan.readable.keys()];
  const read = plan.read === null ? undefined : byIdAuditedQuery(s, scope, plan, id, fields);
  await auditWrite(s, scope, plan, 'data.create', id, [...values.keys()]);
  let results: Row[][] = [];
  try {
    results = await s.batch(read ? [insert, read] : [insert], { commit: true });
  } catch (err) {
    mapDbError(plan, err);
  }
  const created = results[1]?.[0];
  return created ? recordOf(plan, fields, created, decryptor(scope, plan)) : { id };
}

/** `"7"` or `W/"7"` → 7; `*` → undefined (any version). */
export function parseIfMatch(h: string | undefined): number | undefined {
  if (h === undefined || h.trim() === '*') return undefined;
  const m = /^(?:W\/)?"(\d{1,18})"$/.exec(h.trim());
  if (!m) throw new AccordError('DATA_PRECONDITION_FAILED', { message: 'If-Match must be an ETag this API gave out.' });
  return Number(m[1]);
}

async function stored(s: StageSession, scope: RequestScope, plan: EntityPlan, id: string, where: Expr | null) {
  if (!UUID.test(id) || plan.read === null) throw notFound();
  const all = plan.entity.attributes.filter((a) => !a.encrypted);
  const cols = [
    sql.ref(`${T}.id`),
    sql`${sql.ref(`${T}._version`)}::text as "_version"`,
    ...all.map((a) => sql`${columnExpr(a)} as ${sql.id(`f_${a.name}`)}`),
    sql`(${rule(scope, plan, where)}) is true as "may"`,
  ];
  const rows = await run(s, sql`select ${sql.join(cols)} from ${tableRef(scope.schema, plan.entity)} where ${sql.ref(`${T}.id`)} = ${id}::uuid and ${rule(scope, plan, plan.read)}`);
  const row = rows[0];
  if (!row) throw notFound();
  return row;
}

export async function updateRecord(s: StageSession, scope: RequestScope, entityName: string, id: string, body: unknown, ifMatch: number | undefined) {
  const plan = planFor(scope, entityName);
  if (plan.update.length === 0) throw new AccordError('DATA_FORBIDDEN', { details: { entity: entityName, operation: 'update' } });
  const values = parseBody(plan.entity, body);
  const current = await stored(s, scope, plan, id, plan.updateWhere);
  if (ifMatch !== undefined && Number(current._version) !== ifMatch) throw new AccordError('DATA_PRECONDITION_FAILED');
  const immutable = [...values.keys()].filter((k) => plan.entity.attributes.find((a) => a.name === k)?.immutable);
  if (immutable.length) throw bodyInvalid(immutable.map((f) => ({ field: f, problem: 'is immutable' })));
  const old = storedRow(plan.entity, current);
  // Which rules' `where` the stored row meets (in SQL, like the statement below will).
  let applicable = plan.update;
  if (!scope.appRulesOff) {
    if (current.may !== true) throw new AccordError('DATA_FORBIDDEN', { message: 'Your app roles may not change this record in its current state.', details: { entity: entityName, operation: 'update' } });
    const flags = await run(
      s,
      sql`select ${sql.join(plan.update.map((r, i) => sql`(${rule(scope, plan, r.where?.ast ?? null)}) is true as ${sql.id(`u_${i}`)}`))} from ${tableRef(scope.schema, plan.entity)} where ${sql.ref(`${T}.id`)} = ${id}::uuid`,
    );
    applicable = plan.update.filter((_, i) => flags[0]?.[`u_${i}`] === true);
  } else applicable = plan.update.map((r) => ({ ...r, check: null }));
  const { rule: chosen, row } = chooseRule(plan, applicable, values, scope, old, old, 'update');
  const changes = new Map<string, unknown>(values);
  for (const p of chosen.presets) changes.set(p.attribute, row[p.attribute]);
  await checkReferences(s, scope, plan, values);
  const cols = await sealed(scope, plan, id, changes);
  const set = [...[...cols].map(([c, v]) => sql`${sql.id(c)} = ${v}`), sql`"_version" = "_version" + 1`, sql`"_updated_at" = now()`];
  let updated: Row[];
  try {
    updated = await run(
      s,
      sql`update ${tableRef(scope.schema, plan.entity)} set ${sql.join(set)} where ${sql.ref(`${T}.id`)} = ${id}::uuid and ${sql.ref(`${T}._version`)} = ${current._version}::bigint and ${rule(scope, plan, chosen.where?.ast ?? null)} returning ${sql.ref(`${T}.id`)}`,
    );
  } catch (err) {
    mapDbError(plan, err);
  }
  // Changed between our read and the write (or, with the test switch on, refused by RLS).
  if (updated.length === 0) throw scope.appRulesOff ? notFound() : new AccordError('DATA_PRECONDITION_FAILED');
  await auditWrite(s, scope, plan, 'data.update', id, [...changes.keys()]);
  return readBack(s, scope, plan, id);
}

export async function deleteRecord(s: StageSession, scope: RequestScope, entityName: string, id: string, ifMatch: number | undefined) {
  const plan = planFor(scope, entityName);
  if (plan.delete.length === 0) throw new AccordError('DATA_FORBIDDEN', { details: { entity: entityName, operation: 'delete' } });
  const current = await stored(s, scope, plan, id, plan.deleteWhere);
  if (ifMatch !== undefined && Number(current._version) !== ifMatch) throw new AccordError('DATA_PRECONDITION_FAILED');
  if (!scope.appRulesOff && current.may !== true) throw new AccordError('DATA_FORBIDDEN', { message: 'Your app roles may not delete this record in its current state.', details: { entity: entityName, operation: 'delete' } });
  let gone: Row[];
  try {
    gone = await run(s, sql`delete from ${tableRef(scope.schema, plan.entity)} where ${sql.ref(`${T}.id`)} = ${id}::uuid and ${rule(scope, plan, both(plan.deleteWhere, null))} returning ${sql.ref(`${T}.id`)}`);
  } catch (err) {
    mapDbError(plan, err);
  }
  if (gone.length === 0) throw notFound();
  await auditWrite(s, scope, plan, 'data.delete', id, []);
}
