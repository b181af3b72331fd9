import { hash, verify } from '@node-rs/argon2';
import { AccordError } from '../../errors/index.ts';
import { isCommonPassword } from './common-passwords.ts';

// argon2id with OWASP's baseline (19 MiB, 2 passes, 1 lane): ~20 ms here, affordable per login.
const ARGON2ID = 2;
const options = { algorithm: ARGON2ID, memoryCost: 19456, timeCost: 2, parallelism: 1 } as const;

/**
 * The form a password is hashed in: Unicode NFKC (NIST SP 800-63B 5.1.1.2), so the same
 * characters typed on another keyboard or system (composed or decomposed accents, full-width
 * forms) give the same password.
 */
const normalised = (password: string): string => password.normalize('NFKC');

/** Hashes a password with argon2id (PHC string with salt and parameters). */
export function hashPassword(password: string): Promise<string> {
  return hash(normalised(password), options);
}

let dummyHash: Promise<string> | undefined;
let verifications = 0;

/**
 * How many argon2id verifications this process has run (real and dummy): the work sign-in does,
 * which must not depend on how many accounts an email has (tests and metrics read it).
 */
export function passwordVerifications(): number {
  return verifications;
}

/**
 * Verifies a password. With no stored hash (unknown user, no password set) it still does the same
 * work against a dummy hash, so timing does not tell whether an account exists.
 */
export async function verifyPassword(stored: string | null | undefined, password: string): Promise<boolean> {
  verifications++;
  if (!stored) {
    dummyHash ??= hash('dummy password never used', options);
    await verify(await dummyHash, password).catch(() => false);
    return false;
  }
  try {
    return await verify(stored, normalised(password));
  } catch {
    return false;
  }
}

const MIN_LENGTH = 12;
const MAX_LENGTH = 1024;

/** The rules a password can break, as `details.rules` of IAM_PASSWORD_POLICY lists them. */
export const passwordRules = {
  tooShort: `at least ${MIN_LENGTH} characters`,
  tooLong: `at most ${MAX_LENGTH} characters`,
  emailName: 'must not contain the email name',
  common: 'must not be a commonly used password',
  oneCharacter: 'must not be one character repeated',
  repeatedChunk: `must not be a piece of under ${MIN_LENGTH} characters repeated, like abcabcabcabc`,
  sequence: 'must not be a run of consecutive letters or digits, like 123456789012',
} as const;

/**
 * The smallest period of a string (as code points): the length of the shortest chunk whose
 * repetition spells it, possibly with a partial last copy ("abcabcab" has period 3).
 */
function smallestPeriod(chars: readonly string[]): number {
  // Knuth-Morris-Pratt failure function: the longest proper prefix that is also a suffix.
  const fail = new Array<number>(chars.length).fill(0);
  for (let i = 1, k = 0; i < chars.length; i++) {
    while (k > 0 && chars[i] !== chars[k]) k = fail[k - 1] ?? 0;
    if (chars[i] === chars[k]) k++;
    fail[i] = k;
  }
  return chars.length - (fail[chars.length - 1] ?? 0);
}

/** Whether the string is only ASCII digits (or only letters), each one up or down from the last, wrapping 9→0 / z→a. */
function isRun(s: string): boolean {
  const alphabet = /^[0-9]+$/.test(s) ? '0123456789' : /^[a-z]+$/.test(s) ? 'abcdefghijklmnopqrstuvwxyz' : undefined;
  if (!alphabet || s.length < 2) return false;
  const n = alphabet.length;
  const step = (i: number) => (alphabet.indexOf(s[i] as string) - alphabet.indexOf(s[i - 1] as string) + n) % n;
  const first = step(1);
  if (first !== 1 && first !== n - 1) return false;
  for (let i = 2; i < s.length; i++) if (step(i) !== first) return false;
  return true;
}

/**
 * The password policy (NIST SP 800-63B): 12 to 1024 characters, not the account's own name, not on
 * the built-in list of very common passwords, not one character or a short piece repeated, not a
 * run like 123456789012 or zyxwvutsrqpo; no composition rules. Throws IAM_PASSWORD_POLICY with every
 * broken rule in `details.rules`. The content rules only run on passwords of an acceptable length,
 * so a short one gets the one reason that matters.
 */
export function checkPasswordPolicy(password: string, email: string): void {
  const problems: string[] = [];
  const chars = [...password];
  if (chars.length < MIN_LENGTH) problems.push(passwordRules.tooShort);
  if (password.length > MAX_LENGTH) problems.push(passwordRules.tooLong);
  const lengthOk = problems.length === 0;
  const lower = password.toLowerCase();
  const local = email.split('@')[0]?.toLowerCase() ?? '';
  if (local.length >= 3 && lower.includes(local)) problems.push(passwordRules.emailName);
  if (lengthOk) {
    if (isCommonPassword(password)) problems.push(passwordRules.common);
    const lowerChars = [...lower];
    const period = smallestPeriod(lowerChars);
    if (period === 1) problems.push(passwordRules.oneCharacter);
    // A piece shorter than the minimum, repeated at least twice, is no longer than that piece.
    else if (period < MIN_LENGTH && period * 2 <= lowerChars.length) problems.push(passwordRules.repeatedChunk);
    if (isRun(lower)) problems.push(passwordRules.sequence);
  }
  if (problems.length > 0) {
    throw new AccordError('IAM_PASSWORD_POLICY', {
      message: `The password does not meet the policy: ${problems.join('; ')}.`,
      details: { rules: problems },
    });
  }
}
