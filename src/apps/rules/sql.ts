// Canonical AST → a parameterized SQL condition (Kysely `sql`). Values are always parameters with
// an explicit cast; identifiers come from the bindings (the IR's column names, quoted by Kysely).
//
// How NULLs are made to agree with the TypeScript evaluator: every compiled condition is TRUE
// exactly when the evaluator says true; where the evaluator says false it may be FALSE or NULL.
// WHERE, AND and OR cannot tell those two apart, so plain `=`, `<` and `IN` (which use indexes) are
// kept wherever they sit under AND/OR only. Negation is `(…) IS NOT TRUE`, which maps both FALSE
// and NULL to TRUE; `!=` is `IS DISTINCT FROM`; `==` between two nullable operands is
// `IS NOT DISTINCT FROM`; a condition used as a value (`(a < b) == false`) is `(…) IS TRUE`.
import { type RawBuilder, sql } from 'kysely';
import type { Expr, RowScope } from './ast.ts';
import { type RuleAttributes, type RuleType, type Scalar, typeOf } from './types.ts';

/**
 * Where the compiled condition gets its columns and request values. The data API binds the caller
 * as parameters (`parameterBindings`); RLS policies (part 2) bind transaction settings instead.
 */
export interface SqlBindings {
  column(scope: RowScope, attribute: string): RawBuilder<unknown>;
  authUser(): RawBuilder<unknown>;
  authRoles(): RawBuilder<unknown>;
  now(): RawBuilder<unknown>;
}

export interface ParameterBindingOptions {
  /** Table name or alias that qualifies `row.*` columns; none: unqualified. */
  readonly table?: string;
  /** Alias of the stored row for `old.*` (update checks). */
  readonly oldTable?: string;
  /** Attribute → column name (the IR's); default: the attribute name. */
  readonly column?: (attribute: string) => string;
  readonly auth: { readonly user: string; readonly roles: readonly string[] };
  readonly now: Date;
}

/** Bindings for a query: columns by name, the caller and the time as parameters. */
export function parameterBindings(o: ParameterBindingOptions): SqlBindings {
  const col = o.column ?? ((a: string) => a);
  return {
    column(scope, attribute) {
      const qualifier = scope === 'old' ? o.oldTable : o.table;
      if (scope === 'old' && !qualifier) throw new TypeError('old.* needs oldTable');
      return qualifier ? sql.id(qualifier, col(attribute)) : sql.id(col(attribute));
    },
    authUser: () => sql`${o.auth.user}::uuid`,
    authRoles: () => sql`${[...o.auth.roles]}::text[]`,
    now: () => sql`${o.now.toISOString()}::timestamptz`,
  };
}

/**
 * Bindings for a row-level-security policy: the caller and time come from transaction-local
 * settings, each read once per statement (`(select current_setting(…))`). Setting names are the
 * kernel's stage-session settings.
 */
export function settingBindings(o: { readonly user: string; readonly roles: string; readonly now?: string; readonly column?: (attribute: string) => string }): SqlBindings {
  const col = o.column ?? ((a: string) => a);
  return {
    column(scope, attribute) {
      if (scope === 'old') throw new TypeError('policies cannot read old.*');
      return sql.id(col(attribute));
    },
    authUser: () => sql`(select nullif(current_setting(${sql.lit(o.user)}, true), '')::uuid)`,
    // The cast makes it an expression: `= ANY((select …))` would compare with the subquery's rows.
    authRoles: () => sql`(select string_to_array(current_setting(${sql.lit(o.roles)}, true), ','))::text[]`,
    now: () => (o.now ? sql`(select current_setting(${sql.lit(o.now)}, true)::timestamptz)` : sql`statement_timestamp()`),
  };
}

const CAST: Record<Scalar, string> = {
  bool: 'boolean',
  int: 'bigint',
  decimal: 'numeric',
  string: 'text',
  uuid: 'uuid',
  timestamp: 'timestamptz',
  date: 'date',
  duration: 'bigint',
  json: 'jsonb',
};

const likeEscape = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);

class Compiler {
  constructor(
    readonly attrs: RuleAttributes,
    readonly b: SqlBindings,
  ) {}

  type(e: Expr): RuleType {
    return typeOf(e, this.attrs);
  }

  /** A condition: TRUE exactly when the evaluator says true. */
  cond(e: Expr): RawBuilder<unknown> {
    switch (e.kind) {
      case 'bool':
        return e.value ? sql`true` : sql`false`;
      case 'attr':
        return this.b.column(e.scope, e.name);
      case 'not':
        return sql`(${this.cond(e.arg)}) IS NOT TRUE`;
      case 'and':
        return sql`(${sql.join(e.args.map((a) => this.cond(a)), sql` AND `)})`;
      case 'or':
        return sql`(${sql.join(e.args.map((a) => this.cond(a)), sql` OR `)})`;
      case 'compare':
        return this.compare(e.op, e.left, e.right);
      case 'in': {
        const item = this.value(e.item, this.type(e.item));
        if (e.list.kind === 'auth') return sql`(${item} = ANY(${this.b.authRoles()}))`;
        if (e.list.kind !== 'list') throw new TypeError('in: list expected');
        if (e.list.items.length === 0) return sql`false`;
        const ty = this.type(e.item);
        return sql`(${item} IN (${sql.join(e.list.items.map((i) => this.value(i, ty)))}))`;
      }
      case 'call': {
        const p = likeEscape(e.arg.value);
        const pattern = e.fn === 'startsWith' ? `${p}%` : e.fn === 'endsWith' ? `%${p}` : `%${p}%`;
        return sql`(${this.value(e.target, this.type(e.target))} LIKE ${pattern}::text)`;
      }
      default:
        throw new TypeError(`${e.kind} is not a condition`);
    }
  }

  compare(op: string, l: Expr, r: Expr): RawBuilder<unknown> {
    if (l.kind === 'null' && r.kind === 'null') return op === '==' ? sql`true` : sql`false`;
    if (l.kind === 'null' || r.kind === 'null') {
      const other = l.kind === 'null' ? r : l;
      const v = this.value(other, this.type(other));
      return op === '==' ? sql`(${v} IS NULL)` : sql`(${v} IS NOT NULL)`;
    }
    const [tl, tr] = [this.type(l), this.type(r)];
    // A literal takes the type of what it is compared with ("…" against a uuid is a uuid).
    const a = this.value(l, tl.kind === 'string' && l.kind === 'string' ? tr : tl);
    const b = this.value(r, tr.kind === 'string' && r.kind === 'string' ? tl : tr);
    switch (op) {
      case '==':
        return tl.nullable && tr.nullable ? sql`(${a} IS NOT DISTINCT FROM ${b})` : sql`(${a} = ${b})`;
      case '!=':
        return sql`(${a} IS DISTINCT FROM ${b})`;
      default:
        return sql`(${a} ${sql.raw(op)} ${b})`;
    }
  }

  /** A value; `as` is the type a literal is cast to. */
  value(e: Expr, as: RuleType): RawBuilder<unknown> {
    const cast = (v: unknown, k: Scalar) => sql`${v}::${sql.raw(CAST[k])}`;
    const target = (k: Scalar): Scalar => (as.kind === 'list' || as.kind === 'null' ? k : (as.kind as Scalar));
    switch (e.kind) {
      case 'null':
        return sql`NULL`;
      case 'bool':
        return cast(e.value, 'bool');
      case 'int':
      case 'decimal':
        return cast(e.value, as.kind === 'decimal' ? 'decimal' : e.kind === 'decimal' ? 'decimal' : 'int');
      case 'string':
        return cast(e.value, target('string') === 'uuid' ? 'uuid' : 'string');
      case 'timestamp':
        return cast(e.value, 'timestamp');
      case 'date':
        return cast(e.value, 'date');
      case 'duration':
        return sql`(${String(e.millis)}::bigint * interval '1 millisecond')`;
      case 'attr':
        return this.b.column(e.scope, e.name);
      case 'auth':
        return e.name === 'user' ? this.b.authUser() : this.b.authRoles();
      case 'now':
        return this.b.now();
      case 'size': {
        const ty = this.type(e.arg);
        if (ty.kind === 'list') return e.arg.kind === 'list' ? cast(String(e.arg.items.length), 'int') : sql`cardinality(${this.value(e.arg, ty)})`;
        return sql`char_length(${this.value(e.arg, ty)})`;
      }
      case 'arith':
        return sql`(${this.value(e.left, this.type(e.left))} ${sql.raw(e.op)} ${this.value(e.right, this.type(e.right))})`;
      case 'list':
        throw new TypeError('a list is not a value here');
      default:
        // A condition used as a value: two-valued, like the evaluator's.
        return sql`((${this.cond(e)}) IS TRUE)`;
    }
  }
}

/** Compiles a checked condition to a SQL boolean expression for a WHERE clause or a policy. */
export function compileRule(e: Expr, attrs: RuleAttributes, bindings: SqlBindings): RawBuilder<boolean> {
  return new Compiler(attrs, bindings).cond(e) as RawBuilder<boolean>;
}

/** Compiles a checked value expression (a preset) to SQL. */
export function compileValue(e: Expr, attrs: RuleAttributes, bindings: SqlBindings): RawBuilder<unknown> {
  const c = new Compiler(attrs, bindings);
  return c.value(e, c.type(e));
}
