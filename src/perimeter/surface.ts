import type { DbOrTrx } from '../db/index.ts';
import { loadPerimeter } from './store.ts';
import { mergeLimits } from './state.ts';
import type { RateLimitPolicy } from './rate-limit.ts';

/** One listening endpoint as the server describes it. */
export interface SurfaceEndpoint {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** null: plain HTTP (in-process servers only; `accord start` always serves TLS). */
  readonly tls: {
    readonly protocols: readonly string[];
    readonly tls13Suites: readonly string[];
    readonly tls12Suites: readonly string[];
    readonly curves: readonly string[];
    readonly certificate: { readonly subject: string; readonly issuer: string; readonly notAfter: string; readonly daysLeft: number; readonly selfIssuedByLocalCa: boolean } | null;
  } | null;
}

/** A finding: what is exposed that need not be, against the policy. */
export interface SurfaceFinding {
  readonly id: string;
  readonly severity: 'high' | 'medium' | 'low' | 'info';
  readonly message: string;
}

/** The attack-surface report (`GET /api/v1/security/surface`, `accord security surface --json`). */
export interface SurfaceReport {
  readonly generatedAt: string;
  readonly endpoints: readonly SurfaceEndpoint[];
  readonly anonymousRoutes: readonly { readonly method: string; readonly url: string; readonly expected: boolean }[];
  readonly controlPlane: { readonly allow: readonly string[]; readonly deny: readonly string[]; readonly rateLimits: RateLimitPolicy };
  readonly stages: readonly { readonly stage: string; readonly allow: readonly string[]; readonly deny: readonly string[]; readonly rateLimits: RateLimitPolicy; readonly corsOrigins: readonly string[] }[];
  readonly requestLimits: Readonly<Record<string, number>>;
  readonly findings: readonly SurfaceFinding[];
}

/**
 * The policy the report compares against: the anonymous routes the platform needs (health,
 * sign-in and its steps, setup, password reset and invitations, the OAuth2 token endpoint, the
 * API description, end users' sign-in). Any other anonymous route is a finding.
 */
export const EXPECTED_ANONYMOUS = [
  /^\/healthz$/,
  /^\/readyz$/,
  /^\/api\/v1\/openapi\.json$/,
  /^\/api\/v1\/auth\/(login|mfa|refresh|setup)$/,
  /^\/api\/v1\/account\/(password-reset|invitations?)(\/.*)?$/,
  /^\/api\/v1\/setup$/,
  /^\/oauth\/token$/,
  /^\/api\/v1\/audit\/signing-key$/,
  /^\/t\/:tenant\/:stage\/auth\/(login|mfa|refresh)$/,
];

const CERT_WARN_DAYS = 30;

/**
 * Builds the report from what the server knows (endpoints, the route table, the configured
 * limits) and what the catalog holds (IP lists, stage settings), with findings against the
 * policy: a control plane open to every address, quotas switched off, anonymous routes beyond
 * the expected set, a certificate near its end, plain HTTP, CORS origins over plain HTTP.
 */
export async function surfaceReport(
  db: DbOrTrx,
  input: {
    endpoints: readonly SurfaceEndpoint[];
    routes: readonly { method: string; url: string; access: { kind: string } }[];
    platformLimits: RateLimitPolicy;
    requestLimits: Readonly<Record<string, number>>;
    listensOnAllInterfaces: boolean;
  },
  now = new Date(),
): Promise<SurfaceReport> {
  const loaded = await loadPerimeter(db);
  const control = { allow: [] as string[], deny: [] as string[] };
  const stages = new Map<string, { allow: string[]; deny: string[]; rateLimits: RateLimitPolicy; corsOrigins: string[] }>();
  const stage = (key: string) => {
    let s = stages.get(key);
    if (!s) {
      s = { allow: [], deny: [], rateLimits: input.platformLimits, corsOrigins: [] };
      stages.set(key, s);
    }
    return s;
  };
  for (const r of loaded.rules) (r.stageKey === null ? control : stage(r.stageKey))[r.action].push(r.cidr);
  for (const s of loaded.stages) {
    const e = stage(s.stageKey);
    e.rateLimits = mergeLimits(input.platformLimits, s.rateLimits);
    e.corsOrigins = s.corsOrigins;
  }
  const anonymousRoutes = input.routes
    .filter((r) => r.access.kind === 'public' && r.method !== 'HEAD')
    .map((r) => ({ method: r.method, url: r.url, expected: EXPECTED_ANONYMOUS.some((p) => p.test(r.url)) }))
    .sort((a, b) => a.url.localeCompare(b.url) || a.method.localeCompare(b.method));

  const findings: SurfaceFinding[] = [];
  for (const e of input.endpoints) {
    if (!e.tls) findings.push({ id: 'plain-http', severity: 'high', message: `${e.url} serves plain HTTP.` });
    else if (e.tls.certificate && e.tls.certificate.daysLeft < CERT_WARN_DAYS) {
      findings.push({ id: 'certificate-expiry', severity: e.tls.certificate.daysLeft < 7 ? 'high' : 'medium', message: `The certificate of ${e.url} expires in ${e.tls.certificate.daysLeft} days (${e.tls.certificate.notAfter}).` });
    }
    if (e.tls?.protocols.some((p) => p === 'TLSv1' || p === 'TLSv1.1')) findings.push({ id: 'tls-legacy', severity: 'high', message: `${e.url} accepts TLS older than 1.2.` });
  }
  if (control.allow.length === 0) {
    findings.push({
      id: 'control-plane-open',
      severity: input.listensOnAllInterfaces ? 'medium' : 'info',
      message: `The control plane (/api/v1) accepts every source address${input.listensOnAllInterfaces ? ' on every interface' : ''}: restrict it with \`accord net allow CIDR\`.`,
    });
  }
  for (const kind of ['ip', 'user', 'client', 'tenant'] as const) {
    if (!input.platformLimits[kind]) findings.push({ id: `rate-limit-off-${kind}`, severity: kind === 'ip' ? 'high' : 'medium', message: `No ${kind} rate limit is configured.` });
  }
  for (const r of anonymousRoutes.filter((x) => !x.expected)) {
    findings.push({ id: 'unexpected-anonymous-route', severity: 'medium', message: `${r.method} ${r.url} answers without authentication and is not in the policy's list of anonymous routes.` });
  }
  for (const [key, s] of stages) {
    for (const o of s.corsOrigins.filter((x) => x.startsWith('http://'))) findings.push({ id: 'cors-plain-http-origin', severity: 'low', message: `Stage ${key} allows the plain-HTTP origin ${o}.` });
  }
  return {
    generatedAt: now.toISOString(),
    endpoints: input.endpoints,
    anonymousRoutes,
    controlPlane: { ...control, rateLimits: input.platformLimits },
    stages: [...stages].map(([k, s]) => ({ stage: k, ...s })).sort((a, b) => a.stage.localeCompare(b.stage)),
    requestLimits: input.requestLimits,
    findings,
  };
}
