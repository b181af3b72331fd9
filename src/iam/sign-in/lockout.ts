import { createHash } from 'node:crypto';
import { type ColumnType, type Generated, type Kysely, sql } from 'kysely';
import type { AuditEvent } from '../../audit-chain/index.ts';
import type { Catalog, DbOrTrx, Trx } from '../../db/index.ts';
import { AccordError } from '../../errors/index.ts';
import { ipv4Network24, sourceKey } from '../../perimeter/index.ts';
import { normaliseEmail } from '../users/users.ts';

/**
 * Brute-force protection for sign-in, per account, per source IP (IPv6 per /64), per IPv4 /24 and
 * per trusted device. State lives only in the catalog (`accord.auth_failures`,
 * `accord.auth_locks`), so every node sees the same locks.
 *
 * Password sign-in reserves its attempt first (`reserveAttempt`): in one transaction, under the
 * subjects' row locks, it refuses when locked and otherwise counts the attempt as a failure
 * (locking when that reaches a threshold) BEFORE the password is checked. N concurrent guesses
 * against a limit of 3 therefore check at most 3 passwords; a right password then takes its
 * reservation back (`releaseReservation`, also done by `recordSuccess`).
 *
 * Other callers (second factors, password change) keep the older order:
 *   1. `checkLockout` before verifying the secret; when locked, refuse with IAM_LOCKED whatever
 *      the secret (and do not call `recordFailure`: the attempt never reached the secret).
 *   2. On a wrong secret (or unknown account, or disabled account): `recordFailure` in a unit
 *      of work, then one `auth.lockout` audit event per entry of `locks` in the same unit (usually
 *      as events of its committed refusal, `w.refuse`). Call `recordFailure` first in the unit: it
 *      locks the subjects' rows, and taking row locks in one order everywhere keeps concurrent
 *      sign-ins free of deadlocks (audit events no longer lock anything: they are sealed later).
 *   3. On success: `recordSuccess` (clears the account's failures, not the IP's).
 * The transactions must run at READ COMMITTED (the default): the count after the row lock must see
 * the failures committed by whoever held the lock before.
 */

/** One escalation step: from `failures` failures within the window on, lock for `lockSeconds`. */
export interface LockoutStep {
  readonly failures: number;
  readonly lockSeconds: number;
}

/**
 * Thresholds per scope (ascending; an empty list disables that scope) and the counting window.
 * A trusted device is counted with the account's steps, apart from the account.
 */
export interface LockoutPolicy {
  readonly account: readonly LockoutStep[];
  readonly ip: readonly LockoutStep[];
  /** Per IPv4 /24 (a spray spread over a few neighbouring addresses); absent: none. */
  readonly net?: readonly LockoutStep[];
  readonly windowSeconds: number;
}

export type LockoutScope = 'account' | 'ip' | 'net' | 'device';

/** What is counted: the account (`<directory>:<email>`, see `accountSubject`) and the source address. */
export interface LockoutSubjects {
  readonly account: string;
  /** null: the source address is unknown; only the account is counted. */
  readonly ip: string | null;
  /** The IPv4 /24 of the source (null for IPv6, whose /64 is already the `ip` subject). */
  readonly net?: string | null;
  /**
   * A device that proved itself at an earlier sign-in of this account (a valid device cookie):
   * its attempts are counted under the device instead of the account, so the account's lock,
   * which strangers can set, does not stop it (OWASP's "device cookies").
   */
  readonly device?: string | null;
}

/** The steps that apply to a scope (a device is held to the account's). */
function stepsOf(policy: LockoutPolicy, kind: LockoutScope): readonly LockoutStep[] {
  if (kind === 'device') return policy.account;
  if (kind === 'net') return policy.net ?? [];
  return policy[kind];
}

/** The answer of `checkLockout`. `retryAfterSeconds` is whole seconds, at least 1 when locked. */
export type LockoutState =
  | { readonly locked: false; readonly retryAfterSeconds: 0; readonly scope?: undefined }
  | { readonly locked: true; readonly retryAfterSeconds: number; readonly scope: LockoutScope };

/** A lock that `recordFailure` has just set or lengthened: the caller audits each one. */
export interface LockEvent {
  readonly scope: LockoutScope;
  readonly subject: string;
  /** Length of this lock (the step's `lockSeconds`). */
  readonly seconds: number;
  readonly until: Date;
  /** Failures of the subject within the window, this one included. */
  readonly failures: number;
  /** 1-based index of the step that decided the length. */
  readonly level: number;
}

/** The answer of `recordFailure`. */
export interface FailureResult {
  /** The longest lock set now, if any (it decides when the client may retry). */
  readonly lockedNow?: LockEvent;
  /** Every lock set now (account and IP can lock on the same failure): one audit event each. */
  readonly locks: readonly LockEvent[];
}

// Row shapes of the two tables of migration 004; see the wiring notes for src/db/catalog.ts.
// (Type aliases, not interfaces: withTables wants an index signature.)
type AuthFailuresTable = {
  id: Generated<number>;
  kind: LockoutScope;
  subject: string;
  occurred_at: Date;
};
type AuthLocksTable = {
  kind: LockoutScope;
  subject: string;
  locked_until: Date | null;
  level: ColumnType<number, number | undefined, number>;
};
type LockoutTables = {
  'accord.auth_failures': AuthFailuresTable;
  'accord.auth_locks': AuthLocksTable;
};

// Type-level only: on a transaction, withTables returns the same transaction.
const tables = (db: DbOrTrx): Kysely<Catalog & LockoutTables> => (db as Kysely<Catalog>).withTables<LockoutTables>();

/**
 * Validates a policy and returns a frozen copy. Misuse (non-integer or non-positive numbers,
 * thresholds not strictly ascending, lock lengths shrinking) throws a TypeError naming the path.
 */
export function lockoutPolicy(input: LockoutPolicy, path = 'lockout'): LockoutPolicy {
  if (typeof input !== 'object' || input === null) throw new TypeError(`${path} must be an object`);
  if (!Number.isSafeInteger(input.windowSeconds) || input.windowSeconds < 1) {
    throw new TypeError(`${path}.windowSeconds must be a positive integer`);
  }
  const steps = (list: readonly LockoutStep[], p: string): readonly LockoutStep[] => {
    if (!Array.isArray(list)) throw new TypeError(`${p} must be an array of { failures, lockSeconds }`);
    return Object.freeze(
      list.map((s: LockoutStep, i) => {
        if (typeof s !== 'object' || s === null) throw new TypeError(`${p}[${i}] must be { failures, lockSeconds }`);
        if (!Number.isSafeInteger(s.failures) || s.failures < 1) throw new TypeError(`${p}[${i}].failures must be a positive integer`);
        if (!Number.isSafeInteger(s.lockSeconds) || s.lockSeconds < 1) throw new TypeError(`${p}[${i}].lockSeconds must be a positive integer`);
        const prev = list[i - 1];
        if (prev && s.failures <= prev.failures) throw new TypeError(`${p}[${i}].failures must be greater than ${p}[${i - 1}].failures`);
        if (prev && s.lockSeconds < prev.lockSeconds) throw new TypeError(`${p}[${i}].lockSeconds must not be shorter than ${p}[${i - 1}].lockSeconds`);
        return Object.freeze({ failures: s.failures, lockSeconds: s.lockSeconds });
      }),
    );
  };
  return Object.freeze({
    account: steps(input.account, `${path}.account`),
    ip: steps(input.ip, `${path}.ip`),
    net: steps(input.net ?? [], `${path}.net`),
    windowSeconds: input.windowSeconds,
  });
}

/**
 * The defaults, at least as strict as OutSystems O11: per account 3 failures → 30 s, 6 → 30 min;
 * per source IP 20 → 5 min, 50 → 1 h; per IPv4 /24 60 → 15 min, 150 → 1 h (three times the
 * address's, so a handful of neighbours behind one NAT are not locked by one of them, while a
 * spray over the /24 is); failures counted over the last 60 minutes.
 */
export const defaultLockoutPolicy: LockoutPolicy = lockoutPolicy({
  account: [
    { failures: 3, lockSeconds: 30 },
    { failures: 6, lockSeconds: 30 * 60 },
  ],
  ip: [
    { failures: 20, lockSeconds: 5 * 60 },
    { failures: 50, lockSeconds: 60 * 60 },
  ],
  net: [
    { failures: 60, lockSeconds: 15 * 60 },
    { failures: 150, lockSeconds: 60 * 60 },
  ],
  windowSeconds: 60 * 60,
});

/**
 * Builds the policy from the configuration keys `lockoutAccount` / `lockoutIp` (lists of
 * `failures:lockSeconds`, e.g. `3:30,6:1800`) and `lockoutWindowSeconds`. Bad values are
 * CONFIG_INVALID naming the key.
 */
export function lockoutPolicyFromConfig(config: {
  readonly lockoutAccount: readonly string[];
  readonly lockoutIp: readonly string[];
  readonly lockoutNet?: readonly string[];
  readonly lockoutWindowSeconds: number;
}): LockoutPolicy {
  const parse = (list: readonly string[], key: string): LockoutStep[] =>
    list.map((item) => {
      const m = /^\s*(\d+)\s*:\s*(\d+)\s*$/.exec(item);
      if (!m) throw configInvalid(`${key}: expected failures:lockSeconds, e.g. 3:30 (got ${JSON.stringify(item)})`, key);
      return { failures: Number(m[1]), lockSeconds: Number(m[2]) };
    });
  const input = {
    account: parse(config.lockoutAccount, 'lockoutAccount'),
    ip: parse(config.lockoutIp, 'lockoutIp'),
    net: parse(config.lockoutNet ?? [], 'lockoutNet'),
    windowSeconds: config.lockoutWindowSeconds,
  };
  try {
    return lockoutPolicy(input, 'lockout');
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const key = message.startsWith('lockout.account') ? 'lockoutAccount' : message.startsWith('lockout.ip') ? 'lockoutIp' : message.startsWith('lockout.net') ? 'lockoutNet' : 'lockoutWindowSeconds';
    throw configInvalid(`${key}: ${message}`, key);
  }
}

function configInvalid(message: string, key: string): AccordError {
  return new AccordError('CONFIG_INVALID', { message: `Invalid configuration for ${key}: ${message}`, details: { key } });
}

// An email is at most 320 characters; anything longer is hashed so an attacker's megabyte of
// "email" cannot bloat the table or overflow the index.
const MAX_SUBJECT = 320;

/**
 * The account subject: `<directory>:<normalised email>`, where the directory is the tenant's id
 * or `platform`. Built from what the client typed, not from a user row, so an unknown email is
 * counted and locked exactly like a known one (the lock reveals nothing about existence).
 */
export function accountSubject(tenantId: string | null, email: string): string {
  const directory = tenantId ?? 'platform';
  const normalised = normaliseEmail(email);
  const subject = `${directory}:${normalised}`;
  return subject.length <= MAX_SUBJECT ? subject : `${directory}:sha256:${createHash('sha256').update(normalised).digest('hex')}`;
}

/**
 * The IP subject: the perimeter's source key (IPv4 as is, IPv4-mapped IPv6 folded into IPv4,
 * IPv6 by its /64, because one subscriber usually holds a whole /64 and could otherwise rotate
 * through 2^64 addresses). null or empty: unknown.
 */
export function ipSubject(ip: string | null | undefined): string | null {
  if (ip === null || ip === undefined || ip.trim() === '') return null;
  return sourceKey(ip);
}

/** The subjects of a sign-in attempt; `device` is the id of a verified device cookie of this account. */
export function lockoutSubjects(input: { tenantId: string | null; email: string; ip: string | null | undefined; device?: string | null | undefined }): LockoutSubjects {
  const account = accountSubject(input.tenantId, input.email);
  return {
    account,
    ip: ipSubject(input.ip),
    net: ipv4Network24(input.ip) ?? null,
    // Prefixed with the account, so unlocking the account finds its devices' locks too.
    ...(input.device ? { device: `${account}#${input.device}` } : {}),
  };
}

// The order rows are locked in, everywhere: account (or device), ip, net.
function pairs(subjects: LockoutSubjects): { kind: LockoutScope; subject: string }[] {
  const out: { kind: LockoutScope; subject: string }[] = [
    subjects.device ? { kind: 'device', subject: subjects.device } : { kind: 'account', subject: subjects.account },
  ];
  if (subjects.ip !== null) out.push({ kind: 'ip', subject: subjects.ip });
  if (subjects.net) out.push({ kind: 'net', subject: subjects.net });
  return out;
}

/**
 * Whether the attempt must be refused before the password is even checked, and for how long.
 * When both the account and the IP are locked, the later end wins.
 */
export async function checkLockout(db: DbOrTrx, subjects: LockoutSubjects, now: Date): Promise<LockoutState> {
  const rows = await tables(db)
    .selectFrom('accord.auth_locks')
    .select(['kind', 'locked_until'])
    .where((eb) => eb.or(pairs(subjects).map((p) => eb.and([eb('kind', '=', p.kind), eb('subject', '=', p.subject)]))))
    .where('locked_until', '>', now)
    .execute();
  let latest: { kind: LockoutScope; until: Date } | undefined;
  for (const r of rows) {
    if (r.locked_until && (!latest || r.locked_until > latest.until)) latest = { kind: r.kind, until: r.locked_until };
  }
  if (!latest) return { locked: false, retryAfterSeconds: 0 };
  return {
    locked: true,
    retryAfterSeconds: Math.max(1, Math.ceil((latest.until.getTime() - now.getTime()) / 1000)),
    scope: latest.kind,
  };
}

/** The refusal of a locked attempt: IAM_LOCKED with the wait as Retry-After and in the details. */
export function lockedError(retryAfterSeconds: number): AccordError {
  return new AccordError('IAM_LOCKED', { headers: { 'retry-after': String(retryAfterSeconds) }, details: { retryAfterSeconds } });
}

/** The step that applies to `count` failures: the highest threshold reached. */
function stepFor(steps: readonly LockoutStep[], count: number): { step: LockoutStep; level: number } | undefined {
  for (let i = steps.length - 1; i >= 0; i--) {
    const step = steps[i];
    if (step && count >= step.failures) return { step, level: i + 1 };
  }
  return undefined;
}

/**
 * Records one failed sign-in for the account and the IP and, when a subject's failures within the
 * window reach a threshold, locks it for the highest threshold's length (never shortening a lock
 * already in place). Every failure at or above a threshold locks again, so an attacker gets one
 * guess per lock period. Returns the locks set now so the caller can audit them.
 */
export async function recordFailure(trx: Trx, subjects: LockoutSubjects, policy: LockoutPolicy, now: Date): Promise<FailureResult> {
  const t = tables(trx);
  const targets = pairs(subjects).filter((p) => stepsOf(policy, p.kind).length > 0);
  if (targets.length === 0) return { locks: [] };
  // The upsert locks each subject's row until commit (account first, then IP, in every
  // transaction), so concurrent failures of one subject on any node take turns here...
  await t
    .insertInto('accord.auth_locks')
    .values(targets.map((p) => ({ kind: p.kind, subject: p.subject, locked_until: null })))
    .onConflict((oc) => oc.columns(['kind', 'subject']).doUpdateSet((eb) => ({ kind: eb.ref('excluded.kind') })))
    .execute();
  await t
    .insertInto('accord.auth_failures')
    .values(targets.map((p) => ({ kind: p.kind, subject: p.subject, occurred_at: now })))
    .execute();
  // ...and this statement, with a snapshot taken after the lock, sees every earlier failure.
  return lockWhereDue(trx, targets, policy, now);
}

/** Counts the subjects' failures and sets (or lengthens) the locks their thresholds call for. */
async function lockWhereDue(trx: Trx, targets: readonly { kind: LockoutScope; subject: string }[], policy: LockoutPolicy, now: Date): Promise<FailureResult> {
  const t = tables(trx);
  const counts = await countFailures(trx, targets, policy, now);
  const locks: LockEvent[] = [];
  for (const p of targets) {
    const failures = counts.get(p.kind) ?? 0;
    const hit = stepFor(stepsOf(policy, p.kind), failures);
    if (!hit) continue;
    const until = new Date(now.getTime() + hit.step.lockSeconds * 1000);
    const updated = await t
      .updateTable('accord.auth_locks')
      .set({ locked_until: until, level: hit.level })
      .where('kind', '=', p.kind)
      .where('subject', '=', p.subject)
      .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<', until)]))
      .executeTakeFirst();
    if (Number(updated.numUpdatedRows) > 0) {
      locks.push({ scope: p.kind, subject: p.subject, seconds: hit.step.lockSeconds, until, failures, level: hit.level });
    }
  }
  const lockedNow = locks.reduce<LockEvent | undefined>((a, b) => (!a || b.until > a.until ? b : a), undefined);
  return lockedNow ? { lockedNow, locks } : { locks };
}

async function countFailures(
  db: DbOrTrx,
  targets: readonly { kind: LockoutScope; subject: string }[],
  policy: LockoutPolicy,
  now: Date,
): Promise<Map<LockoutScope, number>> {
  const since = new Date(now.getTime() - policy.windowSeconds * 1000);
  const rows = await tables(db)
    .selectFrom('accord.auth_failures')
    .select((eb) => ['kind', eb.fn.countAll<number>().as('n')])
    .where((eb) => eb.or(targets.map((p) => eb.and([eb('kind', '=', p.kind), eb('subject', '=', p.subject)]))))
    // No upper bound: a failure stamped slightly ahead by a node with a fast clock still counts.
    .where('occurred_at', '>', since)
    .groupBy('kind')
    .execute();
  return new Map(rows.map((r) => [r.kind, Number(r.n)]));
}

/** Failures of each subject within the window (for tests, support and the security console). */
export async function failureCounts(db: DbOrTrx, subjects: LockoutSubjects, policy: LockoutPolicy, now: Date): Promise<{ account: number; ip: number; net: number; device: number }> {
  const counts = await countFailures(db, [...pairs(subjects), ...(subjects.device ? [{ kind: 'account' as const, subject: subjects.account }] : [])], policy, now);
  return { account: counts.get('account') ?? 0, ip: counts.get('ip') ?? 0, net: counts.get('net') ?? 0, device: counts.get('device') ?? 0 };
}

/** The answer of `reserveAttempt`. */
export type Reservation =
  | { readonly admitted: false; readonly lock: LockoutState & { locked: true } }
  | {
      readonly admitted: true;
      readonly locks: readonly LockEvent[];
      /** The locks this reservation set, by scope. */
      readonly until: ReadonlyMap<LockoutScope, Date>;
      /** The failure rows it recorded, by scope (a right password takes them back). */
      readonly ids: ReadonlyMap<LockoutScope, number>;
    };

/**
 * Reserves one sign-in attempt before its password is checked. Under the subjects' row locks
 * (taken in the one order), it refuses when any subject is locked, and otherwise records the
 * attempt as a failure and sets the locks its count calls for — so the next concurrent attempt,
 * waiting on the same row, already sees them. Run it in a unit of work and audit `locks` there.
 * A right password then calls `recordSuccess` with the reservation to take it back.
 */
export async function reserveAttempt(trx: Trx, subjects: LockoutSubjects, policy: LockoutPolicy, now: Date): Promise<Reservation> {
  const t = tables(trx);
  const all = pairs(subjects);
  const targets = all.filter((p) => stepsOf(policy, p.kind).length > 0);
  if (targets.length > 0) {
    // The upsert locks each row until commit: concurrent attempts on one subject, on any node,
    // pass here one after the other, each seeing what the one before it recorded.
    await t
      .insertInto('accord.auth_locks')
      .values(targets.map((p) => ({ kind: p.kind, subject: p.subject, locked_until: null })))
      .onConflict((oc) => oc.columns(['kind', 'subject']).doUpdateSet((eb) => ({ kind: eb.ref('excluded.kind') })))
      .execute();
  }
  const lock = await checkLockout(trx, subjects, now);
  if (lock.locked) return { admitted: false, lock };
  if (targets.length === 0) return { admitted: true, locks: [], until: new Map(), ids: new Map() };
  const rows = await t
    .insertInto('accord.auth_failures')
    .values(targets.map((p) => ({ kind: p.kind, subject: p.subject, occurred_at: now })))
    .returning(['id', 'kind'])
    .execute();
  const { locks } = await lockWhereDue(trx, targets, policy, now);
  return { admitted: true, locks, until: new Map(locks.map((l) => [l.scope, l.until])), ids: new Map(rows.map((r) => [r.kind, Number(r.id)])) };
}

/**
 * After a successful sign-in: forgets the account's failures (a user who finally remembers the
 * password starts afresh). The IP's failures stay, or an attacker holding one valid account could
 * reset the IP count between guesses at others. A lock set meanwhile by a concurrent failure stays.
 */
export async function recordSuccess(trx: Trx, subjects: LockoutSubjects, now: Date, reservation?: Reservation): Promise<void> {
  const t = tables(trx);
  await releaseReservation(trx, subjects, reservation);
  const own = subjects.device ? { kind: 'device' as const, subject: subjects.device } : { kind: 'account' as const, subject: subjects.account };
  await t.deleteFrom('accord.auth_failures').where('kind', '=', own.kind).where('subject', '=', own.subject).execute();
  await t
    .deleteFrom('accord.auth_locks')
    .where('kind', '=', own.kind)
    .where('subject', '=', own.subject)
    .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<=', now)]))
    .execute();
}

/**
 * Takes back what a reservation recorded once its password proved right (a right password was
 * not a guess): its failure rows, and the locks it set itself (it was the attempt that reached a
 * threshold). Locks set by other attempts stay. Call it whether or not a second factor follows;
 * the second factor's failures are counted on their own.
 */
export async function releaseReservation(trx: Trx, subjects: LockoutSubjects, reservation: Reservation | undefined): Promise<void> {
  if (!reservation?.admitted) return;
  const t = tables(trx);
  const ids = [...reservation.ids.values()];
  if (ids.length > 0) await t.deleteFrom('accord.auth_failures').where('id', 'in', ids).execute();
  for (const p of pairs(subjects)) {
    const until = reservation.until.get(p.kind);
    if (!until) continue;
    await t.updateTable('accord.auth_locks').set({ locked_until: null }).where('kind', '=', p.kind).where('subject', '=', p.subject).where('locked_until', '=', until).execute();
  }
}

/**
 * Ends the account's lock and forgets its failures (an administrator's or the operator's
 * unlock). Returns whether there was anything to end. Device, IP and /24 counters are untouched.
 */
export async function unlockAccount(trx: Trx, account: string, now: Date): Promise<{ wasLocked: boolean; failures: number }> {
  const t = tables(trx);
  const locked = await t
    .deleteFrom('accord.auth_locks')
    .where('kind', '=', 'account')
    .where('subject', '=', account)
    .returning('locked_until')
    .execute();
  const f = await t.deleteFrom('accord.auth_failures').where('kind', '=', 'account').where('subject', '=', account).executeTakeFirst();
  // The account's devices too (their subjects start with the account): an unlock is a fresh start.
  const prefix = `${account}#`;
  const ofDevices = sql<boolean>`left(subject, ${prefix.length}) = ${prefix}`;
  const devices = await t.deleteFrom('accord.auth_locks').where('kind', '=', 'device').where(ofDevices).returning('locked_until').execute();
  await t.deleteFrom('accord.auth_failures').where('kind', '=', 'device').where(ofDevices).execute();
  locked.push(...devices);
  return { wasLocked: locked.some((r) => r.locked_until !== null && r.locked_until > now), failures: Number(f.numDeletedRows) };
}

/**
 * Housekeeping (a scheduled job): deletes failures older than the window and locks that have
 * ended. Safe beside concurrent sign-ins: a lock row being set waits for, or outlives, the delete.
 */
export async function pruneFailures(db: DbOrTrx, policy: LockoutPolicy, now: Date): Promise<{ failures: number; locks: number }> {
  const t = tables(db);
  const since = new Date(now.getTime() - policy.windowSeconds * 1000);
  const f = await t.deleteFrom('accord.auth_failures').where('occurred_at', '<=', since).executeTakeFirst();
  const l = await t
    .deleteFrom('accord.auth_locks')
    .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<=', now)]))
    .executeTakeFirst();
  return { failures: Number(f.numDeletedRows), locks: Number(l.numDeletedRows) };
}

/**
 * The `auth.lockout` audit event for a lock `recordFailure` returned. `tenantId` picks the chain:
 * the directory's tenant for an account lock (null for the platform directory); an IP lock spans
 * every directory, so the platform chain (null) suits it unless the caller knows better.
 */
export function lockoutAuditEvent(lock: LockEvent, tenantId: string | null): AuditEvent {
  return {
    tenantId,
    action: 'auth.lockout',
    target: { type: lock.scope === 'account' ? 'account' : lock.scope, id: lock.subject },
    outcome: 'success',
    details: { scope: lock.scope, seconds: lock.seconds, lockedUntil: lock.until.toISOString(), failures: lock.failures, level: lock.level },
  };
}

