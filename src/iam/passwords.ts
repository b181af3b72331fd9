import { hash, verify } from '@node-rs/argon2';
import { AccordError } from '../errors/index.ts';

// argon2id with OWASP's baseline (19 MiB, 2 passes, 1 lane): ~20 ms here, affordable per login.
const ARGON2ID = 2;
const options = { algorithm: ARGON2ID, memoryCost: 19456, timeCost: 2, parallelism: 1 } as const;

/** Hashes a password with argon2id (PHC string with salt and parameters). */
export function hashPassword(password: string): Promise<string> {
  return hash(password, options);
}

let dummyHash: Promise<string> | undefined;

/**
 * Verifies a password. With no stored hash (unknown user, no password set) it still does the same
 * work against a dummy hash, so timing does not tell whether an account exists.
 */
export async function verifyPassword(stored: string | null | undefined, password: string): Promise<boolean> {
  if (!stored) {
    dummyHash ??= hash('dummy password never used', options);
    await verify(await dummyHash, password).catch(() => false);
    return false;
  }
  try {
    return await verify(stored, password);
  } catch {
    return false;
  }
}

/**
 * The password policy (NIST SP 800-63B style): length, not the account's own name, no
 * composition rules. The IAM issue adds the common-password list.
 */
export function checkPasswordPolicy(password: string, email: string): void {
  const problems: string[] = [];
  if ([...password].length < 12) problems.push('at least 12 characters');
  if (password.length > 1024) problems.push('at most 1024 characters');
  const local = email.split('@')[0]?.toLowerCase() ?? '';
  if (local.length >= 3 && password.toLowerCase().includes(local)) problems.push('must not contain the email name');
  if (problems.length > 0) {
    throw new AccordError('IAM_PASSWORD_POLICY', {
      message: `The password does not meet the policy: ${problems.join('; ')}.`,
      details: { rules: problems },
    });
  }
}
