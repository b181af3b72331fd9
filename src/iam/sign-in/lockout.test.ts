import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Kysely, sql } from 'kysely';
import { engines, type TestEngine } from '../../../test/harness/engines.ts';
import { record, systemSource } from '../../audit-chain/index.ts';
import type { Db } from '../../db/index.ts';
import { up as migrateLockout } from '../../db/migrations/004-lockout.ts';
import { isAccordError } from '../../errors/index.ts';
import {
  accountSubject,
  checkLockout,
  defaultLockoutPolicy,
  type FailureResult,
  failureCounts,
  ipSubject,
  type LockoutPolicy,
  type LockoutSubjects,
  lockoutAuditEvent,
  lockoutPolicy,
  lockoutPolicyFromConfig,
  lockoutSubjects as subjectsWithNet,
  pruneFailures,
  recordFailure,
  recordSuccess,
} from './lockout.ts';
import { createUser } from '../users/users.ts';

const t0 = new Date('2026-03-01T10:00:00.000Z');
const at = (seconds: number): Date => new Date(t0.getTime() + seconds * 1000);

/** A migrated catalog with the lockout tables (migration 004 runs here until it is wired in). */
async function open(engine: TestEngine): Promise<Db> {
  const { db } = await engine.open();
  const r = await sql<{ t: string | null }>`select to_regclass('accord.auth_failures')::text as t`.execute(db);
  if (!r.rows[0]?.t) await migrateLockout(db as unknown as Kysely<unknown>);
  return db;
}

const fail = (db: Db, s: LockoutSubjects, now: Date, policy: LockoutPolicy = defaultLockoutPolicy): Promise<FailureResult> =>
  db.transaction().execute((trx) => recordFailure(trx, s, policy, now));

/** A wrong password as the login flow makes it: refused unchecked while locked, else counted. */
async function wrongPassword(db: Db, s: LockoutSubjects, now: Date, policy: LockoutPolicy = defaultLockoutPolicy): Promise<'refused' | FailureResult> {
  if ((await checkLockout(db, s, now)).locked) return 'refused';
  return fail(db, s, now, policy);
}

/** Alice in a directory of the test's own, so tests can share one database without sharing counts. */
// The /24 is counted too, with thresholds of its own (tested over HTTP in test/e2e/perimeter/lockout.test.ts);
// these tests look at the account and the address alone.
const lockoutSubjects = (input: Parameters<typeof subjectsWithNet>[0]): LockoutSubjects => ({ ...subjectsWithNet(input), net: null });
const alice = (directory: string, ip: string | null): LockoutSubjects => lockoutSubjects({ tenantId: directory, email: 'alice@acme.test', ip });
/** The account's and the address's counts (the /24's and devices' are tested elsewhere). */
const accountAndIp = async (c: Promise<{ account: number; ip: number }>) => {
  const { account, ip } = await c;
  return { account, ip };
};

describe('lockout subjects and policy', () => {
  test('accounts are keyed by directory and case-insensitive email; absurdly long input is hashed', () => {
    assert.equal(accountSubject(null, ' Alice@ACME.test '), 'platform:alice@acme.test');
    assert.equal(accountSubject('7d1c0a5e-0000-4000-8000-000000000001', 'a@b.test'), '7d1c0a5e-0000-4000-8000-000000000001:a@b.test');
    const long = accountSubject(null, `${'x'.repeat(5000)}@example.test`);
    assert.match(long, /^platform:sha256:[0-9a-f]{64}$/);
  });

  test('IPv4-mapped addresses fold into IPv4 and IPv6 addresses count by their /64', () => {
    assert.equal(ipSubject('203.0.113.9'), '203.0.113.9');
    assert.equal(ipSubject('::ffff:203.0.113.9'), '203.0.113.9');
    assert.equal(ipSubject('::FFFF:cb00:7109'), '203.0.113.9');
    assert.equal(ipSubject('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
    assert.equal(ipSubject('2001:0DB8:0001:0002::9'), '2001:db8:1:2::/64');
    assert.equal(ipSubject('[2001:db8:1:2::a]'), '2001:db8:1:2::/64');
    assert.equal(ipSubject('fe80::1%eth0'), 'fe80:0:0:0::/64');
    assert.equal(ipSubject('1:2:3:4:5:6:1.2.3.4'), '1:2:3:4::/64');
    assert.equal(ipSubject('::1'), '0:0:0:0::/64');
    assert.notEqual(ipSubject('2001:db8:1:3::1'), ipSubject('2001:db8:1:2::1'));
    assert.equal(ipSubject(null), null);
    assert.equal(ipSubject('  '), null);
  });

  test('the defaults are at least as strict as OutSystems O11 and frozen', () => {
    assert.deepEqual(defaultLockoutPolicy, {
      account: [
        { failures: 3, lockSeconds: 30 },
        { failures: 6, lockSeconds: 1800 },
      ],
      ip: [
        { failures: 20, lockSeconds: 300 },
        { failures: 50, lockSeconds: 3600 },
      ],
      net: [
        { failures: 60, lockSeconds: 900 },
        { failures: 150, lockSeconds: 3600 },
      ],
      windowSeconds: 3600,
    });
    assert.ok(Object.isFrozen(defaultLockoutPolicy) && Object.isFrozen(defaultLockoutPolicy.account[0]));
  });

  test('a malformed policy throws at construction, naming the option path', () => {
    const base = { account: [{ failures: 3, lockSeconds: 30 }], ip: [], windowSeconds: 60 };
    assert.throws(() => lockoutPolicy({ ...base, windowSeconds: 0 }), /lockout\.windowSeconds must be a positive integer/);
    assert.throws(
      () => lockoutPolicy({ ...base, account: [{ failures: 3, lockSeconds: 30 }, { failures: 3, lockSeconds: 60 }] }),
      /lockout\.account\[1\]\.failures must be greater than lockout\.account\[0\]\.failures/,
    );
    assert.throws(
      () => lockoutPolicy({ ...base, ip: [{ failures: 5, lockSeconds: 60 }, { failures: 9, lockSeconds: 30 }] }),
      /lockout\.ip\[1\]\.lockSeconds must not be shorter/,
    );
    assert.throws(() => lockoutPolicy({ ...base, account: [{ failures: 1.5, lockSeconds: 30 }] }), TypeError);
  });

  test('the configuration form parses failures:seconds lists and reports bad values as CONFIG_INVALID', () => {
    const p = lockoutPolicyFromConfig({ lockoutAccount: ['3:30', '6:1800'], lockoutIp: ['20:300', '50:3600'], lockoutNet: ['60:900', '150:3600'], lockoutWindowSeconds: 3600 });
    assert.deepEqual(p, defaultLockoutPolicy);
    assert.deepEqual(lockoutPolicyFromConfig({ lockoutAccount: ['5:60'], lockoutIp: [], lockoutWindowSeconds: 600 }).ip, []);
    assert.throws(
      () => lockoutPolicyFromConfig({ lockoutAccount: ['3s:30'], lockoutIp: [], lockoutWindowSeconds: 60 }),
      (e) => isAccordError(e, 'CONFIG_INVALID') && e.details?.key === 'lockoutAccount',
    );
    assert.throws(
      () => lockoutPolicyFromConfig({ lockoutAccount: ['3:30'], lockoutIp: ['50:60', '20:600'], lockoutWindowSeconds: 60 }),
      (e) => isAccordError(e, 'CONFIG_INVALID') && e.details?.key === 'lockoutIp',
    );
  });
});

for (const engine of engines()) {
  describe(`lockout on ${engine.name}`, () => {
    // One database for the suite (opening one costs seconds); each test counts its own subjects.
    let shared: Promise<Db> | undefined;
    const sharedDb = (): Promise<Db> => {
      shared ??= open(engine);
      return shared;
    };

    test('three failures lock the account for 30 s; Retry-After counts down; it opens after 30 s', async () => {
      const db = await sharedDb();
      const s = alice('three', '198.51.100.1');
      assert.deepEqual(await fail(db, s, at(0)), { locks: [] });
      assert.deepEqual(await fail(db, s, at(1)), { locks: [] });
      const third = await fail(db, s, at(2));
      assert.equal(third.lockedNow?.scope, 'account');
      assert.equal(third.lockedNow?.seconds, 30);
      assert.equal(third.lockedNow?.failures, 3);
      assert.deepEqual(third.lockedNow?.until, at(32));
      // Checked before the password: whatever the password, the caller refuses.
      assert.deepEqual(await checkLockout(db, s, at(2)), { locked: true, retryAfterSeconds: 30, scope: 'account' });
      assert.equal((await checkLockout(db, s, at(12))).retryAfterSeconds, 20);
      assert.equal((await checkLockout(db, s, at(31.5))).retryAfterSeconds, 1);
      assert.deepEqual(await checkLockout(db, s, at(32)), { locked: false, retryAfterSeconds: 0 });
      // The lock is per account: the same address with another account is fine.
      assert.equal((await checkLockout(db, lockoutSubjects({ tenantId: 'three', email: 'bob@acme.test', ip: '198.51.100.1' }), at(2))).locked, false);
    });

    test('six failures within the window lock the account for 30 minutes', async () => {
      const db = await sharedDb();
      const s = alice('six', '198.51.100.2');
      const results: ('refused' | FailureResult)[] = [];
      for (const second of [0, 1, 2, 10, 32, 40, 63, 94]) results.push(await wrongPassword(db, s, at(second)));
      const summary = results.map((r) => (r === 'refused' ? 'refused' : (r.lockedNow?.seconds ?? 0)));
      // 3rd locks 30 s; attempts during the lock are refused uncounted; 4th and 5th lock 30 s again; 6th: 30 min.
      assert.deepEqual(summary, [0, 0, 30, 'refused', 30, 'refused', 30, 1800]);
      const sixth = results.at(-1) as FailureResult;
      assert.equal(sixth.lockedNow?.level, 2);
      assert.equal(sixth.lockedNow?.failures, 6);
      assert.deepEqual(await checkLockout(db, s, at(94)), { locked: true, retryAfterSeconds: 1800, scope: 'account' });
      assert.equal((await checkLockout(db, s, at(94 + 1799))).locked, true);
      assert.equal((await checkLockout(db, s, at(94 + 1800))).locked, false);
      // Still six within the window: the next failure locks for 30 minutes again.
      assert.equal((await fail(db, s, at(94 + 1800))).lockedNow?.seconds, 1800);
    });

    test('failures older than the window do not count', async () => {
      const db = await sharedDb();
      const s = alice('window', '198.51.100.3');
      await fail(db, s, at(0));
      await fail(db, s, at(1));
      // 60 min 1 s after the second failure, both have left the window.
      assert.deepEqual(await fail(db, s, at(3602)), { locks: [] });
      assert.deepEqual(await accountAndIp(failureCounts(db, s, defaultLockoutPolicy, at(3602))), { account: 1, ip: 1 });
      // Within the window they do.
      const other = lockoutSubjects({ tenantId: 'window', email: 'carol@acme.test', ip: null });
      await fail(db, other, at(0));
      await fail(db, other, at(1));
      assert.equal((await fail(db, other, at(3599))).lockedNow?.seconds, 30);
    });

    test('twenty failures from one IP across many accounts lock the IP for 5 minutes; another IP is fine', async () => {
      const db = await sharedDb();
      const ip = '203.0.113.50';
      const victim = (i: number) => lockoutSubjects({ tenantId: null, email: `user${i}@acme.test`, ip });
      for (let i = 1; i <= 19; i++) assert.deepEqual(await wrongPassword(db, victim(i), at(i)), { locks: [] });
      const twentieth = await wrongPassword(db, victim(20), at(20));
      assert.notEqual(twentieth, 'refused');
      assert.deepEqual((twentieth as FailureResult).lockedNow && { ...(twentieth as FailureResult).lockedNow }, {
        scope: 'ip',
        subject: ip,
        seconds: 300,
        until: at(320),
        failures: 20,
        level: 1,
      });
      // Any account from that address is refused; the same account from elsewhere is not.
      assert.deepEqual(await checkLockout(db, victim(99), at(21)), { locked: true, retryAfterSeconds: 299, scope: 'ip' });
      assert.equal((await checkLockout(db, lockoutSubjects({ tenantId: null, email: 'user99@acme.test', ip: '203.0.113.51' }), at(21))).locked, false);
      assert.equal((await checkLockout(db, victim(99), at(320))).locked, false);
      // IPv6 neighbours in one /64 share a count.
      const v6 = (n: number) => lockoutSubjects({ tenantId: null, email: `u${n}@acme.test`, ip: `2001:db8:aa:bb::${n.toString(16)}` });
      for (let i = 1; i <= 19; i++) await fail(db, v6(i), at(i));
      assert.equal((await fail(db, v6(20), at(20))).lockedNow?.scope, 'ip');
      assert.equal((await checkLockout(db, v6(4000), at(21))).locked, true);
    });

    test('a burst of 50 failures from one IP (all in flight before the first lock) locks it for an hour', async () => {
      const db = await sharedDb();
      const ip = '203.0.113.60';
      const seconds: number[] = [];
      for (let i = 1; i <= 50; i++) {
        const r = await fail(db, lockoutSubjects({ tenantId: null, email: `spray${i}@acme.test`, ip }), at(i / 10));
        if (r.lockedNow) seconds.push(r.lockedNow.seconds);
      }
      // The 20th locks 5 min; 21st to 49th re-lock 5 min (a later end each time); the 50th: 1 h.
      assert.equal(seconds.length, 31);
      assert.deepEqual(new Set(seconds), new Set([300, 3600]));
      assert.equal(seconds.at(-1), 3600);
      const state = await checkLockout(db, lockoutSubjects({ tenantId: null, email: 'x@acme.test', ip }), at(5));
      assert.deepEqual(state, { locked: true, retryAfterSeconds: 3600, scope: 'ip' });
    });

    test("a success clears the account's failures but not the IP's", async () => {
      const db = await sharedDb();
      const s = alice('success', '198.51.100.4');
      await fail(db, s, at(0));
      await fail(db, s, at(1));
      await db.transaction().execute((trx) => recordSuccess(trx, s, at(2)));
      assert.deepEqual(await accountAndIp(failureCounts(db, s, defaultLockoutPolicy, at(2))), { account: 0, ip: 2 });
      assert.deepEqual(await fail(db, s, at(3)), { locks: [] });
      assert.deepEqual(await fail(db, s, at(4)), { locks: [] });
      assert.equal((await fail(db, s, at(5))).lockedNow?.scope, 'account');
      assert.deepEqual(await accountAndIp(failureCounts(db, s, defaultLockoutPolicy, at(5))), { account: 3, ip: 5 });
    });

    test('an unknown account is locked exactly like a known one', async () => {
      const db = await sharedDb();
      await db.transaction().execute((trx) => createUser(trx, { tenantId: null, email: 'known@acme.test', password: 'a long enough passphrase' }));
      const run = async (email: string) => {
        const s = lockoutSubjects({ tenantId: null, email, ip: null });
        const out: unknown[] = [];
        for (const second of [0, 1, 2, 5, 40, 71, 102, 200]) {
          const r = await wrongPassword(db, s, at(second));
          out.push(r === 'refused' ? ['refused', (await checkLockout(db, s, at(second))).retryAfterSeconds] : (r.lockedNow?.seconds ?? 0));
        }
        return out;
      };
      const known = await run('Known@ACME.test');
      const unknown = await run('nobody@acme.test');
      assert.deepEqual(unknown, known);
      assert.deepEqual(known, [0, 0, 30, ['refused', 27], 30, 30, 1800, ['refused', 1702]]);
    });

    test('concurrent failures are all counted, each seeing a distinct count', async () => {
      const db = await sharedDb();
      // One step per count, each longer than the last, so every failure reports the count it saw.
      const steps = Array.from({ length: 10 }, (_, i) => ({ failures: i + 1, lockSeconds: (i + 1) * 10 }));
      const policy = lockoutPolicy({ account: steps, ip: steps, windowSeconds: 3600 });
      const s = alice('concurrent', '198.51.100.5');
      const results = await Promise.all(
        Array.from({ length: 10 }, () =>
          db.transaction().execute(async (trx) => {
            await sql`select 1`.execute(trx);
            return recordFailure(trx, s, policy, at(0));
          }),
        ),
      );
      assert.deepEqual(await accountAndIp(failureCounts(db, s, policy, at(0))), { account: 10, ip: 10 });
      const seen = (scope: string) =>
        results
          .flatMap((r) => r.locks)
          .filter((l) => l.scope === scope)
          .map((l) => l.failures)
          .sort((a, b) => a - b);
      assert.deepEqual(seen('account'), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      assert.deepEqual(seen('ip'), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      assert.equal((await checkLockout(db, s, at(0))).retryAfterSeconds, 100);
    });

    test('a custom policy is honoured, and an empty IP list leaves addresses untracked', async () => {
      const db = await sharedDb();
      const policy = lockoutPolicy({ account: [{ failures: 2, lockSeconds: 10 }], ip: [], windowSeconds: 120 });
      const s = alice('custom', '198.51.100.6');
      assert.deepEqual(await fail(db, s, at(0), policy), { locks: [] });
      assert.equal((await fail(db, s, at(1), policy)).lockedNow?.seconds, 10);
      assert.deepEqual(await checkLockout(db, s, at(1)), { locked: true, retryAfterSeconds: 10, scope: 'account' });
      assert.equal((await checkLockout(db, s, at(11))).locked, false);
      assert.deepEqual(await accountAndIp(failureCounts(db, s, policy, at(11))), { account: 2, ip: 0 });
      // Window of 120 s: failures at 0 and 1 no longer count at 122.
      assert.deepEqual(await fail(db, s, at(122), policy), { locks: [] });
    });

    test('when account and IP lock on the same failure both are returned, the longer decides Retry-After, and each is audited', async () => {
      const db = await sharedDb();
      const policy = lockoutPolicy({ account: [{ failures: 2, lockSeconds: 60 }], ip: [{ failures: 2, lockSeconds: 600 }], windowSeconds: 3600 });
      const s = alice('both', '198.51.100.7');
      await fail(db, s, at(0), policy);
      const r = await db.transaction().execute(async (trx) => {
        const result = await recordFailure(trx, s, policy, at(1));
        for (const lock of result.locks) await record(trx, systemSource, lockoutAuditEvent(lock, null), at(1));
        return result;
      });
      assert.deepEqual(
        r.locks.map((l) => [l.scope, l.seconds]),
        [
          ['account', 60],
          ['ip', 600],
        ],
      );
      assert.equal(r.lockedNow?.scope, 'ip');
      assert.deepEqual(await checkLockout(db, s, at(1)), { locked: true, retryAfterSeconds: 600, scope: 'ip' });
      const events = await db.selectFrom('accord.audit_events').select(['action', 'target_type', 'target_id', 'details'])
        .where('action', '=', 'auth.lockout')
        .where('target_id', 'in', [s.account, '198.51.100.7'])
        .orderBy('ins')
        .execute();
      assert.deepEqual(
        events.map((e) => [e.target_type, e.target_id, e.details.seconds]),
        [
          ['account', 'both:alice@acme.test', 60],
          ['ip', '198.51.100.7', 600],
        ],
      );
    });

    test('without a source address only the account is counted', async () => {
      const db = await sharedDb();
      const s = alice('no-ip', null);
      const ipRows = async () => (await sql<{ n: number }>`select count(*)::int as n from accord.auth_failures where kind = 'ip'`.execute(db)).rows[0]?.n;
      const before = await ipRows();
      for (let i = 0; i < 3; i++) await fail(db, s, at(i));
      assert.deepEqual(await checkLockout(db, s, at(2)), { locked: true, retryAfterSeconds: 30, scope: 'account' });
      assert.equal(await ipRows(), before);
    });

    test('pruning deletes failures older than the window and ended locks, and keeps the rest', async () => {
      const db = await open(engine); // pruning is global: a database of its own
      const s = alice('prune', '198.51.100.8');
      for (let i = 0; i < 3; i++) await fail(db, s, at(i));
      const other = lockoutSubjects({ tenantId: null, email: 'dave@acme.test', ip: null });
      await fail(db, other, at(1800));
      // At 3601: alice's three failures left the window and her lock ended; dave's failure stays.
      const pruned = await pruneFailures(db, defaultLockoutPolicy, at(3602));
      assert.deepEqual(pruned, { failures: 6, locks: 3 });
      assert.deepEqual(await accountAndIp(failureCounts(db, other, defaultLockoutPolicy, at(3602))), { account: 1, ip: 0 });
      // A lock still running survives pruning.
      for (let i = 0; i < 3; i++) await fail(db, other, at(3700 + i));
      await pruneFailures(db, defaultLockoutPolicy, at(3703));
      assert.equal((await checkLockout(db, other, at(3703))).locked, true);
    });
  });
}
