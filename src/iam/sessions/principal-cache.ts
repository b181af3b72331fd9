import type { AuthContext } from '../../http/index.ts';

interface Entry {
  readonly auth: Omit<AuthContext, 'via'>;
  readonly until: number;
  readonly epoch: number;
}

/**
 * A short-lived memory of who an access token's session or API client is (user, status, grants),
 * keyed by the token, so a burst of requests neither reads the same rows nor re-verifies the same
 * token for each one. Bounded three ways: an entry lives at most `ttlMs` (2 s by default: the
 * longest another node's revocation can go unseen here), never past its session's own deadlines
 * or its token's expiry, and every change made through this node (any non-GET request, see
 * src/server/app.ts) drops the whole cache, so a revocation here is seen by the very next request.
 */
export class PrincipalCache {
  readonly #entries = new Map<string, Entry>();
  readonly #ttlMs: number;
  readonly #max: number;
  #epoch = 0;

  constructor(opts: { ttlMs?: number; max?: number } = {}) {
    this.#ttlMs = opts.ttlMs ?? 2000;
    this.#max = opts.max ?? 10_000;
  }

  get(key: string, now: number): Omit<AuthContext, 'via'> | undefined {
    const e = this.#entries.get(key);
    if (!e) return undefined;
    if (e.epoch !== this.#epoch || e.until <= now) {
      this.#entries.delete(key);
      return undefined;
    }
    return e.auth;
  }

  /** Remembers a principal until `deadline` (its session's idle/absolute end) or the TTL, whichever is first. */
  set(key: string, auth: Omit<AuthContext, 'via'>, now: number, deadline = Number.POSITIVE_INFINITY): void {
    if (this.#ttlMs <= 0) return;
    if (this.#entries.size >= this.#max) {
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
    this.#entries.set(key, { auth, until: Math.min(now + this.#ttlMs, deadline), epoch: this.#epoch });
  }

  /** Forgets everything (after any change that may affect sessions, users, grants or clients). */
  invalidate(): void {
    this.#epoch++;
    this.#entries.clear();
  }
}
