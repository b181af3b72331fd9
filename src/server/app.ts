import { randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { lifecycleRoutes } from '../apps/index.ts';
import type { CheckpointSigner } from '../audit-chain/index.ts';
import { dataApiFieldKinds, dataApiRoutes, inventoryRoutes } from '../apps/index.ts';
import { auditRoutes } from '../audit-trail/index.ts';
import type { Config } from '../config/index.ts';
import type { Keyring } from '../crypto/keyring/index.ts';
import type { Database } from '../db/index.ts';
import { AccordError, isAccordError } from '../errors/index.ts';
import { applyInputRuleToRequest, type RouteAccess, type RouteDefinition, type RouteKit, registerRoutes } from '../http/index.ts';
import {
  ACCESS_COOKIE,
  authenticate,
  authorize,
  CSRF_HEADER,
  csrfMatches,
  DUPLICATE_PARAMETER,
  type GrantUsage,
  IamKey,
  type IamServices,
  iamServices,
  identityRoutes,
  isPermission,
  readCookie,
  SAML_ACS_ROUTE,
  sessionPolicy,
} from '../iam/index.ts';
import { type DataPlane, TtlCache } from '../kernel/index.ts';
import { keyRoutes } from '../keys/index.ts';
import { resolvePathScope, tenancyRoutes } from '../tenancy/index.ts';
import { crsEngine, crsRuleSet, type FieldKindsProvider, installWaf, loadLibinjection, type WafEngine, wafRoutes } from '../waf/index.ts';
import { frameworkErrorHandler, installErrorHandling } from './errors.ts';
import { capConnections, fastifyTimeouts, httpsOptions } from './listener.ts';
import { RefusalAuditor } from './refusals.ts';
import { RequestLog } from './logger.ts';
import { installMetrics } from './metrics.ts';
import { perimeterRoutes } from '../perimeter/index.ts';
import { installPerimeter, type PerimeterWiring } from './perimeter.ts';
import { surfaceRoute } from './surface.ts';
import { platformRoutes } from './platform-routes.ts';
import { securityHeaders } from './security-headers.ts';

export interface AppOptions {
  readonly config: Config;
  readonly database: Database;
  readonly logger: Logger;
  /** Signs audit checkpoints; its public key verifies them. */
  readonly signer: CheckpointSigner;
  /** The key hierarchy under the KMS root key. */
  readonly keyring: Keyring;
  /** TLS key and certificate; absent only for in-process tests driven by `inject()`. */
  readonly https?: { readonly key: string; readonly cert: string };
  /** The IAM key signing access tokens; opened (created on first start) from the KMS when absent. */
  readonly iamKey?: IamKey;
  /** The URL clients use (WebAuthn origin); default from config.publicUrl or localhost. */
  readonly publicUrl?: string;
  /** Where stage sessions run; servers built without one (in-process tests) have none. */
  readonly dataPlane?: DataPlane;
  /** The firewall's rule engine; built from the checked-in CRS rules when absent (tests share one). */
  readonly wafEngine?: WafEngine;
  /** Field kinds the route schemas cannot give (default: the data API's, from the app manifest). */
  readonly wafFieldKinds?: FieldKindsProvider;
  /**
   * Test-only: the data API's generated SQL leaves the app's rules out, so row-level security
   * alone stands between callers and rows (the suite proving the database enforces them).
   */
  readonly testOnlyDataApiRulesOff?: boolean;
}

/** A route as registered, with the access rule it declared (tests enumerate these). */
export interface DeclaredRoute {
  readonly method: string;
  readonly url: string;
  readonly access: RouteAccess;
}

declare module 'fastify' {
  interface FastifyInstance {
    declaredRoutes: readonly DeclaredRoute[];
    /** Identity services (IAM key, token issuer, sign-in policy) this server uses. */
    iam: IamServices;
    /** Last use of grants, flushed periodically and on close. */
    grantUsage: GrantUsage;
    /** What `registerRoutes` needs to build route contexts (benchmarks and tests add routes with it). */
    routeKit: RouteKit;
    /** The perimeter's state and hooks (src/server/perimeter.ts). */
    perimeter: PerimeterWiring;
  }
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const DATA_API_ROUTES = '/t/:tenant/:stage/apps/:app/api/';

// The only routes that take form bodies (OAuth2 clients send them, and browsers post SAML
// responses with the HTTP-POST binding); JSON everywhere else.
const FORM_ROUTES = new Set(['/oauth/token', SAML_ACS_ROUTE]);

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;

function bearer(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return undefined;
  const m = /^Bearer\s+(\S+)$/i.exec(h);
  return m?.[1];
}

let wafEngine: WafEngine | undefined;
// Compiling the rule set's regexes takes a moment: once per process, shared by its servers.
function sharedWafEngine(): WafEngine {
  wafEngine ??= crsEngine(loadLibinjection());
  return wafEngine;
}

/**
 * Assembles the platform's HTTP server: security headers, error handling, authentication,
 * per-route authorization, metrics, OpenAPI, and every capability's routes. A route without a
 * declared access rule stops the assembly.
 */
export async function buildApp(opts: AppOptions): Promise<FastifyInstance> {
  const { config, database } = opts;
  // Assigned once the metrics exist; requests (and so router errors) only come after that.
  let refusals: RefusalAuditor | undefined;
  const app = Fastify({
    loggerInstance: opts.logger,
    // TLS policy, header/request/idle/handshake deadlines: src/server/listener.ts.
    ...(opts.https ? { https: httpsOptions(config, opts.https) } : {}),
    ...fastifyTimeouts(config),
    // One log line per request, not two (see RequestLog).
    logController: new RequestLog(),
    // An incoming id from a proxy is kept when it looks like one, so traces join up.
    genReqId: (req) => {
      const incoming = req.headers['x-request-id'];
      return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    },
    bodyLimit: 1024 * 1024,
    // Only named proxies are believed about the client's address; by default nobody is.
    trustProxy: config.trustedProxies.length > 0 ? [...config.trustedProxies] : false,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: true, allErrors: false } },
    // The longest legitimate path parameter is an email (at most 320 characters).
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 320 },
    // What the router refuses before any hook runs (bad percent-encoding, over-long parameters)
    // still gets a problem document, the security headers, a request id and an audit record.
    frameworkErrors: frameworkErrorHandler(() => refusals),
    // The HTTPS and plain variants differ only in the raw server type, which nothing here touches.
  }) as unknown as FastifyInstance;

  capConnections(app.server, config);

  const declared: DeclaredRoute[] = [];
  app.addHook('onRoute', (route) => {
    const acc = route.config?.access;
    if (!acc) {
      throw new Error(`Route ${route.method} ${route.url} declares no access rule; every route must (see src/http/route.ts).`);
    }
    if (acc.kind === 'permission' && !isPermission(acc.permission)) {
      throw new Error(`Route ${route.method} ${route.url} names ${acc.permission}, which is not in the permission catalog.`);
    }
    for (const method of [route.method].flat()) declared.push({ method, url: route.url, access: acc });
  });
  app.decorate('declaredRoutes', declared);

  // helmet's headers (HSTS, CSP, ...), computed once: see security-headers.ts. Set in the first
  // onRequest hook, below, so every answer carries them, refusals and errors included.
  const security = securityHeaders();
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Accord API', version: '1', description: 'Control plane of the Accord platform.' },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer' },
          // OAuth2 clients authenticate to /oauth/token with their id and secret (RFC 6749 2.3.1).
          basic: { type: 'http', scheme: 'basic' },
        },
      },
    },
  });

  installErrorHandling(app);
  // JSON everywhere (forms only where OAuth2 needs them, below): a text/plain body is an
  // unsupported media type (415), not a string that then fails validation (400).
  app.removeContentTypeParser('text/plain');
  // OAuth2 token requests are form-encoded (RFC 6749 section 4.4); nothing else is.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (req, body, done) => {
    if (!FORM_ROUTES.has(req.routeOptions.url ?? '')) return done(new AccordError('REQUEST_UNSUPPORTED_MEDIA_TYPE'), undefined);
    // Null prototype: a parameter named __proto__ or constructor is just a parameter.
    const form = Object.create(null) as Record<string, string | symbol>;
    for (const [k, v] of new URLSearchParams(body as string)) {
      // A repeated parameter is an error in OAuth2 (RFC 6749 section 3.2); keep it detectable.
      form[k] = Object.hasOwn(form, k) ? DUPLICATE_PARAMETER : v;
    }
    done(null, form);
  });
  // SCIM clients (identity providers) send their JSON as application/scim+json (RFC 7644 3.1).
  app.addContentTypeParser('application/scim+json', { parseAs: 'string' }, app.getDefaultJsonParser('error', 'error'));
  const metrics = installMetrics(app);
  const auditor = new RefusalAuditor(database.db, metrics);
  refusals = auditor;
  // --- perimeter (issue 10): request limits, IP lists, CORS, rate limits, denial summaries ---
  const perimeter = installPerimeter(app, { config, db: database.db, logger: opts.logger });
  app.decorate('perimeter', perimeter);
  // --- end perimeter ---

  const iam = iamServices(database.db, config, opts.iamKey ?? (await IamKey.open(database.db, opts.keyring.kms)), opts.publicUrl);
  app.decorate('iam', iam);
  const grantUsage = iam.grantUsage;
  app.decorate('grantUsage', grantUsage);
  app.addHook('onClose', async () => grantUsage.stop().catch((err) => app.log.warn({ err }, 'grant usage flush failed')));
  const idleOf = async (tenantId: string | null, stageId: string | null) =>
    (await sessionPolicy(database.db, iam.defaults, { tenantId, stageId })).idleSeconds;

  // Any change made through this node may end a session, disable a user or move a grant: forget
  // the remembered principals before the answer leaves, so the caller's next request sees it.
  // A callback hook: an async one costs every request a promise and a turn of the loop.
  // The data API's writes change app records only, never a principal, a grant or a stage: they
  // keep the caches (else every create would cost the next request its authentication).
  // The tenant and stage a request path names (every request to a stage reads them first),
  // forgotten with the principals.
  const scopes = new TtlCache<Awaited<ReturnType<typeof resolvePathScope>>>();
  app.addHook('onSend', (req, _reply, payload, done) => {
    if (!SAFE_METHODS.has(req.method) && !req.routeOptions.url?.startsWith(DATA_API_ROUTES)) {
      iam.principals.invalidate();
      scopes.clear();
    }
    done(null, payload);
  });

  app.decorateRequest('meta', undefined as unknown as FastifyRequest['meta']);
  app.addHook('onRequest', async (req, reply) => {
    reply.headers(security);
    reply.header('x-request-id', req.id);
    reply.header('cache-control', 'no-store');
    const ua = req.headers['user-agent'];
    const base = { requestId: req.id, sourceIp: req.ip ?? null, userAgent: typeof ua === 'string' ? ua.slice(0, 512) : null };
    req.meta = { ...base, auth: undefined };
    // The perimeter first (request head, IP lists, CORS): a refused caller costs no token check.
    const screened = await perimeter.screen(req, reply);
    if (screened) return screened;
    // A bearer header wins; browsers send the access cookie instead.
    const fromHeader = bearer(req);
    const token = fromHeader ?? readCookie(req, ACCESS_COOKIE);
    if (!token) {
      req.meta = { ...base, auth: undefined };
      return;
    }
    const via = fromHeader ? 'bearer' : 'cookie';
    const result = await authenticate(database.db, iam.issuer, token, via, idleOf, new Date(), iam.principals);
    if ('error' in result) {
      req.meta = { ...base, auth: undefined, authError: result.error };
      return;
    }
    // Cookies ride along on cross-site requests; a change made with one must prove it comes from
    // a page that could read the session's CSRF token.
    if (via === 'cookie' && !SAFE_METHODS.has(req.method) && result.auth.sessionId) {
      const sent = req.headers[CSRF_HEADER];
      if (typeof sent !== 'string' || !csrfMatches(iam.key, result.auth.sessionId, sent)) {
        req.meta = { ...base, auth: undefined, authError: 'IAM_CSRF' };
        return;
      }
    }
    req.meta = { ...base, auth: result.auth };
  });
  // Rate limits once the caller is known (per user / API client, else per source address).
  app.addHook('onRequest', (req, reply) => perimeter.limit(req, reply));
  // The input rule first (src/http/input-rule.ts): the authorizer, the audit trail and the
  // handler all see the same, well-formed text. The rule is the same on every route.
  app.addHook('preValidation', async (req) => {
    try {
      applyInputRuleToRequest(req);
    } catch (err) {
      if (isAccordError(err)) await auditor.write(req, { action: 'request.refused', reason: err.code, details: { input: err.details } });
      throw err;
    }
  });
  // Before validation, so an anonymous caller learns nothing about a route's input rules.
  app.addHook('preValidation', async (req) => {
    const acc = req.routeOptions.config.access;
    if (!acc) return;
    try {
      const grant = authorize(req.meta, acc, (req.params ?? {}) as Record<string, string | undefined>);
      if (grant) grantUsage.note(grant.id);
    } catch (err) {
      // An expired access token is the normal end of its five minutes (clients refresh and retry):
      // recording each one would bury the refusals that matter.
      if (isAccordError(err) && err.code !== 'IAM_TOKEN_EXPIRED' && !req.meta.auth) {
        // Anonymous refusals are counted per source and window (one summary each, on the
        // platform chain): a flood of 401s must not write one record per request.
        perimeter.noteDenial(req, err.code);
      } else if (isAccordError(err) && err.code !== 'IAM_TOKEN_EXPIRED') {
        // On the chain of the tenant the path names, when it exists, so its admins see who was
        // refused there (outsiders included: they learn nothing from a chain they cannot read).
        const tenantParam = acc.kind === 'permission' || acc.kind === 'end-user' ? acc.tenantParam : undefined;
        const tenantName = tenantParam ? (req.params as Record<string, string | undefined>)[tenantParam] : undefined;
        await auditor.write(req, { action: 'access.denied', reason: err.code, tenantName });
      }
      throw err;
    }
  });

  // ---- Web application firewall (src/waf/, docs/waf.md): one preHandler on every route, after
  // body parsing, authorization and validation, so it sees the values the handler gets.
  const waf = installWaf(app, {
    db: database.db,
    engine: opts.wafEngine ?? sharedWafEngine(),
    registry: metrics,
    logger: opts.logger,
    // The data API's fields, from the app model, unless a test gives its own.
    fieldKinds: opts.wafFieldKinds ?? dataApiFieldKinds(database.db),
  });
  // ---- end of the firewall

  const routes: RouteDefinition[] = [
    ...platformRoutes({ app, database, metrics, kmsHealth: () => opts.keyring.kms.health() }),
    ...identityRoutes(iam),
    ...tenancyRoutes({ db: database.db, keyring: opts.keyring }),
    ...keyRoutes({ db: database.db, keyring: opts.keyring }),
    ...auditRoutes({ db: database.db, config, signer: opts.signer }),
    ...lifecycleRoutes({ db: database.db, engine: database.engine, keyring: opts.keyring }),
    ...wafRoutes({ db: database.db, settings: waf.settings, ruleIds: new Set(crsRuleSet().rules.map((r) => r.id)) }),
    // --- perimeter ---
    ...perimeterRoutes({ db: database.db, platformLimits: () => ({ ...perimeter.state.platformLimits }), changed: () => perimeter.state.invalidate() }),
    surfaceRoute({ app, config, db: database.db, perimeter, cert: opts.https?.cert }),
    // --- end perimeter ---
    // The generated data API of every app on every stage (/t/{tenant}/{stage}/apps/{app}/...).
    ...dataApiRoutes({ db: database.db, keyring: opts.keyring, cursorMac: (data) => iam.key.mac('data-cursor', data), ...(opts.testOnlyDataApiRulesOff ? { testOnlyAppRulesOff: true } : {}) }),
    ...inventoryRoutes({ db: database.db }),
  ];
  const kit: RouteKit = {
    db: database.db,
    resolveScope: (tenant, stage) => scopes.get(stage === undefined ? tenant : `${tenant}/${stage}`, () => resolvePathScope(database.db, tenant, stage)),
    ...(opts.dataPlane ? { dataPlane: opts.dataPlane } : {}),
  };
  app.decorate('routeKit', kit);
  registerRoutes(app, kit, routes);
  return app;
}
