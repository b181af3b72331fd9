import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { AccordError, catalog, type ErrorCode, toProblem } from './index.ts';

const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
// One table row per code: | `CODE` | status | title | meaning |
const rows = new Map([...doc.matchAll(/^\| `([A-Z0-9_]+)` \| (\d{3}|—|-) \|/gm)].map((m) => [m[1] as string, m[2] as string]));

test('docs/errors.md lists every catalog code with its status, and nothing else', () => {
  const codes = Object.keys(catalog) as ErrorCode[];
  const missing = codes.filter((c) => !rows.has(c));
  assert.deepEqual(missing, [], 'codes in the catalog but not in docs/errors.md');
  const unknown = [...rows.keys()].filter((c) => !(c in catalog));
  assert.deepEqual(unknown, [], 'codes in docs/errors.md that the catalog does not have');
  const wrongStatus = codes.filter((c) => rows.get(c) !== String(catalog[c].status));
  assert.deepEqual(wrongStatus, [], 'codes whose documented status differs from the catalog');
});

test('a server-side failure shows the catalog message only, never the precise message or details', () => {
  const err = new AccordError('CRYPTO_KMS_UNAVAILABLE', { message: 'pkcs11: token "prod-hsm" CKR_PIN_INCORRECT', details: { ckr: 'CKR_PIN_INCORRECT' } });
  const p = toProblem(err, 'req-1');
  assert.equal(p.detail, catalog.CRYPTO_KMS_UNAVAILABLE.message);
  assert.equal(p.details, undefined);
  assert.doesNotMatch(JSON.stringify(p), /prod-hsm|CKR_/);
});

test('a refusal keeps its precise message and public details', () => {
  const p = toProblem(new AccordError('TENANCY_TENANT_NOT_FOUND', { message: 'No tenant globex.', details: { tenant: 'globex' } }));
  assert.equal(p.detail, 'No tenant globex.');
  assert.deepEqual(p.details, { tenant: 'globex' });
});

test('anything that is not a catalog error becomes INTERNAL with the generic message', () => {
  const p = toProblem(new Error('relation "accord.secret_table" does not exist'));
  assert.equal(p.code, 'INTERNAL');
  assert.equal(p.detail, catalog.INTERNAL.message);
});
