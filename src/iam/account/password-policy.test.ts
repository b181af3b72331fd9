import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isAccordError } from '../../errors/index.ts';
import { checkPasswordPolicy, hashPassword, passwordRules, verifyPassword } from './passwords.ts';
import { commonPasswords, isCommonPassword } from './common-passwords.ts';

const EMAIL = 'jane.doe@example.test';

/** The rules a password breaks (empty: accepted). */
function broken(password: string, email = EMAIL): string[] {
  try {
    checkPasswordPolicy(password, email);
    return [];
  } catch (err) {
    assert.ok(isAccordError(err, 'IAM_PASSWORD_POLICY'), `unexpected ${String(err)}`);
    return [...((err.details as { rules: string[] }).rules ?? [])];
  }
}

describe('password policy', () => {
  test('accepts long passphrases and random strings without any composition rule', () => {
    for (const pw of ['wonderland rabbit hole', 'correct horse battery staple', 'all lower case but long', 'Tr0ub4dor&3xyz', 'aaaaaaaaaaab', '123456789013', 'abcabcabcabx', 'zxy wvu tsr q']) {
      assert.deepEqual(broken(pw), [], pw);
    }
  });

  test('refuses fewer than 12 characters, counting code points, and more than 1024', () => {
    assert.deepEqual(broken('short pass'), [passwordRules.tooShort]);
    // 11 emoji are 22 UTF-16 units but 11 characters.
    assert.deepEqual(broken('🙂'.repeat(11)), [passwordRules.tooShort]);
    assert.deepEqual(broken('x'.repeat(1025)), [passwordRules.tooLong]);
    assert.deepEqual(broken('lantern harbour '.repeat(64)), [], 'exactly 1024 characters, not one piece repeated under 12');
  });

  test('refuses a password containing the local part of the email, in any case', () => {
    assert.deepEqual(broken('my name is Jane.Doe ok'), [passwordRules.emailName]);
    // Two-character local parts are too short to matter.
    assert.deepEqual(broken('jo was here today', 'jo@example.test'), []);
  });

  test('refuses passwords on the common list, ignoring case and spaces', () => {
    for (const pw of ['password1234', 'Password1234', 'QWERTYUIOPASDF', '1qaz2wsx3edc4rfv', 'iloveyou123456', 'I love you 1234', 'letmeinplease', 'trustno1trustno1']) {
      assert.ok(broken(pw).includes(passwordRules.common), pw);
    }
  });

  test('refuses one character repeated, and a piece under 12 characters repeated', () => {
    assert.deepEqual(broken('zzzzzzzzzzzzzzzz'), [passwordRules.oneCharacter]);
    assert.deepEqual(broken('            '), [passwordRules.oneCharacter]);
    assert.deepEqual(broken('XyZxYzXYZxyz'), [passwordRules.repeatedChunk]);
    assert.deepEqual(broken('abcabcabcabcab'), [passwordRules.repeatedChunk], 'a partial last copy counts');
    assert.deepEqual(broken('sunflowersunflower'), [passwordRules.repeatedChunk]);
    assert.ok(broken('abcabcabcabc').includes(passwordRules.repeatedChunk));
    // A piece of 12 or more, twice, is at least as long as a password the policy accepts.
    assert.deepEqual(broken('lighthouse42 lighthouse42 '), []);
  });

  test('refuses runs of consecutive digits or letters, up or down, with wrap-around', () => {
    for (const pw of ['345678901234', '9876543210987', 'defghijklmnop', 'ZYXWVUTSRQPONM', 'wxyzabcdefgh']) {
      assert.ok(broken(pw).includes(passwordRules.sequence), pw);
    }
    assert.deepEqual(broken('acegikmoqsuw'), [], 'steps of two are not a run');
    assert.deepEqual(broken('abcdef123456').includes(passwordRules.sequence), false, 'letters then digits are not one run');
  });

  test('every broken rule is reported, with the message naming them', () => {
    try {
      checkPasswordPolicy('123456789012', 'x@example.test');
      assert.fail('accepted');
    } catch (err) {
      assert.ok(isAccordError(err, 'IAM_PASSWORD_POLICY'));
      assert.deepEqual((err.details as { rules: string[] }).rules, [passwordRules.common, passwordRules.sequence]);
      assert.match(err.message, /commonly used password; must not be a run/);
    }
  });
});

describe('common password list', () => {
  test('holds a few hundred entries, each lower case, without spaces, 12 characters or more', () => {
    assert.ok(commonPasswords.size >= 300, `${commonPasswords.size} entries`);
    for (const p of commonPasswords) {
      assert.ok([...p].length >= 12, `${p} is shorter than the minimum length`);
      assert.equal(p, p.toLowerCase(), p);
      assert.doesNotMatch(p, /\s/, p);
    }
  });

  test('is consulted case-insensitively and with spaces removed', () => {
    assert.equal(isCommonPassword('PassWord1234'), true);
    assert.equal(isCommonPassword('hello world 123'), true);
    assert.equal(isCommonPassword('hello world 124'), false);
  });
});

describe('password hashing', () => {
  test('the same characters composed or decomposed verify alike (NFKC), other passwords do not', async () => {
    const composed = 'caf\u00e9 au lait sous la pluie';
    const decomposed = 'cafe\u0301 au lait sous la pluie';
    assert.notEqual(composed, decomposed);
    const stored = await hashPassword(composed);
    assert.match(stored, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    assert.equal(await verifyPassword(stored, decomposed), true);
    assert.equal(await verifyPassword(stored, 'cafe au lait sous la pluie'), false);
    assert.equal(await verifyPassword(undefined, composed), false, 'no stored hash never verifies');
  });
});
