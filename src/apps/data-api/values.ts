// JSON values ⇄ column values, with the model's validation (types, required, min/max, lengths,
// pattern, enum). The database repeats most of it as CHECK constraints (compile/ddl.ts); `pattern`
// is checked only here (JavaScript and POSIX regular expressions differ).
import type { AttributeIR } from '../compile/ir.ts';
import { compareNumbers, isCalendarDate, parseTimestamp } from '../rules/index.ts';

export interface ValueProblem {
  readonly field: string;
  readonly problem: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const INTEGER = /^-?\d{1,19}$/;
const DECIMAL = /^-?(\d+)(?:\.(\d+))?$/;
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const patterns = new Map<string, RegExp>();
const regex = (p: string) => {
  let r = patterns.get(p);
  if (!r) {
    r = new RegExp(p, 'u');
    patterns.set(p, r);
  }
  return r;
};

/**
 * Converts one supplied JSON value to what the column takes (and the rule evaluator reads), or a
 * problem. Null is allowed for optional attributes; required ones are checked by the caller (a
 * PATCH may leave them out).
 */
export function inputValue(a: AttributeIR, v: unknown): { ok: true; value: unknown } | { ok: false; problem: string } {
  const bad = (problem: string) => ({ ok: false as const, problem });
  if (v === null) return a.required ? bad('is required (null given)') : { ok: true, value: null };
  let value: unknown;
  switch (a.type.kind) {
    case 'text':
    case 'enum': {
      if (typeof v !== 'string') return bad('must be a string');
      if (v.includes('\u0000')) return bad('must not contain NUL');
      const n = [...v].length;
      if (a.type.kind === 'enum' && !a.type.values.includes(v)) return bad(`must be one of ${a.type.values.join(', ')}`);
      if (a.minLength !== null && n < a.minLength) return bad(`must be at least ${a.minLength} characters`);
      if (a.maxLength !== null && n > a.maxLength) return bad(`must be at most ${a.maxLength} characters`);
      if (a.pattern !== null && !regex(a.pattern).test(v)) return bad(`must match ${a.pattern}`);
      const formatProblem = a.type.kind === 'text' ? textFormatProblem(a.type.format, v) : undefined;
      if (formatProblem) return bad(formatProblem);
      // Encrypted text has no database constraint: keep the envelope size bounded.
      if (a.maxLength === null && n > 65536) return bad('must be at most 65536 characters');
      value = v;
      break;
    }
    case 'integer': {
      const s = typeof v === 'number' && Number.isSafeInteger(v) ? String(v) : typeof v === 'string' && INTEGER.test(v) ? v : undefined;
      if (s === undefined || BigInt(s) > 9223372036854775807n || BigInt(s) < -9223372036854775808n) return bad('must be a 64-bit integer');
      value = s;
      break;
    }
    case 'decimal': {
      const s = typeof v === 'number' && Number.isFinite(v) ? String(v) : typeof v === 'string' ? v : undefined;
      const m = s === undefined ? null : DECIMAL.exec(s);
      if (!m || s === undefined) return bad('must be a decimal number');
      const scale = (m[2] ?? '').length;
      const intDigits = (m[1] ?? '').replace(/^0+/, '').length;
      if (scale > a.type.scale) return bad(`must have at most ${a.type.scale} decimal places`);
      if (intDigits > a.type.precision - a.type.scale) return bad(`must have at most ${a.type.precision - a.type.scale} digits before the point`);
      value = s;
      break;
    }
    case 'boolean':
      if (typeof v !== 'boolean') return bad('must be true or false');
      value = v;
      break;
    case 'date': {
      const m = typeof v === 'string' ? DATE.exec(v) : null;
      if (!m || !isCalendarDate(Number(m[1]), Number(m[2]), Number(m[3]))) return bad('must be a date YYYY-MM-DD');
      value = v;
      break;
    }
    case 'datetime': {
      const t = typeof v === 'string' ? parseTimestamp(v) : undefined;
      if (t === undefined) return bad('must be an RFC 3339 timestamp');
      value = t;
      break;
    }
    case 'uuid':
    case 'user':
    case 'reference':
      if (typeof v !== 'string' || !UUID.test(v)) return bad('must be a uuid');
      value = v.toLowerCase();
      break;
    case 'json':
      value = v;
      break;
  }
  if ((a.type.kind === 'integer' || a.type.kind === 'decimal') && (a.min !== null || a.max !== null)) {
    if (a.min !== null && compareNumbers(value as string, a.min) < 0) return bad(`must be at least ${a.min}`);
    if (a.max !== null && compareNumbers(value as string, a.max) > 0) return bad(`must be at most ${a.max}`);
  }
  if (a.type.kind === 'date' && (a.min !== null || a.max !== null)) {
    if (a.min !== null && (value as string) < a.min) return bad(`must be on or after ${a.min}`);
    if (a.max !== null && (value as string) > a.max) return bad(`must be on or before ${a.max}`);
  }
  return { ok: true, value };
}

/** The JSON form of a stored (non-encrypted) value. */
export function outputValue(a: AttributeIR, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  switch (a.type.kind) {
    case 'integer': {
      const n = typeof v === 'bigint' ? v : BigInt(v as string | number);
      return n <= BigInt(Number.MAX_SAFE_INTEGER) && n >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(n) : n.toString();
    }
    case 'decimal':
      return String(v);
    case 'datetime':
      return v instanceof Date ? v.toISOString() : new Date(String(v)).toISOString();
    case 'date':
      return String(v).slice(0, 10);
    default:
      return v;
  }
}

/** The column type a parameter is cast to (the columns' own types; encrypted ones are bytea). */
export function paramCast(a: AttributeIR): string {
  if (a.encrypted) return 'bytea';
  switch (a.type.kind) {
    case 'integer':
      return 'bigint';
    case 'decimal':
      return 'numeric';
    case 'boolean':
      return 'boolean';
    case 'date':
      return 'date';
    case 'datetime':
      return 'timestamptz';
    case 'json':
      return 'jsonb';
    case 'uuid':
    case 'user':
    case 'reference':
      return 'uuid';
    default:
      return 'text';
  }
}

const EMAIL = /^[^\s@<>()[\]\\,;:"]+@[^\s@<>()[\]\\,;:"]+\.[^\s@<>()[\]\\,;:"]+$/;
const DATA_URL = /^data:[a-z]+\/[a-z0-9.+-]+(;[a-z0-9-]+=[a-z0-9.+-]+)*(;base64)?,[A-Za-z0-9+/=%._~!$&'()*,;:@-]*$/i;

/**
 * The formats the firewall relies on are checked, so a value it does not inspect (data-url,
 * email) or inspects for some attacks only (url) is what its format says.
 */
function textFormatProblem(format: string | undefined, v: string): string | undefined {
  switch (format) {
    case 'url': {
      let u: URL;
      try {
        u = new URL(v);
      } catch {
        return 'must be an absolute URL';
      }
      return u.protocol === 'http:' || u.protocol === 'https:' || u.protocol === 'mailto:' ? undefined : 'must be an http, https or mailto URL';
    }
    case 'data-url':
      return DATA_URL.test(v) ? undefined : 'must be a data: URL (data:<type>/<subtype>[;base64],<data>)';
    case 'email':
      return v.length <= 254 && EMAIL.test(v) ? undefined : 'must be an email address';
    default:
      return undefined;
  }
}
