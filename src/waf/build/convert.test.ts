// The CRS converter on a sample of real CRS rules (from the vendored files): the rules come out
// as data the engine runs, and known attacks fire them while benign values do not.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { WafEngine } from '../engine.ts';
import { wafRequestOf } from '../request.ts';
import { convertRules, parseTargets, splitActions, splitStatements } from './convert.ts';

const vendor = new URL('../../../vendor/crs/rules/', import.meta.url);
const file = (name: string) => ({ name, text: readFileSync(new URL(name, vendor), 'utf8') });
const data = (name: string) => readFileSync(new URL(name, vendor), 'utf8');
const set = convertRules(
  [file('REQUEST-930-APPLICATION-ATTACK-LFI.conf'), file('REQUEST-932-APPLICATION-ATTACK-RCE.conf'), file('REQUEST-941-APPLICATION-ATTACK-XSS.conf'), file('REQUEST-942-APPLICATION-ATTACK-SQLI.conf')],
  data,
  'test',
);
const engine = new WafEngine(set);
const scoreOf = (value: string, pl = 1) => engine.evaluate(wafRequestOf({ method: 'GET', url: '/x', headers: { host: 'localhost' }, query: { q: value } }), { paranoiaLevel: pl });

test('a SecRule with continuation lines becomes one statement with variables, operator and actions', () => {
  const [st] = splitStatements('# comment\nSecRule ARGS|!ARGS:foo "@rx a\\"b" \\\n    "id:1,\\\n    phase:2,t:none,t:lowercase,msg:\'x, y\'"\n');
  assert.ok(st);
  assert.equal(st.variables, 'ARGS|!ARGS:foo');
  assert.equal(st.operator, '@rx a"b');
  assert.deepEqual(splitActions(st.actions).find(([k]) => k === 'msg'), ['msg', 'x, y']);
  assert.deepEqual(parseTargets(st.variables), [{ collection: 'ARGS', exclude: ['foo'] }]);
});

test('rules keep their id, paranoia level, severity score and category score variable', () => {
  const r942100 = set.rules.find((r) => r.id === 942100);
  assert.ok(r942100);
  assert.equal(r942100.pl, 1);
  assert.equal(r942100.score, 5);
  assert.equal(r942100.scoreVariable, 'sql_injection_score');
  assert.equal(r942100.links[0]?.operator, 'detectSQLi');
  assert.deepEqual(r942100.links[0]?.transforms, ['utf8toUnicode', 'urlDecodeUni', 'removeNulls']);
  const pl2 = set.rules.filter((r) => r.category === '942' && r.pl === 2);
  assert.ok(pl2.length > 10, 'PL2 rules are kept, gated by the paranoia level at run time');
});

test('@pmFromFile rules carry the data file phrases inline', () => {
  const r930120 = set.rules.find((r) => r.id === 930120);
  assert.ok(r930120?.links[0]?.phrases?.includes('etc/passwd'));
});

test('chained rules keep every link', () => {
  const chained = set.rules.filter((r) => r.links.length > 1);
  assert.ok(chained.length > 5);
  assert.ok(chained.some((r) => r.links.some((l) => l.targets.some((t) => t.collection === 'MATCHED_VARS'))));
});

test('control rules that add no anomaly score are listed as skipped, not evaluated', () => {
  assert.ok(set.skipped.some((s) => s.id === 941010));
  assert.ok(!set.rules.some((r) => r.id === 941010));
});

test('known attacks fire the converted rules and score at or above the inbound threshold', () => {
  const cases: Array<[string, string]> = [
    ['../../../../etc/passwd', '930'],
    [';cat /etc/passwd', '932'],
    ['<script>alert(document.cookie)</script>', '941'],
    ["1' UNION SELECT username, password FROM users--", '942'],
  ];
  for (const [value, category] of cases) {
    const v = scoreOf(value);
    assert.ok(v.score >= 5, `${value}: score ${v.score}`);
    assert.ok(v.matches.some((m) => m.category === category), `${value}: a ${category} rule fired (${v.matches.map((m) => m.ruleId)})`);
  }
});

test('benign values do not fire at paranoia level 1', () => {
  for (const value of ['Ada Lovelace', 'The meeting is on 2024-05-12 at 10:30.', "O'Brien & Sons Ltd", 'ada@example.org', 'Please select a colour']) {
    assert.equal(scoreOf(value).score, 0, value);
  }
});

test('a rule above the paranoia level does not run', () => {
  const pl2Only = set.rules.find((r) => r.id === 942430);
  assert.equal(pl2Only?.pl, 2);
  const value = "a'b'c'd'e'f'g'h'i'j'k'l'm";
  assert.ok(!scoreOf(value, 1).matches.some((m) => m.ruleId === 942430));
  assert.ok(scoreOf(value, 2).matches.some((m) => m.ruleId === 942430));
});

test('the checked-in generated file is what the converter makes from the vendored rules', async () => {
  const { crsRuleSet } = await import('../index.ts');
  const { readdirSync } = await import('node:fs');
  const files = readdirSync(vendor)
    .filter((f) => /^REQUEST-9\d\d-.*\.conf$/.test(f))
    .sort()
    .map(file);
  const rebuilt = convertRules(files, data, crsRuleSet().source);
  assert.deepEqual(rebuilt, crsRuleSet(), 'run `npm run waf:rules` after changing vendor/crs/');
});
