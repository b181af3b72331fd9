// The CRS converter: reads ModSecurity SecRule files (the subset of SecLang the Core Rule Set's
// request rules use) and turns each rule into data the in-process engine evaluates. Runs at build
// time only (src/waf/build/main.ts); the engine never parses SecLang.
import type { CompiledRuleSet, RuleDef, RuleLink, RuleTarget } from '../rule-types.ts';

/** One SecRule statement as written: variables, operator and actions, unparsed. */
interface RawRule {
  readonly variables: string;
  readonly operator: string;
  readonly actions: string;
  readonly line: number;
}

/** Joins continuation lines and yields each SecRule statement (others are ignored: SecMarker, SecAction). */
export function splitStatements(text: string): RawRule[] {
  const out: RawRule[] = [];
  const lines = text.split('\n');
  let buf = '';
  let start = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (buf === '' && /^\s*(#|$)/.test(line)) continue;
    if (buf === '') start = i + 1;
    if (line.endsWith('\\')) {
      buf += `${line.slice(0, -1)}\n`;
      continue;
    }
    buf += line;
    const stmt = buf.trim();
    buf = '';
    if (!stmt.startsWith('SecRule ')) continue;
    const parsed = parseSecRule(stmt.slice('SecRule '.length));
    if (parsed) out.push({ ...parsed, line: start });
  }
  return out;
}

// SecLang quoting: a double-quoted argument where only \" is an escape (every other backslash is
// part of the regex and stays as written).
function readQuoted(s: string, at: number): { value: string; end: number } {
  let i = at + 1;
  let value = '';
  while (i < s.length) {
    const c = s[i];
    if (c === '\\' && s[i + 1] === '"') {
      value += '"';
      i += 2;
      continue;
    }
    if (c === '"') return { value, end: i + 1 };
    value += c;
    i++;
  }
  throw new Error(`unterminated quoted argument: ${s.slice(at, at + 60)}`);
}

function parseSecRule(body: string): { variables: string; operator: string; actions: string } | undefined {
  const s = body.replace(/\n\s*/g, ' ');
  const sp = s.indexOf(' ');
  const variables = s.slice(0, sp);
  let i = sp;
  while (s[i] === ' ') i++;
  if (s[i] !== '"') return undefined;
  const op = readQuoted(s, i);
  i = op.end;
  while (s[i] === ' ') i++;
  const actions = s[i] === '"' ? readQuoted(s, i).value : '';
  return { variables, operator: op.value, actions };
}

/** Splits an action list on commas outside single quotes. */
export function splitActions(actions: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < actions.length; i++) {
    const c = actions[i];
    if (c === "'" && actions[i - 1] !== '\\') quoted = !quoted;
    if (c === ',' && !quoted) {
      push(cur);
      cur = '';
      continue;
    }
    cur += c;
  }
  push(cur);
  return out;
  function push(a: string) {
    const t = a.trim();
    if (!t) return;
    const k = t.indexOf(':');
    if (k < 0) out.push([t, '']);
    else out.push([t.slice(0, k), t.slice(k + 1).replace(/^'(.*)'$/s, '$1')]);
  }
}

/** Parses `ARGS|!ARGS:foo|REQUEST_HEADERS:/^x-/|&ARGS` into targets and exclusions. */
export function parseTargets(variables: string): RuleTarget[] {
  const parts = variables.split('|');
  const targets: RuleTarget[] = [];
  const excludes: Array<{ collection: string; key: string }> = [];
  for (const p of parts) {
    const neg = p.startsWith('!');
    const count = p.startsWith('&');
    const raw = neg || count ? p.slice(1) : p;
    const k = raw.indexOf(':');
    const collection = (k < 0 ? raw : raw.slice(0, k)).toUpperCase();
    const key = k < 0 ? undefined : raw.slice(k + 1);
    if (neg) {
      if (key !== undefined) excludes.push({ collection, key });
      continue;
    }
    targets.push({ collection, ...(key !== undefined ? { key } : {}), ...(count ? { count: true } : {}), exclude: [] });
  }
  return targets.map((t) => ({ ...t, exclude: excludes.filter((e) => e.collection === t.collection).map((e) => e.key) }));
}

const SEVERITY_SCORE: Record<string, number> = { CRITICAL: 5, ERROR: 4, WARNING: 3, NOTICE: 2 };

function parseOperator(op: string): { name: string; arg: string; negated: boolean } {
  let s = op;
  let negated = false;
  if (s.startsWith('!')) {
    negated = true;
    s = s.slice(1);
  }
  if (!s.startsWith('@')) return { name: 'rx', arg: s, negated };
  const sp = s.indexOf(' ');
  return sp < 0 ? { name: s.slice(1), arg: '', negated } : { name: s.slice(1, sp), arg: s.slice(sp + 1), negated };
}

/** What the engine can evaluate; anything else is listed as unsupported in the generated file. */
const OPERATORS = new Set([
  'rx',
  'pm',
  'pmFromFile',
  'detectSQLi',
  'detectXSS',
  'contains',
  'streq',
  'beginsWith',
  'endsWith',
  'eq',
  'ge',
  'gt',
  'lt',
  'le',
  'within',
  'unconditionalMatch',
  'validateByteRange',
]);

/** Reads a .data file the way ModSecurity does: one phrase a line, # comments and blank lines skipped. */
export function readPhrases(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

/**
 * Converts the rule files (name → text) into a rule set. `dataFile` returns the text of a file a
 * rule loads with @pmFromFile. Rules that only gate on the paranoia level (TX:DETECTION_PARANOIA_LEVEL
 * with skipAfter) are dropped: the engine reads each rule's `paranoia-level/N` tag instead.
 */
export function convertRules(files: ReadonlyArray<{ name: string; text: string }>, dataFile: (name: string) => string, source: string): CompiledRuleSet {
  const rules: RuleDef[] = [];
  const skipped: Array<{ id: number; reason: string }> = [];
  for (const f of files) {
    const category = /REQUEST-(\d{3})-/.exec(f.name)?.[1] ?? 'other';
    const stmts = splitStatements(f.text);
    let current: { rule: Omit<RuleDef, 'links'>; links: RuleLink[]; scoring: boolean; unsupported?: string } | undefined;
    for (const st of stmts) {
      const actions = splitActions(st.actions);
      const get = (k: string) => actions.find(([a]) => a === k)?.[1];
      const all = (k: string) => actions.filter(([a]) => a === k).map(([, v]) => v);
      const op = parseOperator(st.operator);
      const link: RuleLink = {
        targets: parseTargets(st.variables),
        operator: op.name === 'pmFromFile' ? 'pm' : op.name,
        argument: op.name === 'pmFromFile' ? '' : op.arg,
        ...(op.name === 'pmFromFile' ? { phrases: op.arg.split(/\s+/).flatMap((n) => readPhrases(dataFile(n))) } : {}),
        ...(op.name === 'pm' ? { phrases: op.arg.split(/\s+/).filter(Boolean) } : {}),
        negated: op.negated,
        transforms: all('t').filter((t) => t !== 'none'),
        multiMatch: actions.some(([a]) => a === 'multiMatch'),
      };
      const unsupportedOp = OPERATORS.has(op.name) ? undefined : `operator @${op.name}`;
      if (current) {
        current.links.push(link);
        // CRS puts the scoring setvar on the last link of some chains.
        if (all('setvar').some((v) => /^tx\.inbound_anomaly_score_pl\d=\+/i.test(v))) current.scoring = true;
        const sv = all('setvar').map((v) => /^tx\.([a-z_]+_score)=\+/i.exec(v)?.[1]).find((v) => v && !v.startsWith('inbound_anomaly'));
        if (sv && current.rule.scoreVariable === 'generic_score') current.rule = { ...current.rule, scoreVariable: sv.toLowerCase() };
        if (unsupportedOp) current.unsupported ??= unsupportedOp;
      } else {
        const id = Number(get('id'));
        if (st.variables.toUpperCase().startsWith('TX:DETECTION_PARANOIA_LEVEL') || get('skipAfter') !== undefined) continue;
        const tags = all('tag');
        const pl = Number(/paranoia-level\/(\d)/.exec(tags.join(' '))?.[1] ?? '1');
        const severity = (get('severity') ?? 'CRITICAL').toUpperCase();
        const setvars = all('setvar');
        const scoreVar = setvars.map((v) => /^tx\.([a-z_]+_score)=\+/i.exec(v)?.[1]).find((v) => v && !v.startsWith('inbound_anomaly')) ?? 'generic_score';
        current = {
          rule: { id, category, pl, severity, score: SEVERITY_SCORE[severity] ?? 5, scoreVariable: scoreVar.toLowerCase(), message: get('msg') ?? '', tags },
          links: [link],
          scoring: setvars.some((v) => /^tx\.inbound_anomaly_score_pl\d=\+/i.test(v)),
          ...(unsupportedOp ? { unsupported: unsupportedOp } : {}),
        };
      }
      const chains = actions.some(([a]) => a === 'chain');
      if (!chains && current) {
        if (current.unsupported) skipped.push({ id: current.rule.id, reason: current.unsupported });
        else if (!current.scoring) skipped.push({ id: current.rule.id, reason: 'adds no anomaly score (a control rule)' });
        else rules.push({ ...current.rule, links: current.links });
        current = undefined;
      }
    }
  }
  rules.sort((a, b) => a.id - b.id);
  return { format: 1, source, rules, skipped };
}
