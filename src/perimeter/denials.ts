import { sourceKey } from './address.ts';

/** One refused anonymous request, as the HTTP layer reports it. */
export interface Denial {
  /** The client address; counted per IPv4 address or IPv6 /64. */
  readonly ip: string | null | undefined;
  /** The catalog code of the refusal (IAM_UNAUTHENTICATED, IAM_TOKEN_INVALID, ...). */
  readonly reason: string;
  /** The route pattern (never the raw URL). */
  readonly route: string;
}

/** What a window saw from one source for one reason. */
export interface DenialSummary {
  readonly source: string;
  readonly reason: string;
  readonly count: number;
  readonly firstAt: Date;
  readonly lastAt: Date;
  /** The routes refused, most frequent first, at most five, with their counts. */
  readonly routes: readonly { readonly route: string; readonly count: number }[];
}

interface Entry {
  count: number;
  first: number;
  last: number;
  routes: Map<string, number>;
}

/** The source under which denials beyond `maxSources` in one window are counted together. */
export const OVERFLOW_SOURCE = 'other';

/**
 * Counts anonymous refusals per source and reason within a window instead of writing each one to
 * an audit chain: a flood of 4,000 anonymous 401s becomes one summary per source and window (the
 * caller writes each summary as one record, e.g. `access.denied.summary` on the platform chain,
 * and sends them to the security-event stream). Memory is bounded: past `maxSources` distinct
 * sources in a window, further ones are counted under {@link OVERFLOW_SOURCE}. Time comes from
 * the caller (`now`), so tests freeze it; `drain` hands over the finished window.
 */
export class DenialAggregator {
  readonly #windowMs: number;
  readonly #maxSources: number;
  #windowStart: number | undefined;
  #entries = new Map<string, Entry>();
  #sources = new Set<string>();

  constructor(opts: { windowSeconds?: number; maxSources?: number } = {}) {
    const windowSeconds = opts.windowSeconds ?? 60;
    if (!Number.isFinite(windowSeconds) || windowSeconds <= 0) throw new TypeError('opts.windowSeconds must be a positive number');
    const maxSources = opts.maxSources ?? 10_000;
    if (!Number.isSafeInteger(maxSources) || maxSources < 1) throw new TypeError('opts.maxSources must be a positive integer');
    this.#windowMs = windowSeconds * 1000;
    this.#maxSources = maxSources;
  }

  /**
   * Counts one denial at `now`. Returns the summaries of the previous window when this denial
   * opens a new one (write them), else an empty list.
   */
  note(denial: Denial, now = Date.now()): DenialSummary[] {
    const finished = this.#windowStart !== undefined && now - this.#windowStart >= this.#windowMs ? this.drain() : [];
    this.#windowStart ??= now;
    let source = sourceKey(denial.ip);
    if (!this.#sources.has(source)) {
      if (this.#sources.size >= this.#maxSources) source = OVERFLOW_SOURCE;
      else this.#sources.add(source);
    }
    const key = `${source}\u0000${denial.reason}`;
    let e = this.#entries.get(key);
    if (!e) {
      e = { count: 0, first: now, last: now, routes: new Map() };
      this.#entries.set(key, e);
    }
    e.count++;
    e.last = Math.max(e.last, now);
    e.routes.set(denial.route, (e.routes.get(denial.route) ?? 0) + 1);
    return finished;
  }

  /**
   * The summaries of the window so far, which then starts afresh (call it on a timer and at
   * shutdown, so a quiet end of a flood is still written).
   */
  drain(): DenialSummary[] {
    const out: DenialSummary[] = [];
    for (const [key, e] of this.#entries) {
      const [source = '', reason = ''] = key.split('\u0000');
      const routes = [...e.routes]
        .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
        .slice(0, 5)
        .map(([route, count]) => ({ route, count }));
      out.push({ source, reason, count: e.count, firstAt: new Date(e.first), lastAt: new Date(e.last), routes });
    }
    this.#entries = new Map();
    this.#sources = new Set();
    this.#windowStart = undefined;
    return out.sort((a, b) => b.count - a.count || a.source.localeCompare(b.source));
  }
}
