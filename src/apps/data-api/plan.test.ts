import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compileManifestText } from '../index.ts';
import { DEFAULT_LIST_CEILING, listPolicy } from './plan.ts';

const app = compileManifestText(
  `app: shop
version: 1.0.0
roles:
  Clerk: {}
  Boss: { listLimit: 500, exactCount: true }
  Intern: { listLimit: 10 }
entities:
  Order:
    attributes:
      title: { type: text }
    access:
      read: [Boss, Clerk, Intern]
`,
  { file: 'm.yaml' },
);

describe('list policies of app roles', () => {
  const ir = app.ir;
  assert.ok(ir);
  test('a role without listLimit has the default ceiling and may not count exactly', () => {
    assert.deepEqual(listPolicy('r1', ir, ['Clerk']), { maxLimit: DEFAULT_LIST_CEILING, exactCount: false });
  });
  test('a role may lower its ceiling below the default', () => {
    assert.deepEqual(listPolicy('r1', ir, ['Intern']), { maxLimit: 10, exactCount: false });
  });
  test('a caller with several roles gets the largest ceiling and counts if one role may', () => {
    assert.deepEqual(listPolicy('r1', ir, ['Intern', 'Boss']), { maxLimit: 500, exactCount: true });
    assert.deepEqual(listPolicy('r1', ir, ['Intern', 'Clerk']), { maxLimit: DEFAULT_LIST_CEILING, exactCount: false });
  });
  test('roles the revision does not declare grant nothing', () => {
    assert.deepEqual(listPolicy('r1', ir, ['Ghost']), { maxLimit: DEFAULT_LIST_CEILING, exactCount: false });
    assert.deepEqual(listPolicy('r1', ir, ['Ghost', 'Intern']), { maxLimit: 10, exactCount: false });
  });
});
