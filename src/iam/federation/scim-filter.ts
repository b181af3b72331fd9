import { AccordError } from '../../errors/index.ts';

/**
 * The SCIM filter subset IdPs send (RFC 7644 3.4.2.2): `attr op "value"` and `attr pr`, joined
 * by `and` / `or` (and binds tighter), without parentheses or value paths. Evaluated against a
 * flat view of each resource. Anything else is IAM_SCIM_INVALID, never a guess.
 */
export type Flat = Readonly<Record<string, readonly (string | boolean)[]>>;
type Cond = { attr: string; op: string; value?: string | boolean };

const invalid = (reason: string) => new AccordError('IAM_SCIM_INVALID', { message: `Invalid SCIM filter: ${reason}.`, details: { reason } });
const OPS = new Set(['eq', 'ne', 'co', 'sw', 'ew', 'pr', 'gt', 'ge', 'lt', 'le']);

function tokens(text: string): string[] {
  const out: string[] = [];
  const re = /\s*("(?:[^"\\]|\\.)*"|[^\s"]+)/gy;
  let m: RegExpExecArray | null;
  let last = 0;
  // biome-ignore lint/suspicious/noAssignInExpressions: the classic exec loop
  while ((m = re.exec(text)) !== null) {
    out.push(m[1] as string);
    last = re.lastIndex;
  }
  if (text.slice(last).trim() !== '') throw invalid('unterminated string');
  return out;
}

/** Parses a filter into OR-of-AND conditions. */
export function parseFilter(text: string, attributes: ReadonlySet<string>): Cond[][] {
  if (text.length > 1000) throw invalid('too long');
  const t = tokens(text);
  const groups: Cond[][] = [[]];
  let i = 0;
  while (i < t.length) {
    const attr = (t[i] as string).toLowerCase();
    if (!attributes.has(attr)) throw invalid(`attribute ${t[i]} is not filterable`);
    const op = (t[i + 1] ?? '').toLowerCase();
    if (!OPS.has(op)) throw invalid(`operator ${t[i + 1] ?? '(none)'} is not supported`);
    if (op === 'pr') {
      (groups.at(-1) as Cond[]).push({ attr, op });
      i += 2;
    } else {
      const raw = t[i + 2];
      if (raw === undefined) throw invalid('a value is missing');
      let value: string | boolean;
      if (raw === 'true' || raw === 'false') value = raw === 'true';
      else if (raw.startsWith('"')) {
        try {
          value = JSON.parse(raw) as string;
        } catch {
          throw invalid('a string value is malformed');
        }
      } else throw invalid(`value ${raw} must be a quoted string or a boolean`);
      if (!['eq', 'ne', 'co', 'sw', 'ew'].includes(op)) throw invalid(`operator ${op} is not supported`);
      (groups.at(-1) as Cond[]).push({ attr, op, value });
      i += 3;
    }
    const join = t[i]?.toLowerCase();
    if (join === undefined) break;
    if (join === 'or') groups.push([]);
    else if (join !== 'and') throw invalid(`expected and/or, found ${t[i]}`);
    i++;
    if (i >= t.length) throw invalid('dangling and/or');
  }
  if (groups.some((g) => g.length === 0)) throw invalid('empty filter');
  return groups;
}

function test(c: Cond, values: readonly (string | boolean)[]): boolean {
  if (c.op === 'pr') return values.some((v) => v !== '' && v !== null);
  const want = c.value;
  return values.some((v) => {
    if (typeof want === 'boolean' || typeof v === 'boolean') return c.op === 'eq' ? v === want : c.op === 'ne' ? v !== want : false;
    // SCIM string comparisons are case-insensitive for the attributes we expose (caseExact false).
    const a = v.toLowerCase();
    const b = (want as string).toLowerCase();
    if (c.op === 'eq') return a === b;
    if (c.op === 'ne') return a !== b;
    if (c.op === 'co') return a.includes(b);
    if (c.op === 'sw') return a.startsWith(b);
    return a.endsWith(b);
  }) || (c.op === 'ne' && values.length === 0);
}

/** Whether a resource's flat view matches a parsed filter. */
export function matches(filter: Cond[][], flat: Flat): boolean {
  return filter.some((all) => all.every((c) => test(c, flat[c.attr] ?? [])));
}
