import { createHash, randomBytes } from 'node:crypto';
import type { IamKey } from '../iam-key.ts';

/**
 * Opaque bearer secrets: 256 random bits with a readable prefix (so a leaked one is easy to
 * recognise in a scanner). Only their SHA-256 is stored; a database leak yields nothing usable,
 * and lookups by hash are not timing-sensitive the way string comparisons of secrets are.
 * Prefixes: acr_ refresh token, acm_ MFA challenge, aci_ invitation, acp_ password reset,
 * acs_ API client secret.
 */
export function newToken(prefix: string): { token: string; hash: Buffer } {
  const token = `${prefix}_${randomBytes(32).toString('base64url')}`;
  return { token, hash: hashToken(token) };
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;

/**
 * Decodes base64url strictly: the alphabet only, no padding, and the canonical spelling (the
 * unused low bits of the last character zero), so each byte string has exactly one accepted
 * spelling. Node's decoder skips characters outside the alphabet and ignores those bits, which
 * let `token!!`, `token=` or a sibling last character pass as the same token. With `bytes`, the
 * decoded length must be exactly that. Undefined when the text is not such a spelling.
 */
export function decodeBase64urlStrict(text: string, bytes?: number): Buffer | undefined {
  if (!BASE64URL.test(text) || text.length % 4 === 1) return undefined;
  const decoded = Buffer.from(text, 'base64url');
  if (decoded.toString('base64url') !== text) return undefined;
  if (bytes !== undefined && decoded.length !== bytes) return undefined;
  return decoded;
}

/** Whether `token` is spelled exactly as {@link newToken} spells tokens with this prefix. */
export function isWellFormedToken(token: string, prefix: string): boolean {
  return token.startsWith(`${prefix}_`) && decodeBase64urlStrict(token.slice(prefix.length + 1), 32) !== undefined;
}

/** The stored form of a token. */
export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** What an access token says. Short names keep the token small; it travels on every request. */
export interface AccessClaims {
  /** Principal kind: console user, API client, end user of one stage. */
  readonly typ: 'user' | 'client' | 'end-user';
  /** User id or API client id. */
  readonly sub: string;
  /** Session id (users, end users); null for API clients. */
  readonly sid: string | null;
  /** API clients: the id of the secret the token was obtained with; it dies with that secret. */
  readonly sv?: string;
  /** Issued at / expires, seconds since the epoch. */
  readonly iat: number;
  readonly exp: number;
}

const PREFIX = 'aca_';
const MAX_TOKEN = 1024;
// HMAC-SHA-256.
const MAC_BYTES = 32;

/**
 * Signs an access token: `aca_<base64url(JSON claims)>.<base64url(HMAC-SHA-256)>`, the MAC
 * covering the prefix and payload under the IAM key's access-token subkey. Verifying it costs a
 * few microseconds and no database read; whether its session is still alive is checked apart.
 */
export function signAccessToken(key: IamKey, claims: AccessClaims): string {
  const payload = Buffer.from(JSON.stringify({ v: 1, kid: key.kid, ...claims }), 'utf8').toString('base64url');
  const mac = key.mac('access-token', `${PREFIX}${payload}`).toString('base64url');
  return `${PREFIX}${payload}.${mac}`;
}

/** Checks an access token's MAC and expiry; the claims, or why it is refused. */
export function verifyAccessToken(
  key: IamKey,
  token: string,
  now = Date.now(),
): { ok: true; claims: AccessClaims } | { ok: false; reason: 'invalid' | 'expired' } {
  if (!token.startsWith(PREFIX) || token.length > MAX_TOKEN) return { ok: false, reason: 'invalid' };
  const dot = token.lastIndexOf('.');
  if (dot < PREFIX.length) return { ok: false, reason: 'invalid' };
  const payload = token.slice(PREFIX.length, dot);
  const mac = decodeBase64urlStrict(token.slice(dot + 1), MAC_BYTES);
  if (!mac || !key.verifyMac('access-token', `${PREFIX}${payload}`, mac)) return { ok: false, reason: 'invalid' };
  const json = decodeBase64urlStrict(payload);
  if (!json) return { ok: false, reason: 'invalid' };
  let c: Record<string, unknown>;
  try {
    c = JSON.parse(json.toString('utf8')) as Record<string, unknown>;
  } catch {
    return { ok: false, reason: 'invalid' };
  }
  const typ = c.typ;
  if (c.v !== 1 || c.kid !== key.kid || (typ !== 'user' && typ !== 'client' && typ !== 'end-user')) return { ok: false, reason: 'invalid' };
  if (typeof c.sub !== 'string' || typeof c.exp !== 'number' || typeof c.iat !== 'number') return { ok: false, reason: 'invalid' };
  if (c.sid !== null && typeof c.sid !== 'string') return { ok: false, reason: 'invalid' };
  // A client token names its secret: one without (issued before tokens were bound) is refused.
  if (typ === 'client' ? typeof c.sv !== 'string' : c.sv !== undefined) return { ok: false, reason: 'invalid' };
  if (c.exp * 1000 <= now) return { ok: false, reason: 'expired' };
  return { ok: true, claims: { typ, sub: c.sub, sid: c.sid as string | null, ...(typeof c.sv === 'string' ? { sv: c.sv } : {}), iat: c.iat, exp: c.exp } };
}

/** The CSRF token of a cookie session: a MAC of the session id, so nothing extra is stored. */
export function csrfToken(key: IamKey, sessionId: string): string {
  return key.mac('csrf', sessionId).toString('base64url');
}

/** Whether `sent` is the CSRF token of the session, spelled canonically. */
export function csrfMatches(key: IamKey, sessionId: string, sent: string): boolean {
  const mac = decodeBase64urlStrict(sent, MAC_BYTES);
  return mac !== undefined && key.verifyMac('csrf', sessionId, mac);
}
