// Type checking and named-condition expansion: the parsed AST becomes the canonical, self-contained
// AST stored in the IR, or a list of problems, each placed in the text it came from.
import { and, arith, call, compare, depth, type Expr, inList, nodeCount, not, or, size } from './ast.ts';
import { RULE_LIMITS } from './limits.ts';
import { parseRule } from './parse.ts';
import type { RuleProblem, RuleProblemCode, Spans } from './problems.ts';
import { isNumeric, type RuleAttributes, type RuleType, t } from './types.ts';

/** Where a rule is used decides which variables it may read. */
export type RulePlace = 'where' | 'check' | 'update-check' | 'filter' | 'preset';

export interface RuleContext {
  readonly attributes: RuleAttributes;
  readonly place: RulePlace;
  /** Named conditions, name → CEL text. */
  readonly conditions?: ReadonlyMap<string, string>;
}

export type CheckResult =
  | { readonly ok: true; readonly expr: Expr; readonly type: RuleType; readonly conditionsUsed: readonly string[] }
  | { readonly ok: false; readonly problems: readonly RuleProblem[] };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface Source {
  readonly spans: Spans;
  readonly condition?: string;
  readonly text: string;
}

class Checker {
  readonly problems: RuleProblem[] = [];
  readonly used = new Set<string>();
  readonly #parsed = new Map<string, ReturnType<typeof parseRule>>();
  readonly #stack: string[] = [];

  constructor(readonly ctx: RuleContext) {}

  report(src: Source, node: object, code: RuleProblemCode, message: string, hint: string): undefined {
    const span = src.spans.get(node) ?? { start: 0, end: src.text.length };
    this.problems.push({ code, message, hint, start: span.start, end: span.end, ...(src.condition ? { condition: src.condition } : {}) });
    return undefined;
  }

  /** Checks one node; returns its expanded form and type, or undefined after reporting. */
  visit(e: Expr, src: Source): { e: Expr; t: RuleType } | undefined {
    switch (e.kind) {
      case 'null':
        return { e, t: t('null', true) };
      case 'bool':
      case 'int':
      case 'decimal':
      case 'string':
      case 'timestamp':
      case 'date':
      case 'duration':
        return { e, t: t(e.kind) };
      case 'list': {
        const kinds = new Set(e.items.map((i) => (i.kind === 'int' ? 'decimal' : i.kind)));
        if (kinds.size > 1) return this.report(src, e, 'APP_RULE_TYPE', 'list items have different types', 'put values of one type in a list');
        const item = e.items.some((i) => i.kind === 'decimal') ? 'decimal' : (e.items[0]?.kind ?? 'string');
        return { e, t: t('list', false, { item: t(item as RuleType['kind']) }) };
      }
      case 'attr': {
        if (e.scope === 'old' && this.ctx.place !== 'update-check') {
          return this.report(src, e, 'APP_RULE_VARIABLE', 'old.* is only available in the check of an update rule', 'use row.* here');
        }
        if (this.ctx.place === 'preset') return this.report(src, e, 'APP_RULE_VARIABLE', 'a preset cannot read the row', 'use auth.user, now or a literal value');
        const a = this.ctx.attributes.get(e.name);
        if (!a) {
          const names = [...this.ctx.attributes.keys()].sort();
          return this.report(src, e, 'APP_UNKNOWN_ATTRIBUTE', `the entity has no attribute ${e.name}`, `use one of: ${names.slice(0, 12).join(', ')}${names.length > 12 ? ', …' : ''}`);
        }
        if (a.encrypted) {
          return this.report(src, e, 'APP_RULE_ENCRYPTED', `${e.name} is encrypted: the database holds only its ciphertext, so a rule cannot read it`, 'base the rule on an attribute that is not encrypted');
        }
        if (a.type === 'json') return this.report(src, e, 'APP_RULE_TYPE', `${e.name} is a json attribute, which rules cannot read`, 'base the rule on a typed attribute');
        return { e, t: t(a.type, a.nullable, a.enumValues ? { enumValues: a.enumValues } : {}) };
      }
      case 'auth':
        return { e, t: e.name === 'user' ? t('uuid') : t('list', false, { item: t('string') }) };
      case 'now':
        return { e, t: t('timestamp') };
      case 'condition':
        return this.expand(e.name, e, src);
      case 'not': {
        const a = this.bool(e.arg, src);
        return a && { e: not(a), t: t('bool') };
      }
      case 'and':
      case 'or': {
        const args = e.args.map((x) => this.bool(x, src));
        if (args.some((x) => x === undefined)) return undefined;
        const parts = args as Expr[];
        return { e: e.kind === 'and' ? and(...parts) : or(...parts), t: t('bool') };
      }
      case 'compare': {
        const l = this.visit(e.left, src);
        const r = this.visit(e.right, src);
        if (!l || !r) return undefined;
        if (e.op === '==' || e.op === '!=') {
          if (!this.comparable(l, r, e, src)) return undefined;
        } else {
          const ok = (k: RuleType['kind']) => isNumeric(k) || k === 'timestamp' || k === 'date';
          if (l.t.kind === 'null' || r.t.kind === 'null') return this.report(src, e, 'APP_RULE_TYPE', `${e.op} with null is never true`, 'test for null with == null or != null');
          if (!ok(l.t.kind) || !ok(r.t.kind) || !(l.t.kind === r.t.kind || (isNumeric(l.t.kind) && isNumeric(r.t.kind)))) {
            const hint = l.t.kind === 'string' || r.t.kind === 'string' ? 'strings are compared with ==, !=, in, startsWith, endsWith, contains (ordering depends on collation)' : 'order numbers, timestamps or dates of the same type';
            return this.report(src, e, 'APP_RULE_TYPE', `cannot order ${describe(l.t)} and ${describe(r.t)} with ${e.op}`, hint);
          }
        }
        return { e: compare(e.op, l.e, r.e), t: t('bool') };
      }
      case 'in': {
        const item = this.visit(e.item, src);
        const l = this.visit(e.list, src);
        if (!item || !l) return undefined;
        if (l.t.kind !== 'list' || !(l.e.kind === 'list' || l.e.kind === 'auth')) {
          return this.report(src, e.list, 'APP_RULE_TYPE', '`in` needs a list literal or auth.roles on its right', 'write x in ["a", "b"]');
        }
        if (item.t.kind === 'list' || item.t.kind === 'null') return this.report(src, e.item, 'APP_RULE_TYPE', `${describe(item.t)} cannot be looked up in a list`, 'test a single value');
        if (l.e.kind === 'list') {
          for (const i of l.e.items) if (!this.comparable(item, { e: i, t: t(i.kind) }, i, src)) return undefined;
        } else if (!this.comparable(item, { e: l.e, t: t('string') }, e, src)) return undefined;
        return { e: inList(item.e, l.e), t: t('bool') };
      }
      case 'call': {
        const target = this.visit(e.target, src);
        if (!target) return undefined;
        if (target.t.kind !== 'string') return this.report(src, e.target, 'APP_RULE_TYPE', `${e.fn}() applies to strings, not ${describe(target.t)}`, 'call it on a text attribute');
        return { e: call(e.fn, target.e, e.arg), t: t('bool') };
      }
      case 'size': {
        const a = this.visit(e.arg, src);
        if (!a) return undefined;
        if (a.t.kind !== 'string' && a.t.kind !== 'list') return this.report(src, e, 'APP_RULE_TYPE', `size() applies to strings and lists, not ${describe(a.t)}`, 'call size() on a text attribute or auth.roles');
        return { e: size(a.e), t: t('int', a.t.nullable) };
      }
      case 'arith': {
        const l = this.visit(e.left, src);
        const r = this.visit(e.right, src);
        if (!l || !r) return undefined;
        if (l.t.kind !== 'timestamp' || r.t.kind !== 'duration') {
          return this.report(src, e, 'APP_RULE_TYPE', `cannot compute ${describe(l.t)} ${e.op} ${describe(r.t)}`, 'the only arithmetic is timestamp ± duration, e.g. now - duration("24h")');
        }
        return { e: arith(e.op, l.e, r.e), t: t('timestamp', l.t.nullable) };
      }
    }
  }

  bool(e: Expr, src: Source): Expr | undefined {
    const r = this.visit(e, src);
    if (!r) return undefined;
    if (r.t.kind !== 'bool') return this.report(src, e, 'APP_RULE_TYPE', `expected a condition (bool), found ${describe(r.t)}`, 'compare the value, e.g. row.x == "value"');
    return r.e;
  }

  comparable(l: { e: Expr; t: RuleType }, r: { e: Expr; t: RuleType }, at: object, src: Source): boolean {
    const [a, b] = [l.t, r.t];
    if (a.kind === 'null' || b.kind === 'null') {
      const other = a.kind === 'null' ? b : a;
      if (other.kind === 'list' || other.kind === 'duration') return !!this.report(src, at, 'APP_RULE_TYPE', `${describe(other)} is never null`, 'remove the null test');
      return true;
    }
    if (a.kind === 'list' || b.kind === 'list') return !!this.report(src, at, 'APP_RULE_TYPE', 'lists cannot be compared', 'use `in` to test membership');
    if (isNumeric(a.kind) && isNumeric(b.kind)) return true;
    const literal = (x: { e: Expr }) => (x.e.kind === 'string' ? x.e.value : undefined);
    for (const [x, y] of [[l, r], [r, l]] as const) {
      const s = literal(y);
      if (x.t.kind === 'uuid' && s !== undefined) {
        if (!UUID.test(s)) return !!this.report(src, y.e, 'APP_RULE_TYPE', `"${s}" is not a uuid`, 'write the id as 8-4-4-4-12 hexadecimal digits');
        return true;
      }
      if (x.t.enumValues && s !== undefined && y.t.kind === 'string' && !y.t.enumValues) {
        if (!x.t.enumValues.includes(s)) return !!this.report(src, y.e, 'APP_RULE_TYPE', `"${s}" is not one of the enum's values`, `use one of: ${x.t.enumValues.join(', ')}`);
        return true;
      }
    }
    if (a.kind === b.kind && a.kind !== 'duration') return true;
    return !!this.report(src, at, 'APP_RULE_TYPE', `cannot compare ${describe(a)} with ${describe(b)}`, 'compare values of the same type');
  }

  expand(name: string, node: Expr, src: Source): { e: Expr; t: RuleType } | undefined {
    const text = this.ctx.conditions?.get(name);
    if (text === undefined) {
      const names = [...(this.ctx.conditions?.keys() ?? [])];
      return this.report(src, node, 'APP_UNKNOWN_CONDITION', `no variable or named condition ${name}`, names.length ? `use row.*, auth.*, now or one of the conditions: ${names.join(', ')}` : 'use row.*, auth.*, now, or declare the condition under conditions:');
    }
    if (this.#stack.includes(name)) return this.report(src, node, 'APP_CONDITION_CYCLE', `condition ${name} uses itself (${[...this.#stack, name].join(' → ')})`, 'break the cycle');
    if (this.#stack.length >= RULE_LIMITS.maxConditionNesting) return this.report(src, node, 'APP_RULE_TOO_COMPLEX', `conditions nest more than ${RULE_LIMITS.maxConditionNesting} deep`, 'flatten the conditions');
    let parsed = this.#parsed.get(name);
    if (!parsed) {
      parsed = parseRule(text);
      this.#parsed.set(name, parsed);
    }
    if (!parsed.ok) {
      for (const p of parsed.problems) this.problems.push({ ...p, condition: name });
      return undefined;
    }
    this.used.add(name);
    this.#stack.push(name);
    try {
      const inner = this.visit(parsed.expr, { spans: parsed.spans, condition: name, text });
      if (inner && inner.t.kind !== 'bool') return this.report(src, node, 'APP_RULE_TYPE', `condition ${name} is not a condition (bool)`, 'a named condition must be true or false');
      return inner;
    } finally {
      this.#stack.pop();
    }
  }
}

function describe(ty: RuleType): string {
  if (ty.kind === 'list') return `a list of ${ty.item ? describe(ty.item) : 'values'}`;
  if (ty.enumValues) return 'an enum';
  const names: Record<string, string> = { bool: 'a bool', int: 'an int', decimal: 'a decimal', string: 'a string', uuid: 'a uuid', timestamp: 'a timestamp', date: 'a date', duration: 'a duration', json: 'json', null: 'null' };
  return names[ty.kind] ?? ty.kind;
}

/**
 * Parses, expands and type-checks a rule in its context. `expect: 'bool'` (the default) requires a
 * condition; `expect: 'value'` accepts any type (presets: the caller compares it with the attribute).
 */
export function checkRule(text: string, ctx: RuleContext, expect: 'bool' | 'value' = 'bool'): CheckResult {
  const parsed = parseRule(text);
  if (!parsed.ok) return parsed;
  const c = new Checker(ctx);
  const src: Source = { spans: parsed.spans, text };
  const r = expect === 'bool' ? c.bool(parsed.expr, src) : c.visit(parsed.expr, src)?.e;
  if (!r || c.problems.length) return { ok: false, problems: c.problems.length ? c.problems : [] };
  if (depth(r) > RULE_LIMITS.maxDepth || nodeCount(r) > RULE_LIMITS.maxNodes) {
    return {
      ok: false,
      problems: [{ code: 'APP_RULE_TOO_COMPLEX', message: `the expanded rule has depth ${depth(r)} and ${nodeCount(r)} nodes (limits ${RULE_LIMITS.maxDepth} and ${RULE_LIMITS.maxNodes})`, hint: 'simplify the rule', start: 0, end: text.length }],
    };
  }
  const type = expect === 'bool' ? t('bool') : (c.visit(r, { spans: new WeakMap(), text })?.t ?? t('null', true));
  return { ok: true, expr: r, type, conditionsUsed: [...c.used].sort() };
}
