import type { Logger } from 'pino';
import { sql } from 'kysely';
import type { Db, Trx } from '../db/index.ts';

/** A queued job as a handler sees it. */
export interface Job {
  readonly id: string;
  readonly kind: string;
  readonly tenantId: string | null;
  readonly payload: Readonly<Record<string, unknown>>;
  readonly progress: Readonly<Record<string, unknown>>;
}

/**
 * One step of a job: do a bounded batch of work in its own transaction and say whether the job is
 * finished. Steps must be idempotent (decide what is left from the data, not from memory), so a
 * step cut short by a crash is simply done again by whichever node picks the job up next.
 */
export type JobStep = (db: Db, job: Job) => Promise<{ done: boolean; progress: Record<string, unknown> }>;

/** How long a claim holds before another node may take the job over (renewed every step). */
const LEASE_MS = 10_000;
/** A job that fails this many claims in a row is parked as `failed` for an operator to look at. */
const MAX_ATTEMPTS = 25;

/** Queues a job in the caller's transaction: it exists only if the change that asked for it commits. */
export async function enqueueJob(trx: Trx, kind: string, payload: Record<string, unknown>, tenantId: string | null = null): Promise<string> {
  const row = await trx
    .insertInto('accord.jobs')
    .values({ kind, tenant_id: tenantId, state: 'pending', payload: JSON.stringify(payload) })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

/** A job's state for status displays. */
export async function getJob(db: Db, id: string) {
  return db.selectFrom('accord.jobs').selectAll().where('id', '=', id).executeTakeFirst();
}

/**
 * Runs queued jobs, one at a time per node, on any node: a job is claimed with
 * `FOR UPDATE SKIP LOCKED` and a lease; a node that dies leaves the lease to expire and the job
 * is resumed elsewhere (or here after a restart).
 */
export class JobRunner {
  readonly #db: Db;
  readonly #steps: ReadonlyMap<string, JobStep>;
  readonly #logger: Logger;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;

  constructor(db: Db, steps: ReadonlyMap<string, JobStep>, logger: Logger) {
    this.#db = db;
    this.#steps = steps;
    this.#logger = logger;
  }

  start(pollMs = 500): void {
    this.#timer = setInterval(() => {
      if (!this.#running) this.#running = this.drain().finally(() => (this.#running = undefined));
    }, pollMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    await this.#running;
  }

  /** Runs jobs until none is runnable (or the runner stops). */
  async drain(): Promise<void> {
    while (!this.#stopped) {
      const job = await this.#claim();
      if (!job) return;
      await this.#run(job);
    }
  }

  async #claim(): Promise<Job | undefined> {
    const kinds = [...this.#steps.keys()];
    if (kinds.length === 0) return undefined;
    // Not a unit of work: claiming a lease changes no data and is not audited (the step's own unit is).
    const row = await this.#db.transaction().execute(async (trx) => {
      const candidate = await trx
        .selectFrom('accord.jobs')
        .select('id')
        .where('kind', 'in', kinds)
        .where((eb) => eb.or([eb('state', '=', 'pending'), eb.and([eb('state', '=', 'running'), eb('locked_until', '<', sql<Date>`now()`)])]))
        .orderBy('created_at')
        .limit(1)
        .forUpdate()
        .skipLocked()
        .executeTakeFirst();
      if (!candidate) return undefined;
      return trx
        .updateTable('accord.jobs')
        .set((eb) => ({
          state: 'running',
          attempts: eb('attempts', '+', 1),
          locked_until: sql<Date>`now() + ${`${LEASE_MS} milliseconds`}::interval`,
          updated_at: sql<Date>`now()`,
        }))
        .where('id', '=', candidate.id)
        .returningAll()
        .executeTakeFirstOrThrow();
    });
    if (!row) return undefined;
    return { id: row.id, kind: row.kind, tenantId: row.tenant_id, payload: row.payload, progress: row.progress };
  }

  async #run(job: Job): Promise<void> {
    const step = this.#steps.get(job.kind);
    if (!step) return;
    let current = job;
    try {
      while (!this.#stopped) {
        const { done, progress } = await step(this.#db, current);
        await this.#db
          .updateTable('accord.jobs')
          .set({
            progress: JSON.stringify(progress),
            state: done ? 'done' : 'running',
            error: null,
            locked_until: done ? null : sql<Date>`now() + ${`${LEASE_MS} milliseconds`}::interval`,
            updated_at: sql<Date>`now()`,
          })
          .where('id', '=', job.id)
          .execute();
        current = { ...current, progress };
        if (done) return;
        // PGlite answers without real I/O, so a loop of steps would be one long chain of
        // microtasks and starve the HTTP server: give the event loop a turn between batches.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } catch (err) {
      this.#logger.error({ err, job: job.id, kind: job.kind }, 'job step failed; it will be retried');
      await this.#db
        .updateTable('accord.jobs')
        .set((eb) => ({
          error: err instanceof Error ? err.message.slice(0, 500) : 'error',
          state: eb.case().when('attempts', '>=', MAX_ATTEMPTS).then('failed' as const).else('running' as const).end(),
          locked_until: sql<Date>`now() + interval '5 seconds'`,
          updated_at: sql<Date>`now()`,
        }))
        .where('id', '=', job.id)
        .execute()
        .catch(() => {});
    }
  }
}
