// The TypeScript evaluator of the canonical AST: the reference semantics the SQL compiler must match
// (a property test runs both on random rows and rules, on both engines). NULL semantics, in short:
// a condition is true or false, never null; ordering or string tests with a null operand are false;
// `==` treats null as a value (null == null is true, null == "x" is false); `!=` is the negation of
// `==`. docs/app-manifest.md states the full table.
import type { Expr, Literal } from './ast.ts';
import { typeOf, type RuleAttributes, type RuleType } from './types.ts';

/** The values a rule is evaluated against. Row values use the data API's JSON forms (see `normalize`). */
export interface EvalInput {
  readonly row: Readonly<Record<string, unknown>>;
  /** The stored row, for update checks. */
  readonly old?: Readonly<Record<string, unknown>>;
  readonly auth: { readonly user: string; readonly roles: readonly string[] };
  readonly now: Date;
}

type Value = null | boolean | bigint | string | number | readonly Value[];

interface Scaled {
  readonly n: bigint;
  readonly scale: number;
}

function scaled(v: Value): Scaled {
  if (typeof v === 'bigint') return { n: v, scale: 0 };
  const text = String(v);
  const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(text);
  if (!m) throw new TypeError(`not a number: ${text}`);
  const frac = m[3] ?? '';
  return { n: BigInt(`${m[1]}${m[2]}${frac}`), scale: frac.length };
}

/** Exact comparison of integers and decimals: -1, 0 or 1. */
export function compareNumbers(a: Value, b: Value): number {
  const x = scaled(a);
  const y = scaled(b);
  const s = Math.max(x.scale, y.scale);
  const l = x.n * 10n ** BigInt(s - x.scale);
  const r = y.n * 10n ** BigInt(s - y.scale);
  return l < r ? -1 : l > r ? 1 : 0;
}

/** Brings a stored or supplied value into the evaluator's form for its type. */
export function normalize(v: unknown, ty: RuleType): Value {
  if (v === null || v === undefined) return null;
  switch (ty.kind) {
    case 'int':
      return typeof v === 'bigint' ? v : BigInt(v as string | number);
    case 'decimal':
      return typeof v === 'number' ? String(v) : typeof v === 'bigint' ? v.toString() : String(v);
    case 'uuid':
      return String(v).toLowerCase();
    case 'timestamp':
      return v instanceof Date ? v.getTime() : typeof v === 'number' ? v : Date.parse(String(v));
    case 'date':
      return v instanceof Date ? v.toISOString().slice(0, 10) : String(v);
    case 'bool':
      return Boolean(v);
    default:
      return v as Value;
  }
}

function literal(e: Literal): Value {
  switch (e.kind) {
    case 'null':
      return null;
    case 'bool':
      return e.value;
    case 'int':
      return BigInt(e.value);
    case 'timestamp':
      return Date.parse(e.value);
    case 'duration':
      return e.millis;
    default:
      return e.value;
  }
}

function equal(a: Value, b: Value, ta: RuleType, tb: RuleType): boolean {
  if (a === null || b === null) return a === b;
  if ((ta.kind === 'int' || ta.kind === 'decimal') && (tb.kind === 'int' || tb.kind === 'decimal')) return compareNumbers(a, b) === 0;
  if (ta.kind === 'uuid' || tb.kind === 'uuid') return String(a).toLowerCase() === String(b).toLowerCase();
  return a === b;
}

function order(a: Value, b: Value, ta: RuleType): number {
  if (ta.kind === 'int' || ta.kind === 'decimal') return compareNumbers(a, b);
  if (ta.kind === 'timestamp') return (a as number) - (b as number);
  return (a as string) < (b as string) ? -1 : (a as string) > (b as string) ? 1 : 0;
}

class Evaluator {
  constructor(
    readonly attrs: RuleAttributes,
    readonly input: EvalInput,
  ) {}

  type(e: Expr): RuleType {
    return typeOf(e, this.attrs);
  }

  cond(e: Expr): boolean {
    return this.value(e) === true;
  }

  value(e: Expr): Value {
    switch (e.kind) {
      case 'null':
      case 'bool':
      case 'int':
      case 'decimal':
      case 'string':
      case 'timestamp':
      case 'date':
      case 'duration':
        return literal(e);
      case 'list':
        return e.items.map(literal);
      case 'attr': {
        const rec = e.scope === 'old' ? this.input.old : this.input.row;
        return normalize(rec?.[e.name], this.type(e));
      }
      case 'auth':
        return e.name === 'user' ? this.input.auth.user.toLowerCase() : [...this.input.auth.roles];
      case 'now':
        return this.input.now.getTime();
      case 'not':
        return !this.cond(e.arg);
      case 'and':
        return e.args.every((a) => this.cond(a));
      case 'or':
        return e.args.some((a) => this.cond(a));
      case 'compare': {
        const [a, b] = [this.value(e.left), this.value(e.right)];
        const [ta, tb] = [this.type(e.left), this.type(e.right)];
        if (e.op === '==') return equal(a, b, ta, tb);
        if (e.op === '!=') return !equal(a, b, ta, tb);
        if (a === null || b === null) return false;
        const c = order(a, b, ta);
        return e.op === '<' ? c < 0 : e.op === '<=' ? c <= 0 : e.op === '>' ? c > 0 : c >= 0;
      }
      case 'in': {
        const item = this.value(e.item);
        if (item === null) return false;
        const ti = this.type(e.item);
        const tl = this.type(e.list).item ?? ti;
        return (this.value(e.list) as Value[]).some((x) => equal(item, x, ti, tl));
      }
      case 'call': {
        const s = this.value(e.target);
        if (s === null) return false;
        const str = s as string;
        return e.fn === 'startsWith' ? str.startsWith(e.arg.value) : e.fn === 'endsWith' ? str.endsWith(e.arg.value) : str.includes(e.arg.value);
      }
      case 'size': {
        const v = this.value(e.arg);
        if (v === null) return null;
        return BigInt(typeof v === 'string' ? [...v].length : (v as Value[]).length);
      }
      case 'arith': {
        const l = this.value(e.left);
        if (l === null) return null;
        const d = this.value(e.right) as number;
        return e.op === '+' ? (l as number) + d : (l as number) - d;
      }
      case 'condition':
        throw new TypeError(`unexpanded condition ${e.name}`);
    }
  }
}

/** Evaluates a checked condition: true or false, never null. */
export function evaluateRule(e: Expr, attrs: RuleAttributes, input: EvalInput): boolean {
  return new Evaluator(attrs, input).cond(e);
}

/** Evaluates a checked value expression (a preset), in the evaluator's value form. */
export function evaluateValue(e: Expr, attrs: RuleAttributes, input: EvalInput): unknown {
  return new Evaluator(attrs, input).value(e);
}
