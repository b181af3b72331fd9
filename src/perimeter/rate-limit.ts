import { sourceKey } from './address.ts';

/**
 * What a rate limit counts: the source address (IPv4, or the IPv6 /64), the signed-in user, the
 * API client, or the tenant a request is for.
 */
export type RateLimitKind = 'ip' | 'user' | 'client' | 'tenant';

/** One quota: `limit` requests per `windowSeconds`, refilled continuously (a token bucket). */
export interface RateLimitQuota {
  readonly limit: number;
  readonly windowSeconds: number;
}

/** The quotas per kind; a kind left out is not limited. */
export type RateLimitPolicy = Readonly<Partial<Record<RateLimitKind, RateLimitQuota>>>;

/**
 * Defaults per node: an anonymous source 120 requests a minute (2 a second, bursts of 120), a
 * user 600, an API client 1,200, a tenant 3,000 across all its callers.
 */
export const DEFAULT_RATE_LIMITS: RateLimitPolicy = Object.freeze({
  ip: Object.freeze({ limit: 120, windowSeconds: 60 }),
  user: Object.freeze({ limit: 600, windowSeconds: 60 }),
  client: Object.freeze({ limit: 1200, windowSeconds: 60 }),
  tenant: Object.freeze({ limit: 3000, windowSeconds: 60 }),
});

/** The subjects of one request; give the ones that apply (an anonymous request has no user). */
export interface RateLimitSubjects {
  /** The client address as the server believes it (after trusted proxies); keyed per /64 for IPv6. */
  readonly ip?: string | null | undefined;
  readonly user?: string | null | undefined;
  readonly client?: string | null | undefined;
  readonly tenant?: string | null | undefined;
}

/** The answer for one request: whether it may proceed, and the headers to send either way. */
export interface RateLimitDecision {
  readonly allowed: boolean;
  /** The kind whose quota refused the request (allowed: false), else the tightest one. */
  readonly kind: RateLimitKind | undefined;
  /** Whole seconds until the request would be allowed (at least 1 when refused, else 0). */
  readonly retryAfterSeconds: number;
  /**
   * `RateLimit-Policy` and `RateLimit` (IETF draft-ietf-httpapi-ratelimit-headers, structured
   * fields), plus `Retry-After` when refused. Empty when no quota applied.
   */
  readonly headers: Readonly<Record<string, string>>;
}

interface Bucket {
  tokens: number;
  /** Milliseconds since the epoch of the last refill. */
  at: number;
}

const KINDS: readonly RateLimitKind[] = ['ip', 'user', 'client', 'tenant'];

function validQuota(q: RateLimitQuota | undefined, path: string): void {
  if (q === undefined) return;
  if (!Number.isSafeInteger(q.limit) || q.limit < 1) throw new TypeError(`${path}.limit must be a positive integer`);
  if (!Number.isFinite(q.windowSeconds) || q.windowSeconds <= 0) throw new TypeError(`${path}.windowSeconds must be a positive number`);
}

/**
 * Per-node token buckets, one per subject (kind and key). A request takes one token from every
 * bucket that applies, and only if each has one: a refusal costs no quota, so a caller refused on
 * one kind does not drain another. Buckets refill at `limit / windowSeconds` per second up to
 * `limit`, so a quiet caller may burst up to `limit` at once.
 *
 * Across nodes: each node counts alone. With N nodes behind a load balancer a subject gets at
 * most N × limit per window in total (N × limit as a burst), exactly limit per window when the
 * balancer keeps a source on one node. Set `nodeShare` to N to give each node 1/N of the quota:
 * the total then stays within limit whenever requests spread evenly, and a subject pinned to one
 * node gets limit / N. Per node, not through PostgreSQL: a shared counter would cost a database
 * write on every request (the flood being limited would load the database it is meant to
 * protect), while the limits that must hold exactly across nodes, sign-in guesses, are counted in
 * PostgreSQL by the lockout.
 *
 * Memory: at most `maxKeys` buckets; the least recently used go first (a forgotten bucket starts
 * full again, which only ever errs towards allowing).
 */
export class RateLimiter {
  readonly #policy: RateLimitPolicy;
  readonly #share: number;
  readonly #maxKeys: number;
  readonly #buckets = new Map<string, Bucket>();

  constructor(opts: { policy?: RateLimitPolicy; nodeShare?: number; maxKeys?: number } = {}) {
    const policy = opts.policy ?? DEFAULT_RATE_LIMITS;
    for (const k of Object.keys(policy)) {
      if (!KINDS.includes(k as RateLimitKind)) throw new TypeError(`opts.policy.${k} is not a rate-limit kind (${KINDS.join(', ')})`);
      validQuota(policy[k as RateLimitKind], `opts.policy.${k}`);
    }
    const share = opts.nodeShare ?? 1;
    if (!Number.isSafeInteger(share) || share < 1) throw new TypeError('opts.nodeShare must be a positive integer');
    const maxKeys = opts.maxKeys ?? 100_000;
    if (!Number.isSafeInteger(maxKeys) || maxKeys < 1) throw new TypeError('opts.maxKeys must be a positive integer');
    this.#policy = policy;
    this.#share = share;
    this.#maxKeys = maxKeys;
  }

  /** The quota of a kind on this node (its share of the configured one), if limited. */
  quota(kind: RateLimitKind): RateLimitQuota | undefined {
    const q = this.#policy[kind];
    return q ? { limit: Math.max(1, Math.floor(q.limit / this.#share)), windowSeconds: q.windowSeconds } : undefined;
  }

  /** Number of buckets held (for metrics and tests). */
  get size(): number {
    return this.#buckets.size;
  }

  /** Decides one request at `now` (milliseconds) and, when allowed, takes its tokens. */
  take(subjects: RateLimitSubjects, now = Date.now()): RateLimitDecision {
    const applied: { kind: RateLimitKind; quota: RateLimitQuota; bucket: Bucket; key: string }[] = [];
    for (const kind of KINDS) {
      const raw = subjects[kind];
      const quota = this.quota(kind);
      if (raw === undefined || raw === null || raw === '' || !quota) continue;
      const key = `${kind}:${kind === 'ip' ? sourceKey(raw) : raw}`;
      applied.push({ kind, quota, key, bucket: this.#current(key, quota, now) });
    }
    if (applied.length === 0) return { allowed: true, kind: undefined, retryAfterSeconds: 0, headers: {} };
    const short = applied.filter((a) => a.bucket.tokens < 1);
    if (short.length > 0) {
      // Nothing is taken, nothing stored (the refill is recomputed from the last take, so no
      // rounding piles up); the buckets only count as recently used.
      for (const a of applied) this.#touch(a.key);
      // The one that frees up last decides when to come back.
      const waits = short.map((a) => ({ a, wait: Math.ceil(((1 - a.bucket.tokens) * a.quota.windowSeconds) / a.quota.limit) }));
      const worst = waits.reduce((x, y) => (y.wait > x.wait ? y : x));
      const retry = Math.max(1, worst.wait);
      return { allowed: false, kind: worst.a.kind, retryAfterSeconds: retry, headers: { ...headersFor(worst.a, 0), 'retry-after': String(retry) } };
    }
    for (const a of applied) {
      a.bucket.tokens -= 1;
      this.#store(a.key, a.bucket);
    }
    // Report the tightest quota: the one with the smallest share left.
    const tightest = applied.reduce((x, y) => (y.bucket.tokens / y.quota.limit < x.bucket.tokens / x.quota.limit ? y : x));
    return { allowed: true, kind: tightest.kind, retryAfterSeconds: 0, headers: headersFor(tightest, Math.floor(tightest.bucket.tokens)) };
  }

  /** The bucket as it stands at `now` (refilled since its last take), not stored. */
  #current(key: string, quota: RateLimitQuota, now: number): Bucket {
    const b = this.#buckets.get(key);
    if (!b) return { tokens: quota.limit, at: now };
    // A clock that went backwards adds nothing.
    const elapsed = Math.max(0, now - b.at) / 1000;
    return { tokens: Math.min(quota.limit, b.tokens + (elapsed * quota.limit) / quota.windowSeconds), at: Math.max(b.at, now) };
  }

  #touch(key: string): void {
    const b = this.#buckets.get(key);
    if (!b) return;
    this.#buckets.delete(key);
    this.#buckets.set(key, b);
  }

  #store(key: string, b: Bucket): void {
    // Re-inserted last: Map order is the recency order eviction relies on.
    this.#buckets.delete(key);
    if (this.#buckets.size >= this.#maxKeys) {
      const oldest = this.#buckets.keys().next().value;
      if (oldest !== undefined) this.#buckets.delete(oldest);
    }
    this.#buckets.set(key, b);
  }
}

function headersFor(a: { kind: RateLimitKind; quota: RateLimitQuota; bucket: Bucket }, remaining: number): Record<string, string> {
  const { limit, windowSeconds } = a.quota;
  // Seconds until the bucket is full again: when the quota is wholly available once more.
  const untilFull = Math.max(0, Math.ceil(((limit - a.bucket.tokens) * windowSeconds) / limit));
  return {
    'ratelimit-policy': `"${a.kind}";q=${limit};w=${windowSeconds}`,
    ratelimit: `"${a.kind}";r=${remaining};t=${untilFull}`,
  };
}
