// IR → row-level-security policies for an app's tables on one stage (issue 12: every rule enforced
// twice). Seam between the lifecycle and the data API: the lifecycle applies these statements, as
// the stage's owning role, after the table steps of every deploy, promotion and rollback (all of
// an app's policies are replaced each time, which is cheap and leaves no stale one behind).
//
// The policies are the second enforcement of the same rules the data API compiles into its SQL
// (src/apps/data-api/plan.ts), made from the same canonical AST with the same compiler; only the
// bindings differ: the caller comes from the stage session's transaction-local settings, each
// wrapped as `(select current_setting(…))` so PostgreSQL evaluates it once per statement (an
// InitPlan), not once per row.
//
// What a policy cannot express, and so only the data API enforces:
// - `old.*` in update checks (a policy sees only the new row): such terms are left out of the
//   policy's WITH CHECK (the policy is weaker there, never stronger than the rule);
// - which attributes a role may write (`fields`) and field-level read rules (column masking);
// - the pairing of one rule's `where` with the same rule's `check`: PostgreSQL ORs every
//   permissive policy's USING and, separately, every WITH CHECK, so a caller holding two roles
//   could pass one role's `where` and the other's `check`.
import { type CompiledQuery, DummyDriver, Kysely, PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler, type RawBuilder } from 'kysely';
import { and, attributesOf, auth, compare, type Expr, inList, lit } from '../rules/ast.ts';
import { compileRule, settingBindings } from '../rules/sql.ts';
import { entityRuleAttributes } from './attributes.ts';
import { type DdlStatement, quoteIdent, quoteLiteral } from './ddl.ts';
import type { AccessRuleIR, AppIR, EntityIR } from './ir.ts';

export interface PolicyOptions {
  /** The stage schema the tables are in. */
  readonly schema: string;
  /** The stage's runtime role (`accord_rt_*`), the one role the policies are for. */
  readonly runtimeRole: string;
}

/** The kernel's stage-session settings (src/kernel/stage-session.ts), and the retention job's clock. */
export const POLICY_SETTINGS = Object.freeze({ user: 'accord.user_id', roles: 'accord.roles', kind: 'accord.principal_kind', retentionNow: 'accord.retention_now', maintenance: 'accord.maintenance' });

/**
 * Rows past an entity's retention: its `from` attribute (or the creation time) is more than `days`
 * before the retention job's clock (a setting, so tests can freeze it; the statement time when unset).
 */
export function expiredSql(e: EntityIR, table?: string): string | null {
  if (!e.retention) return null;
  const q = (c: string) => (table ? `${quoteIdent(table)}.${quoteIdent(c)}` : quoteIdent(c));
  const fromAttr = e.retention.from ? e.attributes.find((a) => a.name === e.retention?.from) : undefined;
  const from = fromAttr ? `coalesce(${q(fromAttr.column)}::timestamptz, ${q('_created_at')})` : q('_created_at');
  const days = Math.trunc(e.retention.days);
  return `${from} < (select coalesce(nullif(current_setting('${POLICY_SETTINGS.retentionNow}', true), '')::timestamptz, statement_timestamp())) - interval '${days} days'`;
}

// A compiler with no connection: renders a RawBuilder to text and parameters.
const renderer = new Kysely<unknown>({
  dialect: {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (db) => new PostgresIntrospector(db),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  },
});

/**
 * DDL takes no parameters: a compiled condition's parameters are inlined as literals. Every
 * parameter the rule compiler emits is followed by an explicit cast (`$1::uuid`), so a quoted
 * string literal keeps its meaning; values are strings, booleans or arrays of strings.
 */
export function inlineSql(expr: RawBuilder<unknown>): string {
  const q: CompiledQuery = expr.compile(renderer);
  return q.sql.replace(/\$(\d+)/g, (_, n: string) => {
    const v = q.parameters[Number(n) - 1];
    if (typeof v === 'boolean') return v ? 'true' : 'false';
    if (typeof v === 'number') return quoteLiteral(String(v));
    if (typeof v === 'string') return quoteLiteral(v);
    if (Array.isArray(v)) return `ARRAY[${v.map((x) => quoteLiteral(String(x))).join(', ')}]::text[]`;
    throw new TypeError(`cannot inline a parameter of type ${typeof v}`);
  });
}

const hasRole = (role: string): Expr => inList(lit.string(role), auth('roles'));

/** Drops the `old.*` terms a policy cannot read: an `and` loses them, anything else that reads one becomes true. */
function withoutOld(e: Expr): Expr {
  const readsOld = (x: Expr) => attributesOf(x).some((a) => a.scope === 'old');
  if (!readsOld(e)) return e;
  if (e.kind === 'and') {
    const kept = e.args.filter((a) => !readsOld(a));
    return kept.length === 0 ? lit.bool(true) : and(...kept);
  }
  return lit.bool(true);
}

/** The policy condition of one rule: the role is held, and the rule's condition (if any) holds. */
function ruleCondition(e: EntityIR, rule: AccessRuleIR, part: 'where' | 'check'): Expr {
  const terms: Expr[] = [hasRole(rule.role)];
  const c = part === 'where' ? rule.where : rule.check;
  if (c) terms.push(withoutOld(c.ast));
  if (part === 'check') {
    // Presets are part of what the row may become: the database checks them too.
    for (const p of rule.presets) {
      if (e.attributes.some((x) => x.name === p.attribute)) terms.push(compare('==', { kind: 'attr', scope: 'row', name: p.attribute }, p.value.ast));
    }
  }
  return and(...terms);
}

function policySql(e: EntityIR, rules: readonly AccessRuleIR[], part: 'where' | 'check'): string {
  if (rules.length === 0) return 'false';
  const attrs = entityRuleAttributes(e);
  const column = (name: string) => (name === 'id' ? 'id' : (e.attributes.find((a) => a.name === name)?.column ?? name));
  const b = settingBindings({ user: POLICY_SETTINGS.user, roles: POLICY_SETTINGS.roles, column });
  const parts = rules.map((r) => inlineSql(compileRule(ruleCondition(e, r, part), attrs, b)));
  return parts.length === 1 ? (parts[0] as string) : `(${parts.join(' OR ')})`;
}

/** Statements that enable (and force) RLS on the app's tables and create its policies. */
export function compilePolicies(app: AppIR, opts: PolicyOptions): readonly DdlStatement[] {
  const out: DdlStatement[] = [];
  const rt = quoteIdent(opts.runtimeRole);
  for (const e of app.entities) {
    const t = `${quoteIdent(opts.schema)}.${quoteIdent(e.table)}`;
    const name = (op: string) => `accord_${op}`;
    const stmt = (kind: DdlStatement['kind'], n: string, text: string) => out.push({ kind, entity: e.name, name: n, sql: text });
    stmt('enable-rls', `${e.table}_rls`, `ALTER TABLE ${t} ENABLE ROW LEVEL SECURITY`);
    // FORCE: the rules hold even for the table's owner (a migration or a mistake running as it).
    stmt('enable-rls', `${e.table}_rls_force`, `ALTER TABLE ${t} FORCE ROW LEVEL SECURITY`);
    for (const op of ['select', 'insert', 'update', 'delete', 'retention_select', 'retention_delete', 'reencrypt_select', 'reencrypt_update', 'migration_read']) stmt('create-policy', name(op), `DROP POLICY IF EXISTS ${quoteIdent(name(op))} ON ${t}`);
    // The one exception for the owner: reading every row, because a deployment's prechecks
    // (duplicates before a unique index, NULLs before required, values that would not fit a
    // narrower type) must see the stage's real data. These statements run as the owning role, so
    // CURRENT_USER is that role. The owner still may not write a row through DML.
    stmt('create-policy', name('migration_read'), `CREATE POLICY ${quoteIdent(name('migration_read'))} ON ${t} AS PERMISSIVE FOR SELECT TO CURRENT_USER USING (true)`);
    const a = e.access;
    stmt('create-policy', name('select'), `CREATE POLICY ${quoteIdent(name('select'))} ON ${t} AS PERMISSIVE FOR SELECT TO ${rt} USING (${policySql(e, a.read, 'where')})`);
    stmt('create-policy', name('insert'), `CREATE POLICY ${quoteIdent(name('insert'))} ON ${t} AS PERMISSIVE FOR INSERT TO ${rt} WITH CHECK (${policySql(e, a.create, 'check')})`);
    stmt(
      'create-policy',
      name('update'),
      `CREATE POLICY ${quoteIdent(name('update'))} ON ${t} AS PERMISSIVE FOR UPDATE TO ${rt} USING (${policySql(e, a.update, 'where')}) WITH CHECK (${policySql(e, a.update, 'check')})`,
    );
    stmt('create-policy', name('delete'), `CREATE POLICY ${quoteIdent(name('delete'))} ON ${t} AS PERMISSIVE FOR DELETE TO ${rt} USING (${policySql(e, a.delete, 'where')})`);
    // Key rotation re-encrypts encrypted attributes in a system session marked for it (a setting
    // only that job sets); no other caller gets anything from these two policies.
    if (e.attributes.some((x) => x.encrypted)) {
      const reencrypt = `(select current_setting('${POLICY_SETTINGS.kind}', true)) = 'system' AND (select current_setting('${POLICY_SETTINGS.maintenance}', true)) = 'reencrypt'`;
      stmt('create-policy', name('reencrypt_select'), `CREATE POLICY ${quoteIdent(name('reencrypt_select'))} ON ${t} AS PERMISSIVE FOR SELECT TO ${rt} USING (${reencrypt})`);
      stmt('create-policy', name('reencrypt_update'), `CREATE POLICY ${quoteIdent(name('reencrypt_update'))} ON ${t} AS PERMISSIVE FOR UPDATE TO ${rt} USING (${reencrypt}) WITH CHECK (${reencrypt})`);
    }
    // The retention job (a system session, no user, no role) may see and delete expired rows only.
    const expired = expiredSql(e);
    if (expired) {
      const system = `(select current_setting('${POLICY_SETTINGS.kind}', true)) = 'system'`;
      stmt('create-policy', name('retention_select'), `CREATE POLICY ${quoteIdent(name('retention_select'))} ON ${t} AS PERMISSIVE FOR SELECT TO ${rt} USING (${system} AND ${expired})`);
      stmt('create-policy', name('retention_delete'), `CREATE POLICY ${quoteIdent(name('retention_delete'))} ON ${t} AS PERMISSIVE FOR DELETE TO ${rt} USING (${system} AND ${expired})`);
    }
  }
  return out;
}
