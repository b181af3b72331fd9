import { createHash, randomBytes } from 'node:crypto';

/**
 * Opaque bearer secrets: 256 random bits with a readable prefix (so a leaked one is easy to
 * recognise in a scanner). Only their SHA-256 is stored; a database leak yields nothing usable,
 * and lookups by hash are not timing-sensitive the way string comparisons of secrets are.
 */
export function newToken(prefix: string): { token: string; hash: Buffer } {
  const token = `${prefix}_${randomBytes(32).toString('base64url')}`;
  return { token, hash: hashToken(token) };
}

/** The stored form of a token. */
export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}
