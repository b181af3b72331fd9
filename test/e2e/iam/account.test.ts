import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, describe, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { sql } from 'kysely';
import { ephemeralSigner } from '../../../src/audit-chain/index.ts';
import { loadConfig } from '../../../src/config/index.ts';
import type { Database } from '../../../src/db/index.ts';
import { ensureBootstrap, grantRole, signAccessToken } from '../../../src/iam/index.ts';
import { passwordRules } from '../../../src/iam/account/passwords.ts';
import { buildApp, createLogger } from '../../../src/server/index.ts';
import { engines } from '../../harness/engines.ts';
import { testIamKey } from '../../harness/iam.ts';
import { testKeyring } from '../../harness/keys.ts';

const config = loadConfig({ env: {}, flags: { logLevel: 'silent' } });
const OPS = { email: 'ops@example.test', password: 'operator passphrase 1' };
const ADMIN_PW = 'orchard lemon tree';

interface CallOptions {
  token?: string;
  payload?: unknown;
  /** Source address; failures count per address for the lockout, so tests that fail on purpose use their own. */
  ip?: string;
}

for (const engine of engines()) {
  describe(`invitations, password change and reset, profile on ${engine.name}`, { concurrency: false }, () => {
    let app: FastifyInstance;
    let database: Database;
    let ops: string;
    let admin: string;
    // Every password and one-time token this suite sends: none may reach the audit trail or the log.
    const secrets: string[] = [OPS.password, ADMIN_PW];
    const log: string[] = [];
    let ipCounter = 0;
    const freshIp = () => `10.9.${Math.floor(++ipCounter / 250)}.${ipCounter % 250}`;
    after(async () => app?.close());

    const call = (method: string, url: string, o: CallOptions = {}) =>
      app.inject({
        method: method as 'GET',
        url,
        ...(o.ip ? { remoteAddress: o.ip } : {}),
        ...(o.token ? { headers: { authorization: `Bearer ${o.token}` } } : {}),
        ...(o.payload === undefined ? {} : { payload: o.payload as object }),
      });
    const code = (r: LightMyRequestResponse) => (r.statusCode >= 400 ? r.json().code : r.statusCode);
    const signIn = async (email: string, password: string, ip = '127.0.0.1') => {
      const r = await call('POST', '/api/v1/auth/login', { payload: { email, password }, ip });
      return r.statusCode === 200 ? (r.json() as { accessToken: string; refreshToken: string; sessionId: string }) : (r.json().code as string);
    };
    const token = async (email: string, password: string) => {
      const s = await signIn(email, password);
      assert.equal(typeof s, 'object', `sign-in of ${email}: ${String(s)}`);
      return (s as { accessToken: string }).accessToken;
    };
    const invite = async (by: string, email: string, displayName?: string) => {
      const r = await call('POST', '/api/v1/tenants/acme/invitations', { token: by, payload: { email, ...(displayName ? { displayName } : {}) } });
      assert.equal(r.statusCode, 201, r.body);
      const t = r.json().inviteToken as string;
      secrets.push(t);
      return t;
    };
    const accept = (t: string, password: string) => {
      secrets.push(password);
      return call('POST', '/api/v1/auth/invitation', { payload: { token: t, password } });
    };
    const createUser = async (email: string, password: string) => {
      secrets.push(password);
      assert.equal((await call('POST', '/api/v1/tenants/acme/users', { token: ops, payload: { email, password } })).statusCode, 201);
    };
    const statusOf = async (email: string) => {
      const list = (await call('GET', '/api/v1/tenants/acme/users', { token: ops })).json() as { email: string; status: string }[];
      return list.find((u) => u.email === email)?.status;
    };
    const userId = async (email: string) => (await database.db.selectFrom('accord.users').select('id').where('email', '=', email).executeTakeFirstOrThrow()).id;
    const rules = (r: LightMyRequestResponse) => {
      assert.equal(code(r), 'IAM_PASSWORD_POLICY', r.body);
      return r.json().details.rules as string[];
    };

    test('an invited user cannot sign in until they accept, then signs in with the password they chose', async () => {
      database = await engine.open();
      const sink = new Writable({
        write(chunk, _enc, done) {
          log.push(String(chunk));
          done();
        },
      });
      app = await buildApp({ config, database, logger: createLogger('debug', sink), signer: ephemeralSigner(), keyring: await testKeyring(), iamKey: testIamKey });
      await ensureBootstrap(database.db, OPS);
      ops = await token(OPS.email, OPS.password);
      assert.equal((await call('POST', '/api/v1/tenants', { token: ops, payload: { name: 'acme' } })).statusCode, 201);

      const before = Date.now();
      const r = await call('POST', '/api/v1/tenants/acme/invitations', { token: ops, payload: { email: 'Admin@acme.test', displayName: 'Ada Admin' } });
      assert.equal(r.statusCode, 201, r.body);
      const inv = r.json() as { email: string; inviteToken: string; expiresAt: string };
      secrets.push(inv.inviteToken);
      assert.equal(inv.email, 'admin@acme.test');
      assert.match(inv.inviteToken, /^aci_[A-Za-z0-9_-]{43}$/);
      const ttl = Date.parse(inv.expiresAt) - before;
      assert.ok(ttl > 7 * 86_400_000 - 60_000 && ttl <= 7 * 86_400_000 + 60_000, `expires in ${ttl} ms`);
      assert.equal(await statusOf('admin@acme.test'), 'invited');
      // No password yet: nothing signs in, not even an empty-looking guess.
      assert.equal(await signIn('admin@acme.test', ADMIN_PW, freshIp()), 'IAM_INVALID_CREDENTIALS');

      const ok = await accept(inv.inviteToken, ADMIN_PW);
      assert.equal(ok.statusCode, 200, ok.body);
      const accepted = ok.json() as { userId: string; email: string; tenant: string };
      assert.deepEqual(accepted, { userId: await userId('admin@acme.test'), email: 'admin@acme.test', tenant: 'acme' });
      assert.equal(await statusOf('admin@acme.test'), 'active');
      assert.equal((await call('POST', '/api/v1/tenants/acme/grants', { token: ops, payload: { user: 'admin@acme.test', role: 'tenant-admin' } })).statusCode, 204);
      admin = await token('admin@acme.test', ADMIN_PW);
      const me = (await call('GET', '/api/v1/me', { token: admin })).json();
      assert.equal(me.displayName, 'Ada Admin');
      assert.ok(me.passwordChangedAt, 'accepting sets the password change time');
    });

    test('an invitation token works once', async () => {
      const t = await invite(admin, 'bea@acme.test');
      assert.equal((await accept(t, 'first choice of words')).statusCode, 200);
      assert.equal(code(await accept(t, 'second choice of words')), 'IAM_TOKEN_USED');
      assert.equal(await signIn('bea@acme.test', 'second choice of words', freshIp()), 'IAM_INVALID_CREDENTIALS');
      assert.equal(typeof (await signIn('bea@acme.test', 'first choice of words')), 'object');
    });

    test('an expired invitation is refused and the user stays invited', async () => {
      const t = await invite(admin, 'erin@acme.test');
      await database.db
        .updateTable('accord.user_tokens')
        .set({ expires_at: sql<Date>`now() - interval '1 minute'` })
        .where('user_id', '=', await userId('erin@acme.test'))
        .execute();
      assert.equal(code(await accept(t, 'river stone chosen well')), 'IAM_TOKEN_USED');
      assert.equal(await statusOf('erin@acme.test'), 'invited');
    });

    test('inviting again replaces the pending invitation; inviting an existing user is refused; unknown tokens are refused', async () => {
      const first = await invite(admin, 'dave@acme.test');
      const second = await invite(admin, 'dave@acme.test', 'Dave D.');
      assert.equal(code(await accept(first, 'blue whale long phrase')), 'IAM_TOKEN_USED');
      const accepted = await accept(second, 'blue whale long phrase');
      assert.equal(accepted.statusCode, 200, accepted.body);
      assert.equal((await call('GET', '/api/v1/me', { token: await token('dave@acme.test', 'blue whale long phrase') })).json().displayName, 'Dave D.');
      const again = await call('POST', '/api/v1/tenants/acme/invitations', { token: admin, payload: { email: 'dave@acme.test' } });
      assert.equal(code(again), 'IAM_USER_EXISTS');
      for (const bogus of ['aci_nope', `acp_${'A'.repeat(43)}`, second.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A'))]) {
        assert.equal(code(await accept(bogus, 'whatever this may be')), 'IAM_TOKEN_USED', bogus);
      }
    });

    test('weak passwords are refused with the reason, and nothing changes', async () => {
      const t = await invite(admin, 'frank@acme.test');
      assert.ok(rules(await accept(t, 'Password1234')).includes(passwordRules.common));
      assert.deepEqual(rules(await accept(t, 'too short')), [passwordRules.tooShort]);
      assert.deepEqual(rules(await accept(t, 'this is frank speaking')), [passwordRules.emailName]);
      assert.deepEqual(rules(await accept(t, 'xyzxyzxyzxyz')), [passwordRules.repeatedChunk]);
      assert.deepEqual(rules(await accept(t, 'kkkkkkkkkkkkkk')), [passwordRules.oneCharacter]);
      assert.ok(rules(await accept(t, '987654321098')).includes(passwordRules.sequence));
      assert.equal(await statusOf('frank@acme.test'), 'invited');
      const row = await database.db.selectFrom('accord.users').select(['password_hash', 'password_changed_at']).where('email', '=', 'frank@acme.test').executeTakeFirstOrThrow();
      assert.deepEqual(row, { password_hash: null, password_changed_at: null });
      // The token was not spent by the refusals.
      assert.equal((await accept(t, 'copper kettle sound one')).statusCode, 200);
    });

    test('changing the password ends the other sessions and keeps the current one', async () => {
      const a = (await signIn('frank@acme.test', 'copper kettle sound one')) as { accessToken: string; refreshToken: string };
      const b = (await signIn('frank@acme.test', 'copper kettle sound one')) as { accessToken: string; refreshToken: string };
      secrets.push(a.accessToken, a.refreshToken, b.accessToken, b.refreshToken);
      const change = (currentPassword: string, newPassword: string, ip?: string) => {
        secrets.push(newPassword);
        return call('POST', '/api/v1/me/password', { token: a.accessToken, payload: { currentPassword, newPassword }, ...(ip ? { ip } : {}) });
      };
      assert.ok(rules(await change('copper kettle sound one', 'iloveyou123456')).includes(passwordRules.common));
      assert.deepEqual(rules(await change('copper kettle sound one', 'copper kettle sound one')), ['must differ from the current password']);
      assert.equal((await call('GET', '/api/v1/me', { token: b.accessToken })).statusCode, 200, 'refusals end no session');

      const done = await change('copper kettle sound one', 'a better phrase for him');
      assert.equal(done.statusCode, 200, done.body);
      assert.ok(done.json().otherSessionsRevoked >= 1);
      assert.equal((await call('GET', '/api/v1/me', { token: a.accessToken })).statusCode, 200);
      assert.equal(code(await call('GET', '/api/v1/me', { token: b.accessToken })), 'IAM_SESSION_ENDED');
      assert.equal(code(await call('POST', '/api/v1/auth/refresh', { payload: { refreshToken: b.refreshToken } })), 'IAM_SESSION_ENDED');
      assert.equal(await signIn('frank@acme.test', 'copper kettle sound one', freshIp()), 'IAM_INVALID_CREDENTIALS');
      assert.equal(typeof (await signIn('frank@acme.test', 'a better phrase for him')), 'object');
    });

    test('API clients have no password or profile', async () => {
      const tenant = await database.db.selectFrom('accord.tenants').select('id').where('name', '=', 'acme').executeTakeFirstOrThrow();
      const client = await database.db
        .insertInto('accord.api_clients')
        .values({ tenant_id: tenant.id, name: 'ci', client_id: 'acl_test_ci', created_by: null, expires_at: new Date(Date.now() + 3_600_000), revoked_at: null, last_used_at: null })
        .returning('id')
        .executeTakeFirstOrThrow();
      const now = Math.floor(Date.now() / 1000);
      // A client token names the (live) secret it was obtained with.
      const secret = await database.db
        .insertInto('accord.api_client_secrets')
        .values({ client_id: client.id, secret_hash: Buffer.alloc(32, 7), expires_at: new Date(Date.now() + 3_600_000) })
        .returning('id')
        .executeTakeFirstOrThrow();
      const clientToken = signAccessToken(testIamKey, { typ: 'client', sub: client.id, sid: null, sv: secret.id, iat: now, exp: now + 300 });
      assert.equal(code(await call('GET', '/api/v1/me', { token: clientToken })), 'IAM_WRONG_AUDIENCE');
      assert.equal(code(await call('PATCH', '/api/v1/me', { token: clientToken, payload: { displayName: 'x' } })), 'IAM_WRONG_AUDIENCE');
      assert.equal(code(await call('POST', '/api/v1/me/password', { token: clientToken, payload: { currentPassword: 'a', newPassword: 'b' } })), 'IAM_WRONG_AUDIENCE');
    });

    test('a wrong current password counts toward the account lockout', async () => {
      await createUser('gina@acme.test', 'she keeps bees at home');
      const gina = await token('gina@acme.test', 'she keeps bees at home');
      const wrong = () => call('POST', '/api/v1/me/password', { token: gina, payload: { currentPassword: 'not her password ok', newPassword: 'her new long phrase' }, ip: freshIp() });
      for (let i = 0; i < 3; i++) {
        const r = await wrong();
        assert.equal(code(r), 'IAM_INVALID_CREDENTIALS', `attempt ${i + 1}`);
      }
      // Three failures lock the account for sign-in, from any address, with the right password too...
      const locked = await call('POST', '/api/v1/auth/login', { payload: { email: 'gina@acme.test', password: 'she keeps bees at home' }, ip: freshIp() });
      assert.equal(code(locked), 'IAM_LOCKED');
      assert.ok(Number(locked.headers['retry-after']) > 0);
      // ...and for password changes, right current password or not.
      const change = await call('POST', '/api/v1/me/password', { token: gina, payload: { currentPassword: 'she keeps bees at home', newPassword: 'her new long phrase' }, ip: freshIp() });
      assert.equal(code(change), 'IAM_LOCKED');
      const lockouts = (await call('GET', '/api/v1/audit?action=auth.lockout', { token: ops })).json().records as { target: { id: string } | null }[];
      assert.ok(lockouts.some((x) => x.target?.id === 'platform:gina@acme.test'), JSON.stringify(lockouts));
      const failures = (await call('GET', '/api/v1/tenants/acme/audit?action=user.password.changed&outcome=failure', { token: ops })).json().records;
      assert.equal(failures.length, 3);
      assert.ok(failures.every((x: { reason: string }) => x.reason === 'IAM_INVALID_CREDENTIALS'));
    });

    test('an admin reset gives a single-use token, ends every session, and the new password replaces the old', async () => {
      await createUser('henry@acme.test', 'his old passphrase');
      const s1 = await token('henry@acme.test', 'his old passphrase');
      const s2 = await token('henry@acme.test', 'his old passphrase');
      const issue = async () => {
        const r = await call('POST', '/api/v1/tenants/acme/users/henry@acme.test/password-reset', { token: admin });
        assert.equal(r.statusCode, 201, r.body);
        secrets.push(r.json().resetToken);
        return r.json() as { email: string; resetToken: string; expiresAt: string };
      };
      const before = Date.now();
      const first = await issue();
      assert.match(first.resetToken, /^acp_[A-Za-z0-9_-]{43}$/);
      const ttl = Date.parse(first.expiresAt) - before;
      assert.ok(ttl > 29 * 60_000 && ttl <= 31 * 60_000, `expires in ${ttl} ms`);
      const second = await issue();
      const reset = (t: string, password: string) => {
        secrets.push(password);
        return call('POST', '/api/v1/auth/password-reset', { payload: { token: t, password } });
      };
      assert.equal(code(await reset(first.resetToken, 'his brand new words')), 'IAM_TOKEN_USED', 'a newer reset ends the earlier token');
      // An invitation token is not a reset token.
      assert.equal(code(await reset(`aci_${second.resetToken.slice(4)}`, 'his brand new words')), 'IAM_TOKEN_USED');
      assert.deepEqual(rules(await reset(second.resetToken, 'henry123456789')), [passwordRules.emailName]);
      assert.equal((await call('GET', '/api/v1/me', { token: s1 })).statusCode, 200, 'a refused password ends no session');

      const done = await reset(second.resetToken, 'his brand new words');
      assert.equal(done.statusCode, 200, done.body);
      assert.equal(done.json().sessionsRevoked, 2);
      for (const s of [s1, s2]) assert.equal(code(await call('GET', '/api/v1/me', { token: s })), 'IAM_SESSION_ENDED');
      assert.equal(code(await reset(second.resetToken, 'his other new words')), 'IAM_TOKEN_USED');
      assert.equal(await signIn('henry@acme.test', 'his old passphrase', freshIp()), 'IAM_INVALID_CREDENTIALS');
      assert.equal(await signIn('henry@acme.test', 'his other new words', freshIp()), 'IAM_INVALID_CREDENTIALS');
      assert.equal(typeof (await signIn('henry@acme.test', 'his brand new words')), 'object');

      const third = await issue();
      await database.db
        .updateTable('accord.user_tokens')
        .set({ expires_at: sql<Date>`now() - interval '1 second'` })
        .where('user_id', '=', await userId('henry@acme.test'))
        .where('used_at', 'is', null)
        .execute();
      assert.equal(code(await reset(third.resetToken, 'his too late again')), 'IAM_TOKEN_USED');
      assert.equal(code(await call('POST', '/api/v1/tenants/acme/users/erin@acme.test/password-reset', { token: admin })), 'IAM_USER_INVITED');
      assert.equal(code(await call('POST', '/api/v1/tenants/acme/users/nobody@acme.test/password-reset', { token: admin })), 'IAM_USER_NOT_FOUND');
    });

    test('a tenant admin cannot reset or re-invite a user who holds powers the admin lacks', async () => {
      await createUser('ivy@acme.test', 'green grows on walls');
      const acme = await database.db.selectFrom('accord.tenants').select('id').where('name', '=', 'acme').executeTakeFirstOrThrow();
      const ivyId = await userId('ivy@acme.test');
      await database.db.transaction().execute((trx) => grantRole(trx, { userId: ivyId, role: 'security-officer', tenantId: acme.id, stageId: null }));
      const refused = await call('POST', '/api/v1/tenants/acme/users/ivy@acme.test/password-reset', { token: admin });
      assert.equal(code(refused), 'IAM_GRANT_ESCALATION');
      assert.ok(refused.json().details.missing.includes('security:read'));
      assert.equal((await database.db.selectFrom('accord.user_tokens').select('id').where('user_id', '=', ivyId).execute()).length, 0, 'no token was issued');
      const byOps = await call('POST', '/api/v1/tenants/acme/users/ivy@acme.test/password-reset', { token: ops });
      assert.equal(byOps.statusCode, 201);
      secrets.push(byOps.json().resetToken);

      const judyToken = await invite(ops, 'judy@acme.test');
      const judyId = await userId('judy@acme.test');
      await database.db.transaction().execute((trx) => grantRole(trx, { userId: judyId, role: 'security-officer', tenantId: acme.id, stageId: null }));
      assert.equal(code(await call('POST', '/api/v1/tenants/acme/invitations', { token: admin, payload: { email: 'judy@acme.test' } })), 'IAM_GRANT_ESCALATION');
      assert.equal((await accept(judyToken, 'she keeps her invitation')).statusCode, 200, 'the refused re-invitation left the pending one alone');
    });

    test('the profile shows the account, and the display name can be changed', async () => {
      const frank = await token('frank@acme.test', 'a better phrase for him');
      const me = await call('GET', '/api/v1/me', { token: frank });
      assert.equal(me.statusCode, 200);
      const p = me.json();
      assert.deepEqual(Object.keys(p).sort(), ['createdAt', 'displayName', 'email', 'id', 'mfa', 'passwordChangedAt', 'status', 'tenant']);
      assert.equal(p.id, await userId('frank@acme.test'));
      assert.deepEqual({ email: p.email, displayName: p.displayName, tenant: p.tenant, status: p.status, mfa: p.mfa }, { email: 'frank@acme.test', displayName: '', tenant: 'acme', status: 'active', mfa: [] });
      assert.ok(Date.parse(p.passwordChangedAt) >= Date.parse(p.createdAt));

      const set = await call('PATCH', '/api/v1/me', { token: frank, payload: { displayName: 'Frank F.' } });
      assert.equal(set.statusCode, 200, set.body);
      assert.equal(set.json().displayName, 'Frank F.');
      assert.equal((await call('GET', '/api/v1/me', { token: frank })).json().displayName, 'Frank F.');
      assert.equal(code(await call('PATCH', '/api/v1/me', { token: frank, payload: { displayName: 'x', email: 'other@acme.test' } })), 'REQUEST_INVALID');
      assert.equal(code(await call('PATCH', '/api/v1/me', { token: frank, payload: { displayName: 'x'.repeat(101) } })), 'REQUEST_INVALID');
      assert.equal(code(await call('GET', '/api/v1/me')), 'IAM_UNAUTHENTICATED');

      const operator = (await call('GET', '/api/v1/me', { token: ops })).json();
      assert.equal(operator.tenant, null);
      assert.equal(operator.email, OPS.email);
      const audit = (await call('GET', '/api/v1/tenants/acme/audit?action=user.profile.updated', { token: ops })).json().records;
      assert.equal(audit.length, 1);
      assert.deepEqual(audit[0].details, { displayName: { from: '', to: 'Frank F.' } });
    });

    test('every step is audited on the tenant chain, and no token or password reaches the audit trail or the log', async () => {
      const records = (await call('GET', '/api/v1/tenants/acme/audit?action=user.*&limit=500', { token: ops })).json().records as { action: string; outcome: string; reason?: string }[];
      const seen = new Set(records.map((r) => `${r.action}:${r.outcome}`));
      for (const a of [
        'user.invited:success',
        'user.invitation.accepted:success',
        'user.invitation.accepted:failure',
        'user.password.changed:success',
        'user.password.changed:failure',
        'user.password.changed:denied',
        'user.password.reset.issued:success',
        'user.password.reset:success',
        'user.password.reset:failure',
        'user.profile.updated:success',
      ]) {
        assert.ok(seen.has(a), `${a} missing`);
      }
      assert.ok(records.filter((r) => r.outcome === 'failure' && r.action !== 'user.password.changed').every((r) => r.reason === 'IAM_TOKEN_USED'));

      const everything = await sql<Record<string, unknown>>`select * from accord.audit_events`.execute(database.db);
      const trail = JSON.stringify(everything.rows);
      const logText = log.join('');
      assert.ok(logText.length > 0, 'the log captured something');
      assert.ok(secrets.length > 30, `${secrets.length} secrets tracked`);
      for (const s of secrets) {
        assert.equal(trail.includes(s), false, `a secret is in the audit trail: ${s.slice(0, 6)}…`);
        assert.equal(logText.includes(s), false, `a secret is in the log: ${s.slice(0, 6)}…`);
      }
    });
  });
}
