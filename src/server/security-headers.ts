import type { IncomingMessage, ServerResponse } from 'node:http';
import helmet from 'helmet';

/**
 * The security headers of every answer (@fastify/helmet applies them in onRequest). HSTS for a
 * year with subdomains; nothing may be loaded, framed or embedded (`default-src 'none'`,
 * `frame-ancestors 'none'` and X-Frame-Options DENY, which say the same to old and new browsers);
 * resources stay same-origin.
 */
export const SECURITY_HEADERS = {
  hsts: { maxAge: 31_536_000, includeSubDomains: true },
  contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
  crossOriginResourcePolicy: { policy: 'same-origin' as const },
  frameguard: { action: 'deny' as const },
};

const apply = helmet(SECURITY_HEADERS);

/**
 * Sets the same headers on a raw response, for answers sent outside Fastify's hooks (errors
 * the router raises before any hook runs: a malformed URL, an over-long path parameter).
 */
export function applySecurityHeaders(req: IncomingMessage, res: ServerResponse): void {
  apply(req, res, () => {});
}
