// What one caller may do with one entity, compiled once per (revision, entity, role set) from the
// IR: the row condition of each operation (the OR of the rules of the caller's roles), the rules
// of writes with their checks, fields and presets, and which attributes the caller may read, on
// which rows. The data API turns this into SQL (query.ts); the database holds the same rules as RLS
// policies (compile/policies.ts) made from the same AST.
import type { AccessRuleIR, AppIR, AttributeIR, EntityIR } from '../compile/ir.ts';
import { entityRuleAttributes } from '../compile/attributes.ts';
import { and, type Expr, lit, or, type RuleAttributes } from '../rules/index.ts';

export interface FieldAccess {
  readonly attribute: AttributeIR;
  /** The row condition under which the caller may read it: true (every readable row) or a rule. */
  readonly when: Expr;
}

export interface EntityPlan {
  readonly entity: EntityIR;
  readonly attrs: RuleAttributes;
  readonly roles: readonly string[];
  /** null: the caller may not read the entity at all. */
  readonly read: Expr | null;
  /** Attributes the caller may read (on some rows), by name. */
  readonly readable: ReadonlyMap<string, FieldAccess>;
  readonly create: readonly AccessRuleIR[];
  readonly update: readonly AccessRuleIR[];
  readonly delete: readonly AccessRuleIR[];
  /** The OR of the update (delete) rules' `where`; null when the caller has no such rule. */
  readonly updateWhere: Expr | null;
  readonly deleteWhere: Expr | null;
}

const TRUE = lit.bool(true);

function rowCondition(rules: readonly AccessRuleIR[]): Expr | null {
  if (rules.length === 0) return null;
  if (rules.some((r) => r.where === null)) return TRUE;
  return or(...rules.map((r) => (r.where as NonNullable<AccessRuleIR['where']>).ast));
}

const cache = new Map<string, EntityPlan>();
const CACHE_MAX = 2000;

/** The plan of an entity for a role set (cached: plans are immutable, as revisions are). */
export function entityPlan(revision: string, entity: EntityIR, roles: readonly string[]): EntityPlan {
  const sorted = [...new Set(roles)].sort();
  const key = `${revision}\u0000${entity.name}\u0000${sorted.join(',')}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const mine = (rules: readonly AccessRuleIR[]) => rules.filter((r) => sorted.includes(r.role));
  const read = rowCondition(mine(entity.access.read));
  const readable = new Map<string, FieldAccess>();
  if (read !== null) {
    for (const a of entity.attributes) {
      const fieldRule = entity.access.fields.find((f) => f.attribute === a.name);
      if (!fieldRule) {
        readable.set(a.name, { attribute: a, when: TRUE });
        continue;
      }
      const when = rowCondition(mine(fieldRule.rules));
      if (when !== null) readable.set(a.name, { attribute: a, when });
    }
  }
  const update = mine(entity.access.update);
  const del = mine(entity.access.delete);
  const plan: EntityPlan = Object.freeze({
    entity,
    attrs: entityRuleAttributes(entity),
    roles: sorted,
    read,
    readable,
    create: mine(entity.access.create),
    update,
    delete: del,
    updateWhere: rowCondition(update),
    deleteWhere: rowCondition(del),
  });
  if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value as string);
  cache.set(key, plan);
  return plan;
}

/** `a && b` where either may be absent or true. */
export function both(a: Expr | null, b: Expr | null): Expr | null {
  const xs = [a, b].filter((x): x is Expr => x !== null && !(x.kind === 'bool' && x.value));
  return xs.length === 0 ? (a === null && b === null ? null : TRUE) : and(...xs);
}

/** Whether an expression is the literal true. */
export const isTrue = (e: Expr): boolean => e.kind === 'bool' && e.value;

/** The default list ceiling of a role that declares none (and the page size cap before roles had one). */
export const DEFAULT_LIST_CEILING = 100;

/** What a caller's app roles allow of a list request, beyond the rules. */
export interface ListPolicy {
  /** The largest `limit`: the largest ceiling among the caller's roles. */
  readonly maxLimit: number;
  /** Whether one of the caller's roles may ask for `count=exact`. */
  readonly exactCount: boolean;
}

const listPolicies = new Map<string, ListPolicy>();

/**
 * The list policy of a role set in a revision. Roles the app does not declare count for nothing
 * (a grant can outlive the role in a later revision); the most generous declared role wins, as
 * read rules of several roles are OR-ed.
 */
export function listPolicy(revision: string, app: AppIR, roles: readonly string[]): ListPolicy {
  const key = `${revision}\u0000${[...new Set(roles)].sort().join(',')}`;
  const hit = listPolicies.get(key);
  if (hit) return hit;
  let maxLimit = 0;
  let exactCount = false;
  for (const r of app.roles) {
    if (!roles.includes(r.name)) continue;
    maxLimit = Math.max(maxLimit, r.listLimit ?? DEFAULT_LIST_CEILING);
    if (r.exactCount === true) exactCount = true;
  }
  // No declared role: the default ceiling (the read rules refuse such a caller anyway).
  const policy: ListPolicy = Object.freeze({ maxLimit: maxLimit || DEFAULT_LIST_CEILING, exactCount });
  if (listPolicies.size >= CACHE_MAX) listPolicies.delete(listPolicies.keys().next().value as string);
  listPolicies.set(key, policy);
  return policy;
}
