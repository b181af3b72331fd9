import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyReply } from 'fastify';
import type { IamKey } from '../iam-key.ts';
import { readCookie } from '../sessions/cookies.ts';
import { decodeBase64urlStrict } from '../sessions/tokens.ts';

/**
 * Device cookies (OWASP's "Slow down online guessing attacks with device cookies", as Keycloak
 * and the large IdPs do): a successful sign-in leaves a signed token naming the device and the
 * account. A later sign-in that presents it for the same account is counted under the device,
 * not the account, so a lock that strangers set by guessing does not stop its owner.
 *
 * Browsers get it as a `__Host-` cookie (HttpOnly, Secure, SameSite=Strict, Path=/); the CLI and
 * API clients get it in the sign-in answer (`deviceToken`) and send it back in `Accord-Device`.
 * The token is `dv1.<payload>.<mac>`: payload = base64url(JSON {d: device id, a: account subject,
 * u: user id, t: issued at}), mac = HMAC-SHA-256 under the IAM key's `device` subkey, compared
 * in constant time. It proves only that this device signed in to this account before; it never
 * replaces the password.
 */
export const DEVICE_COOKIE = '__Host-accord-device';
export const DEVICE_HEADER = 'accord-device';
/** How long a device stays trusted after its last successful sign-in. */
export const DEVICE_TTL_SECONDS = 180 * 86400;

const PREFIX = 'dv1.';
const MAX_TOKEN = 600;

interface Payload {
  readonly d: string;
  readonly a: string;
  readonly u: string;
  readonly t: number;
}

/** A new device id (or the one presented, when it was valid) signed for `account` and `userId`. */
export function issueDeviceToken(key: IamKey, input: { deviceId?: string | undefined; account: string; userId: string }, now = new Date()): { token: string; deviceId: string } {
  const deviceId = input.deviceId ?? randomBytes(16).toString('base64url');
  const payload = Buffer.from(JSON.stringify({ d: deviceId, a: input.account, u: input.userId, t: Math.floor(now.getTime() / 1000) } satisfies Payload)).toString('base64url');
  const mac = key.mac('device', payload).toString('base64url');
  return { token: `${PREFIX}${payload}.${mac}`, deviceId };
}

/**
 * The device id of a token that this key signed for `account` within its lifetime; undefined
 * for anything else (another account, expired, altered, malformed).
 */
export function verifyDeviceToken(key: IamKey, token: string | undefined, account: string, now = new Date()): { deviceId: string; userId: string } | undefined {
  if (!token || token.length > MAX_TOKEN || !token.startsWith(PREFIX)) return undefined;
  const rest = token.slice(PREFIX.length);
  const dot = rest.indexOf('.');
  if (dot < 0) return undefined;
  const payload = rest.slice(0, dot);
  const mac = decodeBase64urlStrict(rest.slice(dot + 1), 32);
  if (!mac || !key.verifyMac('device', payload, mac)) return undefined;
  const raw = decodeBase64urlStrict(payload);
  if (!raw) return undefined;
  let p: Partial<Payload>;
  try {
    p = JSON.parse(raw.toString('utf8')) as Partial<Payload>;
  } catch {
    return undefined;
  }
  if (typeof p.d !== 'string' || typeof p.a !== 'string' || typeof p.u !== 'string' || typeof p.t !== 'number') return undefined;
  if (p.a !== account) return undefined;
  if (now.getTime() / 1000 - p.t > DEVICE_TTL_SECONDS) return undefined;
  return { deviceId: p.d, userId: p.u };
}

/** The device token a sign-in request presents: the header (CLI, API clients) or the cookie. */
export function presentedDevice(from: { readonly headers: IncomingHttpHeaders }): string | undefined {
  const h = from.headers[DEVICE_HEADER];
  if (typeof h === 'string' && h !== '') return h;
  return readCookie(from, DEVICE_COOKIE);
}

/** Adds the device cookie to whatever cookies the answer already sets. */
export function setDeviceCookie(reply: FastifyReply, token: string): void {
  const cookie = `${DEVICE_COOKIE}=${token}; Path=/; Max-Age=${DEVICE_TTL_SECONDS}; HttpOnly; Secure; SameSite=Strict`;
  // Fastify appends set-cookie values rather than replacing them.
  reply.header('set-cookie', cookie);
}
