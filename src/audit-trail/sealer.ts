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
  /** Chains this process wrote to since their last seal pass. */
  readonly #dirty = new Set<string>();
  /** A pass over every chain (discovery) is due. */
  #sweepDue = false;
  #timer: NodeJS.Timeout | undefined;
  #sweep: NodeJS.Timeout | undefined;
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

  /** Starts listening for this process's writes and the periodic look over every chain. */
  start(): void {
    this.#unsubscribe = onAuditWritten((chain) => {
      this.#dirty.add(chain);
      if (this.#running) this.#rangDuringPass = true;
      else this.#schedule(this.#opts.delayMs);
    });
    this.#sweep = setInterval(() => {
      this.#sweepDue = true;
      this.#schedule(0);
    }, this.#opts.intervalMs);
    this.#sweep.unref();
  }

  /**
   * Seals everything committed before the call, over every chain (after the pass running, if
   * any): waits up to `waitMs` for transactions running at the call to end. For start-up.
   */
  async sealNow(waitMs = 5000): Promise<SealResult | undefined> {
    await this.#running;
    try {
      const result = await sealPending(this.#db, { wait: true, waitMs, ...(this.#opts.onSealed ? { onSealed: this.#opts.onSealed } : {}) });
      if (result.pending) this.#sweepDue = true;
      return result;
    } catch (err) {
      this.#logger.error({ err }, 'audit sealing failed; retrying later (the events stay unsealed, none is lost)');
      this.#sweepDue = true;
      return undefined;
    }
  }

  /** Stops the timers, waits for a running pass, then seals once more what has committed. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#unsubscribe?.();
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#sweep) clearInterval(this.#sweep);
    await this.#running;
    this.#sweepDue = true;
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

  /** Seals the chains this process wrote to, or every chain when a sweep is due. */
  async #pass(): Promise<SealResult | undefined> {
    const sweep = this.#sweepDue;
    const chains = sweep ? undefined : [...this.#dirty];
    this.#sweepDue = false;
    this.#dirty.clear();
    if (chains?.length === 0) return undefined;
    try {
      const result = await sealPending(this.#db, {
        ...(chains ? { chains } : {}),
        ...(this.#opts.batchSize === undefined ? {} : { batchSize: this.#opts.batchSize }),
        ...(this.#opts.onSealed ? { onSealed: this.#opts.onSealed } : {}),
      });
      if (result.sealed > 0) this.#logger.debug({ sealed: result.sealed, batches: result.batches, sweep }, 'audit events sealed');
      if (result.pending) this.#again(chains);
      return result;
    } catch (err) {
      this.#logger.error({ err }, 'audit sealing failed; retrying later (the events stay unsealed, none is lost)');
      this.#again(chains);
      return undefined;
    }
  }

  /** What a pass left behind is looked at again by the next one. */
  #again(chains: readonly string[] | undefined): void {
    if (chains === undefined) this.#sweepDue = true;
    else for (const c of chains) this.#dirty.add(c);
  }

  #next(result: SealResult | undefined): void {
    if (this.#rangDuringPass) {
      this.#rangDuringPass = false;
      this.#schedule(this.#opts.delayMs);
    }
    if (this.#dirty.size > 0 || this.#sweepDue) {
      // Events of transactions still running, or chains another node holds, or a failure: look
      // again soon, less often the longer nothing moves.
      this.#schedule(this.#backoffMs);
      this.#backoffMs = result && result.sealed > 0 ? Math.max(1, this.#opts.delayMs) : Math.min(this.#opts.intervalMs, this.#backoffMs * 2);
    } else {
      this.#backoffMs = Math.max(1, this.#opts.delayMs);
    }
  }
}
