// CEL text → canonical AST. Syntax comes from @marcbachmann/cel-js (a maintained CEL parser with
// source ranges); this file decides what of CEL the Accord profile accepts and says why for the rest.
// Types are checked later (check.ts), against the entity the rule belongs to.
import { type ASTNode, Environment } from '@marcbachmann/cel-js';
import {
  and,
  arith,
  attr,
  auth,
  call,
  compare,
  conditionRef,
  type Expr,
  inList,
  isLiteral,
  type Literal,
  list,
  lit,
  not,
  now,
  or,
  size,
} from './ast.ts';
import { RULE_LIMITS } from './limits.ts';
import type { RuleProblem, Spans } from './problems.ts';

export type ParseResult = { readonly ok: true; readonly expr: Expr; readonly spans: Spans } | { readonly ok: false; readonly problems: readonly RuleProblem[] };

// One parser environment: limits at the CEL level are generous; the profile's own limits apply to
// the expanded AST (check.ts). Optional types stay off (`.?` is not in the profile).
const env = new Environment({ limits: { maxAstNodes: 2048, maxDepth: 64, maxListElements: 1000, maxCallArguments: 8 } });

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
export const CONDITION_NAME = /^[a-z][A-Za-z0-9]{0,62}$/;
const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,3})?(Z|[+-]\d{2}:\d{2})$/;
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DURATION_PART = /(\d+(?:\.\d+)?)(ms|h|m|s)/y;
const MAX_DURATION_MS = 100 * 366 * 86_400_000;

class Problem extends Error {
  constructor(readonly problem: RuleProblem) {
    super(problem.message);
  }
}

function fail(node: { start: number; end: number }, code: RuleProblem['code'], message: string, hint: string): never {
  throw new Problem({ code, message, hint, start: node.start, end: node.end });
}

/** A valid calendar date in years 0001-9999. */
export function isCalendarDate(y: number, m: number, d: number): boolean {
  if (y < 1 || m < 1 || m > 12 || d < 1) return false;
  const days = new Date(Date.UTC(2000, m, 0)).getUTCDate(); // 2000 is a leap year: Feb has 29
  if (d > days) return false;
  return !(m === 2 && d === 29 && !(y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0)));
}

/** Parses a CEL timestamp string of the profile (RFC 3339, at most milliseconds); undefined if invalid. */
export function parseTimestamp(text: string): string | undefined {
  const m = TIMESTAMP.exec(text);
  if (!m) return undefined;
  const [y, mo, d, h, mi, s] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number, number];
  if (!isCalendarDate(y, mo, d) || h > 23 || mi > 59 || s > 59) return undefined;
  const t = Date.parse(text);
  return Number.isNaN(t) ? undefined : new Date(t).toISOString();
}

/** Parses `1h30m`, `90s`, `1.5s`, `250ms` into whole milliseconds; undefined if invalid. */
export function parseDuration(text: string): number | undefined {
  let ms = 0;
  let at = 0;
  const unit = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 } as const;
  while (at < text.length) {
    DURATION_PART.lastIndex = at;
    const m = DURATION_PART.exec(text);
    if (!m) return undefined;
    ms += Number(m[1]) * unit[m[2] as keyof typeof unit];
    at = DURATION_PART.lastIndex;
  }
  if (text.length === 0 || !Number.isSafeInteger(Math.round(ms * 1000) / 1000) || !Number.isInteger(ms) || ms > MAX_DURATION_MS) return undefined;
  return ms;
}

function stringArg(node: ASTNode, fn: string): string {
  if (node.op === 'value' && typeof node.args === 'string') return node.args;
  return fail(node, 'APP_RULE_UNSUPPORTED', `${fn}() takes a string literal`, `write ${fn}("…") with the value in quotes`);
}

function literalOf(node: ASTNode, input: string): Literal {
  const v = node.args as unknown;
  if (v === null) return lit.null();
  if (typeof v === 'boolean') return lit.bool(v);
  if (typeof v === 'string') return lit.string(v);
  if (typeof v === 'bigint') {
    if (v < INT64_MIN || v > INT64_MAX) fail(node, 'APP_RULE_TYPE', 'integer literal out of the 64-bit range', 'use a value between -9223372036854775808 and 9223372036854775807');
    return lit.int(v);
  }
  if (typeof v === 'number') {
    const text = input.slice(node.start, node.end);
    if (/^\d*\.\d+$|^\d+\.\d*$/.test(text)) return lit.decimal(text.startsWith('.') ? `0${text}` : text);
    return fail(node, 'APP_RULE_UNSUPPORTED', `number ${text} is not in the profile (no exponents or floating point)`, 'write the number in plain decimal form, e.g. 1000 or 12.50');
  }
  if (v instanceof Uint8Array) return fail(node, 'APP_RULE_UNSUPPORTED', 'bytes literals are not in the profile', 'compare with a string literal instead');
  return fail(node, 'APP_RULE_UNSUPPORTED', 'unsigned integer literals are not in the profile', 'drop the u suffix');
}

function negate(e: Literal, node: ASTNode): Literal {
  if (e.kind === 'int') {
    const v = -BigInt(e.value);
    if (v < INT64_MIN || v > INT64_MAX) fail(node, 'APP_RULE_TYPE', 'integer literal out of the 64-bit range', 'use a value in the 64-bit range');
    return lit.int(v);
  }
  if (e.kind === 'decimal') return lit.decimal(e.value.startsWith('-') ? e.value.slice(1) : `-${e.value}`);
  return fail(node, 'APP_RULE_UNSUPPORTED', 'unary minus applies to number literals only', 'the profile has no arithmetic on attributes');
}

const ROW_HINT = 'write row.<attribute>, old.<attribute>, auth.user, auth.roles, now, or the name of a condition';

function convert(node: ASTNode, input: string, spans: Spans): Expr {
  const e = convertNode(node, input, spans);
  if (!spans.has(e)) spans.set(e, { start: node.start, end: node.end });
  return e;
}

function convertNode(node: ASTNode, input: string, spans: Spans): Expr {
  const sub = (n: ASTNode) => convert(n, input, spans);
  switch (node.op) {
    case 'value':
      return literalOf(node, input);
    case 'id': {
      const name = node.args;
      if (name === 'now') return now();
      if (name === 'row' || name === 'old') return fail(node, 'APP_RULE_VARIABLE', `${name} is a record, not a value`, `write ${name}.<attribute>`);
      if (name === 'auth') return fail(node, 'APP_RULE_VARIABLE', 'auth is a record, not a value', 'write auth.user or auth.roles');
      if (!CONDITION_NAME.test(name)) return fail(node, 'APP_RULE_VARIABLE', `unknown variable ${name}`, ROW_HINT);
      return conditionRef(name);
    }
    case '.': {
      const [target, field] = node.args;
      if (target.op === 'id' && (target.args === 'row' || target.args === 'old')) return attr(field, target.args);
      if (target.op === 'id' && target.args === 'auth') {
        if (field === 'user' || field === 'roles') return auth(field);
        return fail(node, 'APP_RULE_VARIABLE', `auth has no member ${field}`, 'auth has user (the caller id) and roles (the caller app roles)');
      }
      if (target.op === '.' && target.args[0].op === 'id' && (target.args[0].args === 'row' || target.args[0].args === 'old')) {
        return fail(node, 'APP_RULE_UNSUPPORTED', `following a reference (${input.slice(node.start, node.end)}) is not in the profile yet`, 'compare the reference itself, e.g. row.category == "<uuid>"');
      }
      return fail(node, 'APP_RULE_VARIABLE', `unknown variable ${input.slice(node.start, node.end)}`, ROW_HINT);
    }
    case '.?':
    case '[?]':
      return fail(node, 'APP_RULE_UNSUPPORTED', 'optional selection is not in the profile', 'use has(row.x) or row.x != null');
    case '[]':
      return fail(node, 'APP_RULE_UNSUPPORTED', 'indexing is not in the profile', 'write row.<attribute>, or use `in` for lists');
    case 'call': {
      const [fn, args] = node.args;
      const one = (): ASTNode => {
        if (args.length !== 1) fail(node, 'APP_RULE_SYNTAX', `${fn}() takes one argument`, `call ${fn}(x)`);
        return args[0] as ASTNode;
      };
      if (fn === 'has') {
        const a = one();
        const inner = sub(a);
        if (inner.kind !== 'attr') fail(a, 'APP_RULE_UNSUPPORTED', 'has() takes row.<attribute> or old.<attribute>', 'write has(row.x)');
        return compare('!=', inner, lit.null());
      }
      if (fn === 'size') return size(sub(one()));
      if (fn === 'timestamp') {
        const a = one();
        const v = parseTimestamp(stringArg(a, fn));
        if (v === undefined) fail(a, 'APP_RULE_TYPE', 'not an RFC 3339 timestamp with at most millisecond precision', 'write e.g. timestamp("2025-01-31T12:00:00Z")');
        return lit.timestamp(v);
      }
      if (fn === 'date') {
        const a = one();
        const text = stringArg(a, fn);
        const m = DATE.exec(text);
        if (!m || !isCalendarDate(Number(m[1]), Number(m[2]), Number(m[3]))) fail(a, 'APP_RULE_TYPE', 'not a calendar date YYYY-MM-DD', 'write e.g. date("2025-01-31")');
        return lit.date(text);
      }
      if (fn === 'duration') {
        const a = one();
        const ms = parseDuration(stringArg(a, fn));
        if (ms === undefined) fail(a, 'APP_RULE_TYPE', 'not a duration of whole milliseconds up to 100 years', 'write e.g. duration("24h"), duration("90m"), duration("1.5s")');
        return lit.duration(ms);
      }
      return fail(node, 'APP_RULE_UNSUPPORTED', `function ${fn}() is not in the profile`, 'the profile has size(), has(), timestamp(), date(), duration() and the string methods startsWith, endsWith, contains');
    }
    case 'rcall': {
      const [fn, target, args] = node.args;
      if (fn === 'startsWith' || fn === 'endsWith' || fn === 'contains') {
        if (args.length !== 1) fail(node, 'APP_RULE_SYNTAX', `${fn}() takes one argument`, `write x.${fn}("…")`);
        const a = args[0] as ASTNode;
        const arg = lit.string(stringArg(a, fn));
        spans.set(arg, { start: a.start, end: a.end });
        return call(fn, sub(target), arg);
      }
      if (fn === 'size' && args.length === 0) return size(sub(target));
      if (fn === 'matches') return fail(node, 'APP_RULE_UNSUPPORTED', 'matches() is not in the profile: RE2 and PostgreSQL regular expressions differ', 'use startsWith, endsWith or contains');
      if (['exists', 'all', 'exists_one', 'map', 'filter'].includes(fn)) {
        return fail(node, 'APP_RULE_UNSUPPORTED', `the ${fn}() macro is not in the profile`, 'use `x in auth.roles` or `row.x in [...]`');
      }
      return fail(node, 'APP_RULE_UNSUPPORTED', `method ${fn}() is not in the profile`, 'the profile has startsWith, endsWith, contains and size');
    }
    case 'list': {
      if (node.args.length > RULE_LIMITS.maxListItems) fail(node, 'APP_RULE_TOO_COMPLEX', `a list has at most ${RULE_LIMITS.maxListItems} items`, 'split the rule or use a role');
      const items = node.args.map((n) => {
        const e = sub(n);
        if (!isLiteral(e) || e.kind === 'null' || e.kind === 'duration') fail(n, 'APP_RULE_UNSUPPORTED', 'list items must be literal values (not null)', 'write the values themselves, e.g. ["draft", "submitted"]');
        return e;
      });
      return list(items);
    }
    case 'map':
      return fail(node, 'APP_RULE_UNSUPPORTED', 'maps are not in the profile', 'compare attributes with values instead');
    case '?:':
      return fail(node, 'APP_RULE_UNSUPPORTED', 'the conditional operator ?: is not in the profile', 'write (a && b) || (!a && c)');
    case '&&':
      return and(sub(node.args[0]), sub(node.args[1]));
    case '||':
      return or(sub(node.args[0]), sub(node.args[1]));
    case '!_':
      return not(sub(node.args));
    case '-_': {
      const inner = sub(node.args);
      if (!isLiteral(inner)) return fail(node, 'APP_RULE_UNSUPPORTED', 'unary minus applies to number literals only', 'the profile has no arithmetic on attributes');
      return negate(inner, node);
    }
    case '==':
    case '!=':
    case '<':
    case '<=':
    case '>':
    case '>=':
      return compare(node.op, sub(node.args[0]), sub(node.args[1]));
    case 'in':
      return inList(sub(node.args[0]), sub(node.args[1]));
    case '+':
    case '-':
      return arith(node.op, sub(node.args[0]), sub(node.args[1]));
    default:
      return fail(node, 'APP_RULE_UNSUPPORTED', `operator ${node.op.replace('_', '')} is not in the profile`, 'the profile has no arithmetic besides timestamp ± duration');
  }
}

/**
 * Parses one rule expression into the canonical AST (not yet type-checked). Problems carry the
 * offending range of the text.
 */
export function parseRule(text: string): ParseResult {
  if (text.length > RULE_LIMITS.maxLength) {
    return { ok: false, problems: [{ code: 'APP_RULE_TOO_COMPLEX', message: `the expression has ${text.length} characters, more than ${RULE_LIMITS.maxLength}`, hint: 'move parts into named conditions', start: 0, end: text.length }] };
  }
  let ast: ASTNode;
  try {
    ast = env.parse(text).ast;
  } catch (err) {
    const e = err as { summary?: string; message?: string; range?: { start: number; end: number } };
    const summary = e.summary ?? String(e.message).split('\n')[0] ?? 'syntax error';
    const start = Math.min(e.range?.start ?? 0, text.length);
    const tooDeep = /depth|nodes|exceeds/i.test(summary);
    return {
      ok: false,
      problems: [
        {
          code: tooDeep ? 'APP_RULE_TOO_COMPLEX' : 'APP_RULE_SYNTAX',
          message: summary.replace(/\.$/, ''),
          hint: tooDeep ? 'simplify the expression or split it into named conditions' : /^Unexpected character: =$/.test(summary) ? 'CEL compares with ==, and joins with && and ||' : 'check the CEL syntax near this position',
          start,
          end: Math.max(start, Math.min(e.range?.end ?? start, text.length)),
        },
      ],
    };
  }
  const spans: Spans = new WeakMap();
  try {
    return { ok: true, expr: convert(ast, text, spans), spans };
  } catch (err) {
    if (err instanceof Problem) return { ok: false, problems: [err.problem] };
    throw err;
  }
}
