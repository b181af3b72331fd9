import type { IncomingMessage, ServerResponse } from 'node:http';
import helmet, { type HelmetOptions } from 'helmet';

/**
 * The platform's helmet settings: HSTS for a year with subdomains; nothing may be loaded, framed
 * or embedded (`default-src 'none'`, `frame-ancestors 'none'` and X-Frame-Options DENY, which say
 * the same to old and new browsers); resources stay same-origin.
 */
export const securityHeaderOptions: Readonly<HelmetOptions> = {
  hsts: { maxAge: 31_536_000, includeSubDomains: true },
  contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
  crossOriginResourcePolicy: { policy: 'same-origin' },
  frameguard: { action: 'deny' },
};

/**
 * The headers helmet sets with `options`, computed once. Without CSP nonces (the platform serves
 * no pages) they depend on the options alone, yet @fastify/helmet rebuilt the helmet middleware
 * and re-parsed the CSP in two hooks on every request (about 5% of a request's CPU, issue 9):
 * running helmet once against a recording response gives the same headers for a fraction of it.
 */
export function securityHeaders(options: Readonly<HelmetOptions> = securityHeaderOptions): Readonly<Record<string, string>> {
  const headers: Record<string, string> = {};
  const recorder = {
    setHeader(name: string, value: string | number | readonly string[]) {
      headers[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : String(value);
      return recorder;
    },
    removeHeader(name: string) {
      delete headers[name.toLowerCase()];
    },
  };
  helmet(options)({} as IncomingMessage, recorder as unknown as ServerResponse, (err?: unknown) => {
    if (err) throw err;
  });
  if (Object.keys(headers).length === 0) throw new Error('helmet set no headers');
  return Object.freeze(headers);
}

const platformHeaders = securityHeaders();

/**
 * Sets the same headers on a raw response, for answers sent outside Fastify's hooks (errors the
 * router raises before any hook runs: a malformed URL, an over-long path parameter).
 */
export function applySecurityHeaders(_req: IncomingMessage, res: ServerResponse): void {
  for (const [name, value] of Object.entries(platformHeaders)) res.setHeader(name, value);
}
