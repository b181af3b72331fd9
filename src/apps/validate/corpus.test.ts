// The broken-manifest corpus: each case breaks one thing in a valid manifest and names the code and
// JSON Pointer the validator must report, with a position, a message and a hint.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { compileManifestText, type Diagnostic } from '../index.ts';

const BASE = `app: shop
version: 1.0.0
description: A small shop
roles:
  Clerk: {}
  Boss: {}
conditions:
  mine: row.owner == auth.user
entities:
  Order:
    attributes:
      title: { type: text, required: true, maxLength: 100 }
      total: { type: decimal, precision: 10, scale: 2 }
      state: { type: enum, values: [open, closed], default: open }
      owner: { type: user, required: true, immutable: true }
      customer: { type: reference, entity: Customer }
      secret: { type: text, encrypted: true, classification: confidential }
      placed: { type: datetime }
    indexes: [[owner], [state]]
    access:
      read: [Boss, { role: Clerk, where: mine }]
      create: [{ role: Clerk, preset: { owner: auth.user } }]
      update: [{ role: Clerk, where: "mine && row.state == 'open'", check: "row.state in ['open', 'closed']", fields: [title, total, state] }]
      delete: [Boss]
      fields:
        secret: { read: [Boss] }
  Customer:
    attributes:
      name: { type: text, required: true, unique: true }
    access:
      read: [Clerk, Boss]
actions:
  close:
    roles: [Boss]
    input:
      orderId: { type: uuid, required: true }
    source: actions/close.ts
timers:
  nightly: { action: close, schedule: "0 3 * * *" }
settings:
  limit: { type: integer, default: 10 }
  apiKey: { type: text, secret: true }
`;

const readFile = (p: string) => (p === 'actions/close.ts' ? 'export default async function close() {}\n' : undefined);
const compile = (text: string, file = 'shop.app.yaml') => compileManifestText(text, { file, readFile });

// biome-ignore lint/suspicious/noExplicitAny: the cases edit a parsed YAML document freely
type M = any;
const patched = (fn: (m: M) => void): string => {
  const m = parse(BASE) as M;
  fn(m);
  return stringify(m);
};
const order = (m: M) => m.entities.Order;
const A = '/entities/Order/attributes';
const R = '/entities/Order/access';

interface Case {
  readonly name: string;
  readonly text: string;
  readonly code: string;
  readonly pointer: string;
}
const c = (name: string, code: string, pointer: string, fn: (m: M) => void): Case => ({ name, code, pointer, text: patched(fn) });
const raw = (name: string, code: string, pointer: string, text: string): Case => ({ name, code, pointer, text });

// and/or flatten, so depth comes from alternating them.
const deep = Array.from({ length: 30 }).reduce<string>((e, _, i) => `(${e} ${i % 2 ? '&&' : '||'} row.total > ${i}.5)`, 'row.state == "open"');

const cases: Case[] = [
  // Unknown and missing keys, wrong values
  c('an unknown top-level key', 'APP_UNKNOWN_KEY', '/colour', (m) => (m.colour = 'red')),
  c('a misspelt attribute option', 'APP_UNKNOWN_KEY', `${A}/title/maxLenght`, (m) => (order(m).attributes.title.maxLenght = 5)),
  c('a misspelt entity key', 'APP_UNKNOWN_KEY', '/entities/Order/acess', (m) => (order(m).acess = {})),
  c('an unknown key in a rule object', 'APP_UNKNOWN_KEY', `${R}/read/1/wher`, (m) => (order(m).access.read[1].wher = 'true')),
  c('an unknown operation under access', 'APP_UNKNOWN_KEY', `${R}/list`, (m) => (order(m).access.list = ['Boss'])),
  c('a missing app name', 'APP_KEY_REQUIRED', '/app', (m) => delete m.app),
  c('a missing version', 'APP_KEY_REQUIRED', '/version', (m) => delete m.version),
  c('an attribute without a type', 'APP_KEY_REQUIRED', `${A}/title/type`, (m) => delete order(m).attributes.title.type),
  c('an unknown attribute type', 'APP_VALUE_INVALID', `${A}/title/type`, (m) => (order(m).attributes.title.type = 'txt')),
  c('a non-boolean required', 'APP_VALUE_INVALID', `${A}/title/required`, (m) => (order(m).attributes.title.required = 'yes')),
  c('an unknown classification', 'APP_VALUE_INVALID', `${A}/secret/classification`, (m) => (order(m).attributes.secret.classification = 'secret')),
  c('a rule entry that is a number', 'APP_VALUE_INVALID', `${R}/read/0`, (m) => (order(m).access.read[0] = 5)),
  c('retention of zero days', 'APP_VALUE_INVALID', '/entities/Order/retention/days', (m) => (order(m).retention = { days: 0 })),
  c('no roles', 'APP_VALUE_INVALID', '/roles', (m) => (m.roles = {})),
  c('no entities', 'APP_VALUE_INVALID', '/entities', (m) => (m.entities = {})),
  c('an entity without attributes', 'APP_VALUE_INVALID', '/entities/Customer/attributes', (m) => (m.entities.Customer.attributes = {})),
  // Names and limits
  c('an app name with capitals', 'APP_NAME_INVALID', '/app', (m) => (m.app = 'Shop')),
  c('a version that is not semver', 'APP_VERSION_INVALID', '/version', (m) => (m.version = '1.0')),
  c('a role name with a space', 'APP_NAME_INVALID', '/roles/Head Clerk', (m) => (m.roles['Head Clerk'] = {})),
  c('a lowercase entity name', 'APP_NAME_INVALID', '/entities/order', (m) => (m.entities.order = m.entities.Customer)),
  c('an attribute name with a capital first letter', 'APP_NAME_INVALID', `${A}/Title`, (m) => (order(m).attributes.Title = { type: 'text' })),
  c('an attribute name with an underscore', 'APP_NAME_INVALID', `${A}/due_date`, (m) => (order(m).attributes.due_date = { type: 'date' })),
  c('an attribute named id', 'APP_RESERVED_NAME', `${A}/id`, (m) => (order(m).attributes.id = { type: 'uuid' })),
  c('two entities differing only in case', 'APP_DUPLICATE_NAME', '/entities/ORDER', (m) => (m.entities.ORDER = m.entities.Customer)),
  c('more entities than the limit', 'APP_LIMIT_EXCEEDED', '/entities', (m) => {
    for (let i = 0; i < 100; i++) m.entities[`E${i}`] = { attributes: { a: { type: 'text' } }, access: { read: ['Boss'] } };
  }),
  c('more attributes than the limit', 'APP_LIMIT_EXCEEDED', `${A}`, (m) => {
    for (let i = 0; i < 200; i++) order(m).attributes[`a${i}`] = { type: 'text' };
  }),
  c('an enum with more values than the limit', 'APP_LIMIT_EXCEEDED', `${A}/state/values`, (m) => (order(m).attributes.state.values = Array.from({ length: 201 }, (_, i) => `v${i}`))),
  // References to roles, entities, attributes, actions
  c('an unknown role in a shorthand rule', 'APP_UNKNOWN_ROLE', `${R}/read/0`, (m) => (order(m).access.read[0] = 'Chief')),
  c('an unknown role in a rule object', 'APP_UNKNOWN_ROLE', `${R}/read/1/role`, (m) => (order(m).access.read[1].role = 'Chief')),
  c('an unknown role in an action', 'APP_UNKNOWN_ROLE', '/actions/close/roles/0', (m) => (m.actions.close.roles = ['Chief'])),
  c('an unknown role in a field rule', 'APP_UNKNOWN_ROLE', `${R}/fields/secret/read/0`, (m) => (order(m).access.fields.secret.read = ['Chief'])),
  c('a reference to an unknown entity', 'APP_UNKNOWN_ENTITY', `${A}/customer/entity`, (m) => (order(m).attributes.customer.entity = 'Client')),
  c('an index on an unknown attribute', 'APP_UNKNOWN_ATTRIBUTE', '/entities/Order/indexes/2/0', (m) => order(m).indexes.push(['nope'])),
  c('a field list with an unknown attribute', 'APP_UNKNOWN_ATTRIBUTE', `${R}/update/0/fields/0`, (m) => (order(m).access.update[0].fields = ['nope'])),
  c('a field rule on an unknown attribute', 'APP_UNKNOWN_ATTRIBUTE', `${R}/fields/nope`, (m) => (order(m).access.fields.nope = { read: ['Boss'] })),
  c('a preset on an unknown attribute', 'APP_UNKNOWN_ATTRIBUTE', `${R}/create/0/preset/creator`, (m) => (order(m).access.create[0].preset.creator = 'auth.user')),
  c('retention from an unknown attribute', 'APP_UNKNOWN_ATTRIBUTE', '/entities/Order/retention/from', (m) => (order(m).retention = { days: 30, from: 'closedAt' })),
  c('a timer naming an unknown action', 'APP_UNKNOWN_ACTION', '/timers/nightly/action', (m) => (m.timers.nightly.action = 'open')),
  // Attribute options
  c('a reference without an entity', 'APP_ATTRIBUTE_OPTION_INVALID', `${A}/customer`, (m) => delete order(m).attributes.customer.entity),
  c('precision on a text attribute', 'APP_ATTRIBUTE_OPTION_INVALID', `${A}/title/precision`, (m) => (order(m).attributes.title.precision = 4)),
  c('a decimal without precision and scale', 'APP_ATTRIBUTE_OPTION_INVALID', `${A}/total`, (m) => (order(m).attributes.total = { type: 'decimal' })),
  c('a scale above the precision', 'APP_ATTRIBUTE_OPTION_INVALID', `${A}/total/scale`, (m) => (order(m).attributes.total.scale = 12)),
  c('an enum without values', 'APP_ATTRIBUTE_OPTION_INVALID', `${A}/state`, (m) => (order(m).attributes.state = { type: 'enum' })),
  c('values on a text attribute', 'APP_ATTRIBUTE_OPTION_INVALID', `${A}/title/values`, (m) => (order(m).attributes.title.values = ['a'])),
  c('maxLength on an integer', 'APP_ATTRIBUTE_OPTION_INVALID', `${A}/qty/maxLength`, (m) => (order(m).attributes.qty = { type: 'integer', maxLength: 3 })),
  c('a pattern that is not a regular expression', 'APP_ATTRIBUTE_OPTION_INVALID', `${A}/title/pattern`, (m) => (order(m).attributes.title.pattern = '[')),
  c('min above max', 'APP_ATTRIBUTE_OPTION_INVALID', `${A}/total/min`, (m) => Object.assign(order(m).attributes.total, { min: 10, max: 1 })),
  c('min on a boolean', 'APP_ATTRIBUTE_OPTION_INVALID', `${A}/paid/min`, (m) => (order(m).attributes.paid = { type: 'boolean', min: 0 })),
  c('a max that does not fit the decimal', 'APP_ATTRIBUTE_OPTION_INVALID', `${A}/total/max`, (m) => (order(m).attributes.total.max = '123456789.5')),
  c('setNull on a required reference', 'APP_ATTRIBUTE_OPTION_INVALID', `${A}/customer/onDelete`, (m) => Object.assign(order(m).attributes.customer, { required: true, onDelete: 'setNull' })),
  c('minLength above maxLength', 'APP_ATTRIBUTE_OPTION_INVALID', `${A}/title/minLength`, (m) => (order(m).attributes.title.minLength = 200)),
  c('searchable on an encrypted integer', 'APP_ATTRIBUTE_OPTION_INVALID', `${A}/pin/searchable`, (m) => (order(m).attributes.pin = { type: 'integer', encrypted: true, searchable: true })),
  c('retention from a text attribute', 'APP_ATTRIBUTE_OPTION_INVALID', '/entities/Order/retention/from', (m) => (order(m).retention = { days: 30, from: 'title' })),
  // Defaults
  c('a default outside the enum', 'APP_DEFAULT_INVALID', `${A}/state/default`, (m) => (order(m).attributes.state.default = 'done')),
  c('a $user default', 'APP_DEFAULT_INVALID', `${A}/title/default`, (m) => (order(m).attributes.title.default = '$user')),
  c('a default on a user attribute', 'APP_DEFAULT_INVALID', `${A}/owner/default`, (m) => (order(m).attributes.owner.default = '00000000-0000-4000-8000-000000000001')),
  c('a default on an encrypted attribute', 'APP_DEFAULT_INVALID', `${A}/secret/default`, (m) => (order(m).attributes.secret.default = 'x')),
  c('a default longer than maxLength', 'APP_DEFAULT_INVALID', `${A}/title/default`, (m) => (order(m).attributes.title.default = 'x'.repeat(101))),
  c('a decimal default with too many fraction digits', 'APP_DEFAULT_INVALID', `${A}/total/default`, (m) => (order(m).attributes.total.default = '1.234')),
  c('a default that breaks the pattern', 'APP_DEFAULT_INVALID', `${A}/code/default`, (m) => (order(m).attributes.code = { type: 'text', pattern: '^[A-Z]{3}$', default: 'eur' })),
  c('a date default that is not a date', 'APP_DEFAULT_INVALID', `${A}/due/default`, (m) => (order(m).attributes.due = { type: 'date', default: '2025-02-30' })),
  // Encryption
  c('an encrypted boolean', 'APP_ENCRYPTED_TYPE', `${A}/paid/encrypted`, (m) => (order(m).attributes.paid = { type: 'boolean', encrypted: true })),
  c('an encrypted reference', 'APP_ENCRYPTED_TYPE', `${A}/customer/encrypted`, (m) => (order(m).attributes.customer.encrypted = true)),
  c('an encrypted enum', 'APP_ENCRYPTED_TYPE', `${A}/state/encrypted`, (m) => Object.assign(order(m).attributes.state, { encrypted: true, default: undefined })),
  c('searchable without encryption', 'APP_SEARCHABLE_NOT_ENCRYPTED', `${A}/title/searchable`, (m) => (order(m).attributes.title.searchable = true)),
  c('a unique encrypted attribute', 'APP_ENCRYPTED_INDEX', `${A}/secret/unique`, (m) => (order(m).attributes.secret.unique = true)),
  c('an index on an encrypted attribute', 'APP_ENCRYPTED_INDEX', '/entities/Order/indexes/2/0', (m) => order(m).indexes.push(['secret'])),
  // Indexes
  c('an empty index', 'APP_INDEX_INVALID', '/entities/Order/indexes/2', (m) => order(m).indexes.push([])),
  c('the same index twice', 'APP_INDEX_INVALID', '/entities/Order/indexes/2', (m) => order(m).indexes.push(['state'])),
  c('an index naming an attribute twice', 'APP_INDEX_INVALID', '/entities/Order/indexes/2/attributes', (m) => order(m).indexes.push({ attributes: ['state', 'state'] })),
  c('an index on a json attribute', 'APP_INDEX_INVALID', '/entities/Order/indexes/2/0', (m) => {
    order(m).attributes.extra = { type: 'json' };
    order(m).indexes.push(['extra']);
  }),
  c('an index name with capitals', 'APP_NAME_INVALID', '/entities/Order/indexes/2/name', (m) => order(m).indexes.push({ attributes: ['title'], name: 'ByTitle' })),
  // Rules
  c('a rule in the old shorthand', 'APP_RULE_SYNTAX', `${R}/read/1/where`, (m) => (order(m).access.read[1].where = 'owner = $user')),
  c('a rule with an unbalanced parenthesis', 'APP_RULE_SYNTAX', `${R}/read/1/where`, (m) => (order(m).access.read[1].where = '(row.state == "open"')),
  c('a rule reading an unknown attribute', 'APP_UNKNOWN_ATTRIBUTE', `${R}/read/1/where`, (m) => (order(m).access.read[1].where = 'row.ownr == auth.user')),
  c('a rule comparing a decimal with a string', 'APP_RULE_TYPE', `${R}/read/1/where`, (m) => (order(m).access.read[1].where = 'row.total == "x"')),
  c('a rule with a value outside the enum', 'APP_RULE_TYPE', `${R}/read/1/where`, (m) => (order(m).access.read[1].where = "row.state == 'done'")),
  c('a rule ordering strings', 'APP_RULE_TYPE', `${R}/read/1/where`, (m) => (order(m).access.read[1].where = 'row.title < "m"')),
  c('a rule that is not a condition', 'APP_RULE_TYPE', `${R}/read/1/where`, (m) => (order(m).access.read[1].where = 'row.title')),
  c('a rule comparing a user with a malformed id', 'APP_RULE_TYPE', `${R}/read/1/where`, (m) => (order(m).access.read[1].where = 'row.owner == "bob"')),
  c('a rule reading an encrypted attribute', 'APP_RULE_ENCRYPTED', `${R}/read/1/where`, (m) => (order(m).access.read[1].where = 'row.secret == "x"')),
  c('a rule using matches()', 'APP_RULE_UNSUPPORTED', `${R}/read/1/where`, (m) => (order(m).access.read[1].where = 'row.title.matches("^a")')),
  c('a rule using the exists macro', 'APP_RULE_UNSUPPORTED', `${R}/read/1/where`, (m) => (order(m).access.read[1].where = 'auth.roles.exists(r, r == "Boss")')),
  c('a rule using ?:', 'APP_RULE_UNSUPPORTED', `${R}/read/1/where`, (m) => (order(m).access.read[1].where = 'row.total > 1.0 ? true : false')),
  c('a rule with arithmetic on attributes', 'APP_RULE_UNSUPPORTED', `${R}/read/1/where`, (m) => (order(m).access.read[1].where = 'row.total * 2 > 10')),
  c('a rule following a reference', 'APP_RULE_UNSUPPORTED', `${R}/read/1/where`, (m) => (order(m).access.read[1].where = 'row.customer.name == "x"')),
  c('old.* in a where', 'APP_RULE_VARIABLE', `${R}/update/0/where`, (m) => (order(m).access.update[0].where = 'old.state == "open"')),
  c('an unknown member of auth', 'APP_RULE_VARIABLE', `${R}/read/1/where`, (m) => (order(m).access.read[1].where = 'row.owner == auth.email')),
  c('an unknown named condition', 'APP_UNKNOWN_CONDITION', `${R}/read/1/where`, (m) => (order(m).access.read[1].where = 'theirs')),
  c('named conditions in a cycle', 'APP_CONDITION_CYCLE', '/conditions/b', (m) => {
    m.conditions.a = 'b';
    m.conditions.b = 'a';
    order(m).access.read[1].where = 'a';
  }),
  c('a named condition with a syntax error', 'APP_RULE_SYNTAX', '/conditions/mine', (m) => (m.conditions.mine = 'row.owner === auth.user')),
  c('a named condition with a type error', 'APP_RULE_TYPE', '/conditions/mine', (m) => (m.conditions.mine = 'row.owner == 5')),
  c('a condition named like a variable', 'APP_RESERVED_NAME', '/conditions/row', (m) => (m.conditions.row = 'true')),
  c('a rule longer than the limit', 'APP_RULE_TOO_COMPLEX', `${R}/read/1/where`, (m) => (order(m).access.read[1].where = Array.from({ length: 120 }, () => 'row.state == "open"').join(' || '))),
  c('a rule deeper than the limit', 'APP_RULE_TOO_COMPLEX', `${R}/read/1/where`, (m) => (order(m).access.read[1].where = deep)),
  c('where on a create rule', 'APP_RULE_PLACEMENT', `${R}/create/0/where`, (m) => (order(m).access.create[0].where = 'mine')),
  c('check on a read rule', 'APP_RULE_PLACEMENT', `${R}/read/1/check`, (m) => (order(m).access.read[1].check = 'mine')),
  c('fields on a delete rule', 'APP_RULE_PLACEMENT', `${R}/delete/0/fields`, (m) => (order(m).access.delete[0] = { role: 'Boss', fields: ['title'] })),
  c('an immutable attribute in update fields', 'APP_RULE_PLACEMENT', `${R}/update/0/fields/0`, (m) => (order(m).access.update[0].fields = ['owner'])),
  c('a preset of the wrong type', 'APP_RULE_TYPE', `${R}/create/0/preset/owner`, (m) => (order(m).access.create[0].preset.owner = 'now')),
  c('a preset reading the row', 'APP_RULE_VARIABLE', `${R}/create/0/preset/title`, (m) => (order(m).access.create[0].preset.title = 'row.state')),
  // Actions, timers, settings
  c('an action source that does not exist', 'APP_ACTION_SOURCE', '/actions/close/source', (m) => (m.actions.close.source = 'actions/missing.ts')),
  c('an action source outside the app folder', 'APP_ACTION_SOURCE', '/actions/close/source', (m) => (m.actions.close.source = '../secrets.ts')),
  c('an enum input without values', 'APP_ATTRIBUTE_OPTION_INVALID', '/actions/close/input/reason', (m) => (m.actions.close.input.reason = { type: 'enum' })),
  c('a timer with every and schedule', 'APP_TIMER_INVALID', '/timers/nightly', (m) => (m.timers.nightly.every = '1h')),
  c('a timer with a malformed cron expression', 'APP_TIMER_INVALID', '/timers/nightly/schedule', (m) => (m.timers.nightly.schedule = 'every night')),
  c('a timer more often than once a minute', 'APP_TIMER_INVALID', '/timers/nightly/every', (m) => (m.timers.nightly = { action: 'close', every: '10s' })),
  c('a secret setting with a default', 'APP_SETTING_INVALID', '/settings/apiKey/default', (m) => (m.settings.apiKey.default = 'k')),
  c('a setting default of the wrong type', 'APP_SETTING_INVALID', '/settings/limit/default', (m) => (m.settings.limit.default = 'ten')),
  c('a setting value for a malformed stage name', 'APP_NAME_INVALID', '/settings/limit/stages/Prod', (m) => (m.settings.limit.stages = { Prod: 5 })),
  // The file itself
  raw('a YAML syntax error', 'APP_YAML_SYNTAX', '', 'app: shop\nroles: [a\n'),
  raw('a duplicate key', 'APP_YAML_DUPLICATE_KEY', '', BASE.replace('  Boss: {}\n', '  Boss: {}\n  Clerk: {}\n')),
  raw('a YAML alias bomb', 'APP_YAML_ALIAS_LIMIT', '', `a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n`),
  raw('a YAML tag', 'APP_YAML_SYNTAX', '', `${BASE}extra: !!js/function "function () {}"\n`),
  raw('two YAML documents', 'APP_YAML_SYNTAX', '', `${BASE}---\napp: other\n`),
  raw('a manifest over the size limit', 'APP_MANIFEST_TOO_LARGE', '', `${BASE}description2: "${'x'.repeat(1024 * 1024)}"\n`),
  raw('a manifest that is a list', 'APP_VALUE_INVALID', '', '- app: shop\n'),
  raw('JSON with a duplicate key', 'APP_YAML_DUPLICATE_KEY', '', '{"app": "shop", "app": "shop2"}'),
  raw('JSON with an unknown key', 'APP_UNKNOWN_KEY', '/colour', JSON.stringify({ ...(parse(BASE) as object), colour: 'red' })),
];

describe('the broken-manifest corpus', () => {
  test('the base manifest of the corpus is valid', () => {
    const r = compile(BASE);
    assert.deepEqual(r.errors, []);
    assert.ok(r.ir);
  });

  test(`the corpus has at least 60 cases with distinct names (${cases.length})`, () => {
    assert.ok(cases.length >= 60);
    assert.equal(new Set(cases.map((x) => x.name)).size, cases.length);
  });

  for (const k of cases) {
    test(`${k.name} is refused with ${k.code} at ${k.pointer || '(the file)'}`, () => {
      const r = compile(k.text);
      assert.equal(r.ok, false, 'the manifest must not compile');
      assert.equal(r.ir, undefined);
      const hit = r.errors.find((d) => d.code === k.code && d.pointer === k.pointer);
      const show = (ds: readonly Diagnostic[]) => ds.map((d) => `${d.code} ${d.pointer} ${d.message}`).join('\n');
      assert.ok(hit, `expected ${k.code} at ${k.pointer}, got:\n${show(r.errors)}`);
      assert.ok(hit.line >= 1 && hit.column >= 1, 'a position');
      assert.ok(hit.message.length > 0 && hit.hint.length > 0, 'what is wrong and how to fix it');
      assert.equal(hit.file, 'shop.app.yaml');
    });
  }
});
