import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { checkRule, evaluateRule, parseRule, printRule, type RuleAttribute } from './index.ts';

const attrs = new Map<string, RuleAttribute>([
  ['id', { type: 'uuid', nullable: false }],
  ['status', { type: 'string', nullable: true, enumValues: ['draft', 'submitted'] }],
  ['amount', { type: 'decimal', nullable: true }],
  ['title', { type: 'string', nullable: true }],
  ['owner', { type: 'uuid', nullable: false }],
  ['at', { type: 'timestamp', nullable: true }],
]);
const check = (text: string, place: 'where' | 'update-check' | 'preset' = 'where') => checkRule(text, { attributes: attrs, place });
const ok = (text: string) => {
  const r = check(text);
  assert.ok(r.ok, JSON.stringify(!r.ok && r.problems));
  return r.expr;
};
const input = (row: Record<string, unknown>) => ({ row, auth: { user: '00000000-0000-4000-8000-000000000001', roles: ['Manager'] }, now: new Date('2025-01-01T00:00:00Z') });

describe('the rule profile', () => {
  test('prints rules canonically, with only the parentheses that matter', () => {
    assert.equal(printRule(ok("(row.status == 'draft') && ((row.amount > 5) || !has(row.title))")), 'row.status == "draft" && (row.amount > 5 || !(row.title != null))');
    assert.equal(printRule(ok('row.amount >= 0.50')), 'row.amount >= 0.5');
    assert.equal(printRule(ok('row.at > now - duration("1h30m")')), 'row.at > now - duration("90m")');
  });

  test('refuses what is outside the profile with a position', () => {
    const r = parseRule('row.title.matches("^a")');
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.problems[0]?.code, 'APP_RULE_UNSUPPORTED');
    assert.equal(!r.ok && r.problems[0]?.start, 0);
    const e = parseRule('row.amount > 1e3');
    assert.equal(!e.ok && e.problems[0]?.code, 'APP_RULE_UNSUPPORTED');
    assert.equal(!e.ok && e.problems[0]?.start, 13);
  });

  test('old.* is available in update checks only, the row not in presets', () => {
    assert.equal(check('row.status == old.status', 'update-check').ok, true);
    const w = check('row.status == old.status');
    assert.equal(!w.ok && w.problems[0]?.code, 'APP_RULE_VARIABLE');
    const p = checkRule('row.status', { attributes: attrs, place: 'preset' }, 'value');
    assert.equal(!p.ok && p.problems[0]?.code, 'APP_RULE_VARIABLE');
  });

  test('a null attribute: ordering and string tests are false, == null is true, != "x" is true', () => {
    const row = { status: null, amount: null, title: null, owner: '00000000-0000-4000-8000-000000000001', at: null };
    const truth = (text: string) => evaluateRule(ok(text), attrs, input(row));
    assert.equal(truth('row.amount > 0'), false);
    assert.equal(truth('row.amount <= 0'), false);
    assert.equal(truth('!(row.amount > 0)'), true);
    assert.equal(truth('row.title.startsWith("a")'), false);
    assert.equal(truth('row.title == null'), true);
    assert.equal(truth('row.status != "draft"'), true);
    assert.equal(truth('row.status == "draft"'), false);
    assert.equal(truth('row.status in ["draft"]'), false);
    assert.equal(truth('size(row.title) == 0'), false);
    assert.equal(truth('row.owner == auth.user'), true);
  });

  test('decimals compare exactly, ids case-insensitively', () => {
    const row = { amount: '0.30', owner: '00000000-0000-4000-8000-00000000000A' };
    assert.equal(evaluateRule(ok('row.amount == 0.3'), attrs, input(row)), true);
    assert.equal(evaluateRule(ok('row.amount > 0.299999999999999999999'), attrs, input(row)), true);
    assert.equal(evaluateRule(ok('row.owner == "00000000-0000-4000-8000-00000000000a"'), attrs, input(row)), true);
  });
});

test('every example rule in docs/app-manifest.md type-checks against the reference Claim', async () => {
  const { readFileSync } = await import('node:fs');
  const doc = readFileSync(new URL('../../../docs/app-manifest.md', import.meta.url), 'utf8');
  const block = /### Examples\n\n```text\n([\s\S]*?)```/.exec(doc)?.[1] ?? '';
  const examples = block
    .split('\n')
    .map((l) => l.replace(/\s+#.*$/, '').trim())
    .filter(Boolean);
  assert.ok(examples.length >= 8);
  const claim = new Map<string, RuleAttribute>([
    ...attrs,
    ['currency', { type: 'string', nullable: true }],
    ['submittedAt', { type: 'timestamp', nullable: true }],
    ['category', { type: 'uuid', nullable: true }],
    ['status', { type: 'string', nullable: false, enumValues: ['draft', 'submitted', 'approved', 'rejected'] }],
  ]);
  for (const e of examples) {
    const r = checkRule(e, { attributes: claim, place: 'update-check' });
    assert.ok(r.ok, `${e}: ${JSON.stringify(!r.ok && r.problems)}`);
  }
});
