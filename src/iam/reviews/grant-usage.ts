import { sql } from 'kysely';
import type { Db } from '../../db/index.ts';

/**
 * Last use of each grant, for access reviews. Requests note the grant that allowed them in
 * memory; a flush writes the newest time per grant in one statement. Writing on every request
 * would turn every read into a write; a review cares about days, not seconds.
 */
export class GrantUsage {
  readonly #db: Db;
  readonly #pending = new Map<string, Date>();
  #timer: NodeJS.Timeout | undefined;

  constructor(db: Db) {
    this.#db = db;
  }

  note(grantId: string, at = new Date()): void {
    this.#pending.set(grantId, at);
  }

  /** Writes what was noted so far; returns how many grants were updated. */
  async flush(): Promise<number> {
    if (this.#pending.size === 0) return 0;
    const batch = [...this.#pending.entries()];
    this.#pending.clear();
    const ids = batch.map(([id]) => id);
    const ats = batch.map(([, at]) => at.toISOString());
    await sql`
      update accord.role_grants g set last_used_at = greatest(coalesce(g.last_used_at, u.at), u.at)
      from unnest(${ids}::uuid[], ${ats}::timestamptz[]) as u(id, at)
      where g.id = u.id
    `.execute(this.#db);
    return batch.length;
  }

  /** Flushes every `everyMs` until {@link stop}. */
  start(everyMs: number, onError: (err: unknown) => void): void {
    this.#timer = setInterval(() => void this.flush().catch(onError), everyMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.flush();
  }
}
