// The authorization matrix, generated from a manifest: every role × entity × operation × own /
// other owner / other stage / other tenant, with the expected answer derived from the app's rules
// by the TypeScript evaluator (the reference semantics), checked over HTTP against the data API.
import { randomUUID } from 'node:crypto';
import { CompiledQuery } from 'kysely';
import pg from 'pg';
import { type AccessRuleIR, type AppIR, type AttributeIR, columnType, type EntityIR, entityRuleAttributes, rules } from '../../src/apps/index.ts';
import { client, endUser, type Platform, type TestStage } from './data-api.ts';
import { superuserUrl } from './engines.ts';

export type Row = Record<string, unknown>;

/** A value that satisfies an attribute's constraints (the `variant`-th of a small set). */
export function sampleValue(a: AttributeIR, variant: number, user: string): unknown {
  switch (a.type.kind) {
    case 'enum':
      return a.type.values[variant % a.type.values.length];
    case 'integer': {
      const lo = a.min === null ? 1 : Number(a.min);
      const hi = a.max === null ? lo + 10 : Number(a.max);
      return String(variant % 2 === 0 ? lo : hi);
    }
    case 'decimal':
      return variant % 2 === 0 ? '1.0' : '99.5';
    case 'boolean':
      return variant % 2 === 0;
    case 'date':
      return '2026-01-0' + String(1 + (variant % 9));
    case 'datetime':
      return new Date(Date.UTC(2026, 0, 1 + (variant % 9))).toISOString();
    case 'user':
      return user;
    case 'uuid':
      return randomUUID();
    case 'reference':
    case 'json':
      return null;
    default:
      return a.default !== null && typeof a.default === 'string' ? a.default : `v${variant}`;
  }
}

const evalInput = (row: Row, user: string, roles: readonly string[], old?: Row) => ({ row, ...(old ? { old } : {}), auth: { user, roles }, now: new Date() });

const holds = (e: EntityIR, r: AccessRuleIR, part: 'where' | 'check', row: Row, user: string, roles: readonly string[], old?: Row) => {
  const c = part === 'where' ? r.where : r.check;
  return c === null || rules.evaluateRule(c.ast, entityRuleAttributes(e), evalInput(row, user, roles, old));
};

export function canRead(e: EntityIR, role: string, row: Row, user: string): boolean {
  return e.access.read.some((r) => r.role === role && holds(e, r, 'where', row, user, [role]));
}

/** The expected status of PATCH {} (nothing changed) on a row. */
export function expectUpdate(e: EntityIR, role: string, row: Row, user: string): number {
  const rs = e.access.update.filter((r) => r.role === role);
  if (rs.length === 0) return 403;
  if (!canRead(e, role, row, user)) return 404;
  const applicable = rs.filter((r) => holds(e, r, 'where', row, user, [role]));
  if (applicable.length === 0) return 403;
  return applicable.some((r) => holds(e, r, 'check', row, user, [role], row)) ? 200 : 403;
}

export function expectDelete(e: EntityIR, role: string, row: Row, user: string): number {
  const rs = e.access.delete.filter((r) => r.role === role);
  if (rs.length === 0) return 403;
  if (!canRead(e, role, row, user)) return 404;
  return rs.some((r) => holds(e, r, 'where', row, user, [role])) ? 204 : 403;
}

/** A create body for a role and the expected status. */
export function createCase(e: EntityIR, role: string, user: string): { body: Row; status: number } {
  const rs = e.access.create.filter((r) => r.role === role);
  const presets = new Set(rs[0]?.presets.map((p) => p.attribute) ?? []);
  const body: Row = {};
  for (const a of e.attributes) if (a.required && a.default === null && !presets.has(a.name)) body[a.name] = sampleValue(a, 0, user);
  if (rs.length === 0) return { body, status: 403 };
  const ok = rs.some((r) => {
    const allowed = r.fields ?? e.attributes.map((a) => a.name);
    if (Object.keys(body).some((k) => !allowed.includes(k) || r.presets.some((p) => p.attribute === k))) return false;
    const row: Row = {};
    for (const a of e.attributes) row[a.name] = a.default ?? null;
    Object.assign(row, body);
    for (const p of r.presets) row[p.attribute] = rules.evaluateValue(p.value.ast, entityRuleAttributes(e), evalInput({}, user, [role]));
    return holds(e, r, 'check', row, user, [role]);
  });
  return { body, status: ok ? 201 : 403 };
}

/** Inserts rows past every rule (as a superuser: seeding is not what is tested). */
export async function seed(p: Platform, st: TestStage, e: EntityIR, rows: readonly Row[]): Promise<void> {
  const cols = ['id', ...e.attributes.filter((a) => !a.encrypted).map((a) => a.column)];
  const statements = rows.map((row) => {
    const values = [row.id, ...e.attributes.filter((a) => !a.encrypted).map((a) => row[a.name] ?? null)];
    const casts = ['uuid', ...e.attributes.filter((a) => !a.encrypted).map((a) => columnType(a))];
    return { text: `insert into "${st.schema}"."${e.table}" (${cols.map((c) => `"${c}"`).join(', ')}) values (${casts.map((c, i) => `$${i + 1}::${c}`).join(', ')})`, values };
  });
  if (p.url) {
    const c = new pg.Client({ connectionString: await superuserUrl(p.url) });
    await c.connect();
    try {
      for (const s of statements) await c.query(s.text, s.values);
    } finally {
      await c.end();
    }
  } else {
    // PGlite's one user is a superuser, which row-level security does not apply to.
    for (const s of statements) await p.database.db.executeQuery(CompiledQuery.raw(s.text, s.values));
  }
}

export interface MatrixResult {
  readonly checked: number;
  readonly mismatches: string[];
  /** The expected statuses that occurred (a matrix of one answer would prove little). */
  readonly statuses: ReadonlySet<number>;
}

/**
 * Runs the matrix for every entity of an app installed on `prod` (and `dev`, and another tenant's
 * `foreign` stage): seeds rows, signs in one user per role (and the same roles on the other
 * stage and tenant), and compares every answer with the rules' verdict.
 */
export async function runMatrix(p: Platform, app: AppIR, prod: TestStage, dev: TestStage, foreign: TestStage): Promise<MatrixResult> {
  const mismatches: string[] = [];
  let checked = 0;
  const statuses = new Set<number>();
  const expect = (what: string, got: number, want: number) => {
    checked++;
    statuses.add(want);
    if (got !== want) mismatches.push(`${what}: got ${got}, expected ${want}`);
  };
  const tag = randomUUID().slice(0, 8);
  const other = await endUser(p, prod, `other-${tag}@${prod.tenant}.test`, app.name, []);
  const callers = new Map<string, { id: string; api: ReturnType<typeof client>; dev: ReturnType<typeof client>; foreign: ReturnType<typeof client> }>();
  for (const r of app.roles) {
    const u = await endUser(p, prod, `${r.name.toLowerCase()}-${tag}@${prod.tenant}.test`, app.name, [r.name]);
    const d = await endUser(p, dev, `${r.name.toLowerCase()}-dev-${tag}@${prod.tenant}.test`, app.name, [r.name]);
    const f = await endUser(p, foreign, `${r.name.toLowerCase()}-${tag}@${foreign.tenant}.test`, app.name, [r.name]);
    callers.set(r.name, { id: u.id, api: client(p, prod, app.name, u.token), dev: client(p, dev, app.name, d.token), foreign: client(p, foreign, app.name, f.token) });
  }
  for (const e of app.entities) {
    // Rows per role: own and another owner's, in every value of the first enum and both ends of the first integer.
    const variants = Math.max(2, ...e.attributes.map((a) => (a.type.kind === 'enum' ? a.type.values.length : 1)));
    const byRole = new Map<string, Row[]>();
    const delRows = new Map<string, Row[]>();
    const all: Row[] = [];
    for (const [role, c] of callers) {
      const make = () => {
        const rows: Row[] = [];
        for (const owner of [c.id, other.id]) {
          for (let v = 0; v < variants; v++) {
            const row: Row = { id: randomUUID() };
            for (const a of e.attributes) row[a.name] = a.encrypted ? null : sampleValue(a, v, owner);
            // Unique attributes get a distinct value per row.
            for (const a of e.attributes) if (a.unique && typeof row[a.name] === 'string') row[a.name] = `${row[a.name]}-${(row.id as string).slice(0, 8)}`;
            rows.push(row);
          }
        }
        return rows;
      };
      byRole.set(role, make());
      delRows.set(role, make());
      all.push(...(byRole.get(role) as Row[]), ...(delRows.get(role) as Row[]));
    }
    await seed(p, prod, e, all);
    for (const [role, c] of callers) {
      for (const row of byRole.get(role) as Row[]) {
        const own = Object.values(row).includes(c.id) ? 'own' : 'other owner';
        expect(`${app.name} ${role} read ${e.name} (${own}, ${JSON.stringify(row)})`, (await c.api.get(e.name, row.id as string)).status, canRead(e, role, row, c.id) ? 200 : 404);
        expect(`${app.name} ${role} read ${e.name} from another stage`, (await c.dev.get(e.name, row.id as string)).status, 404);
        expect(`${app.name} ${role} read ${e.name} from another tenant`, (await c.foreign.get(e.name, row.id as string)).status, 404);
      }
      // The list shows exactly the readable rows.
      const want = all.filter((r) => canRead(e, role, r, c.id)).map((r) => r.id as string).sort();
      const got: string[] = [];
      let cursor: string | undefined;
      for (let guard = 0; guard < 100; guard++) {
        const page = await c.api.list(e.name, { limit: '100', ...(cursor ? { cursor } : {}) });
        if (page.status !== 200) {
          got.push(`status ${page.status}`);
          break;
        }
        got.push(...page.body.items.map((x: { id: string }) => x.id));
        cursor = page.body.next ?? undefined;
        if (!cursor) break;
      }
      const hasRead = e.access.read.some((r) => r.role === role);
      checked++;
      if (hasRead ? JSON.stringify(got.sort()) !== JSON.stringify(want) : got[0] !== 'status 403') mismatches.push(`${app.name} ${role} list ${e.name}: got ${got.length} rows, expected ${want.length}`);
    }
    for (const [role, c] of callers) {
      for (const row of byRole.get(role) as Row[]) expect(`${app.name} ${role} update ${e.name} ${JSON.stringify(row)}`, (await c.api.update(e.name, row.id as string, {})).status, expectUpdate(e, role, row, c.id));
      for (const row of byRole.get(role) as Row[]) expect(`${app.name} ${role} update ${e.name} from another tenant`, (await c.foreign.update(e.name, row.id as string, {})).status, e.access.update.some((r) => r.role === role) ? 404 : 403);
      const cc = createCase(e, role, c.id);
      expect(`${app.name} ${role} create ${e.name} ${JSON.stringify(cc.body)}`, (await c.api.create(e.name, cc.body)).status, cc.status);
    }
    for (const [role, c] of callers) {
      for (const row of delRows.get(role) as Row[]) {
        expect(`${app.name} ${role} delete ${e.name} from another stage`, (await c.dev.remove(e.name, row.id as string)).status, e.access.delete.some((r) => r.role === role) ? 404 : 403);
        expect(`${app.name} ${role} delete ${e.name} ${JSON.stringify(row)}`, (await c.api.remove(e.name, row.id as string)).status, expectDelete(e, role, row, c.id));
      }
    }
  }
  return { checked, mismatches, statuses };
}
