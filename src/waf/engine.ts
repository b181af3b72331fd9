// The rule engine: evaluates the generated CRS rules against one request's parsed values with
// CRS's anomaly-scoring semantics. Regexes run in re2 (linear time: no input can make a rule
// backtrack); @detectSQLi / @detectXSS run libinjection when it is loaded (libinjection.ts).
import RE2 from 're2';
import type { CompiledRuleSet, RuleDef, RuleLink, RuleTarget } from './rule-types.ts';
import { applyTransforms } from './transforms.ts';

/** One inspected value: the ModSecurity collection, the name within it, and the value. */
export interface WafValue {
  readonly collection: 'ARGS' | 'REQUEST_HEADERS' | 'REQUEST_COOKIES';
  /** The name as rules see it: query and form fields by name, JSON fields as `json.a.b`, path parameters by name. */
  readonly name: string;
  readonly value: string;
}

/** The request as the engine sees it (built by the hook from Fastify's parsed request). */
export interface WafRequest {
  readonly method: string;
  /** The raw request target, query string included, as sent. */
  readonly url: string;
  readonly values: readonly WafValue[];
  /** A body no parser turned into fields (XML, plain text), as text; absent otherwise. */
  readonly rawBody?: string;
  readonly contentType?: string;
}

/** How a field is inspected: by every rule, by a few categories, or not at all. */
export type FieldKind =
  | 'text'
  | 'markdown'
  | 'code'
  | 'url'
  | 'data-url'
  | 'password'
  | 'secret'
  | 'json'
  | 'enum'
  | 'opaque';

/** Rule categories each field kind is inspected by (`all` = every category). See docs/waf.md. */
export const KIND_CATEGORIES: Readonly<Record<FieldKind, 'all' | readonly string[]>> = {
  text: 'all',
  // Markdown and rich text are rendered as HTML: cross-site scripting is the risk; SQL words,
  // shell commands and code samples are content.
  markdown: ['941'],
  // A URL is followed or rendered: file inclusion, remote inclusion, SSRF and script URLs.
  url: ['930', '931', '934', '941'],
  json: ['941'],
  // Code, data URLs, passwords, secrets, enumerations and opaque values (ids, dates, numbers)
  // are never interpreted by the platform as markup, SQL or commands: validated by their schema
  // (format, enum) before this runs, and never matched against attack patterns.
  code: [],
  'data-url': [],
  password: [],
  secret: [],
  enum: [],
  opaque: [],
};

/** A rule exclusion in force: rule `ruleId` does not inspect `field` (or any field with `*`). */
export interface RuleExclusion {
  readonly ruleId: number;
  readonly field: string;
}

export interface EvaluateOptions {
  readonly paranoiaLevel: number;
  /** Kind of each field by its rule-visible name; a field not named is `text`. */
  readonly fieldKinds?: ReadonlyMap<string, FieldKind>;
  readonly exclusions?: readonly RuleExclusion[];
}

/** One rule that fired. The excerpt is bounded and redacted (see excerptOf); never the value. */
export interface WafMatch {
  readonly ruleId: number;
  readonly category: string;
  readonly pl: number;
  readonly score: number;
  readonly scoreVariable: string;
  readonly field: string;
  readonly excerpt: string;
}

/** The anomaly scores of one request. */
export interface WafVerdict {
  readonly score: number;
  readonly categories: Readonly<Record<string, number>>;
  readonly matches: readonly WafMatch[];
}

type Injection = (value: string) => boolean;

/** libinjection's two detectors, when loaded; without them @detectSQLi / @detectXSS never match. */
export interface InjectionDetectors {
  readonly sqli: Injection;
  readonly xss: Injection;
}

interface Candidate {
  readonly name: string;
  readonly value: string;
}

interface CompiledLink {
  readonly link: RuleLink;
  readonly test: (value: string, captures: string[], macros: Macros, bytes: Buffer) => boolean;
  readonly exclusions: ReadonlyArray<{ collection: string; test: (key: string) => boolean }>;
}

interface CompiledRule {
  readonly def: RuleDef;
  readonly links: readonly CompiledLink[];
  /** Index of the prefilter group its first link's regex is in; -1: always evaluated. */
  readonly group: number;
  readonly indexInGroup: number;
}

/**
 * First-link regexes with the same transformation pipeline, in one RE2.Set: one pass over each
 * transformed value finds the rules that could match at all; the others are skipped for this
 * request. A pure prefilter (a superset): the full rule still runs on its own targets.
 */
interface PrefilterGroup {
  readonly transforms: readonly string[];
  readonly set: InstanceType<typeof RE2.Set>;
  readonly rules: readonly number[];
  /** Every target of the group's first links (a value none of them names cannot match). */
  readonly targets: readonly RuleTarget[];
}

interface Macros {
  readonly captures: readonly string[];
  readonly host: string;
}

const keyMatchers = new Map<string, (name: string) => boolean>();

// Rule keys are a fixed set (from the rule file): compiled once, shared by every request.
function keyMatcher(key: string): (name: string) => boolean {
  let m = keyMatchers.get(key);
  if (!m) {
    m = compileKeyMatcher(key);
    keyMatchers.set(key, m);
  }
  return m;
}

function compileKeyMatcher(key: string): (name: string) => boolean {
  if (key.startsWith('/') && key.endsWith('/') && key.length >= 2) {
    const re = new RE2(key.slice(1, -1), 'i');
    return (name) => re.test(name);
  }
  const k = key.toLowerCase();
  return (name) => name.toLowerCase() === k;
}

function expand(arg: string, m: Macros): string {
  return arg.replace(/%\{([^}]+)\}/g, (_x, v: string) => {
    const name = v.toLowerCase();
    const tx = /^tx\.(\d)$/.exec(name);
    if (tx) return m.captures[Number(tx[1])] ?? '';
    if (name === 'request_headers.host') return m.host;
    return '';
  });
}

function compileOperator(link: RuleLink, injection: InjectionDetectors | undefined): CompiledLink['test'] {
  const arg = link.argument;
  switch (link.operator) {
    case 'rx': {
      const re = new RE2(arg);
      // Matching runs on the value's UTF-8 bytes, converted once per value: re2 converts a JS
      // string on every call otherwise, which costs more than the match. The captures (for
      // chained rules and excerpts) are taken only once a value matched.
      return (_v, captures, _m, bytes) => {
        if (!re.test(bytes)) return false;
        const m = re.exec(bytes);
        if (!m) return false;
        const groups = m as unknown as ArrayLike<Buffer | undefined>;
        for (let i = 0; i < groups.length && i < 10; i++) captures[i] = groups[i]?.toString('utf8') ?? '';
        return true;
      };
    }
    case 'pm': {
      // @pm is a case-insensitive phrase match (Aho-Corasick in ModSecurity): one re2 alternation
      // of the escaped phrases, which re2's DFA runs in one pass whatever the number of phrases.
      const phrases = link.phrases ?? [];
      if (phrases.length === 0) return () => false;
      const re = new RE2(`(?i)(?:${phrases.map((p) => p.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&')).join('|')})`);
      return (_v, captures, _m, bytes) => {
        const m = re.exec(bytes);
        if (!m) return false;
        captures[0] = m[0].toString('utf8');
        return true;
      };
    }
    case 'detectSQLi':
      return (v, captures) => {
        if (!injection?.sqli(v)) return false;
        captures[0] = v.slice(0, 32);
        return true;
      };
    case 'detectXSS':
      return (v, captures) => {
        if (!injection?.xss(v)) return false;
        captures[0] = v.slice(0, 32);
        return true;
      };
    case 'contains':
      return (v, _c, m) => v.includes(expand(arg, m));
    case 'streq':
      return (v, _c, m) => v === expand(arg, m);
    case 'beginsWith':
      return (v, _c, m) => v.startsWith(expand(arg, m));
    case 'endsWith':
      return (v, _c, m) => v.endsWith(expand(arg, m));
    case 'within':
      return (v, _c, m) => expand(arg, m).includes(v);
    case 'eq':
      return (v) => Number(v) === Number(arg);
    case 'ge':
      return (v) => Number(v) >= Number(arg);
    case 'gt':
      return (v) => Number(v) > Number(arg);
    case 'lt':
      return (v) => Number(v) < Number(arg);
    case 'le':
      return (v) => Number(v) <= Number(arg);
    case 'unconditionalMatch':
      return () => true;
    case 'validateByteRange': {
      const allowed = new Set<number>();
      for (const part of arg.split(',')) {
        const [a, b] = part.trim().split('-').map(Number);
        if (a === undefined || Number.isNaN(a)) continue;
        for (let c = a; c <= (b ?? a); c++) allowed.add(c);
      }
      return (v) => {
        for (let i = 0; i < v.length; i++) if (!allowed.has(v.charCodeAt(i) & 0xff)) return true;
        return false;
      };
    }
    default:
      return () => false;
  }
}

const SECRETISH = /[A-Za-z0-9_\-+/=]{20,}/g;
const DIGITS = /\d[\d ./-]{5,}\d/g;
const EXCERPT_MAX = 40;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it replaces
const CONTROL = /[\u0000-\u001f\u007f]/g;

/**
 * A bounded, redacted excerpt of what matched: at most 40 characters and never more than half of
 * the value (so a short value is never shown whole); long token-like runs and digit runs (card
 * numbers, IBAN digits, phone numbers) are replaced.
 */
export function excerptOf(value: string, matched: string): string {
  const limit = Math.min(EXCERPT_MAX, Math.floor(value.length / 2));
  if (limit <= 0) return '';
  const base = matched && matched.length > 0 ? matched : value;
  const cut = base.length > limit ? base.slice(0, limit) : base;
  return cut.replace(SECRETISH, '[redacted]').replace(DIGITS, '[digits]').replace(CONTROL, '·');
}

/** Headers never inspected: credentials, which must never reach an event or a log line. */
const UNINSPECTED_HEADERS = new Set(['authorization', 'cookie', 'x-csrf-token', 'proxy-authorization']);

/** The engine over one rule set; build once per process (compiles every regex). */
export class WafEngine {
  readonly #rules: readonly CompiledRule[];
  readonly ruleCount: number;
  readonly source: string;

  readonly #groups: readonly PrefilterGroup[];

  constructor(set: CompiledRuleSet, injection?: InjectionDetectors) {
    this.source = set.source;
    const byPipeline = new Map<string, { transforms: readonly string[]; patterns: string[]; rules: number[]; targets: Map<string, RuleTarget> }>();
    const placement: Array<[number, number]> = [];
    set.rules.forEach((def, i) => {
      const first = def.links[0];
      if (first?.operator !== 'rx' || first.negated || first.multiMatch) {
        placement.push([-1, -1]);
        return;
      }
      const key = first.transforms.join(',');
      let g = byPipeline.get(key);
      if (!g) {
        g = { transforms: first.transforms, patterns: [], rules: [], targets: new Map() };
        byPipeline.set(key, g);
      }
      placement.push([[...byPipeline.keys()].indexOf(key), g.patterns.length]);
      g.patterns.push(first.argument);
      g.rules.push(i);
      for (const t of first.targets) if (!t.count) g.targets.set(`${t.collection}:${t.key ?? ''}`, { collection: t.collection, ...(t.key !== undefined ? { key: t.key } : {}), exclude: [] });
    });
    // A larger DFA budget than RE2's default keeps the big CRS alternations on the fast path.
    this.#groups = [...byPipeline.values()].map((g) => ({ transforms: g.transforms, set: new RE2.Set(g.patterns, { maxMem: 64 << 20 }), rules: g.rules, targets: [...g.targets.values()] }));
    this.#rules = set.rules.map((def, i) => ({
      def,
      links: def.links.map((link) => ({
        link,
        test: compileOperator(link, injection),
        exclusions: link.targets.flatMap((t) => t.exclude.map((k) => ({ collection: t.collection, test: keyMatcher(k) }))),
      })),
      group: placement[i]?.[0] ?? -1,
      indexInGroup: placement[i]?.[1] ?? -1,
    }));
    this.ruleCount = this.#rules.length;
  }

  /** The rules (by index) whose first-link regex matches some transformed value of the request. */
  #possible(ctx: RequestContext): Uint8Array {
    const possible = new Uint8Array(this.#rules.length);
    for (const g of this.#groups) {
      for (const v of ctx.valuesOf(g.targets)) {
        const t = ctx.transformed(v, g.transforms);
        if (t === '') continue;
        for (const idx of g.set.match(ctx.bytes(t))) possible[g.rules[idx] as number] = 1;
      }
    }
    return possible;
  }

  /** Scores one request at the given paranoia level; rules above it do not run. */
  evaluate(req: WafRequest, opts: EvaluateOptions): WafVerdict {
    const ctx = new RequestContext(req);
    const matches: WafMatch[] = [];
    const categories: Record<string, number> = {};
    let score = 0;
    const possible = this.#possible(ctx);
    for (let i = 0; i < this.#rules.length; i++) {
      const rule = this.#rules[i] as CompiledRule;
      if (rule.def.pl > opts.paranoiaLevel) continue;
      if (rule.group >= 0 && possible[i] === 0) continue;
      const hit = this.#evaluateRule(rule, ctx, opts);
      if (!hit) continue;
      score += rule.def.score;
      categories[rule.def.scoreVariable] = (categories[rule.def.scoreVariable] ?? 0) + rule.def.score;
      matches.push({
        ruleId: rule.def.id,
        category: rule.def.category,
        pl: rule.def.pl,
        score: rule.def.score,
        scoreVariable: rule.def.scoreVariable,
        field: hit.field,
        excerpt: excerptOf(hit.value, hit.matched),
      });
    }
    return { score, categories, matches };
  }

  #evaluateRule(rule: CompiledRule, ctx: RequestContext, opts: EvaluateOptions): { field: string; value: string; matched: string } | undefined {
    let previous: Array<{ name: string; value: string }> = [];
    let captures: string[] = [];
    let first: { field: string; value: string; matched: string } | undefined;
    for (let li = 0; li < rule.links.length; li++) {
      const cl = rule.links[li] as CompiledLink;
      const matched: Array<{ name: string; value: string }> = [];
      let linkCaptures: string[] = [];
      const candidates = ctx.candidates(cl, previous, captures, rule.def, opts);
      for (const c of candidates) {
        const caps: string[] = [];
        const hit = this.#testValue(cl, c.value, caps, { captures, host: ctx.host }, ctx);
        if (hit) {
          matched.push(c);
          if (caps.length > 0) linkCaptures = caps;
          if (li === 0 && !first) first = { field: c.name, value: c.value, matched: caps[0] ?? '' };
          // The first matching value is enough for a link without a chain after it.
          if (li === rule.links.length - 1) break;
        }
      }
      if (matched.length === 0) return undefined;
      previous = matched;
      if (linkCaptures.length > 0) captures = linkCaptures;
    }
    return first;
  }

  #testValue(cl: CompiledLink, value: string, caps: string[], macros: Macros, ctx: RequestContext): boolean {
    const { link } = cl;
    if (link.multiMatch) {
      // multiMatch: the operator runs on the value before and after each transformation.
      let v = value;
      if (test(v)) return true;
      for (let k = 1; k <= link.transforms.length; k++) {
        const next = ctx.transformed(value, link.transforms.slice(0, k));
        if (next !== v && test(next)) return true;
        v = next;
      }
      return false;
    }
    return test(ctx.transformed(value, link.transforms));
    function test(v: string): boolean {
      const r = cl.test(v, caps, macros, ctx.bytes(v));
      return link.negated ? !r : r;
    }
  }
}

/** The values of one request, grouped the way rules address them. */
class RequestContext {
  readonly host: string;
  readonly #req: WafRequest;
  readonly #byCollection = new Map<string, Candidate[]>();

  constructor(req: WafRequest) {
    this.#req = req;
    const args: Candidate[] = [];
    const headers: Candidate[] = [];
    const cookies: Candidate[] = [];
    let host = '';
    for (const v of req.values) {
      if (v.collection === 'ARGS') args.push(v);
      else if (v.collection === 'REQUEST_COOKIES') cookies.push(v);
      else {
        if (v.name === 'host') host = v.value;
        if (!UNINSPECTED_HEADERS.has(v.name)) headers.push(v);
      }
    }
    this.host = host;
    const q = req.url.indexOf('?');
    const path = q < 0 ? req.url : req.url.slice(0, q);
    const set = (k: string, c: Candidate[]) => this.#byCollection.set(k, c);
    set('ARGS', args);
    set('ARGS_GET', args);
    set('ARGS_POST', args);
    set('ARGS_NAMES', args.map((a) => ({ name: a.name, value: a.name })));
    set('REQUEST_HEADERS', headers);
    set('REQUEST_HEADERS_NAMES', headers.map((h) => ({ name: h.name, value: h.name })));
    set('REQUEST_COOKIES', cookies);
    set('REQUEST_COOKIES_NAMES', cookies.map((c) => ({ name: c.name, value: c.name })));
    set('REQUEST_FILENAME', [{ name: '', value: path }]);
    set('REQUEST_BASENAME', [{ name: '', value: path.slice(path.lastIndexOf('/') + 1) }]);
    set('REQUEST_URI', [{ name: '', value: req.url }]);
    set('REQUEST_URI_RAW', [{ name: '', value: req.url }]);
    set('QUERY_STRING', q < 0 ? [] : [{ name: '', value: req.url.slice(q + 1) }]);
    set('REQUEST_LINE', [{ name: '', value: `${req.method} ${req.url} HTTP/1.1` }]);
    set('REQUEST_METHOD', [{ name: '', value: req.method }]);
    set('REQUEST_BODY', req.rawBody !== undefined ? [{ name: '', value: req.rawBody }] : []);
    // XML bodies: text content and attribute values (XML:/* and XML://@*), read crudely (no
    // entity expansion, no DTD): enough for the patterns to see what the document carries.
    const isXml = req.rawBody !== undefined && /xml/i.test(req.contentType ?? '');
    set('XML', isXml ? xmlValues(req.rawBody ?? '') : []);
  }

  candidates(cl: CompiledLink, previous: readonly Candidate[], captures: readonly string[], rule: RuleDef, opts: EvaluateOptions): Candidate[] {
    const out: Candidate[] = [];
    for (const t of cl.link.targets) {
      const col = t.collection;
      if (col === 'MATCHED_VAR') {
        const last = previous[previous.length - 1];
        if (last) out.push(last);
        continue;
      }
      if (col === 'MATCHED_VARS') {
        out.push(...previous);
        continue;
      }
      if (col === 'TX') {
        const k = t.key ?? '';
        if (/^\d$/.test(k)) out.push({ name: `TX:${k}`, value: captures[Number(k)] ?? '' });
        // TX:/rfi_parameter_.*/ (931130): the values rule 931130's own first link captured.
        else if (k.startsWith('/')) for (const p of previous) out.push({ name: p.name, value: captures[1] ?? p.value });
        continue;
      }
      const all = this.#byCollection.get(col);
      if (!all) continue;
      if (t.count) {
        const n = t.key ? all.filter((c) => keyMatcher(t.key as string)(c.name)).length : all.length;
        out.push({ name: `&${col}`, value: String(n) });
        continue;
      }
      const keyOk = t.key ? keyMatcher(t.key) : undefined;
      for (const c of all) {
        if (keyOk && !keyOk(c.name)) continue;
        if (cl.exclusions.some((e) => e.collection === col && e.test(c.name))) continue;
        if (!inspects(col, c.name, rule, opts)) continue;
        out.push({ name: col === 'ARGS_NAMES' || col === 'REQUEST_COOKIES_NAMES' || col === 'REQUEST_HEADERS_NAMES' ? `${col}:${c.name}` : c.name ? `${col}:${c.name}` : col, value: c.value });
      }
    }
    return out;
  }

  get request(): WafRequest {
    return this.#req;
  }

  // value → pipeline → result. Nested maps keyed by the value itself and by the pipeline's
  // interned key: V8 caches a string's hash, a concatenated key would be hashed anew each time.
  readonly #transformCache = new Map<string, Map<string, string>>();
  readonly #bytes = new Map<string, Buffer>();

  /** A transformed value's UTF-8 bytes, once per request. */
  bytes(value: string): Buffer {
    let b = this.#bytes.get(value);
    if (!b) {
      b = Buffer.from(value, 'utf8');
      this.#bytes.set(value, b);
    }
    return b;
  }

  /** A value after a pipeline, computed once per request (rules share pipelines). */
  transformed(value: string, transforms: readonly string[]): string {
    if (transforms.length === 0) return value;
    const key = pipelineKey(transforms);
    let perValue = this.#transformCache.get(value);
    if (!perValue) {
      perValue = new Map();
      this.#transformCache.set(value, perValue);
    }
    let t = perValue.get(key);
    if (t === undefined) {
      t = applyTransforms(value, transforms);
      perValue.set(key, t);
    }
    return t;
  }

  /** The distinct values some of `targets` name (for the prefilter: no exclusions, no kinds). */
  valuesOf(targets: readonly RuleTarget[]): Set<string> {
    const seen = new Set<string>();
    for (const t of targets) {
      const all = this.#byCollection.get(t.collection);
      if (!all) continue;
      if (t.key === undefined) for (const c of all) seen.add(c.value);
      else {
        const ok = keyMatcher(t.key);
        for (const c of all) if (ok(c.name)) seen.add(c.value);
      }
    }
    return seen;
  }
}

const pipelineKeys = new WeakMap<readonly string[], string>();
const internedKeys = new Map<string, string>();

// One key string per distinct pipeline, the same object every time.
function pipelineKey(transforms: readonly string[]): string {
  let k = pipelineKeys.get(transforms);
  if (k === undefined) {
    const joined = transforms.join(',');
    k = internedKeys.get(joined) ?? joined;
    internedKeys.set(joined, k);
    pipelineKeys.set(transforms, k);
  }
  return k;
}

/** A field's kind: by its exact name, else by a record's `prefix.*` entry (keys may hold dots). */
function fieldKindOf(kinds: ReadonlyMap<string, FieldKind>, name: string): FieldKind | undefined {
  const exact = kinds.get(name);
  if (exact !== undefined) return exact;
  for (let i = name.indexOf('.'); i > 0; i = name.indexOf('.', i + 1)) {
    const k = kinds.get(`${name.slice(0, i)}.*`);
    if (k !== undefined) return k;
  }
  return undefined;
}

function inspects(collection: string, name: string, rule: RuleDef, opts: EvaluateOptions): boolean {
  if (collection === 'ARGS') {
    const kind = opts.fieldKinds ? fieldKindOf(opts.fieldKinds, name) : undefined;
    if (kind && kind !== 'text') {
      const cats = KIND_CATEGORIES[kind];
      if (cats !== 'all' && !cats.includes(rule.category)) return false;
    }
  }
  const ex = opts.exclusions;
  if (ex && ex.length > 0) {
    const qualified = `${collection}:${name}`;
    for (const e of ex) if (e.ruleId === rule.id && (e.field === '*' || e.field === name || e.field === qualified)) return false;
  }
  return true;
}

function xmlValues(xml: string): Candidate[] {
  const out: Candidate[] = [];
  const text = xml
    .replace(/<!\[CDATA\[([\s\S]*?)\]\]>/g, '$1')
    .replace(/<[^>]*>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  if (text) out.push({ name: '/*', value: text });
  for (const m of xml.matchAll(/\s[\w:.-]+\s*=\s*("([^"]*)"|'([^']*)')/g)) out.push({ name: '//@*', value: m[2] ?? m[3] ?? '' });
  return out;
}
