import { type AuditEvent, type AuditSource, record } from '../audit-chain/index.ts';
import type { Db, Trx } from '../db/index.ts';
import type { AccordError } from '../errors/index.ts';

/**
 * What a mutation gets from its unit of work: the one transaction, the audit source of the
 * request (or job) that caused it, and the three things every mutation may need besides its
 * writes. Nothing else opens a transaction for a mutation.
 */
export interface Work {
  readonly trx: Trx;
  readonly source: AuditSource;
  /** Records an audit event in this transaction: it commits or rolls back with the change. */
  audit(event: AuditEvent): Promise<void>;
  /**
   * Runs `hook` once the transaction has committed (cache invalidation, notifications, events);
   * never when it rolled back. A hook's failure is reported, never turned into the request's
   * answer: the change is already durable.
   */
  afterCommit(hook: () => unknown): void;
  /**
   * A committed refusal: what this unit has written so far (failure counters, say) commits
   * together with `events`, then `error` reaches the caller. For denied or failed attempts that
   * must leave a record. Use as `return w.refuse(...)` or `await w.refuse(...)`; it never returns.
   */
  refuse(error: AccordError, ...events: AuditEvent[]): Promise<never>;
  /**
   * The same unit (transaction, hooks, refusal), auditing as `source`: for events whose actor the
   * request proves only inside the unit (the user behind an MFA challenge, a refresh token or a
   * one-time token, when the request itself came from an anonymous caller).
   */
  as(source: AuditSource): Work;
}

/** Thrown by `refuse` through the caller's code to the unit of work, which commits instead. */
class CommittedRefusal {
  constructor(readonly error: AccordError) {}
}

type HookErrorReporter = (err: unknown) => void;
let reportHookError: HookErrorReporter = (err) => console.error('after-commit hook failed', err);

/** The server routes after-commit hook failures to its logger (the kernel knows no logger). */
export function onAfterCommitError(reporter: HookErrorReporter): void {
  reportHookError = reporter;
}

/**
 * Runs `fn` as one unit of work: one transaction, its audit events in it, committed refusals
 * committed, after-commit hooks run only when the transaction committed.
 */
export async function unitOfWork<T>(db: Db, source: AuditSource, fn: (w: Work) => Promise<T>): Promise<T> {
  const hooks: Array<() => unknown> = [];
  let refusal: AccordError | undefined;
  const result = await db.transaction().execute(async (trx) => {
    const workAs = (as: AuditSource): Work => ({
      trx,
      source: as,
      audit: async (event) => {
        await record(trx, as, event);
      },
      afterCommit: (hook) => {
        hooks.push(hook);
      },
      refuse: async (error, ...events) => {
        for (const event of events) await record(trx, as, event);
        throw new CommittedRefusal(error);
      },
      as: workAs,
    });
    const work = workAs(source);
    try {
      return await fn(work);
    } catch (err) {
      if (!(err instanceof CommittedRefusal)) throw err;
      refusal = err.error;
      return undefined;
    }
  });
  for (const hook of hooks) {
    try {
      await hook();
    } catch (err) {
      reportHookError(err);
    }
  }
  if (refusal) throw refusal;
  return result as T;
}

/**
 * A refusal with nothing else to write (a denied request, a failed decryption): its events in a
 * transaction of their own, then the error. The same path as `Work.refuse`, for callers that
 * hold no unit.
 */
export function refuse(db: Db, source: AuditSource, error: AccordError, ...events: AuditEvent[]): Promise<never> {
  return unitOfWork(db, source, (w) => w.refuse(error, ...events));
}

/**
 * Events with no change of their own (a sign-in challenge issued, a report exported): recorded
 * in a unit of their own.
 */
export async function auditAlone(db: Db, source: AuditSource, ...events: AuditEvent[]): Promise<void> {
  await unitOfWork(db, source, async (w) => {
    for (const e of events) await w.audit(e);
  });
}
