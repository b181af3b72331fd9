import type { Logger } from 'pino';
import { type CheckpointPolicy, type CheckpointSigner, takeCheckpoints, writeCheckpointFiles } from '../audit-chain/index.ts';
import type { Db } from '../db/index.ts';
import { archiveExpired } from './archive.ts';
import type { SyslogSink } from './syslog-sink.ts';

/** A periodic task of the audit trail (checkpoints, SIEM delivery, archiving). */
export interface AuditTask {
  readonly name: string;
  /** Minimum time between runs. */
  readonly everyMs: number;
  /** Run once more at shutdown (a last checkpoint, a last delivery). */
  readonly runOnStop?: boolean;
  run(): Promise<unknown>;
}

/** Signs due checkpoints and copies them to the checkpoint directory, if one is configured. */
export function checkpointTask(db: Db, signer: CheckpointSigner, policy: CheckpointPolicy, dir: string | undefined): AuditTask {
  return {
    name: 'audit.checkpoints',
    everyMs: Math.min(5000, policy.everyMs),
    runOnStop: true,
    async run() {
      const taken = await takeCheckpoints(db, signer, policy);
      if (dir && taken.length > 0) writeCheckpointFiles(dir, taken);
      return taken.length;
    },
  };
}

/**
 * Runs the tasks on a timer, one at a time, each no more often than it asks. Failures are
 * logged and retried on the next tick: the audit trail's own records are already committed,
 * these tasks only add checkpoints, copies and archives on top. Stopping waits for a running
 * task, so a shutdown never cuts a delivery or an archive in half.
 */
export class AuditJobs {
  readonly #tasks: readonly AuditTask[];
  readonly #logger: Logger;
  readonly #lastRun = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;

  constructor(tasks: readonly AuditTask[], logger: Logger) {
    this.#tasks = tasks;
    this.#logger = logger;
  }

  start(tickMs = 1000): void {
    this.#timer = setInterval(() => {
      if (!this.#running) this.#running = this.tick().finally(() => (this.#running = undefined));
    }, tickMs);
    this.#timer.unref();
  }

  /** Runs every task that is due (or all, when `force`). */
  async tick(force = false): Promise<void> {
    for (const task of this.#tasks) {
      if (this.#stopped) return;
      const last = this.#lastRun.get(task.name) ?? 0;
      if (!force && Date.now() - last < task.everyMs) continue;
      this.#lastRun.set(task.name, Date.now());
      try {
        await task.run();
      } catch (err) {
        this.#logger.error({ err, task: task.name }, 'audit task failed; retrying later');
      }
    }
  }

  /** Stops the timer, waits for a running task, then gives `runOnStop` tasks a last run. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    await this.#running;
    for (const task of this.#tasks.filter((t) => t.runOnStop)) {
      try {
        await task.run();
      } catch (err) {
        this.#logger.error({ err, task: task.name }, 'audit task failed at shutdown');
      }
    }
  }
}

/**
 * Moves records past the online window to signed archive files and purges archives past
 * retention. Broken chains are not archived; they are reported here as errors (a tamper alarm).
 */
export function archiveTask(
  db: Db,
  signer: CheckpointSigner,
  opts: { dir: string; onlineDays: number; retentionDays: number },
  logger: Logger,
): AuditTask {
  return {
    name: 'audit.archive',
    everyMs: 6 * 3600_000,
    async run() {
      const result = await archiveExpired(db, signer, opts);
      for (const p of result.problems) logger.error({ problem: p }, 'audit archiving found a problem');
      return result;
    },
  };
}

/** Delivers new records to the SIEM; the sink keeps its own cursor and backoff. */
export function syslogTask(sink: SyslogSink): AuditTask {
  return { name: 'audit.syslog', everyMs: 1000, runOnStop: true, run: () => sink.deliver() };
}
