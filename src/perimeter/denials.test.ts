import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DenialAggregator, OVERFLOW_SOURCE } from './denials.ts';

const T0 = Date.parse('2026-01-01T00:00:00Z');

test('a flood of anonymous refusals becomes one summary per source and reason per window', () => {
  const agg = new DenialAggregator({ windowSeconds: 10 });
  for (let i = 0; i < 4000; i++) {
    assert.deepEqual(agg.note({ ip: '203.0.113.5', reason: 'IAM_UNAUTHENTICATED', route: i % 4 === 0 ? 'GET /metrics' : 'GET /api/v1/tenants' }, T0 + i), []);
  }
  agg.note({ ip: '2001:db8:5:6::1', reason: 'IAM_TOKEN_INVALID', route: 'GET /api/v1/tenants' }, T0 + 5000);
  agg.note({ ip: '2001:db8:5:6::2', reason: 'IAM_TOKEN_INVALID', route: 'GET /api/v1/tenants' }, T0 + 6000);
  // The first denial after the window hands over the finished window.
  const summaries = agg.note({ ip: '203.0.113.5', reason: 'IAM_UNAUTHENTICATED', route: 'GET /metrics' }, T0 + 10_000);
  assert.deepEqual(summaries, [
    {
      source: '203.0.113.5',
      reason: 'IAM_UNAUTHENTICATED',
      count: 4000,
      firstAt: new Date(T0),
      lastAt: new Date(T0 + 3999),
      routes: [
        { route: 'GET /api/v1/tenants', count: 3000 },
        { route: 'GET /metrics', count: 1000 },
      ],
    },
    { source: '2001:db8:5:6::/64', reason: 'IAM_TOKEN_INVALID', count: 2, firstAt: new Date(T0 + 5000), lastAt: new Date(T0 + 6000), routes: [{ route: 'GET /api/v1/tenants', count: 2 }] },
  ]);
  // The new window holds just the one denial that opened it.
  assert.deepEqual(agg.drain().map((s) => s.count), [1]);
  assert.deepEqual(agg.drain(), []);
});

test('sources beyond the bound of one window are counted together, so memory stays bounded', () => {
  const agg = new DenialAggregator({ windowSeconds: 60, maxSources: 3 });
  for (let i = 0; i < 10; i++) agg.note({ ip: `198.51.100.${i}`, reason: 'IAM_UNAUTHENTICATED', route: 'GET /api/v1/tenants' }, T0);
  const summaries = agg.drain();
  assert.equal(summaries.length, 4);
  assert.deepEqual(summaries[0], { source: OVERFLOW_SOURCE, reason: 'IAM_UNAUTHENTICATED', count: 7, firstAt: new Date(T0), lastAt: new Date(T0), routes: [{ route: 'GET /api/v1/tenants', count: 7 }] });
  assert.equal(summaries.reduce((n, s) => n + s.count, 0), 10, 'nothing is lost');
});

test('only the five most frequent routes are listed', () => {
  const agg = new DenialAggregator();
  for (let r = 0; r < 8; r++) for (let i = 0; i <= r; i++) agg.note({ ip: '192.0.2.1', reason: 'IAM_UNAUTHENTICATED', route: `GET /r${r}` }, T0);
  const [s] = agg.drain();
  assert.deepEqual(s?.routes.map((r) => r.route), ['GET /r7', 'GET /r6', 'GET /r5', 'GET /r4', 'GET /r3']);
  assert.equal(s?.count, 36);
});
