// The canonical rule AST: what a CEL rule of the Accord profile means, with no trace of how it was
// written (no positions, no named conditions once expanded, `&&`/`||` flattened). It is plain JSON,
// so the IR can store it, hash it and diff it; every node is readonly and carries a `kind`. Build
// nodes with the factories below: they normalise (flatten and/or, canonical decimal text), so two
// spellings of one rule give one AST.

/** Which row an attribute is read from: the row as stored/written, or (update checks) the row before. */
export type RowScope = 'row' | 'old';
export type CompareOp = '==' | '!=' | '<' | '<=' | '>' | '>=';
export type StringFn = 'startsWith' | 'endsWith' | 'contains';

export interface NullLit {
  readonly kind: 'null';
}
export interface BoolLit {
  readonly kind: 'bool';
  readonly value: boolean;
}
/** A 64-bit integer, as decimal digits (JSON has no int64). */
export interface IntLit {
  readonly kind: 'int';
  readonly value: string;
}
/** An exact decimal number with at least one fraction digit, e.g. "12.5", "-0.01", "3.0". */
export interface DecimalLit {
  readonly kind: 'decimal';
  readonly value: string;
}
export interface StringLit {
  readonly kind: 'string';
  readonly value: string;
}
/** `timestamp("…")`: an instant with millisecond precision, ISO 8601 in UTC. */
export interface TimestampLit {
  readonly kind: 'timestamp';
  readonly value: string;
}
/** `date("YYYY-MM-DD")`: a calendar date (Accord extension; CEL has no date type). */
export interface DateLit {
  readonly kind: 'date';
  readonly value: string;
}
/** `duration("…")`: a length of time in whole milliseconds. */
export interface DurationLit {
  readonly kind: 'duration';
  readonly millis: number;
}
/** A list literal of scalar literals (the right side of `in`). */
export interface ListLit {
  readonly kind: 'list';
  readonly items: readonly Literal[];
}
/** `row.name` / `old.name`: an attribute of the entity (`id` included). */
export interface AttrRef {
  readonly kind: 'attr';
  readonly scope: RowScope;
  readonly name: string;
}
/** `auth.user` (the caller's id, a uuid) or `auth.roles` (the caller's app roles on the stage). */
export interface AuthRef {
  readonly kind: 'auth';
  readonly name: 'user' | 'roles';
}
/** `now`: the request's time (one value per request). */
export interface NowRef {
  readonly kind: 'now';
}
export interface Not {
  readonly kind: 'not';
  readonly arg: Expr;
}
/** n-ary, at least two arguments, none of them itself an `and`. */
export interface And {
  readonly kind: 'and';
  readonly args: readonly Expr[];
}
/** n-ary, at least two arguments, none of them itself an `or`. */
export interface Or {
  readonly kind: 'or';
  readonly args: readonly Expr[];
}
export interface Compare {
  readonly kind: 'compare';
  readonly op: CompareOp;
  readonly left: Expr;
  readonly right: Expr;
}
/** `item in list`: list is a list literal or `auth.roles`. */
export interface In {
  readonly kind: 'in';
  readonly item: Expr;
  readonly list: Expr;
}
/** `target.startsWith("…")` etc.; the argument is always a string literal (it becomes a LIKE pattern). */
export interface StringCall {
  readonly kind: 'call';
  readonly fn: StringFn;
  readonly target: Expr;
  readonly arg: StringLit;
}
/** `size(x)`: characters (code points) of a string, items of a list. */
export interface Size {
  readonly kind: 'size';
  readonly arg: Expr;
}
/** `timestamp ± duration`: the only arithmetic of the profile. */
export interface Arith {
  readonly kind: 'arith';
  readonly op: '+' | '-';
  readonly left: Expr;
  readonly right: Expr;
}
/** A named condition before expansion; never stored in the IR. */
export interface ConditionRef {
  readonly kind: 'condition';
  readonly name: string;
}

export type Literal = NullLit | BoolLit | IntLit | DecimalLit | StringLit | TimestampLit | DateLit | DurationLit;
export type Expr = Literal | ListLit | AttrRef | AuthRef | NowRef | Not | And | Or | Compare | In | StringCall | Size | Arith | ConditionRef;
export type ExprKind = Expr['kind'];

const freeze = <T extends object>(node: T): T => Object.freeze(node);

/** Canonical decimal text: no leading zeros, trailing fraction zeros trimmed to one digit, no "-0.0". */
export function canonicalDecimal(text: string): string {
  const m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(text);
  if (!m) throw new TypeError(`not a decimal: ${text}`);
  const int = (m[2] ?? '0').replace(/^0+(?=\d)/, '');
  const frac = (m[3] ?? '').replace(/0+$/, '') || '0';
  const negative = m[1] === '-' && !(int === '0' && frac === '0');
  return `${negative ? '-' : ''}${int}.${frac}`;
}

export const lit = {
  null: (): NullLit => freeze({ kind: 'null' }),
  bool: (value: boolean): BoolLit => freeze({ kind: 'bool', value }),
  int: (value: bigint | number | string): IntLit => freeze({ kind: 'int', value: BigInt(value).toString() }),
  decimal: (value: string): DecimalLit => freeze({ kind: 'decimal', value: canonicalDecimal(value) }),
  string: (value: string): StringLit => freeze({ kind: 'string', value }),
  timestamp: (value: string | Date): TimestampLit => freeze({ kind: 'timestamp', value: new Date(value).toISOString() }),
  date: (value: string): DateLit => freeze({ kind: 'date', value }),
  duration: (millis: number): DurationLit => freeze({ kind: 'duration', millis }),
};

export const list = (items: readonly Literal[]): ListLit => freeze({ kind: 'list', items: Object.freeze([...items]) });
export const attr = (name: string, scope: RowScope = 'row'): AttrRef => freeze({ kind: 'attr', scope, name });
export const auth = (name: 'user' | 'roles'): AuthRef => freeze({ kind: 'auth', name });
export const now = (): NowRef => freeze({ kind: 'now' });
export const not = (arg: Expr): Not => freeze({ kind: 'not', arg });

function flat(kind: 'and' | 'or', args: readonly Expr[]): Expr[] {
  return args.flatMap((a) => (a.kind === kind ? (a as And | Or).args : [a]));
}
/** `a && b && …`, flattened; a single argument is returned as is. */
export function and(...args: Expr[]): Expr {
  const all = flat('and', args);
  if (all.length === 0) throw new TypeError('and() needs an argument');
  return all.length === 1 ? (all[0] as Expr) : freeze({ kind: 'and', args: Object.freeze(all) });
}
/** `a || b || …`, flattened; a single argument is returned as is. */
export function or(...args: Expr[]): Expr {
  const all = flat('or', args);
  if (all.length === 0) throw new TypeError('or() needs an argument');
  return all.length === 1 ? (all[0] as Expr) : freeze({ kind: 'or', args: Object.freeze(all) });
}
export const compare = (op: CompareOp, left: Expr, right: Expr): Compare => freeze({ kind: 'compare', op, left, right });
export const inList = (item: Expr, listExpr: Expr): In => freeze({ kind: 'in', item, list: listExpr });
export const call = (fn: StringFn, target: Expr, arg: StringLit): StringCall => freeze({ kind: 'call', fn, target, arg });
export const size = (arg: Expr): Size => freeze({ kind: 'size', arg });
export const arith = (op: '+' | '-', left: Expr, right: Expr): Arith => freeze({ kind: 'arith', op, left, right });
export const conditionRef = (name: string): ConditionRef => freeze({ kind: 'condition', name });

/** Children of a node, in source order. */
export function children(e: Expr): readonly Expr[] {
  switch (e.kind) {
    case 'list':
      return e.items;
    case 'not':
    case 'size':
      return [e.arg];
    case 'and':
    case 'or':
      return e.args;
    case 'compare':
    case 'arith':
      return [e.left, e.right];
    case 'in':
      return [e.item, e.list];
    case 'call':
      return [e.target, e.arg];
    default:
      return [];
  }
}

/** Depth of the tree (a leaf is 1). */
export function depth(e: Expr): number {
  return 1 + Math.max(0, ...children(e).map(depth));
}

/** Number of nodes. */
export function nodeCount(e: Expr): number {
  return 1 + children(e).reduce((n, c) => n + nodeCount(c), 0);
}

/** Every attribute a rule reads, with its scope. */
export function attributesOf(e: Expr): readonly AttrRef[] {
  if (e.kind === 'attr') return [e];
  return children(e).flatMap(attributesOf);
}

export function isLiteral(e: Expr): e is Literal {
  return ['null', 'bool', 'int', 'decimal', 'string', 'timestamp', 'date', 'duration'].includes(e.kind);
}
