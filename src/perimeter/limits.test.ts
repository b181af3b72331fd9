import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isAccordError } from '../errors/index.ts';
import { checkJsonShape, checkRequestHead, requestLimits } from './limits.ts';
import { mergeLimits, rateLimitsFromConfig } from './state.ts';

const limits = requestLimits({ maxHeaderCount: 4, maxHeaderBytes: 20, maxUrlLength: 30, maxJsonDepth: 3, maxJsonKeys: 5 });

test('the request head is refused past the URL length, the header count or one header field size', () => {
  checkRequestHead(limits, '/a', ['host', 'x', 'accept', 'y']);
  assert.throws(() => checkRequestHead(limits, `/${'a'.repeat(30)}`, []), (e) => isAccordError(e, 'REQUEST_URL_TOO_LONG'));
  assert.throws(() => checkRequestHead(limits, '/', Array(10).fill('h')), (e) => isAccordError(e, 'REQUEST_HEADERS_TOO_LARGE'));
  assert.throws(() => checkRequestHead(limits, '/', ['x-big', 'v'.repeat(16)]), (e) => isAccordError(e, 'REQUEST_HEADERS_TOO_LARGE'));
});

test('a JSON body is refused past the depth or the total key count, arrays counting as levels', () => {
  checkJsonShape(limits, { a: { b: [1, 2] } });
  checkJsonShape(limits, 'just a string');
  assert.throws(() => checkJsonShape(limits, { a: { b: { c: { d: 1 } } } }), (e) => isAccordError(e, 'REQUEST_JSON_TOO_COMPLEX') && e.details?.limit === 3);
  assert.throws(() => checkJsonShape(limits, [[[[]]]]), (e) => isAccordError(e, 'REQUEST_JSON_TOO_COMPLEX'));
  assert.throws(() => checkJsonShape(limits, { a: 1, b: 2, c: { d: 1, e: 2, f: 3 } }), (e) => isAccordError(e, 'REQUEST_JSON_TOO_COMPLEX') && e.details?.limit === 5);
  // Deep enough to overflow a recursive walk: the check itself stays up.
  let deep: unknown = 0;
  for (let i = 0; i < 100_000; i++) deep = [deep];
  assert.doesNotThrow(() => checkJsonShape(requestLimits({ ...limits, maxJsonDepth: 200_000 }), deep));
});

test('quotas come from the configuration as limit/window or off, and a stage overrides kind by kind', () => {
  const platform = rateLimitsFromConfig({ rateLimitIp: '120/60', rateLimitUser: 'off', rateLimitClient: '10/1', rateLimitTenant: '3000/60' });
  assert.deepEqual(platform, { ip: { limit: 120, windowSeconds: 60 }, client: { limit: 10, windowSeconds: 1 }, tenant: { limit: 3000, windowSeconds: 60 } });
  assert.deepEqual(mergeLimits(platform, { ip: { limit: 5, windowSeconds: 10 } }).ip, { limit: 5, windowSeconds: 10 });
  assert.deepEqual(mergeLimits(platform, {}).tenant, { limit: 3000, windowSeconds: 60 });
  assert.throws(() => rateLimitsFromConfig({ rateLimitIp: '0/60', rateLimitUser: 'off', rateLimitClient: 'off', rateLimitTenant: 'off' }), (e) => isAccordError(e, 'CONFIG_INVALID') && e.details?.key === 'rateLimitIp');
});
