// The kinds the data API gives the WAF come from the app model: what each attribute's type and
// format says, and what the data API itself does with its list and path parameters.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AttributeIR, AttributeType } from '../compile/ir.ts';
import { entityFieldKinds } from './waf-kinds.ts';

const attr = (name: string, type: AttributeType, pattern: string | null = null): AttributeIR => ({ kind: 'attribute', name, column: name, type, description: null, required: false, unique: false, immutable: false, default: null, min: null, max: null, minLength: null, maxLength: null, pattern, classification: 'internal', encrypted: false, searchable: false });

test('plain text is stored text, a restrictive manifest pattern makes it opaque, a loose one does not', () => {
  const k = entityFieldKinds([attr('title', { kind: 'text' }), attr('code', { kind: 'text' }, '^[A-Z]{3}-[0-9]{4}$'), attr('note', { kind: 'text' }, '^.*$')]);
  assert.equal(k.get('json.title'), 'stored-text');
  assert.equal(k.get('title.eq'), 'stored-text');
  assert.equal(k.get('json.code'), 'opaque');
  assert.equal(k.get('json.note'), 'stored-text');
});

test('a json attribute covers its members; formats keep their kinds; the path and list parameters are the data API’s own', () => {
  const k = entityFieldKinds([attr('settings', { kind: 'json' }), attr('site', { kind: 'text', format: 'url' }), attr('body', { kind: 'text', format: 'markdown' }), attr('n', { kind: 'integer' })]);
  assert.equal(k.get('json.settings.*'), 'json');
  assert.equal(k.get('json.site'), 'url');
  assert.equal(k.get('json.body'), 'markdown');
  assert.equal(k.get('json.n'), 'opaque');
  assert.equal(k.get('filter'), 'code');
  for (const p of ['tenant', 'stage', 'app', 'entity', 'id']) assert.equal(k.get(p), 'opaque', p);
});

test('an attribute named like a path parameter takes its own kind (the stricter reading wins)', () => {
  assert.equal(entityFieldKinds([attr('stage', { kind: 'text' })]).get('stage'), 'stored-text');
});
