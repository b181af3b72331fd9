// The rule engine: evaluates the generated CRS rules against one request's parsed values with
// CRS's anomaly-scoring semantics. Regexes run in re2 (linear time: no input can make a rule
// backtrack); @detectSQLi / @detectXSS run libinjection when it is loaded (libinjection.ts).
import RE2 from 're2';
import type { CompiledRuleSet, RuleDef, RuleLink, RuleTarget } from './rule-types.ts';
import { TRANSFORMS } from './transforms.ts';

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
  | 'stored-text'
  | 'markdown'
  | 'code'
  | 'url'
  | 'data-url'
  | 'password'
  | 'secret'
  | 'json'
  | 'enum'
  | 'opaque';

/**
 * What inspects each field kind (`all` = every rule): rule categories (`'941'`) or single rules
 * (`'942100'`). See docs/waf.md, "Tuned by the model", for the reasoning and the risk accepted.
 */
export const KIND_CATEGORIES: Readonly<Record<FieldKind, 'all' | readonly string[]>> = {
  text: 'all',
  // Plain text the data API stores: it reaches SQL only as a bind parameter and is never run,
  // included, fetched or used as a path by the platform, so SQL words, shell commands and file
  // names in it are inert there. What stays live is its rendering (script injection, 941, and
  // cookie-setting markup, 943), and libinjection's SQL tokenizer (942100), which flags injection
  // syntax (`' OR 1=1 --`), not English words: a probe worth an event even where it is inert.
  'stored-text': ['941', '943', '942100'],
  // Markdown and rich text are rendered as HTML: cross-site scripting is the risk; SQL words,
  // shell commands and code samples are content.
  markdown: ['941'],
  // A URL is rendered and followed by clients, never fetched by the platform (no server-side
  // request: SSRF 934 cannot happen through it), and a URL field holds a remote URL by
  // definition (what the RFI rules, 931, look for): path traversal and script URLs stay.
  url: ['930', '941'],
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
/** Engine options for tests and measurements; production code passes none. */
export interface EngineOptions {
  /**
   * false: evaluate every rule on every value, without the prefilter and without remembering
   * anything across requests. The reference the prefilter is tested against (it must never
   * change a verdict, only skip work).
   */
  readonly prefilter?: boolean;
}

/** One value a rule link looks at: its collection, its name in it (raw), the value. */
interface Candidate {
  readonly col: string;
  readonly name: string;
  readonly value: string;
}

type LinkTest = (value: string, captures: string[], macros: Macros, bytes: (v: string) => Buffer) => boolean;

interface CompiledTarget {
  readonly target: RuleTarget;
  readonly key: ((name: string) => boolean) | undefined;
  readonly exclude: ReadonlyArray<(name: string) => boolean>;
}

interface CompiledLink {
  readonly link: RuleLink;
  readonly test: LinkTest;
  readonly targets: readonly CompiledTarget[];
  /** The pipeline's node in the transformation trie (0: no transformation). */
  readonly node: number;
  /** multiMatch: the node after each transformation (node of the first k, for k = 1..n). */
  readonly prefixNodes: readonly number[];
  /**
   * libinjection links (@detectSQLi, @detectXSS, which the prefilter cannot describe and which run
   * on every value): short values they found clean, across requests, under the cache's rules
   * (see CACHE_VALUE_MAX). Only a clean answer is kept; a detection is recomputed.
   */
  readonly clean: Set<string> | undefined;
}

interface CompiledRule {
  readonly def: RuleDef;
  readonly links: readonly CompiledLink[];
  /** The Set patterns its first link needs at least one of to match anything; undefined: always evaluated. */
  readonly prefilter: boolean;
}

interface Macros {
  readonly captures: readonly string[];
  readonly host: string;
}

/**
 * What one paranoia level runs, computed once (on first use) from the rule set.
 *
 * The prefilter: every first link that is a regex, a phrase match or a plain `contains` (no
 * negation) goes into one RE2.Set (multi-line mode). Per request, every value a first link can
 * look at is transformed by every pipeline some first link applies to its collection (a trie of
 * transformations, each step computed once per value), the distinct results are joined with
 * newlines, and the Set runs once over that text. A pattern that matches one of the strings
 * also matches the joined text at the same place (see prefilterSource: `^`, `$` match at the
 * newlines, `\b` sees a newline as it sees the end of text), so the Set's answer is a superset
 * of the rules that can match: the others are skipped, the rest run as before, on their own
 * targets with their exclusions and field kinds. A benign request costs one Set test.
 */
interface Plan {
  /** Rules at or below the level, in file order (scoring and match order as in CRS). */
  readonly rules: readonly number[];
  readonly buckets: readonly Bucket[];
}

/**
 * Patterns run over one joined text. Rules whose pipeline base64-decodes are a bucket of their
 * own: decoding ordinary words yields random bytes that would wake the other patterns.
 */
interface Bucket {
  /** Short value → the rules it wakes (see CACHE_VALUE_MAX). */
  readonly cache: Map<string, readonly number[]>;
  /** Every pattern in one Set: the one test a benign request costs. */
  readonly all: InstanceType<typeof RE2.Set>;
  /** The same patterns in small Sets (a large Set's match() is slow), then each alone: which ones matched. */
  readonly sets: ReadonlyArray<{ readonly set: InstanceType<typeof RE2.Set>; readonly patterns: readonly number[] }>;
  readonly single: readonly RE2[];
  /** Pattern index → rules (indexes into #rules) whose first link has that pattern. */
  readonly byPattern: readonly (readonly number[])[];
  /** Per first-link collection: the trie nodes values of that collection need, and keyed extras. */
  readonly collections: ReadonlyArray<{
    readonly col: string;
    readonly nodes: readonly number[];
    readonly keyed: ReadonlyArray<{ readonly key: (name: string) => boolean; readonly nodes: readonly number[] }>;
  }>;
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

function compileOperator(link: RuleLink, injection: InjectionDetectors | undefined): LinkTest {
  const arg = link.argument;
  switch (link.operator) {
    case 'rx': {
      const re = new RE2(arg);
      // Matching runs on the value's UTF-8 bytes, converted once per value: re2 converts a JS
      // string on every call otherwise, which costs more than the match. The captures (for
      // chained rules and excerpts) are taken only once a value matched.
      return (v, captures, _m, bytesOf) => {
        const bytes = bytesOf(v);
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
      const re = new RE2(phraseSource(phrases));
      return (v, captures, _m, bytesOf) => {
        const m = re.exec(bytesOf(v));
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

/** The @pm operator's regex source: one case-insensitive alternation of the escaped phrases. */
function phraseSource(phrases: readonly string[]): string {
  return `(?i)(?:${phrases.map((p) => p.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&')).join('|')})`;
}

// Each value in the prefilter's text ends with END, then a newline: multi-line `^` matches at a
// value's start; END stands for its end. END is no space, word character, quote or bracket, so a
// pattern wanting a delimiter after a word (`sort `) does not take the end of a value for one.
const END = '\u0001';

/**
 * A first-link pattern as the prefilter runs it on the joined values (multi-line mode): `$` and
 * `\z` outside a class become `(?:\x01|$)` (a value's end), `\A` becomes `^` (a value's start).
 * A match inside one value alone is then a match in the joined text at the same place (`\b`
 * sees END as it sees the end of the text): the Set's answer is a superset, never a miss.
 */
function prefilterSource(pattern: string): string {
  const end = '(?:\\x01|$)';
  let out = '';
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '\\' && i + 1 < pattern.length) {
      const n = pattern[i + 1] as string;
      out += inClass ? `\\${n}` : n === 'A' ? '^' : n === 'z' ? end : `\\${n}`;
      i++;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      out += c;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      // A `]` first in a class (after an optional `^`) is a literal, not its end.
      if (pattern[i + 1] === '^') {
        out += '^';
        i++;
      }
      if (pattern[i + 1] === ']') {
        out += ']';
        i++;
      }
      continue;
    }
    out += c === '$' ? end : c;
  }
  return out;
}

// Strings most requests carry: a pattern matching one of them (or the empty string) would make
// the prefilter fire on nearly every request, so its rule is simply always evaluated.
const COMMON = ['', 'a', 'A', '0', 'a b', 'localhost', 'application/json', '*/*', 'Mozilla/5.0'];

/**
 * The distinct transformation pipelines as a trie: node 0 is the untransformed value, every other
 * node applies one transformation to its parent's result. Rules share prefixes (utf8toUnicode,
 * urlDecodeUni, ...), so each step runs once per value whatever the number of rules using it.
 */
class PipelineTrie {
  readonly fns: Array<(s: string) => string> = [(s) => s];
  /** Per node, its transformation's index among the distinct ones (0: none). */
  readonly fnIds: number[] = [0];
  readonly parents: number[] = [0];
  readonly #children = new Map<string, number>();
  readonly #fnIdOf = new Map<string, number>();

  /** The node after the first `k` transformations of `transforms`. */
  nodeOf(transforms: readonly string[], k = transforms.length): number {
    let node = 0;
    for (let i = 0; i < k; i++) {
      const name = transforms[i] as string;
      const key = `${node}\u0000${name}`;
      let child = this.#children.get(key);
      if (child === undefined) {
        child = this.fns.length;
        // An unknown name does nothing (as applyTransforms); the converter test refuses one first.
        this.fns.push(TRANSFORMS[name] ?? ((s) => s));
        let fnId = this.#fnIdOf.get(name);
        if (fnId === undefined) {
          fnId = this.#fnIdOf.size + 1;
          this.#fnIdOf.set(name, fnId);
        }
        this.fnIds.push(fnId);
        this.parents.push(node);
        this.#children.set(key, child);
      }
      node = child;
    }
    return node;
  }

  get size(): number {
    return this.fns.length;
  }

  /**
   * A node's result for one value, from the memo `out` (index: node); computes missing steps.
   * `seen` (per request and transformation) shares results between branches: most steps leave
   * a benign value unchanged (the same string back), so `lowercase` after three such steps is
   * `lowercase` of the same string, computed once.
   */
  compute(out: Array<string | undefined>, node: number, seen: Array<Map<string, string> | undefined>): string {
    const known = out[node];
    if (known !== undefined) return known;
    const input = this.compute(out, this.parents[node] as number, seen);
    const fnId = this.fnIds[node] as number;
    let memo = seen[fnId];
    if (!memo) {
      memo = new Map();
      seen[fnId] = memo;
    }
    let r = memo.get(input);
    if (r === undefined) {
      r = (this.fns[node] as (s: string) => string)(input);
      memo.set(input, r);
    }
    out[node] = r;
    return r;
  }
}

// One scratch buffer for the prefilter's text: re2 converts a JS string on every call and
// Buffer.from allocates; writing into a reused buffer is several times cheaper.
let scratch = Buffer.allocUnsafe(1 << 16);

function utf8(text: string): Buffer {
  // At most three UTF-8 bytes per UTF-16 unit.
  if (text.length * 3 > scratch.length) {
    if (text.length * 3 > 1 << 22) return Buffer.from(text, 'utf8');
    scratch = Buffer.allocUnsafe(text.length * 3);
  }
  return scratch.subarray(0, scratch.write(text, 0, 'utf8'));
}

// Patterns per small Set: small enough for match-finding to stay cheap, large enough to skip many at once.
const SET_SIZE = 16;

// A Set that cannot answer (its DFA ran out of memory) says yes: its rules then run, as without it.
function setTest(set: InstanceType<typeof RE2.Set>, bytes: Buffer): boolean {
  try {
    return set.test(bytes);
  } catch {
    return true;
  }
}
// Collections whose every entry a few rules read (see #plan's buckets).
const WIDE = new Set(['REQUEST_LINE', 'REQUEST_HEADERS', 'REQUEST_URI_RAW', 'REQUEST_BODY', 'QUERY_STRING']);
const NOT_PREFILTERED = new Set(['TX', 'MATCHED_VAR', 'MATCHED_VARS']);

/** The engine over one rule set; build once per process (compiles every regex). */
export class WafEngine {
  readonly #rules: readonly CompiledRule[];
  readonly ruleCount: number;
  readonly source: string;
  readonly #trie = new PipelineTrie();
  readonly #plans = new Map<number, Plan>();
  readonly #usePrefilter: boolean;

  constructor(set: CompiledRuleSet, injection?: InjectionDetectors, options: EngineOptions = {}) {
    this.source = set.source;
    this.#usePrefilter = options.prefilter !== false;
    this.#rules = set.rules.map((def) => {
      const links = def.links.map((link) => ({
        link,
        test: compileOperator(link, injection),
        targets: link.targets.map((t) => ({ target: t, key: t.key ? keyMatcher(t.key) : undefined, exclude: t.exclude.map((k) => keyMatcher(k)) })),
        node: this.#trie.nodeOf(link.transforms),
        prefixNodes: link.multiMatch ? link.transforms.map((_t, k) => this.#trie.nodeOf(link.transforms, k + 1)) : [],
        clean: this.#usePrefilter && !link.negated && (link.operator === 'detectSQLi' || link.operator === 'detectXSS') ? new Set<string>() : undefined,
      }));
      return { def, links, prefilter: prefilterPattern(def) !== undefined };
    });
    this.ruleCount = this.#rules.length;
    // Level 1 is what every stage starts with: built now, so a first request pays nothing.
    if (this.#usePrefilter) this.#plan(1);
  }

  #plan(pl: number): Plan {
    const level = Math.max(1, Math.min(4, Math.trunc(pl) || 1));
    let plan = this.#plans.get(level);
    if (plan) return plan;
    const rules: number[] = [];
    // Buckets: rules that base64-decode, and rules reading the whole request line or every header,
    // apart: decoded words are random bytes, and `POST /x` or a header line would wake the
    // command-injection lists every request (a pattern then only runs on the texts it reads).
    const buckets = new Map<string, number[]>();
    this.#rules.forEach((rule, i) => {
      if (rule.def.pl > level) return;
      rules.push(i);
      if (!rule.prefilter) return;
      const first = rule.links[0]?.link;
      const decodes = first?.transforms.some((t) => /^base64decode$/i.test(t)) ?? false;
      const wide = first?.targets.some((t) => WIDE.has(t.collection) && t.key === undefined) ?? false;
      const key = `${decodes}/${wide}`;
      const list = buckets.get(key);
      if (list) list.push(i);
      else buckets.set(key, [i]);
    });
    plan = { rules, buckets: [...buckets.values()].map((b) => this.#bucket(b)) };
    this.#plans.set(level, plan);
    return plan;
  }

  #bucket(ruleIds: readonly number[]): Bucket {
    const sources: string[] = [];
    const indexOf = new Map<string, number>();
    const byPattern: number[][] = [];
    const unkeyed = new Map<string, Set<number>>();
    const keyed = new Map<string, Map<string, Set<number>>>();
    const add = <K>(m: Map<K, Set<number>>, k: K, nodes: readonly number[]) => {
      let s = m.get(k);
      if (!s) {
        s = new Set();
        m.set(k, s);
      }
      for (const n of nodes) s.add(n);
    };
    for (const i of ruleIds) {
      const rule = this.#rules[i] as CompiledRule;
      const source = prefilterPattern(rule.def) as string;
      let p = indexOf.get(source);
      if (p === undefined) {
        p = sources.length;
        sources.push(source);
        indexOf.set(source, p);
        byPattern.push([]);
      }
      (byPattern[p] as number[]).push(i);
      const first = rule.links[0] as CompiledLink;
      const nodes = first.link.multiMatch ? [0, ...first.prefixNodes] : [first.node];
      for (const t of first.link.targets) {
        if (t.key === undefined) add(unkeyed, t.collection, nodes);
        else {
          let k = keyed.get(t.collection);
          if (!k) {
            k = new Map();
            keyed.set(t.collection, k);
          }
          add(k, t.key, nodes);
        }
      }
    }
    const collections = [...new Set([...unkeyed.keys(), ...keyed.keys()])].map((col) => ({
      col,
      nodes: [...(unkeyed.get(col) ?? [])],
      keyed: [...(keyed.get(col) ?? new Map<string, Set<number>>())].map(([k, nodes]) => ({ key: keyMatcher(k), nodes: [...nodes] })),
    }));
    const sets: Array<{ set: InstanceType<typeof RE2.Set>; patterns: number[] }> = [];
    for (let i = 0; i < sources.length; i += SET_SIZE) {
      sets.push({ set: new RE2.Set(sources.slice(i, i + SET_SIZE), 'm', { maxMem: 64 << 20 }), patterns: sources.slice(i, i + SET_SIZE).map((_s, j) => i + j) });
    }
    // A larger DFA budget than RE2's default keeps the big CRS alternations on the fast path.
    return { cache: new Map(), all: new RE2.Set(sources, 'm', { maxMem: 128 << 20 }), sets, single: sources.map((src) => new RE2(src, 'm')), byPattern, collections };
  }

  /** The rules (by index) the prefilter lets through: 1 where some value can match the first link. */
  #possible(plan: Plan, ctx: RequestContext, opts: EvaluateOptions): Uint8Array {
    const possible = new Uint8Array(this.#rules.length);
    const trie = this.#trie;
    for (const bucket of plan.buckets) {
      const seen = new Set<string>();
      let text = '';
      for (let ci = 0; ci < bucket.collections.length; ci++) {
        const c = bucket.collections[ci] as Bucket['collections'][number];
        const values = ctx.collection(c.col);
        if (!values || values.length === 0) continue;
        for (const v of values) {
          // A field no rule inspects (its kind: an id, a number, an enum value, a secret) cannot
          // make any rule match: candidates() leaves it out of every rule, so the Set need not see it.
          if (c.col === 'ARGS' && opts.fieldKinds && ctx.uninspected(v.name, opts.fieldKinds)) continue;
          if (v.value.length <= CACHE_VALUE_MAX && cacheable(c.col, v.name, ctx, opts)) {
            const key = c.keyed.length > 0 ? `${ci}\u0000${v.name}\u0000${v.value}` : `${ci}\u0000${v.value}`;
            let rules = bucket.cache.get(key);
            if (rules === undefined) {
              rules = this.#valueRules(bucket, c, v, ctx);
              if (bucket.cache.size >= CACHE_ENTRIES) bucket.cache.clear();
              bucket.cache.set(key, rules);
            }
            for (const r of rules) possible[r] = 1;
            continue;
          }
          const memo = ctx.memoOf(v.value);
          for (const n of c.nodes) {
            const t = memo[n] ?? trie.compute(memo, n, ctx.steps);
            if (seen.has(t)) continue;
            seen.add(t);
            text += `${t}${END}\n`;
          }
          for (const k of c.keyed) {
            if (!k.key(v.name)) continue;
            for (const n of k.nodes) {
              const t = memo[n] ?? trie.compute(memo, n, ctx.steps);
              if (seen.has(t)) continue;
              seen.add(t);
              text += `${t}${END}\n`;
            }
          }
        }
      }
      if (seen.size > 0) identify(bucket, utf8(text), possible);
    }
    return possible;
  }

  /** The rules one short value can wake in a bucket (for the cache): its own variants, tested alone. */
  #valueRules(bucket: Bucket, c: Bucket['collections'][number], v: Candidate, ctx: RequestContext): readonly number[] {
    const memo = ctx.memoOf(v.value);
    const variants: string[] = [];
    const take = (n: number) => {
      const t = memo[n] ?? this.#trie.compute(memo, n, ctx.steps);
      if (!variants.includes(t)) variants.push(t);
    };
    for (const n of c.nodes) take(n);
    for (const k of c.keyed) if (k.key(v.name)) for (const n of k.nodes) take(n);
    if (variants.length === 0) return NONE;
    const out = new Uint8Array(this.#rules.length);
    if (!identify(bucket, utf8(`${variants.join(`${END}\n`)}${END}\n`), out)) return NONE;
    const rules: number[] = [];
    out.forEach((x, i) => {
      if (x) rules.push(i);
    });
    return rules;
  }

  /** Scores one request at the given paranoia level; rules above it do not run. */
  evaluate(req: WafRequest, opts: EvaluateOptions): WafVerdict {
    const ctx = new RequestContext(req, this.#trie);
    const matches: WafMatch[] = [];
    const categories: Record<string, number> = {};
    let score = 0;
    let ruleIds: readonly number[];
    let possible: Uint8Array | undefined;
    if (this.#usePrefilter) {
      const plan = this.#plan(opts.paranoiaLevel);
      ruleIds = plan.rules;
      possible = this.#possible(plan, ctx, opts);
    } else ruleIds = this.#rules.map((_r, i) => i);
    for (const i of ruleIds) {
      const rule = this.#rules[i] as CompiledRule;
      if (rule.def.pl > opts.paranoiaLevel) continue;
      if (possible && rule.prefilter && possible[i] === 0) continue;
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
    let previous: Candidate[] = [];
    let captures: string[] = [];
    let first: { field: string; value: string; matched: string } | undefined;
    for (let li = 0; li < rule.links.length; li++) {
      const cl = rule.links[li] as CompiledLink;
      const matched: Candidate[] = [];
      let linkCaptures: string[] = [];
      const candidates = ctx.candidates(cl, previous, captures, rule.def, opts);
      for (const c of candidates) {
        const caps: string[] = [];
        const remember = cl.clean !== undefined && c.value.length <= CACHE_VALUE_MAX && cacheable(c.col, c.name, ctx, opts);
        if (remember && cl.clean?.has(c.value)) continue;
        const hit = this.#testValue(cl, c.value, caps, { captures, host: ctx.host }, ctx);
        if (remember && !hit && cl.clean) {
          if (cl.clean.size >= CACHE_ENTRIES) cl.clean.clear();
          cl.clean.add(c.value);
        }
        if (hit) {
          matched.push(c);
          if (caps.length > 0) linkCaptures = caps;
          if (li === 0 && !first) first = { field: qualified(c), value: c.value, matched: caps[0] ?? '' };
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
    const memo = ctx.memoOf(value);
    if (link.multiMatch) {
      // multiMatch: the operator runs on the value before and after each transformation.
      let v = value;
      if (cl.test(v, caps, macros, ctx.bytes) !== link.negated) return true;
      for (const node of cl.prefixNodes) {
        const next = this.#trie.compute(memo, node, ctx.steps);
        if (next !== v && cl.test(next, caps, macros, ctx.bytes) !== link.negated) return true;
        v = next;
      }
      return false;
    }
    return cl.test(this.#trie.compute(memo, cl.node, ctx.steps), caps, macros, ctx.bytes) !== link.negated;
  }

}

/** Marks in `out` the rules whose pattern matches `bytes`; false when none does (one Set test). */
function identify(bucket: Bucket, bytes: Buffer, out: Uint8Array): boolean {
  if (!setTest(bucket.all, bytes)) return false;
  let any = false;
  for (const { set, patterns } of bucket.sets) {
    if (!setTest(set, bytes)) continue;
    for (const p of patterns) {
      if (!(bucket.single[p] as RE2).test(bytes)) continue;
      for (const r of bucket.byPattern[p] ?? []) out[r] = 1;
      any = true;
    }
  }
  return any;
}

// The prefilter's answer for a short value is remembered across requests (names, header values,
// paths and ids repeat): a bounded map per bucket, emptied when full, keyed by the value itself.
// It never holds a credential: no cookie, no credential-named header or field, no field whose
// kind is password or secret, nothing from the request line or query string (tokens travel there).
const CACHE_VALUE_MAX = 64;
const CACHE_ENTRIES = 8192;
const NONE: readonly number[] = Object.freeze([]);
const UNCACHED = new Set(['REQUEST_COOKIES', 'REQUEST_LINE', 'REQUEST_URI', 'REQUEST_URI_RAW', 'QUERY_STRING', 'REQUEST_BODY']);
const CREDENTIAL_NAME = /pass|secret|token|key|auth|session|cookie|csrf|otp|code|signature|assertion|credential/i;

function cacheable(col: string, name: string, ctx: RequestContext, opts: EvaluateOptions): boolean {
  if (UNCACHED.has(col)) return false;
  if (col === 'ARGS' || col === 'REQUEST_HEADERS') {
    if (CREDENTIAL_NAME.test(name)) return false;
    if (col === 'ARGS' && opts.fieldKinds) {
      const kind = ctx.kindOf(name, opts.fieldKinds);
      if (kind === 'password' || kind === 'secret') return false;
    }
  }
  return true;
}

/** The Set pattern of a rule's first link, or undefined when the rule must always be evaluated. */
function prefilterPattern(def: RuleDef): string | undefined {
  const first = def.links[0];
  if (!first || first.negated) return undefined;
  if (first.targets.some((t) => t.count || NOT_PREFILTERED.has(t.collection))) return undefined;
  let source: string;
  if (first.operator === 'rx') source = prefilterSource(first.argument);
  else if (first.operator === 'pm' && first.phrases && first.phrases.length > 0) source = phraseSource(first.phrases);
  else if (first.operator === 'contains' && !first.argument.includes('%{')) source = first.argument.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
  else return undefined;
  const probe = commonProbe(source);
  return probe ? undefined : source;
}

const probes = new Map<string, boolean>();

// Whether a pattern matches strings nearly every request carries (then the Set would always fire).
function commonProbe(source: string): boolean {
  let r = probes.get(source);
  if (r === undefined) {
    const re = new RE2(source, 'm');
    r = COMMON.some((s) => re.test(s));
    probes.set(source, r);
  }
  return r;
}

/** A candidate's name as events show it: `ARGS:q`, `REQUEST_HEADERS:user-agent`, `REQUEST_FILENAME`. */
function qualified(c: Candidate): string {
  return c.col === 'ARGS_NAMES' || c.col === 'REQUEST_COOKIES_NAMES' || c.col === 'REQUEST_HEADERS_NAMES' || c.name ? `${c.col}:${c.name}` : c.col;
}

/** The values of one request, grouped the way rules address them. */
class RequestContext {
  readonly host: string;
  readonly #req: WafRequest;
  readonly #trie: PipelineTrie;
  readonly #byCollection = new Map<string, Candidate[]>();
  // value → its result per trie node: each transformation step runs once per value and request.
  readonly #memo = new Map<string, Array<string | undefined>>();
  readonly #bytes = new Map<string, Buffer>();
  /** Per transformation: input → output, for this request (see PipelineTrie.compute). */
  readonly steps: Array<Map<string, string> | undefined> = [];
  #kinds: Map<string, FieldKind | undefined> | undefined;

  constructor(req: WafRequest, trie: PipelineTrie) {
    this.#req = req;
    this.#trie = trie;
    const args: Candidate[] = [];
    const headers: Candidate[] = [];
    const cookies: Candidate[] = [];
    let host = '';
    for (const v of req.values) {
      if (v.collection === 'ARGS') args.push({ col: 'ARGS', name: v.name, value: v.value });
      else if (v.collection === 'REQUEST_COOKIES') cookies.push({ col: 'REQUEST_COOKIES', name: v.name, value: v.value });
      else {
        if (v.name === 'host') host = v.value;
        if (!UNINSPECTED_HEADERS.has(v.name)) headers.push({ col: 'REQUEST_HEADERS', name: v.name, value: v.value });
      }
    }
    this.host = host;
    const q = req.url.indexOf('?');
    const path = q < 0 ? req.url : req.url.slice(0, q);
    const set = (k: string, c: Candidate[]) => this.#byCollection.set(k, c);
    const one = (col: string, value: string) => set(col, [{ col, name: '', value }]);
    set('ARGS', args);
    set('ARGS_GET', args);
    set('ARGS_POST', args);
    set('ARGS_NAMES', args.map((a) => ({ col: 'ARGS_NAMES', name: a.name, value: a.name })));
    set('REQUEST_HEADERS', headers);
    set('REQUEST_HEADERS_NAMES', headers.map((h) => ({ col: 'REQUEST_HEADERS_NAMES', name: h.name, value: h.name })));
    set('REQUEST_COOKIES', cookies);
    set('REQUEST_COOKIES_NAMES', cookies.map((c) => ({ col: 'REQUEST_COOKIES_NAMES', name: c.name, value: c.name })));
    one('REQUEST_FILENAME', path);
    one('REQUEST_BASENAME', path.slice(path.lastIndexOf('/') + 1));
    one('REQUEST_URI', req.url);
    one('REQUEST_URI_RAW', req.url);
    if (q < 0) set('QUERY_STRING', []);
    else one('QUERY_STRING', req.url.slice(q + 1));
    one('REQUEST_LINE', `${req.method} ${req.url} HTTP/1.1`);
    one('REQUEST_METHOD', req.method);
    if (req.rawBody !== undefined) one('REQUEST_BODY', req.rawBody);
    else set('REQUEST_BODY', []);
    // XML bodies: text content and attribute values (XML:/* and XML://@*), read crudely (no
    // entity expansion, no DTD): enough for the patterns to see what the document carries.
    const isXml = req.rawBody !== undefined && /xml/i.test(req.contentType ?? '');
    set('XML', isXml ? xmlValues(req.rawBody ?? '') : []);
  }

  collection(col: string): readonly Candidate[] | undefined {
    return this.#byCollection.get(col);
  }

  candidates(cl: CompiledLink, previous: readonly Candidate[], captures: readonly string[], rule: RuleDef, opts: EvaluateOptions): Candidate[] {
    const out: Candidate[] = [];
    for (const ct of cl.targets) {
      const t = ct.target;
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
        if (/^\d$/.test(k)) out.push({ col: 'TX', name: k, value: captures[Number(k)] ?? '' });
        // TX:/rfi_parameter_.*/ (931130): the values rule 931130's own first link captured.
        else if (k.startsWith('/')) for (const p of previous) out.push({ col: p.col, name: p.name, value: captures[1] ?? p.value });
        continue;
      }
      const all = this.#byCollection.get(col);
      if (!all) continue;
      if (t.count) {
        const n = ct.key ? all.filter((c) => (ct.key as (n: string) => boolean)(c.name)).length : all.length;
        out.push({ col: `&${col}`, name: '', value: String(n) });
        continue;
      }
      for (const c of all) {
        if (ct.key && !ct.key(c.name)) continue;
        if (ct.exclude.length > 0 && ct.exclude.some((e) => e(c.name))) continue;
        if (!this.#inspects(col, c.name, rule, opts)) continue;
        out.push(c);
      }
    }
    return out;
  }

  get request(): WafRequest {
    return this.#req;
  }

  /** The per-node results of one value (filled as steps are computed). */
  memoOf(value: string): Array<string | undefined> {
    let m = this.#memo.get(value);
    if (!m) {
      m = new Array<string | undefined>(this.#trie.size);
      m[0] = value;
      this.#memo.set(value, m);
    }
    return m;
  }

  /** A transformed value's UTF-8 bytes, once per request (only rules the prefilter let through need them). */
  readonly bytes = bytesOf.bind(this.#bytes);

  /** A field's kind (looked up once per request and name). */
  kindOf(name: string, kinds: ReadonlyMap<string, FieldKind>): FieldKind | undefined {
    this.#kinds ??= new Map();
    let kind = this.#kinds.get(name);
    if (kind === undefined && !this.#kinds.has(name)) {
      kind = fieldKindOf(kinds, name);
      this.#kinds.set(name, kind);
    }
    return kind;
  }

  /** Whether no rule at all inspects the field (its kind's list is empty). */
  uninspected(name: string, kinds: ReadonlyMap<string, FieldKind>): boolean {
    const kind = this.kindOf(name, kinds);
    if (kind === undefined) return false;
    const cats = KIND_CATEGORIES[kind];
    return cats !== 'all' && cats.length === 0;
  }

  #inspects(collection: string, name: string, rule: RuleDef, opts: EvaluateOptions): boolean {
    if (collection === 'ARGS' && opts.fieldKinds) {
      const kind = this.kindOf(name, opts.fieldKinds);
      if (kind && kind !== 'text') {
        const cats = KIND_CATEGORIES[kind];
        if (cats !== 'all' && !cats.includes(rule.category) && !cats.includes(String(rule.id))) return false;
      }
    }
    const ex = opts.exclusions;
    if (ex && ex.length > 0) {
      const qualifiedName = `${collection}:${name}`;
      for (const e of ex) if (e.ruleId === rule.id && (e.field === '*' || e.field === name || e.field === qualifiedName)) return false;
    }
    return true;
  }
}

function bytesOf(this: Map<string, Buffer>, value: string): Buffer {
  let b = this.get(value);
  if (!b) {
    b = Buffer.from(value, 'utf8');
    this.set(value, b);
  }
  return b;
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

function xmlValues(xml: string): Candidate[] {
  const out: Candidate[] = [];
  const text = xml
    .replace(/<!\[CDATA\[([\s\S]*?)\]\]>/g, '$1')
    .replace(/<[^>]*>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  if (text) out.push({ col: 'XML', name: '/*', value: text });
  for (const m of xml.matchAll(/\s[\w:.-]+\s*=\s*("([^"]*)"|'([^']*)')/g)) out.push({ col: 'XML', name: '//@*', value: m[2] ?? m[3] ?? '' });
  return out;
}
