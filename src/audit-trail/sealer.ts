import type { Logger } from 'pino';
import { onAuditWritten, type SealedEvent, type SealResult, sealPending } from '../audit-chain/index.ts';
import type { Db } from '../db/index.ts';

/** When the sealer runs (config `auditSealDelayMs`, `auditSealIntervalMs`). */
export interface AuditSealerOptions {
  /** After this node writes events, seal them within about this many ms (what arrives meanwhile joins the pass). */
  readonly delayMs: number;
  /** Look for events written elsewhere (other nodes, the SQL append function) at least this often. */
  readonly intervalMs: number;
  /** Events per seal transaction. */
  readonly batchSize?: number;
  /** Called after each committed seal batch (lag measurement). */
  readonly onSealed?: (events: readonly SealedEvent[]) => void;
}

/**
 * This node's sealer: links committed audit events into their chains soon after they commit, off
 * the request path. It runs a seal pass `delayMs` after this process writes events (a pass then
 * takes whatever accumulated, so batches grow with load), every `intervalMs` regardless (events
 * of other nodes and of SQL sessions; every node seals every chain, taking turns per chain), and
 * backs off while the only unsealed events belong to transactions still running. One pass at a
 * time; failures are logged and retried, the events stay safely unsealed until then.
 */
export class AuditSealer {
  readonly #db: Db;
  readonly #logger: Logger;
  readonly #opts: AuditSealerOptions;
  #timer: NodeJS.Timeout | undefined;
  #dueAt = Number.POSITIVE_INFINITY;
  #running: Promise<SealResult | undefined> | undefined;
  #rangDuringPass = false;
  #backoffMs: number;
  #unsubscribe: (() => void) | undefined;
  #stopped = false;

  constructor(db: Db, logger: Logger, opts: AuditSealerOptions) {
    if (!(Number.isInteger(opts.delayMs) && opts.delayMs >= 0)) throw new RangeError('AuditSealer: opts.delayMs must be an integer of 0 or more');
    if (!(Number.isInteger(opts.intervalMs) && opts.intervalMs > 0)) throw new RangeError('AuditSealer: opts.intervalMs must be a positive integer');
    this.#db = db;
    this.#logger = logger;
    this.#opts = opts;
    this.#backoffMs = Math.max(1, opts.delayMs);
  }

  /** Starts listening for this process's writes and the periodic look. */
  start(): void {
    this.#unsubscribe = onAuditWritten(() => {
      if (this.#running) this.#rangDuringPass = true;
      else this.#schedule(this.#opts.delayMs);
    });
    this.#schedule(this.#opts.intervalMs);
  }

  /** Runs a pass now (after the one running, if any) and returns what it sealed. */
  async sealNow(): Promise<SealResult | undefined> {
    await this.#running;
    return this.#run();
  }

  /** Stops the timers, waits for a running pass, then seals once more what has committed. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#unsubscribe?.();
    if (this.#timer) clearTimeout(this.#timer);
    await this.#running;
    await this.#pass();
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    const at = Date.now() + ms;
    if (at >= this.#dueAt) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#dueAt = at;
    this.#timer = setTimeout(() => {
      this.#dueAt = Number.POSITIVE_INFINITY;
      this.#timer = undefined;
      if (!this.#running) void this.#run();
    }, ms);
    this.#timer.unref();
  }

  #run(): Promise<SealResult | undefined> {
    const running = this.#pass().then((result) => {
      this.#running = undefined;
      this.#next(result);
      return result;
    });
    this.#running = running;
    return running;
  }

  async #pass(): Promise<SealResult | undefined> {
    try {
      const result = await sealPending(this.#db, {
        ...(this.#opts.batchSize === undefined ? {} : { batchSize: this.#opts.batchSize }),
        ...(this.#opts.onSealed ? { onSealed: this.#opts.onSealed } : {}),
      });
      if (result.sealed > 0) this.#logger.debug({ sealed: result.sealed, batches: result.batches }, 'audit events sealed');
      return result;
    } catch (err) {
      this.#logger.error({ err }, 'audit sealing failed; retrying later (the events stay unsealed, none is lost)');
      return undefined;
    }
  }

  #next(result: SealResult | undefined): void {
    if (this.#rangDuringPass) {
      this.#rangDuringPass = false;
      this.#schedule(this.#opts.delayMs);
    }
    if (result?.pending) {
      // Events of transactions still running, or chains another node holds: look again soon,
      // less often the longer nothing moves.
      this.#schedule(this.#backoffMs);
      this.#backoffMs = result.sealed > 0 ? Math.max(1, this.#opts.delayMs) : Math.min(this.#opts.intervalMs, this.#backoffMs * 2);
    } else {
      this.#backoffMs = Math.max(1, this.#opts.delayMs);
    }
    this.#schedule(this.#opts.intervalMs);
  }
}
