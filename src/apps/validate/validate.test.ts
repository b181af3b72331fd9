import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compileDdl, compileManifestText } from '../index.ts';

const base = (access: string, extra = '') => `app: shop
version: 1.0.0
roles:
  Clerk: {}
  Boss: {}
entities:
  Order:
    attributes:
      title: { type: text }
      state: { type: enum, values: [open, closed] }
      owner: { type: user }
      card: { type: text, classification: restricted }
${extra}    access:
${access}`;
const compile = (text: string) => compileManifestText(text, { file: 'm.yaml' });

describe('manifest validation', () => {
  test('every error is reported at once, in file order', () => {
    const r = compile(base('      read: [Chef, { role: Clerk, where: "row.nope == 1" }]\n      delete: [Nobody]\n'));
    assert.deepEqual(
      r.errors.map((d) => [d.code, d.pointer]),
      [
        ['APP_UNKNOWN_ROLE', '/entities/Order/access/read/0'],
        ['APP_UNKNOWN_ATTRIBUTE', '/entities/Order/access/read/1/where'],
        ['APP_UNKNOWN_ROLE', '/entities/Order/access/delete/0'],
      ],
    );
  });

  test('a text format goes into the IR; plain or none leaves the type (and the revision hash) as it was; on another type it is an error', () => {
    const withFormat = (f: string) => base('      read: [Clerk]\n').replace('title: { type: text }', `title: { type: text${f} }`);
    const none = compile(withFormat(''));
    const plain = compile(withFormat(', format: plain'));
    const md = compile(withFormat(', format: markdown'));
    assert.deepEqual([none.errors, plain.errors, md.errors], [[], [], []]);
    assert.equal(plain.revision?.hash, none.revision?.hash);
    assert.notEqual(md.revision?.hash, none.revision?.hash);
    assert.deepEqual(md.ir?.entities[0]?.attributes.find((a) => a.name === 'title')?.type, { kind: 'text', format: 'markdown' });
    const wrong = compile(base('      read: [Clerk]\n').replace('state: { type: enum, values: [open, closed] }', 'state: { type: enum, values: [open, closed], format: url }'));
    assert.deepEqual(wrong.errors.map((d) => [d.code, d.pointer]), [['APP_ATTRIBUTE_OPTION_INVALID', '/entities/Order/attributes/state/format']]);
  });

  test('an error inside a rule points at the offending part of the expression', () => {
    const text = base('      read:\n        - { role: Clerk, where: "row.state == \'open\' && row.titel == \'x\'" }\n        - Boss\n');
    const r = compile(text);
    const d = r.errors.find((x) => x.code === 'APP_UNKNOWN_ATTRIBUTE');
    assert.ok(d);
    const line = text.split('\n')[d.line - 1] as string;
    assert.equal(line.slice(d.column - 1, d.column - 1 + 'row.titel'.length), 'row.titel');
  });

  test('an error inside a single-quoted and a block rule is placed too', () => {
    const text = base("      read:\n        - role: Clerk\n          where: |\n            row.state == 'open' &&\n              row.titel == 'x'\n        - Boss\n");
    const d = compile(text).errors.find((x) => x.code === 'APP_UNKNOWN_ATTRIBUTE');
    assert.ok(d);
    const line = text.split('\n')[d.line - 1] as string;
    assert.equal(line.slice(d.column - 1, d.column - 1 + 9), 'row.titel');
    const quoted = base("      read:\n        - { role: Clerk, where: 'row.state == ''open'' && row.titel == 1' }\n        - Boss\n");
    const q = compile(quoted).errors.find((x) => x.code === 'APP_UNKNOWN_ATTRIBUTE');
    assert.ok(q);
    assert.equal((quoted.split('\n')[q.line - 1] as string).slice(q.column - 1, q.column + 8), 'row.titel');
  });

  test('an unknown key is placed on the key itself', () => {
    const text = base('      read: [Boss, Clerk]\n').replace('title: { type: text }', 'title: { type: text, maxLenght: 3 }');
    const d = compile(text).errors.find((x) => x.code === 'APP_UNKNOWN_KEY');
    assert.ok(d);
    assert.equal(d.pointer, '/entities/Order/attributes/title/maxLenght');
    assert.equal((text.split('\n')[d.line - 1] as string).slice(d.column - 1, d.column - 1 + 9), 'maxLenght');
    assert.match(d.hint, /maxLength/);
  });

  test('restricted data readable on every row by a role is a warning, not an error', () => {
    const r = compile(base('      read: [Boss, { role: Clerk, where: "row.owner == auth.user" }]\n', '    indexes: [[owner]]\n'));
    assert.equal(r.ok, true);
    const w = r.warnings.filter((x) => x.code === 'APP_RESTRICTED_UNCONDITIONAL');
    assert.deepEqual(
      w.map((x) => x.pointer),
      ['/entities/Order/access/read/0'],
    );
  });

  test('a row condition on columns without an index warns with the index to add', () => {
    const r = compile(base('      read: [{ role: Clerk, where: "row.owner == auth.user && row.state == \'open\'" }, { role: Boss, where: "row.title.startsWith(\'A\')" }]\n'));
    assert.equal(r.ok, true);
    const w = r.warnings.filter((x) => x.code === 'APP_RULE_UNINDEXED');
    assert.deepEqual(
      w.map((x) => [x.pointer, x.hint]),
      [
        ['/entities/Order/access/read/0/where', 'add indexes: [[owner, state, id]] to Order'],
        ['/entities/Order/access/read/1/where', 'add indexes: [[title]] to Order'],
      ],
    );
    const indexed = compile(base('      read: [{ role: Clerk, where: "row.owner == auth.user && row.state == \'open\'" }, Boss]\n', '    indexes: [[owner, state]]\n'));
    assert.deepEqual(
      indexed.warnings.filter((x) => x.code === 'APP_RULE_UNINDEXED'),
      [],
    );
  });

  test('a read rule of equalities is recommended an index ending with the id (the keyset order); following the hint silences it', () => {
    const own = (extra = '') => base('      read: [Boss, { role: Clerk, where: "row.owner == auth.user" }]\n      update: [{ role: Clerk, where: "row.owner == auth.user" }]\n', extra);
    const hints = compile(own()).warnings.filter((x) => x.code === 'APP_RULE_UNINDEXED').map((x) => [x.pointer, x.hint]);
    assert.deepEqual(hints, [
      ['/entities/Order/access/read/1/where', 'add indexes: [[owner, id]] to Order'],
      // A change reads its row by id: the row condition needs no ordered range.
      ['/entities/Order/access/update/0/where', 'add indexes: [[owner]] to Order'],
    ]);
    const followed = compile(own('    indexes: [[owner, id]]\n'));
    assert.equal(followed.ok, true, JSON.stringify(followed.errors));
    assert.deepEqual(followed.warnings.filter((x) => x.code === 'APP_RULE_UNINDEXED'), []);
    assert.deepEqual(followed.ir?.entities[0]?.indexes.map((ix) => [ix.name, ix.attributes]), [['order_owner_id_idx', ['owner', 'id']]]);
    assert.ok(followed.ir);
    const ddl = compileDdl(followed.ir, { schema: 'st_x' }).filter((d) => d.kind === 'create-index').map((d) => d.sql);
    assert.deepEqual(ddl, ['CREATE INDEX "order_owner_id_idx" ON "st_x"."Order" ("owner", "id")']);
  });

  test('id may only end an index, after an attribute', () => {
    for (const [ix, pointer] of [['[id]', '/entities/Order/indexes/0/0'], ['[id, owner]', '/entities/Order/indexes/0/0']] as const) {
      const r = compile(base('      read: [Boss, Clerk]\n', `    indexes: [${ix}]\n`));
      const d = r.errors.find((x) => x.code === 'APP_INDEX_INVALID');
      assert.ok(d, `${ix}: ${JSON.stringify(r.errors)}`);
      assert.equal(d.pointer, pointer);
      assert.match(d.hint, /\[owner, id\]/);
    }
  });

  test('an unused role and an entity nobody may use are warnings', () => {
    const r = compile(base('      read: []\n'));
    assert.equal(r.ok, true);
    assert.deepEqual(r.warnings.map((x) => x.code).sort(), ['APP_ENTITY_NO_ACCESS', 'APP_ROLE_UNUSED', 'APP_ROLE_UNUSED']);
  });

  test('named conditions are expanded into the rule stored in the IR', () => {
    const text = base('      read: [Boss, { role: Clerk, where: "own && open" }]\n', '    indexes: [[owner]]\n').replace('entities:', 'conditions:\n  own: row.owner == auth.user\n  open: row.state == "open"\nentities:');
    const r = compile(text);
    assert.ok(r.ir);
    const rule = r.ir.entities[0]?.access.read[1];
    assert.equal(rule?.where?.source, 'own && open');
    assert.deepEqual(rule?.where?.ast, {
      kind: 'and',
      args: [
        { kind: 'compare', op: '==', left: { kind: 'attr', scope: 'row', name: 'owner' }, right: { kind: 'auth', name: 'user' } },
        { kind: 'compare', op: '==', left: { kind: 'attr', scope: 'row', name: 'state' }, right: { kind: 'string', value: 'open' } },
      ],
    });
  });

  test('the IR is deeply frozen', () => {
    const r = compile(base('      read: [Boss, Clerk]\n'));
    assert.ok(r.ir);
    assert.ok(Object.isFrozen(r.ir) && Object.isFrozen(r.ir.entities[0]?.attributes[0]) && Object.isFrozen(r.ir.entities[0]?.access.read));
  });
  test('a role declares its list ceiling and whether it may count exactly; the IR carries them only when declared', () => {
    const r = compile(base('      read: [Boss, Clerk]\n').replace('Boss: {}', 'Boss: { listLimit: 500, exactCount: true }'));
    assert.equal(r.ok, true, JSON.stringify(r.errors));
    const [boss, clerk] = r.ir?.roles ?? [];
    assert.deepEqual([boss?.name, boss?.listLimit, boss?.exactCount], ['Boss', 500, true]);
    // Undeclared keys are absent, so apps that use neither keep their revision hash.
    assert.deepEqual(Object.keys(clerk ?? {}).sort(), ['description', 'kind', 'name']);
    const plain = compile(base('      read: [Boss, Clerk]\n'));
    const falseCount = compile(base('      read: [Boss, Clerk]\n').replace('Boss: {}', 'Boss: { exactCount: false }'));
    assert.equal(falseCount.revision?.hash, plain.revision?.hash);
  });

  test('bad list keys on a role are errors that say what is allowed', () => {
    const cases: [string, string, string, RegExp][] = [
      ['Boss: { listLimit: 5000 }', 'APP_VALUE_INVALID', '/roles/Boss/listLimit', /at most 1000/],
      ['Boss: { listLimit: 0 }', 'APP_VALUE_INVALID', '/roles/Boss/listLimit', /at most 1000/],
      ['Boss: { listLimit: 2.5 }', 'APP_VALUE_INVALID', '/roles/Boss/listLimit', /list page/],
      ['Boss: { exactCount: "yes" }', 'APP_VALUE_INVALID', '/roles/Boss/exactCount', /count=exact/],
      ['Boss: { maxLimit: 50 }', 'APP_UNKNOWN_KEY', '/roles/Boss/maxLimit', /listLimit, exactCount/],
    ];
    for (const [role, code, pointer, hint] of cases) {
      const r = compile(base('      read: [Boss, Clerk]\n').replace('Boss: {}', role));
      const d = r.errors.find((x) => x.pointer === pointer);
      assert.ok(d, `${role}: ${JSON.stringify(r.errors)}`);
      assert.equal(d.code, code, role);
      assert.match(d.hint, hint, role);
    }
  });
});
