// A pattern makes a field opaque only when every value it admits is made of safe characters.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fieldKindsFromSchema, restrictivePattern } from './field-kinds.ts';

test('anchored patterns of letters, digits and safe punctuation are restrictive', () => {
  for (const p of ['^[A-Z]{3}-[0-9]{4}$', '^[a-z][a-z0-9-]{0,62}$', '^INV-\\d{4}-\\d{5}$', '^\\w+$', '^[A-Za-z0-9_.+-]+@[a-z0-9.-]+$', '^v\\.?[0-9]+$']) assert.equal(restrictivePattern(p), true, p);
});

test('a pattern that admits quotes, spaces, slashes or anything at all is not restrictive', () => {
  for (const p of ['^.*$', '^[^x]+$', '^[!-~]+$', '^[\\x20-\\x7e]+$', '^[a-z ]+$', '^\\S+$', '^(a|b)$', '^[a-z/.]+$', '[a-z]+', '^[a-z]+', "^[a-z']+$", '^a\\$']) assert.equal(restrictivePattern(p), false, p);
});

test('a string field with a restrictive pattern is opaque, with a loose one it stays inspected', () => {
  const k = fieldKindsFromSchema({ body: { type: 'object', properties: { slug: { type: 'string', pattern: '^[a-z0-9-]+$' }, label: { type: 'string', pattern: '^[ -~]+$' } } } });
  assert.equal(k.get('json.slug'), 'opaque');
  assert.equal(k.get('json.label'), undefined);
});
