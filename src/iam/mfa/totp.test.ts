import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { base32Decode, base32Encode, hotp, matchingSteps, newTotpSecret, otpauthUri, TOTP, totpCode, totpStep } from './totp.ts';

// RFC 6238 Appendix B, SHA-1 rows: the 20-byte ASCII seed and the 8-digit codes it lists.
const RFC_SECRET = Buffer.from('12345678901234567890', 'ascii');
const RFC_VECTORS: [number, string][] = [
  [59, '94287082'],
  [1111111109, '07081804'],
  [1111111111, '14050471'],
  [1234567890, '89005924'],
  [2000000000, '69279037'],
  [20000000000, '65353130'],
];

describe('TOTP (RFC 6238)', () => {
  test('codes match the RFC 6238 Appendix B SHA-1 vectors, in full and truncated to 6 digits', () => {
    for (const [seconds, code] of RFC_VECTORS) {
      assert.equal(totpCode(RFC_SECRET, seconds * 1000, 8), code, `T=${seconds}`);
      assert.equal(totpCode(RFC_SECRET, seconds * 1000), code.slice(2), `T=${seconds} (6 digits)`);
    }
  });

  test('HOTP matches the RFC 4226 Appendix D values', () => {
    const expected = ['755224', '287082', '359152', '969429', '338314', '254676', '287922', '162583', '399871', '520489'];
    for (const [counter, code] of expected.entries()) assert.equal(hotp(RFC_SECRET, counter), code);
  });

  test('a code is accepted for the previous, current and next 30-second step and no further', () => {
    const secret = newTotpSecret();
    const now = new Date('2026-03-01T10:00:10Z');
    const step = totpStep(now);
    assert.deepEqual(matchingSteps(secret, totpCode(secret, now), now), [step]);
    assert.deepEqual(matchingSteps(secret, hotp(secret, step - 1), now), [step - 1]);
    assert.deepEqual(matchingSteps(secret, hotp(secret, step + 1), now), [step + 1]);
    assert.deepEqual(matchingSteps(secret, hotp(secret, step - 2), now), []);
    assert.deepEqual(matchingSteps(secret, hotp(secret, step + 2), now), []);
    // Exactly on a boundary the step changes.
    const boundary = (step + 1) * TOTP.stepSeconds * 1000;
    assert.equal(totpStep(boundary), step + 1);
    assert.equal(totpStep(boundary - 1), step);
  });

  test('anything but six digits never matches', () => {
    const secret = newTotpSecret();
    const now = Date.now();
    const code = totpCode(secret, now);
    for (const bad of ['', `${code} `, ` ${code}`, `${code}0`, code.slice(1), 'abcdef', '12345a']) assert.deepEqual(matchingSteps(secret, bad, now), [], JSON.stringify(bad));
  });

  test('base32 round-trips and matches RFC 4648 test vectors', () => {
    const vectors: [string, string][] = [
      ['', ''],
      ['f', 'MY'],
      ['fo', 'MZXQ'],
      ['foo', 'MZXW6'],
      ['foob', 'MZXW6YQ'],
      ['fooba', 'MZXW6YTB'],
      ['foobar', 'MZXW6YTBOI'],
    ];
    for (const [clear, encoded] of vectors) {
      assert.equal(base32Encode(Buffer.from(clear)), encoded);
      assert.equal(base32Decode(encoded)?.toString(), clear);
      assert.equal(base32Decode(`${encoded.toLowerCase()}====`)?.toString(), clear);
    }
    const secret = newTotpSecret();
    assert.equal(secret.length, 20);
    assert.equal(base32Encode(secret).length, 32);
    assert.deepEqual(base32Decode(base32Encode(secret)), secret);
    assert.equal(base32Decode('not base32!'), undefined);
  });

  test('the otpauth URI names the issuer Accord and the label Accord:<email>', () => {
    const secret = newTotpSecret();
    const uri = new URL(otpauthUri(secret, 'alice+mfa@acme.test'));
    assert.equal(uri.protocol, 'otpauth:');
    assert.equal(uri.host, 'totp');
    assert.equal(decodeURIComponent(uri.pathname.slice(1)), 'Accord:alice+mfa@acme.test');
    assert.equal(uri.searchParams.get('issuer'), 'Accord');
    assert.equal(uri.searchParams.get('digits'), '6');
    assert.equal(uri.searchParams.get('period'), '30');
    assert.equal(uri.searchParams.get('algorithm'), 'SHA1');
    assert.deepEqual(base32Decode(uri.searchParams.get('secret') ?? ''), secret);
  });
});
