import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addressMatcher, ipv4Network24, sourceKey } from './address.ts';

test('a source is an IPv4 address or an IPv6 /64, spelled as the sign-in lockout spells it', () => {
  assert.equal(sourceKey('192.0.2.1'), '192.0.2.1');
  assert.equal(sourceKey('::ffff:192.0.2.1'), '192.0.2.1');
  assert.equal(sourceKey('2001:db8:0:1::5'), '2001:db8:0:1::/64');
  assert.equal(sourceKey('[2001:DB8:0:1:ffff::1%eth0]'), '2001:db8:0:1::/64');
  assert.equal(sourceKey(undefined), 'unknown');
  assert.equal(sourceKey('not an address'), 'not an address');
});

test('CIDR lists match IPv4 and IPv6 addresses, mapped addresses as IPv4', () => {
  const m = addressMatcher(['10.0.0.0/8', '192.0.2.7', '2001:db8::/32', '::ffff:172.16.0.0/108']);
  for (const yes of ['10.1.2.3', '::ffff:10.9.9.9', '192.0.2.7', '2001:db8:ffff::1', '172.16.5.5']) assert.equal(m(yes), true, yes);
  for (const no of ['11.0.0.1', '192.0.2.8', '2001:db9::1', '172.32.0.1', undefined, 'garbage']) assert.equal(m(no), false, String(no));
  assert.throws(() => addressMatcher(['10.0.0.0/33']), /prefix length/);
  assert.throws(() => addressMatcher(['example.com']), /not an address/);
});

test('the IPv4 /24 of an address', () => {
  assert.equal(ipv4Network24('198.51.100.77'), '198.51.100.0/24');
  assert.equal(ipv4Network24('::ffff:198.51.100.77'), '198.51.100.0/24');
  assert.equal(ipv4Network24('2001:db8::1'), undefined);
});
