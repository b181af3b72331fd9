import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyReply } from 'fastify';

/**
 * Browser sessions: the access and refresh tokens travel in `__Host-` cookies (HttpOnly, Secure,
 * SameSite=Strict, Path=/, no Domain), which scripts cannot read and other sites cannot send.
 * Changes made with cookie authentication also need the session's CSRF token in a header.
 */
export const ACCESS_COOKIE = '__Host-accord-access';
export const REFRESH_COOKIE = '__Host-accord-refresh';
export const CSRF_HEADER = 'x-csrf-token';

/** Reads one cookie from a request's headers (first occurrence); takes a route context or a raw request. */
export function readCookie(from: { readonly headers: IncomingHttpHeaders }, name: string): string | undefined {
  const header = from.headers.cookie;
  if (typeof header !== 'string') return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

const cookie = (name: string, value: string, maxAgeSeconds: number) =>
  `${name}=${value}; Path=/; Max-Age=${Math.max(0, Math.floor(maxAgeSeconds))}; HttpOnly; Secure; SameSite=Strict`;

/** Sets the session cookies; lifetimes follow the tokens'. */
export function setSessionCookies(reply: FastifyReply, s: { accessToken: string; accessExpiresAt: Date; refreshToken: string; sessionExpiresAt: Date }, now = Date.now()): void {
  reply.header('set-cookie', [
    cookie(ACCESS_COOKIE, s.accessToken, (s.accessExpiresAt.getTime() - now) / 1000),
    cookie(REFRESH_COOKIE, s.refreshToken, (s.sessionExpiresAt.getTime() - now) / 1000),
  ]);
}

/** Clears the session cookies (sign-out). */
export function clearSessionCookies(reply: FastifyReply): void {
  reply.header('set-cookie', [cookie(ACCESS_COOKIE, '', 0), cookie(REFRESH_COOKIE, '', 0)]);
}
