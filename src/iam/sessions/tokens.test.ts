import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeBase64urlStrict, isWellFormedToken, newToken } from './tokens.ts';

test('every byte string has exactly one accepted base64url spelling', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), fc.string({ minLength: 1, maxLength: 3 }), (bytes, junk) => {
      const text = Buffer.from(bytes).toString('base64url');
      assert.deepEqual(decodeBase64urlStrict(text), Buffer.from(bytes));
      // Anything else accepted is the canonical spelling of other bytes, never of these.
      const other = decodeBase64urlStrict(text + junk);
      if (other) assert.equal(other.toString('base64url'), text + junk);
    }),
  );
});

test('padding, characters outside the alphabet, impossible lengths and non-zero spare bits are refused', () => {
  const text = randomBytes(32).toString('base64url');
  for (const bad of [`${text}=`, `${text}!!`, `${text}%%%`, `${text.slice(0, 10)}+${text.slice(11)}`, `${text}AA`, 'A']) {
    assert.equal(decodeBase64urlStrict(bad), undefined, bad);
  }
  // 32 bytes: the 43rd character carries 4 bits; its 2 low bits must be zero.
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  for (const flip of [1, 2, 3]) {
    const swapped = text.slice(0, -1) + alphabet.charAt(alphabet.indexOf(text.slice(-1)) ^ flip);
    assert.equal(decodeBase64urlStrict(swapped), undefined);
  }
  assert.equal(decodeBase64urlStrict(text, 31), undefined, 'the wrong length');
});

test('a token is well formed only with its own prefix and 32 canonically spelled bytes', () => {
  const { token } = newToken('acr');
  assert.equal(isWellFormedToken(token, 'acr'), true);
  assert.equal(isWellFormedToken(token, 'acm'), false);
  assert.equal(isWellFormedToken(`${token}=`, 'acr'), false);
  assert.equal(isWellFormedToken(token.slice(0, -2), 'acr'), false);
});
