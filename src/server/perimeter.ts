import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { AuditSource } from '../audit-chain/index.ts';
import type { Config } from '../config/index.ts';
import type { Db } from '../db/index.ts';
import { AccordError } from '../errors/index.ts';
import { auditAlone } from '../kernel/index.ts';
import {
  checkJsonShape,
  checkRequestHead,
  DenialAggregator,
  type DenialSummary,
  PerimeterState,
  type RequestLimits,
  rateLimitsFromConfig,
  requestLimits,
  type StageGuard,
} from '../perimeter/index.ts';

/** What the server's hooks use of the perimeter. */
export interface PerimeterWiring {
  readonly state: PerimeterState;
  readonly denials: DenialAggregator;
  readonly limits: RequestLimits;
  /** Request line, headers, IP lists and CORS: before authentication (it spends nothing on a refused caller). */
  screen(req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined>;
  /** Rate limits: after authentication, which names the user or client. */
  limit(req: FastifyRequest, reply: FastifyReply): Promise<void>;
  /** Counts an anonymous refusal (written later as one summary per source and window). */
  noteDenial(req: FastifyRequest, reason: string): void;
  /** Writes the window so far (tests; the timer and close do it on their own). */
  flush(): Promise<number>;
}

const SOURCE: AuditSource = Object.freeze({ actor: Object.freeze({ type: 'system', id: null, label: 'perimeter', roles: [] }), requestId: null, sourceIp: null, userAgent: null });
const PREFLIGHT_METHODS = 'GET, POST, PUT, PATCH, DELETE';
const PREFLIGHT_HEADERS = 'authorization, content-type, x-csrf-token, x-request-id, accord-device';

// The stage a data-plane path names: /t/{tenant}/{stage}/...
function dataPlaneOf(url: string): { tenant: string; stage: string } | undefined {
  if (!url.startsWith('/t/')) return undefined;
  const [tenant, stage] = url.slice(3).split(/[/?]/, 2);
  return tenant && stage ? { tenant: decodeURIComponent(tenant), stage: decodeURIComponent(stage) } : undefined;
}

function safeDataPlaneOf(url: string): { tenant: string; stage: string } | undefined {
  try {
    return dataPlaneOf(url);
  } catch {
    // A malformed escape: the router refuses the request anyway; no stage's settings apply.
    return undefined;
  }
}

/**
 * Wires the perimeter into the request pipeline: the request-head limits, the IP allow/deny lists
 * (control plane and per stage), CORS for stages, rate limits per source / user / API client /
 * tenant with the IETF RateLimit headers, JSON shape limits, and the aggregation of anonymous
 * refusals into one summary per source, reason and window (`access.denied.summary` on the
 * platform chain and a `securityEvent` log line) instead of one audit record each.
 */
export function installPerimeter(app: FastifyInstance, deps: { config: Config; db: Db; logger: Logger }): PerimeterWiring {
  const { config, db, logger } = deps;
  const state = new PerimeterState(db, { refreshMs: config.perimeterRefreshMilliseconds, platformLimits: rateLimitsFromConfig(config), nodeShare: config.rateLimitNodeShare });
  const denials = new DenialAggregator({ windowSeconds: config.denialSummarySeconds, maxSources: 1000 });
  const limits = requestLimits(config);
  const guards = new WeakMap<FastifyRequest, { plane: 'control' | 'stage'; guard: StageGuard | undefined; tenant: string | undefined }>();

  const write = async (summaries: DenialSummary[]): Promise<number> => {
    for (const s of summaries) {
      const details = { count: s.count, firstAt: s.firstAt.toISOString(), lastAt: s.lastAt.toISOString(), routes: s.routes, windowSeconds: config.denialSummarySeconds };
      logger.warn({ securityEvent: 'access.denied.summary', source: s.source, reason: s.reason, ...details }, 'refused requests from one source');
      try {
        await auditAlone(db, SOURCE, { tenantId: null, action: 'access.denied.summary', target: { type: 'source', id: s.source }, outcome: 'denied', reason: s.reason, details });
      } catch (err) {
        logger.error({ err, source: s.source, reason: s.reason, count: s.count }, 'AUDIT RECORD LOST: a summary of refused requests could not be written');
      }
    }
    return summaries.length;
  };
  const flush = () => write(denials.drain());
  const timer = setInterval(() => void flush(), config.denialSummarySeconds * 1000);
  timer.unref();
  app.addHook('onClose', async () => {
    clearInterval(timer);
    await flush();
  });

  const noteDenial = (req: FastifyRequest, reason: string) => {
    const finished = denials.note({ ip: req.ip, reason, route: `${req.method} ${req.routeOptions?.url ?? 'unmatched'}` });
    if (finished.length > 0) void write(finished);
  };

  // Bodies are parsed before preValidation; their shape is checked before anything reads them.
  app.addHook('preValidation', (req, _reply, done) => {
    try {
      checkJsonShape(limits, req.body);
      done();
    } catch (err) {
      done(err as Error);
    }
  });

  return {
    state,
    denials,
    limits,
    noteDenial,
    flush,
    async screen(req, reply) {
      checkRequestHead(limits, req.url, req.raw.rawHeaders);
      const snapshot = await state.snapshot();
      const where = safeDataPlaneOf(req.url);
      const guard = where ? state.stage(snapshot, where.tenant, where.stage) : undefined;
      const params = (req.params ?? {}) as Record<string, string | undefined>;
      guards.set(req, { plane: where ? 'stage' : 'control', guard, tenant: where?.tenant ?? params.tenant });
      const lists = where ? guard?.lists : snapshot.control;
      if (lists && !lists.admits(req.ip)) {
        noteDenial(req, 'PERIMETER_ADDRESS_DENIED');
        throw new AccordError('PERIMETER_ADDRESS_DENIED');
      }
      const origin = req.headers.origin;
      if (typeof origin !== 'string') return undefined;
      const allowed = where !== undefined && guard?.corsOrigins.has(origin) === true;
      const preflight = req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined;
      if (allowed) {
        reply.header('access-control-allow-origin', origin);
        reply.header('vary', 'Origin');
        reply.header('access-control-expose-headers', 'ratelimit, ratelimit-policy, retry-after, x-request-id');
        if (preflight) {
          return reply
            .code(204)
            .header('access-control-allow-methods', PREFLIGHT_METHODS)
            .header('access-control-allow-headers', PREFLIGHT_HEADERS)
            .header('access-control-max-age', '600')
            .send();
        }
      } else if (preflight) {
        noteDenial(req, 'PERIMETER_CORS_REFUSED');
        throw new AccordError('PERIMETER_CORS_REFUSED');
      }
      return undefined;
    },
    async limit(req, reply) {
      const g = guards.get(req) ?? { plane: 'control' as const, guard: undefined, tenant: undefined };
      const auth = req.meta?.auth;
      // Anonymous callers count against their address only: a flood must not spend the quota of
      // the tenant it aims at (its signed-in users would pay for it).
      const tenant = g.tenant ?? auth?.tenantId ?? undefined;
      const subjects = !auth ? { ip: req.ip } : auth.kind === 'client' ? { client: auth.principalId, tenant } : { user: auth.principalId, tenant };
      const decision = state.take(g.guard, g.plane, subjects);
      if (decision.allowed) {
        reply.headers(decision.headers);
        return;
      }
      noteDenial(req, 'PERIMETER_RATE_LIMITED');
      throw new AccordError('PERIMETER_RATE_LIMITED', {
        message: `Too many requests (${decision.kind} quota); retry after ${decision.retryAfterSeconds} s.`,
        headers: decision.headers,
        details: { kind: decision.kind, retryAfterSeconds: decision.retryAfterSeconds },
      });
    },
  };
}
