import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_RATE_LIMITS, RateLimiter } from './rate-limit.ts';

const T0 = Date.parse('2026-01-01T00:00:00Z');

test('a source gets its quota as a burst, then one request per refill interval', () => {
  const rl = new RateLimiter({ policy: { ip: { limit: 3, windowSeconds: 30 } } });
  for (let i = 0; i < 3; i++) assert.equal(rl.take({ ip: '192.0.2.1' }, T0).allowed, true);
  const refused = rl.take({ ip: '192.0.2.1' }, T0);
  assert.equal(refused.allowed, false);
  assert.equal(refused.kind, 'ip');
  // One token per 10 s.
  assert.equal(refused.retryAfterSeconds, 10);
  assert.equal(refused.headers['retry-after'], '10');
  assert.equal(rl.take({ ip: '192.0.2.1' }, T0 + 9_999).allowed, false);
  assert.equal(rl.take({ ip: '192.0.2.1' }, T0 + 10_000).allowed, true);
  assert.equal(rl.take({ ip: '192.0.2.1' }, T0 + 10_000).allowed, false);
  // Another address has its own bucket.
  assert.equal(rl.take({ ip: '192.0.2.2' }, T0).allowed, true);
});

test('IPv6 addresses of one /64 share a bucket, and IPv4-mapped addresses count as IPv4', () => {
  const rl = new RateLimiter({ policy: { ip: { limit: 2, windowSeconds: 60 } } });
  assert.equal(rl.take({ ip: '2001:db8:1:2::1' }, T0).allowed, true);
  assert.equal(rl.take({ ip: '2001:db8:1:2:ffff:ffff:ffff:ffff' }, T0).allowed, true);
  assert.equal(rl.take({ ip: '2001:db8:1:2::abcd' }, T0).allowed, false);
  assert.equal(rl.take({ ip: '2001:db8:1:3::1' }, T0).allowed, true, 'the next /64 is another source');
  assert.equal(rl.take({ ip: '198.51.100.4' }, T0).allowed, true);
  assert.equal(rl.take({ ip: '::ffff:198.51.100.4' }, T0).allowed, true);
  assert.equal(rl.take({ ip: '198.51.100.4' }, T0).allowed, false);
});

test('every applicable kind must have a token, and a refusal takes none', () => {
  const rl = new RateLimiter({ policy: { user: { limit: 5, windowSeconds: 60 }, tenant: { limit: 2, windowSeconds: 60 } } });
  assert.equal(rl.take({ user: 'u1', tenant: 't1' }, T0).allowed, true);
  assert.equal(rl.take({ user: 'u2', tenant: 't1' }, T0).allowed, true);
  const refused = rl.take({ user: 'u1', tenant: 't1' }, T0);
  assert.equal(refused.allowed, false);
  assert.equal(refused.kind, 'tenant');
  // u1 spent one token (the refusal spent none): four left for it in another tenant.
  for (let i = 0; i < 4; i++) assert.equal(rl.take({ user: 'u1', tenant: `other-${i}` }, T0).allowed, true);
  assert.equal(rl.take({ user: 'u1', tenant: 'other-9' }, T0).kind, 'user');
  // Kinds without a quota, and subjects not given, are not limited.
  assert.deepEqual(rl.take({ ip: '192.0.2.1', client: 'c1' }, T0), { allowed: true, kind: undefined, retryAfterSeconds: 0, headers: {} });
});

test('the RateLimit headers describe the tightest quota in the structured-field syntax of the IETF draft', () => {
  const rl = new RateLimiter({ policy: { ip: { limit: 100, windowSeconds: 60 }, user: { limit: 10, windowSeconds: 60 } } });
  const first = rl.take({ ip: '192.0.2.9', user: 'u1' }, T0);
  assert.deepEqual(first.headers, { 'ratelimit-policy': '"user";q=10;w=60', ratelimit: '"user";r=9;t=6' });
  for (let i = 0; i < 9; i++) rl.take({ ip: '192.0.2.9', user: 'u1' }, T0);
  const refused = rl.take({ ip: '192.0.2.9', user: 'u1' }, T0);
  assert.deepEqual(refused.headers, { 'ratelimit-policy': '"user";q=10;w=60', ratelimit: '"user";r=0;t=60', 'retry-after': '6' });
});

test('with a node share of N each node admits 1/N of the quota', () => {
  const rl = new RateLimiter({ policy: { client: { limit: 9, windowSeconds: 60 } }, nodeShare: 3 });
  assert.deepEqual(rl.quota('client'), { limit: 3, windowSeconds: 60 });
  for (let i = 0; i < 3; i++) assert.equal(rl.take({ client: 'c' }, T0).allowed, true);
  assert.equal(rl.take({ client: 'c' }, T0).allowed, false);
});

test('buckets are bounded: the least recently used is forgotten first', () => {
  const rl = new RateLimiter({ policy: { ip: { limit: 1, windowSeconds: 3600 } }, maxKeys: 2 });
  rl.take({ ip: '192.0.2.1' }, T0);
  rl.take({ ip: '192.0.2.2' }, T0);
  // Touching .1 makes .2 the oldest; a third source pushes .2 out.
  assert.equal(rl.take({ ip: '192.0.2.1' }, T0).allowed, false);
  rl.take({ ip: '192.0.2.3' }, T0);
  assert.equal(rl.size, 2);
  assert.equal(rl.take({ ip: '192.0.2.1' }, T0).allowed, false, '.1 is still remembered');
  assert.equal(rl.take({ ip: '192.0.2.2' }, T0).allowed, true, '.2 was forgotten and starts full');
});

test('a clock going backwards never adds tokens', () => {
  const rl = new RateLimiter({ policy: { ip: { limit: 1, windowSeconds: 10 } } });
  assert.equal(rl.take({ ip: '192.0.2.1' }, T0).allowed, true);
  assert.equal(rl.take({ ip: '192.0.2.1' }, T0 - 60_000).allowed, false);
  assert.equal(rl.take({ ip: '192.0.2.1' }, T0 + 10_000).allowed, true);
});

test('misuse throws at construction, naming the option', () => {
  assert.throws(() => new RateLimiter({ policy: { ip: { limit: 0, windowSeconds: 60 } } }), /opts\.policy\.ip\.limit/);
  assert.throws(() => new RateLimiter({ policy: { ip: { limit: 1, windowSeconds: 0 } } }), /opts\.policy\.ip\.windowSeconds/);
  assert.throws(() => new RateLimiter({ policy: { session: { limit: 1, windowSeconds: 1 } } as never }), /opts\.policy\.session/);
  assert.throws(() => new RateLimiter({ nodeShare: 0 }), /opts\.nodeShare/);
  assert.ok(new RateLimiter({ policy: DEFAULT_RATE_LIMITS }));
});
