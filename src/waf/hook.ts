// The WAF as a Fastify preHandler: after body parsing, authentication, the input rule and schema
// validation, so it inspects exactly the values the handler will receive, on every route.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import type { Db } from '../db/index.ts';
import { AccordError } from '../errors/index.ts';
import { auditSource } from '../http/index.ts';
import type { FieldKind, WafEngine, WafVerdict } from './engine.ts';
import { recordDetection } from './events.ts';
import { fieldKindsFromSchema } from './field-kinds.ts';
import { wafRequestOf } from './request.ts';
import { DEFAULT_SETTINGS, type WafSettings, WafSettingsCache } from './settings.ts';

/**
 * Supplies field kinds for requests the route schema cannot describe (the data API types an
 * app's fields by its manifest, per deployed revision). Returns undefined to keep the schema's.
 */
export type FieldKindsProvider = (req: FastifyRequest) => ReadonlyMap<string, FieldKind> | undefined | Promise<ReadonlyMap<string, FieldKind> | undefined>;

declare module 'fastify' {
  interface FastifyInstance {
    /** The installed firewall (tests clear its settings cache after changing rows directly). */
    waf: WafHandle;
  }
  interface FastifyContextConfig {
    /** Field kinds a route states itself (merged over those derived from its schema). */
    wafFieldKinds?: ReadonlyMap<string, FieldKind>;
  }
}

export interface WafOptions {
  readonly db: Db;
  readonly engine: WafEngine;
  readonly registry: Registry;
  readonly logger: Logger;
  /** What control-plane routes (no stage in the path) get; default block, PL1, threshold 5. */
  readonly controlPlane?: WafSettings;
  readonly fieldKinds?: FieldKindsProvider;
}

/** What the server keeps of the installed WAF. */
export interface WafHandle {
  readonly settings: WafSettingsCache;
  /** Replaces what control-plane routes get (the benchmark measures each paranoia level with it). */
  setControlPlane(settings: WafSettings): void;
}

interface Resolved {
  readonly settings: WafSettings;
  readonly tenantId: string | null;
  readonly stageId: string | null;
}

/** Installs the firewall hook on `app` (before its routes are registered). */
export function installWaf(app: FastifyInstance, opts: WafOptions): WafHandle {
  const settings = new WafSettingsCache(opts.db);
  let controlPlane = opts.controlPlane ?? DEFAULT_SETTINGS;
  const detections = new Counter({
    name: 'accord_waf_detections_total',
    help: 'Requests the WAF scored at or above the threshold, by outcome and rule category.',
    labelNames: ['outcome', 'category'],
    registers: [opts.registry],
  });
  const inspected = new Counter({ name: 'accord_waf_inspected_total', help: 'Requests the WAF inspected, by mode.', labelNames: ['mode'], registers: [opts.registry] });
  const kindsByRoute = new Map<string, ReadonlyMap<string, FieldKind>>();

  app.addHook('onRoute', (route) => {
    const derived = fieldKindsFromSchema(route.schema as { body?: unknown; querystring?: unknown; params?: unknown } | undefined);
    for (const [k, v] of route.config?.wafFieldKinds ?? []) derived.set(k, v);
    for (const m of [route.method].flat()) kindsByRoute.set(`${m} ${route.url}`, derived);
  });

  async function resolve(req: FastifyRequest): Promise<Resolved | undefined> {
    const p = (req.params ?? {}) as Record<string, unknown>;
    if (typeof p.tenant === 'string' && typeof p.stage === 'string') {
      const s = await settings.forStage(p.tenant, p.stage);
      // No such stage: nothing to protect there, and the route answers 404 itself.
      if (!s) return { settings: controlPlane, tenantId: null, stageId: null };
      return { settings: s, tenantId: s.tenantId ?? null, stageId: s.stageId ?? null };
    }
    return { settings: controlPlane, tenantId: null, stageId: null };
  }

  app.addHook('preHandler', async (req) => {
    const scope = await resolve(req);
    if (!scope || scope.settings.mode === 'off') return;
    const { settings: s } = scope;
    inspected.inc({ mode: s.mode });
    const routeKey = `${req.method} ${req.routeOptions.url ?? ''}`;
    const fromRoute = kindsByRoute.get(routeKey);
    const fromProvider = opts.fieldKinds ? await opts.fieldKinds(req) : undefined;
    const kinds = fromProvider ? new Map([...(fromRoute ?? []), ...fromProvider]) : fromRoute;
    const verdict: WafVerdict = opts.engine.evaluate(wafRequestOf({ method: req.method, url: req.url, headers: req.headers, query: req.query, params: req.params, body: req.body }), {
      paranoiaLevel: s.paranoiaLevel,
      ...(kinds ? { fieldKinds: kinds } : {}),
      exclusions: s.exclusions,
    });
    if (verdict.score < s.threshold) return;
    const blocked = s.mode === 'block';
    for (const c of new Set(verdict.matches.map((m) => m.category))) detections.inc({ outcome: blocked ? 'blocked' : 'detected', category: c });
    let reference: string | undefined;
    try {
      reference = await recordDetection(opts.db, auditSource(req.meta), {
        tenantId: scope.tenantId,
        stageId: scope.stageId,
        mode: blocked ? 'block' : 'detect',
        blocked,
        kind: 'request',
        requestId: req.id,
        method: req.method,
        route: req.routeOptions.url ?? 'unmatched',
        paranoiaLevel: s.paranoiaLevel,
        verdict,
        sourceIp: req.meta?.sourceIp ?? null,
      });
    } catch (err) {
      // The event could not be written: the block stands (fail closed), and the log says so.
      opts.logger.error({ err, requestId: req.id }, 'WAF EVENT LOST');
    }
    if (blocked) throw new AccordError('WAF_BLOCKED', { details: { reference: reference ?? req.id } });
  });

  const handle: WafHandle = {
    settings,
    setControlPlane: (s) => {
      controlPlane = Object.freeze({ ...s });
    },
  };
  app.decorate('waf', handle);
  return handle;
}
