import type { DbOrTrx } from '../db/index.ts';
import { AccordError } from '../errors/index.ts';
import { addressMatcher } from './address.ts';
import { RateLimiter, type RateLimitDecision, type RateLimitKind, type RateLimitPolicy, type RateLimitQuota, type RateLimitSubjects } from './rate-limit.ts';
import { loadPerimeter, perimeterVersion } from './store.ts';

type Matcher = (ip: string | null | undefined) => boolean;

/** The address lists of one plane: allowed when not denied and (no allow list, or on it). */
export interface AddressLists {
  readonly allow: readonly string[];
  readonly deny: readonly string[];
  admits(ip: string | null | undefined): boolean;
}

/** One stage's perimeter as a node applies it. */
export interface StageGuard {
  readonly stageId: string;
  readonly lists: AddressLists;
  /** The quotas in force: the stage's own over the platform's. */
  readonly limits: RateLimitPolicy;
  readonly limiter: RateLimiter;
  readonly corsOrigins: ReadonlySet<string>;
}

/** What a node applies now: the control plane's lists and every stage's guard. */
export interface PerimeterSnapshot {
  readonly version: string;
  readonly control: AddressLists;
  /** By `tenant/stage` (the names in `/t/{tenant}/{stage}/` paths); a stage not here has the defaults. */
  readonly stages: ReadonlyMap<string, StageGuard>;
}

function lists(allow: string[], deny: string[]): AddressLists {
  const a: Matcher | undefined = allow.length > 0 ? addressMatcher(allow) : undefined;
  const d: Matcher | undefined = deny.length > 0 ? addressMatcher(deny) : undefined;
  return Object.freeze({ allow, deny, admits: (ip: string | null | undefined) => !d?.(ip) && (a === undefined || a(ip)) });
}

const OPEN = lists([], []);

/**
 * A node's view of the perimeter settings in the catalog (IP lists, stage quotas, CORS), cached
 * and reloaded when the version counter moves. The counter is read at most every `refreshMs`
 * (0: on every request), by one request at a time while the others wait for the same answer, so a
 * change made through any node applies on every node within `refreshMs` plus one query. Changes
 * made through this node call `invalidate`, so they apply here at once. Why a counter and not
 * LISTEN/NOTIFY: it works the same on PGlite and PostgreSQL, costs one primary-key read per
 * interval, and cannot miss a notification over a dropped connection.
 *
 * Rate limiters keep their buckets across reloads while their quotas stay the same.
 */
export class PerimeterState {
  readonly #db: DbOrTrx;
  readonly #refreshMs: number;
  readonly #platform: RateLimitPolicy;
  readonly #nodeShare: number;
  /** The control plane's limiter and the default one of stages without settings of their own. */
  readonly control: RateLimiter;
  readonly #defaultStage: RateLimiter;
  #snapshot: PerimeterSnapshot | undefined;
  #checkedAt = 0;
  #pending: Promise<PerimeterSnapshot> | undefined;
  /** Bumped by `invalidate`: a reload begun before it must not install what it read. */
  #generation = 0;
  #limiters = new Map<string, { key: string; limiter: RateLimiter }>();

  constructor(db: DbOrTrx, opts: { refreshMs: number; platformLimits: RateLimitPolicy; nodeShare: number }) {
    this.#db = db;
    this.#refreshMs = opts.refreshMs;
    this.#platform = opts.platformLimits;
    this.#nodeShare = opts.nodeShare;
    this.control = new RateLimiter({ policy: opts.platformLimits, nodeShare: opts.nodeShare });
    this.#defaultStage = new RateLimiter({ policy: opts.platformLimits, nodeShare: opts.nodeShare });
  }

  /** The platform's quotas (configuration). */
  get platformLimits(): RateLimitPolicy {
    return this.#platform;
  }

  /** Forgets the cached version: the next request reloads (after a change made through this node). */
  invalidate(): void {
    this.#generation++;
    this.#checkedAt = 0;
    this.#snapshot = undefined;
    this.#pending = undefined;
  }

  /** The settings in force, reloaded when the version counter has moved. */
  async snapshot(now = Date.now()): Promise<PerimeterSnapshot> {
    const s = this.#snapshot;
    if (s && this.#refreshMs > 0 && now - this.#checkedAt < this.#refreshMs) return s;
    if (!this.#pending) {
      const p: Promise<PerimeterSnapshot> = this.#refresh(now, this.#generation).finally(() => {
        if (this.#pending === p) this.#pending = undefined;
      });
      this.#pending = p;
    }
    return this.#pending;
  }

  /** The guard of the stage a data-plane path names, or the defaults when it set nothing. */
  stage(snapshot: PerimeterSnapshot, tenant: string, stage: string): StageGuard | undefined {
    return snapshot.stages.get(`${tenant}/${stage}`);
  }

  /** Decides one request against the control plane's or a stage's quotas. */
  take(guard: StageGuard | undefined, plane: 'control' | 'stage', subjects: RateLimitSubjects, now = Date.now()): RateLimitDecision {
    const limiter = plane === 'control' ? this.control : (guard?.limiter ?? this.#defaultStage);
    return limiter.take(subjects, now);
  }

  async #refresh(now: number, generation: number): Promise<PerimeterSnapshot> {
    const current = this.#snapshot;
    if (current && (await perimeterVersion(this.#db)) === current.version) {
      this.#checkedAt = now;
      return current;
    }
    const loaded = await loadPerimeter(this.#db);
    const byStage = new Map<string, { stageId: string; allow: string[]; deny: string[]; limits: RateLimitPolicy; cors: string[] }>();
    const entry = (key: string, stageId: string) => {
      let e = byStage.get(key);
      if (!e) {
        e = { stageId, allow: [], deny: [], limits: {}, cors: [] };
        byStage.set(key, e);
      }
      return e;
    };
    const control = { allow: [] as string[], deny: [] as string[] };
    for (const r of loaded.rules) {
      const target = r.stageKey === null || r.stageId === null ? control : entry(r.stageKey, r.stageId);
      target[r.action].push(r.cidr);
    }
    for (const s of loaded.stages) {
      const e = entry(s.stageKey, s.stageId);
      e.limits = s.rateLimits;
      e.cors = s.corsOrigins;
    }
    const stages = new Map<string, StageGuard>();
    const limiters = new Map<string, { key: string; limiter: RateLimiter }>();
    for (const [key, e] of byStage) {
      const limits = mergeLimits(this.#platform, e.limits);
      const limitsKey = JSON.stringify(limits);
      const kept = this.#limiters.get(e.stageId);
      const limiter = kept && kept.key === limitsKey ? kept.limiter : new RateLimiter({ policy: limits, nodeShare: this.#nodeShare });
      limiters.set(e.stageId, { key: limitsKey, limiter });
      stages.set(key, Object.freeze({ stageId: e.stageId, lists: lists(e.allow, e.deny), limits, limiter, corsOrigins: new Set(e.cors) }));
    }
    const snapshot: PerimeterSnapshot = Object.freeze({
      version: loaded.version,
      control: control.allow.length + control.deny.length > 0 ? lists(control.allow, control.deny) : OPEN,
      stages,
    });
    // A change made through this node since this reload began: its caller reads again.
    if (generation !== this.#generation) return snapshot;
    this.#limiters = limiters;
    this.#snapshot = snapshot;
    this.#checkedAt = now;
    return snapshot;
  }
}

/** A stage's quotas over the platform's: a kind it sets replaces the platform's. */
export function mergeLimits(platform: RateLimitPolicy, stage: RateLimitPolicy): RateLimitPolicy {
  const out: Partial<Record<RateLimitKind, RateLimitQuota>> = { ...platform };
  for (const [k, q] of Object.entries(stage)) if (q) out[k as RateLimitKind] = q;
  return Object.freeze(out);
}

/**
 * Parses the configuration's `limit/windowSeconds` (or `off`) per kind into a policy. The schema
 * has checked the spelling; a zero is refused here, naming the key.
 */
export function rateLimitsFromConfig(config: { rateLimitIp: string; rateLimitUser: string; rateLimitClient: string; rateLimitTenant: string }): RateLimitPolicy {
  const out: Partial<Record<RateLimitKind, RateLimitQuota>> = {};
  const keys: [RateLimitKind, string, string][] = [
    ['ip', 'rateLimitIp', config.rateLimitIp],
    ['user', 'rateLimitUser', config.rateLimitUser],
    ['client', 'rateLimitClient', config.rateLimitClient],
    ['tenant', 'rateLimitTenant', config.rateLimitTenant],
  ];
  for (const [kind, key, value] of keys) {
    if (value === 'off') continue;
    const [limit, windowSeconds] = value.split('/').map(Number);
    if (!limit || !windowSeconds) throw new AccordError('CONFIG_INVALID', { message: `Invalid configuration for ${key}: limit and window must be positive (got ${value}).`, details: { key } });
    out[kind] = { limit, windowSeconds };
  }
  return Object.freeze(out);
}
