// `filter=` and the simple query parameters → one checked condition (the rule profile, place
// `filter`), plus blind-index equalities on searchable encrypted attributes.
import { AccordError } from '../../errors/index.ts';
import { ruleAttribute } from '../compile/attributes.ts';
import type { AttributeIR } from '../compile/ir.ts';
import { and, attr, attributesOf, checkRule, compare, type CompareOp, type Expr, lit, type RuleAttribute } from '../rules/index.ts';
import type { EntityPlan } from './plan.ts';
import { inputValue } from './values.ts';

export interface CompiledFilter {
  /** The condition on readable, non-encrypted attributes (null: none). */
  readonly expr: Expr | null;
  /** Equalities on searchable encrypted attributes: attribute → plain value. */
  readonly blind: readonly { readonly attribute: AttributeIR; readonly value: string }[];
}

/** Filters may be this long; depth and node limits are the rule profile's (RULE_LIMITS). */
export const FILTER_MAX_LENGTH = 2000;

/** The attributes a filter may name: the readable ones, searchable encrypted ones as plain text. */
function filterAttributes(plan: EntityPlan): Map<string, RuleAttribute> {
  const m = new Map<string, RuleAttribute>([['id', { type: 'uuid', nullable: false }]]);
  for (const [name, f] of plan.readable) {
    const a = f.attribute;
    m.set(name, a.encrypted && a.searchable ? ruleAttribute({ ...a, encrypted: false }) : ruleAttribute(a));
  }
  return m;
}

const conjuncts = (e: Expr): readonly Expr[] => (e.kind === 'and' ? e.args : [e]);

function split(plan: EntityPlan, e: Expr): CompiledFilter {
  const keep: Expr[] = [];
  const blind: { attribute: AttributeIR; value: string }[] = [];
  for (const c of conjuncts(e)) {
    const encrypted = attributesOf(c).filter((r) => plan.readable.get(r.name)?.attribute.encrypted);
    if (encrypted.length === 0) {
      keep.push(c);
      continue;
    }
    if (c.kind === 'compare' && c.op === '==') {
      const [a, v] = c.left.kind === 'attr' ? [c.left, c.right] : [c.right, c.left];
      if (a.kind === 'attr' && v.kind === 'string') {
        blind.push({ attribute: (plan.readable.get(a.name) as { attribute: AttributeIR }).attribute, value: v.value });
        continue;
      }
    }
    throw new AccordError('DATA_FILTER_ENCRYPTED', {
      message: `${encrypted[0]?.name} is encrypted: only \`row.${encrypted[0]?.name} == "value"\` as a term of the top-level && is allowed.`,
      details: { field: encrypted[0]?.name },
    });
  }
  return { expr: keep.length === 0 ? null : and(...keep), blind };
}

/** Checks `filter=` text against what the caller may read. */
export function compileFilter(plan: EntityPlan, text: string): CompiledFilter {
  if (text.length > FILTER_MAX_LENGTH) throw new AccordError('DATA_FILTER_INVALID', { message: `The filter is longer than ${FILTER_MAX_LENGTH} characters.`, details: { code: 'APP_RULE_TOO_COMPLEX', start: 0, end: text.length } });
  const r = checkRule(text, { attributes: filterAttributes(plan), place: 'filter' });
  if (!r.ok) {
    const p = r.problems[0] as NonNullable<(typeof r.problems)[0]>;
    const details = { code: p.code, start: p.start, end: p.end, hint: p.hint };
    if (p.code === 'APP_RULE_ENCRYPTED') throw new AccordError('DATA_FILTER_ENCRYPTED', { message: `${p.message} (at ${p.start}..${p.end}).`, details });
    throw new AccordError('DATA_FILTER_INVALID', { message: `${p.message} (at ${p.start}..${p.end}).`, details });
  }
  return split(plan, r.expr);
}

const OPS: Record<string, CompareOp> = { eq: '==', ne: '!=', gt: '>', gte: '>=', lt: '<', lte: '<=' };

function literalOf(a: AttributeIR, text: string): Expr {
  const v = inputValue({ ...a, required: false, pattern: null, minLength: null, maxLength: null, min: null, max: null }, a.type.kind === 'boolean' ? (text === 'true' ? true : text === 'false' ? false : text) : text);
  if (!v.ok) throw new AccordError('DATA_QUERY_INVALID', { message: `Query parameter ${a.name}: ${v.problem}.`, details: { parameter: a.name } });
  switch (a.type.kind) {
    case 'integer':
      return lit.int(v.value as string);
    case 'decimal':
      return lit.decimal((v.value as string).includes('.') ? (v.value as string) : `${v.value}.0`);
    case 'boolean':
      return lit.bool(v.value as boolean);
    case 'date':
      return lit.date(v.value as string);
    case 'datetime':
      return lit.timestamp(v.value as string);
    default:
      return lit.string(v.value as string);
  }
}

/**
 * Simple parameters: `name=value` (equality) and `name.op=value` with op one of eq, ne, gt, gte,
 * lt, lte. They become a filter of the same profile, so they obey the same rules.
 */
export function compileParams(plan: EntityPlan, params: ReadonlyMap<string, string>): CompiledFilter {
  const terms: Expr[] = [];
  for (const [key, value] of params) {
    const [name, opName = 'eq'] = key.split('.', 2) as [string, string?];
    const op = OPS[opName];
    const f = name === 'id' ? undefined : plan.readable.get(name);
    if (op === undefined || (name !== 'id' && f === undefined)) throw new AccordError('DATA_QUERY_INVALID', { message: `Unknown query parameter ${key}.`, details: { parameter: key } });
    const a: AttributeIR | undefined = f?.attribute;
    const right = a ? literalOf(a, value) : lit.string(value);
    if (a?.encrypted && op !== '==') throw new AccordError('DATA_FILTER_ENCRYPTED', { message: `${name} is encrypted: only equality is allowed.`, details: { field: name } });
    if (a?.encrypted && !a.searchable) throw new AccordError('DATA_FILTER_ENCRYPTED', { message: `${name} is encrypted and not searchable.`, details: { field: name } });
    if (a && a.type.kind !== 'text' && a.type.kind !== 'enum' && a.type.kind !== 'integer' && a.type.kind !== 'decimal' && a.type.kind !== 'date' && a.type.kind !== 'datetime' && a.type.kind !== 'boolean' && op !== '==' && op !== '!=') {
      throw new AccordError('DATA_QUERY_INVALID', { message: `${name} cannot be compared with ${opName}.`, details: { parameter: key } });
    }
    if (name === 'id' && !/^[0-9a-f-]{36}$/i.test(value)) throw new AccordError('DATA_QUERY_INVALID', { message: 'id must be a uuid.', details: { parameter: key } });
    terms.push(compare(op, attr(name), right));
  }
  if (terms.length === 0) return { expr: null, blind: [] };
  return split(plan, and(...terms));
}
