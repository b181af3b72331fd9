/**
 * Remembers a promised value per key for a bounded time on this node: for what nearly every
 * request would otherwise read from the catalog first (the stage a path names, the revision
 * running there, a caller's app roles, a stage's keys). The bound is the staleness a change made
 * through another node may show; a change through this node clears what it affects. A load that
 * fails is not remembered.
 */
export class TtlCache<V> {
  readonly #m = new Map<string, { at: number; v: Promise<V> }>();
  readonly #ttlMs: number;
  readonly #max: number;

  constructor(ttlMs = 1000, max = 10_000) {
    this.#ttlMs = ttlMs;
    this.#max = max;
  }

  get(key: string, load: () => Promise<V>): Promise<V> {
    const now = Date.now();
    const hit = this.#m.get(key);
    if (hit && now - hit.at < this.#ttlMs) return hit.v;
    if (this.#m.size >= this.#max) this.#m.clear();
    const v = load();
    this.#m.set(key, { at: now, v });
    v.catch(() => {
      if (this.#m.get(key)?.v === v) this.#m.delete(key);
    });
    return v;
  }

  forget(key: string): void {
    this.#m.delete(key);
  }

  clear(): void {
    this.#m.clear();
  }
}
