import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import pino from 'pino';
import { ephemeralSigner } from '../../../src/audit-chain/index.ts';
import { loadConfig } from '../../../src/config/index.ts';
import type { Database } from '../../../src/db/index.ts';
import { ensureBootstrap, signAccessToken } from '../../../src/iam/index.ts';
import { base32Decode, hotp, totpCode, totpStep } from '../../../src/iam/mfa/totp.ts';
import { buildApp } from '../../../src/server/index.ts';
import { engines } from '../../harness/engines.ts';
import { testIamKey } from '../../harness/iam.ts';
import { testKeyring } from '../../harness/keys.ts';
import { SoftAuthenticator } from '../../harness/webauthn.ts';

const config = loadConfig({ env: {}, flags: { logLevel: 'silent' } });
const OPS = { email: 'ops@example.test', password: 'operator passphrase 1' };
const PASSWORD = 'a perfectly fine passphrase';

interface Enrolment {
  secret: string;
  otpauthUri: string;
  recoveryCodes: string[];
}

/** The code an authenticator app shows `offsetSeconds` from now (+30: the next step, unspent). */
const totpAt = (secret: string, offsetSeconds = 0) => totpCode(base32Decode(secret) as Buffer, Date.now() + offsetSeconds * 1000);
/** A code that is certainly wrong now: five steps ahead, outside the ±1 window. */
const wrongTotp = (secret: string) => hotp(base32Decode(secret) as Buffer, totpStep(Date.now()) + 5);

for (const engine of engines()) {
  describe(`MFA on ${engine.name}`, { concurrency: false }, () => {
    let app: FastifyInstance;
    let database: Database;
    let ops: string;
    // Every secret handed out in this file: none may ever reach the audit trail.
    const secrets: string[] = [];
    after(async () => app?.close());

    const call = (method: string, url: string, token?: string, payload?: unknown) =>
      app.inject({ method: method as 'GET', url, ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}), ...(payload === undefined ? {} : { payload: payload as object }) });
    const code = (r: LightMyRequestResponse) => (r.statusCode >= 400 ? r.json().code : r.statusCode);
    const login = async (email: string) => {
      const r = await call('POST', '/api/v1/auth/login', undefined, { email, password: PASSWORD });
      assert.equal(r.statusCode, 200, r.body);
      const body = r.json();
      if (body.mfaToken) secrets.push(body.mfaToken);
      return body;
    };
    const mfa = (mfaToken: string, factor: Record<string, unknown>) => call('POST', '/api/v1/auth/mfa', undefined, { mfaToken, ...factor });
    const createUser = async (email: string, role?: string) => {
      assert.equal((await call('POST', '/api/v1/tenants/acme/users', ops, { email, password: PASSWORD })).statusCode, 201);
      if (role) assert.equal((await call('POST', '/api/v1/tenants/acme/grants', ops, { user: email, role })).statusCode, 204);
    };
    const enrol = async (token: string): Promise<Enrolment> => {
      const r = await call('POST', '/api/v1/mfa/totp', token);
      assert.equal(r.statusCode, 201, r.body);
      const e = r.json() as Enrolment;
      secrets.push(e.secret, ...e.recoveryCodes, ...e.recoveryCodes.map((c) => c.replaceAll('-', '')));
      return e;
    };
    /** A tenant user with a confirmed TOTP (confirmed with the current step's code). */
    const totpUser = async (email: string) => {
      await createUser(email);
      const token = (await login(email)).accessToken as string;
      const e = await enrol(token);
      assert.deepEqual((await call('POST', '/api/v1/mfa/totp/confirm', token, { code: totpAt(e.secret) })).json(), { confirmed: true });
      return { token, ...e };
    };
    const auditOf = (action: string) =>
      database.db.selectFrom('accord.audit_events').selectAll().where('action', '=', action).orderBy('occurred_at').orderBy('ins').execute();

    test('a user enrols TOTP from the otpauth URI and confirms it with a code; a wrong code is refused and audited', async () => {
      database = await engine.open();
      app = await buildApp({ config, database, logger: pino({ level: 'silent' }), signer: ephemeralSigner(), keyring: await testKeyring(), iamKey: testIamKey });
      await ensureBootstrap(database.db, OPS);
      ops = (await call('POST', '/api/v1/auth/login', undefined, OPS)).json().accessToken;
      assert.equal((await call('POST', '/api/v1/tenants', ops, { name: 'acme' })).statusCode, 201);
      await createUser('alice@acme.test', 'developer');
      const signedIn = await login('alice@acme.test');
      assert.equal(signedIn.status, 'signed-in');
      const alice = signedIn.accessToken as string;
      assert.equal(code(await call('GET', '/api/v1/mfa')), 'IAM_UNAUTHENTICATED');
      const before = (await call('GET', '/api/v1/mfa', alice)).json();
      assert.deepEqual(before, { required: false, methods: [], totp: { enrolled: false, confirmed: false, confirmedAt: null }, passkeys: [], recoveryCodesLeft: 0 });

      const e = await enrol(alice);
      const uri = new URL(e.otpauthUri);
      assert.equal(decodeURIComponent(uri.pathname), '/Accord:alice@acme.test');
      assert.equal(uri.searchParams.get('issuer'), 'Accord');
      assert.equal(uri.searchParams.get('secret'), e.secret);
      assert.equal(e.recoveryCodes.length, 10);
      for (const c of e.recoveryCodes) assert.match(c, /^[A-Z2-7]{4}(-[A-Z2-7]{4}){3}$/);
      // Pending: not yet a factor, and the recovery codes shown are not active.
      assert.deepEqual((await call('GET', '/api/v1/mfa', alice)).json().totp, { enrolled: true, confirmed: false, confirmedAt: null });
      assert.equal((await login('alice@acme.test')).status, 'signed-in');

      const wrong = await call('POST', '/api/v1/mfa/totp/confirm', alice, { code: wrongTotp(e.secret) });
      assert.equal(code(wrong), 'IAM_MFA_INVALID');
      const failed = await auditOf('mfa.totp.confirmed');
      assert.deepEqual(failed.map((r) => [r.outcome, r.reason]), [['failure', 'bad-totp']]);
      const ok = await call('POST', '/api/v1/mfa/totp/confirm', alice, { code: totpAt(e.secret) });
      assert.deepEqual(ok.json(), { confirmed: true });
      assert.equal(code(await call('POST', '/api/v1/mfa/totp/confirm', alice, { code: totpAt(e.secret, 30) })), 'IAM_MFA_ALREADY_ENROLLED');
      assert.equal(code(await call('POST', '/api/v1/mfa/totp', alice)), 'IAM_MFA_ALREADY_ENROLLED');
      const status = (await call('GET', '/api/v1/mfa', alice)).json();
      assert.deepEqual([status.totp.confirmed, status.methods, status.recoveryCodesLeft], [true, ['totp', 'recovery'], 10]);
      assert.deepEqual((await auditOf('mfa.totp.enrolled')).map((r) => r.outcome), ['success']);
      assert.deepEqual((await auditOf('mfa.totp.confirmed')).map((r) => r.outcome), ['failure', 'success']);
      // Keep alice's secret for the next tests.
      aliceSecret = e.secret;
      aliceCodes = e.recoveryCodes;
    });

    let aliceSecret = '';
    let aliceCodes: string[] = [];

    test('sign-in then needs a second factor and completes with a TOTP; the same code again is a refused replay', async () => {
      const first = await login('alice@acme.test');
      assert.equal(first.status, 'mfa-required');
      assert.deepEqual(first.methods, ['totp', 'recovery']);
      assert.equal(first.accessToken, undefined);
      const next = totpAt(aliceSecret, 30);
      const done = await mfa(first.mfaToken, { totp: next });
      assert.equal(done.statusCode, 200, done.body);
      assert.equal(done.json().status, 'signed-in');
      const who = await call('GET', '/api/v1/auth/session', done.json().accessToken);
      assert.equal(who.json().email, 'alice@acme.test');
      // The challenge is spent, and the code cannot be used again with a fresh one.
      assert.equal(code(await mfa(first.mfaToken, { totp: next })), 'IAM_MFA_CHALLENGE_INVALID');
      const second = await login('alice@acme.test');
      assert.equal(code(await mfa(second.mfaToken, { totp: next })), 'IAM_MFA_INVALID');
      const failures = (await auditOf('auth.mfa')).filter((r) => r.outcome === 'failure');
      assert.deepEqual(failures.map((r) => r.reason), ['replayed-totp']);
      assert.equal(failures[0]?.tenant_id, (await database.db.selectFrom('accord.tenants').select('id').where('name', '=', 'acme').executeTakeFirstOrThrow()).id);
    });

    test('wrong codes are audited as auth.mfa failures and count toward the lockout: after three the account is locked', async () => {
      const { secret } = await totpUser('locky@acme.test');
      const challenge = await login('locky@acme.test');
      for (let i = 0; i < 3; i++) assert.equal(code(await mfa(challenge.mfaToken, { totp: wrongTotp(secret) })), 'IAM_MFA_INVALID');
      const locked = await mfa(challenge.mfaToken, { totp: totpAt(secret, 30) });
      assert.equal(locked.statusCode, 429);
      assert.equal(locked.json().code, 'IAM_LOCKED');
      const retry = Number(locked.headers['retry-after']);
      assert.ok(retry > 0 && retry <= 30, `retry-after ${retry}`);
      // The password step is locked too.
      assert.equal(code(await call('POST', '/api/v1/auth/login', undefined, { email: 'locky@acme.test', password: PASSWORD })), 'IAM_LOCKED');
      const user = await database.db.selectFrom('accord.users').select('id').where('email', '=', 'locky@acme.test').executeTakeFirstOrThrow();
      const bad = (await auditOf('auth.mfa')).filter((r) => r.target_id === user.id);
      assert.deepEqual(bad.map((r) => [r.outcome, r.reason]), Array(3).fill(['failure', 'bad-totp']));
      assert.ok((await auditOf('auth.lockout')).some((r) => r.target_type === 'account' && r.target_id === 'platform:locky@acme.test'));
    });

    test('a recovery code completes a sign-in once only, in any spelling, and its use is audited', async () => {
      const c = aliceCodes[0] as string;
      const first = await login('alice@acme.test');
      const ok = await mfa(first.mfaToken, { recoveryCode: c.toLowerCase().replaceAll('-', '') });
      assert.equal(ok.statusCode, 200, ok.body);
      assert.equal(ok.json().status, 'signed-in');
      const again = await login('alice@acme.test');
      assert.equal(code(await mfa(again.mfaToken, { recoveryCode: c })), 'IAM_MFA_INVALID');
      assert.equal((await mfa(again.mfaToken, { recoveryCode: aliceCodes[1] })).statusCode, 200);
      const used = await auditOf('mfa.recovery.used');
      assert.deepEqual(used.map((r) => r.details), [{ remaining: 9 }, { remaining: 8 }]);
      assert.ok(used.every((r) => r.actor_label === 'alice@acme.test'));
      const token = ok.json().accessToken as string;
      assert.equal((await call('GET', '/api/v1/mfa', token)).json().recoveryCodesLeft, 8);
    });

    test('regenerating recovery codes needs a code and replaces the old ones; removing the TOTP needs one too', async () => {
      const s = await login('alice@acme.test');
      const token = (await mfa(s.mfaToken, { recoveryCode: aliceCodes[2] })).json().accessToken as string;
      assert.equal(code(await call('POST', '/api/v1/mfa/recovery-codes', token, { code: wrongTotp(aliceSecret) })), 'IAM_MFA_INVALID');
      const regen = await call('POST', '/api/v1/mfa/recovery-codes', token, { code: aliceCodes[3] });
      assert.equal(regen.statusCode, 200, regen.body);
      const fresh = regen.json().recoveryCodes as string[];
      secrets.push(...fresh);
      assert.equal(fresh.length, 10);
      assert.equal((await call('GET', '/api/v1/mfa', token)).json().recoveryCodesLeft, 10);
      assert.deepEqual((await auditOf('mfa.recovery.regenerated')).map((r) => [r.outcome, r.reason]), [['failure', 'bad-totp'], ['success', null]]);
      const old = await login('alice@acme.test');
      assert.equal(code(await mfa(old.mfaToken, { recoveryCode: aliceCodes[4] })), 'IAM_MFA_INVALID');
      assert.equal((await mfa(old.mfaToken, { recoveryCode: fresh[0] })).statusCode, 200);

      assert.equal(code(await call('DELETE', '/api/v1/mfa/totp', token, { code: wrongTotp(aliceSecret) })), 'IAM_MFA_INVALID');
      assert.equal((await call('GET', '/api/v1/mfa', token)).json().totp.confirmed, true);
      assert.equal((await call('DELETE', '/api/v1/mfa/totp', token, { code: fresh[1] })).statusCode, 204);
      assert.deepEqual((await call('GET', '/api/v1/mfa', token)).json(), { required: false, methods: [], totp: { enrolled: false, confirmed: false, confirmedAt: null }, passkeys: [], recoveryCodesLeft: 0 });
      assert.equal(code(await call('DELETE', '/api/v1/mfa/totp', token, { code: fresh[2] })), 'IAM_MFA_NOT_ENROLLED');
      assert.equal((await login('alice@acme.test')).status, 'signed-in');
      assert.deepEqual((await auditOf('mfa.totp.removed')).map((r) => r.outcome), ['failure', 'success']);
    });

    test('a tenant requiring MFA gives a user without it an enrolment-only session; enrolling returns a full session that works', async () => {
      await createUser('carol@acme.test', 'developer');
      assert.equal((await call('PATCH', '/api/v1/tenants/acme/policy', ops, { requireMfa: true })).statusCode, 200);
      const s = await login('carol@acme.test');
      assert.equal(s.status, 'mfa-enrolment-required');
      const limited = s.accessToken as string;
      assert.equal(code(await call('GET', '/api/v1/tenants/acme', limited)), 'IAM_MFA_ENROLMENT_REQUIRED');
      assert.equal(code(await call('GET', '/api/v1/auth/sessions', limited)), 'IAM_MFA_ENROLMENT_REQUIRED');
      assert.equal(code(await call('POST', '/api/v1/auth/refresh', undefined, { refreshToken: s.refreshToken })), 'IAM_SESSION_ENDED');
      assert.equal((await call('GET', '/api/v1/mfa', limited)).json().required, true);
      const e = await enrol(limited);
      const confirmed = await call('POST', '/api/v1/mfa/totp/confirm', limited, { code: totpAt(e.secret) });
      assert.equal(confirmed.statusCode, 200, confirmed.body);
      const full = confirmed.json();
      assert.equal(full.status, 'signed-in');
      assert.match(full.accessToken, /^aca_/);
      assert.equal(code(await call('GET', '/api/v1/tenants/acme', limited)), 'IAM_SESSION_ENDED');
      assert.equal((await call('GET', '/api/v1/tenants/acme', full.accessToken)).statusCode, 200);
      assert.equal((await call('GET', '/api/v1/auth/session', full.accessToken)).json().enrolmentOnly, false);
      assert.equal((await call('POST', '/api/v1/auth/refresh', undefined, { refreshToken: full.refreshToken })).statusCode, 200, 'the full session refreshes');
      const revoked = await database.db.selectFrom('accord.sessions').select('revoked_reason').where('user_id', '=', full.user.id).where('revoked_at', 'is not', null).execute();
      assert.deepEqual(revoked.map((r) => r.revoked_reason), ['mfa-enrolled']);
      // Carol signs in with MFA from now on.
      assert.equal((await login('carol@acme.test')).status, 'mfa-required');
    });

    test('a passkey registered from an enrolment-only session upgrades it the same way', async () => {
      await createUser('gina@acme.test');
      const s = await login('gina@acme.test');
      assert.equal(s.status, 'mfa-enrolment-required');
      const device = new SoftAuthenticator(app.iam.webauthn.origin);
      const options = (await call('POST', '/api/v1/mfa/webauthn/register/options', s.accessToken)).json();
      const r = await call('POST', '/api/v1/mfa/webauthn/register', s.accessToken, { response: device.register(options), name: 'Phone' });
      assert.equal(r.statusCode, 200, r.body);
      assert.equal(r.json().status, 'signed-in');
      assert.equal((await call('GET', '/api/v1/auth/sessions', r.json().accessToken)).statusCode, 200);
      assert.equal(code(await call('GET', '/api/v1/mfa', s.accessToken)), 'IAM_SESSION_ENDED');
      assert.deepEqual((await login('gina@acme.test')).methods, ['webauthn']);
      assert.equal((await call('PATCH', '/api/v1/tenants/acme/policy', ops, { requireMfa: false })).statusCode, 200);
    });

    test('mfaRequiredRoles applies to holders of those roles only', async () => {
      await createUser('dave@acme.test', 'developer');
      await createUser('erin@acme.test', 'release-manager');
      assert.equal((await call('PATCH', '/api/v1/tenants/acme/policy', ops, { mfaRequiredRoles: ['developer'] })).statusCode, 200);
      assert.equal((await login('dave@acme.test')).status, 'mfa-enrolment-required');
      assert.equal((await login('erin@acme.test')).status, 'signed-in');
      assert.equal((await call('PATCH', '/api/v1/tenants/acme/policy', ops, { mfaRequiredRoles: [] })).statusCode, 200);
      assert.equal((await login('dave@acme.test')).status, 'signed-in');
    });

    test('a passkey registers with a software authenticator, signs in, and is listed, renamed and removed', async () => {
      await createUser('frank@acme.test');
      const token = (await login('frank@acme.test')).accessToken as string;
      const device = new SoftAuthenticator(app.iam.webauthn.origin);
      const options = (await call('POST', '/api/v1/mfa/webauthn/register/options', token)).json();
      assert.equal(options.rp.id, app.iam.webauthn.rpId);
      assert.equal(options.attestation, 'none');
      const forged = await call('POST', '/api/v1/mfa/webauthn/register', token, { response: new SoftAuthenticator(app.iam.webauthn.origin).register(options, { challenge: 'bm90IGlzc3VlZA' }) });
      assert.equal(code(forged), 'IAM_WEBAUTHN_INVALID');
      const reg = await call('POST', '/api/v1/mfa/webauthn/register', token, { response: device.register(options), name: 'Laptop' });
      assert.equal(reg.statusCode, 200, reg.body);
      const passkey = reg.json();
      assert.equal(passkey.name, 'Laptop');
      assert.deepEqual((await auditOf('mfa.webauthn.registered')).map((r) => r.outcome).slice(-2), ['failure', 'success']);
      assert.deepEqual((await call('GET', '/api/v1/mfa/webauthn', token)).json().map((p: { id: string }) => p.id), [passkey.id]);
      assert.equal((await call('PATCH', `/api/v1/mfa/webauthn/${passkey.id}`, token, { name: 'Work laptop' })).statusCode, 204);

      const s = await login('frank@acme.test');
      assert.equal(s.status, 'mfa-required');
      assert.deepEqual(s.methods, ['webauthn']);
      assert.equal(code(await call('POST', '/api/v1/auth/mfa/webauthn/options', undefined, { mfaToken: 'acm_nope' })), 'IAM_MFA_CHALLENGE_INVALID');
      const req = (await call('POST', '/api/v1/auth/mfa/webauthn/options', undefined, { mfaToken: s.mfaToken })).json();
      assert.deepEqual(req.allowCredentials.map((c: { id: string }) => c.id), device.credentialIds);
      const done = await mfa(s.mfaToken, { webauthn: device.authenticate(req) });
      assert.equal(done.statusCode, 200, done.body);
      assert.equal(done.json().status, 'signed-in');

      // A replayed counter and a stale challenge are both refused.
      const s2 = await login('frank@acme.test');
      const req2 = (await call('POST', '/api/v1/auth/mfa/webauthn/options', undefined, { mfaToken: s2.mfaToken })).json();
      assert.equal(code(await mfa(s2.mfaToken, { webauthn: device.authenticate(req2, { counter: 1 }) })), 'IAM_MFA_INVALID');
      assert.equal(code(await mfa(s2.mfaToken, { webauthn: device.authenticate(req) })), 'IAM_MFA_INVALID');
      const user = await database.db.selectFrom('accord.users').select('id').where('email', '=', 'frank@acme.test').executeTakeFirstOrThrow();
      assert.deepEqual((await auditOf('auth.mfa')).filter((r) => r.target_id === user.id && r.outcome === 'failure').map((r) => r.reason), ['bad-passkey', 'bad-passkey']);
      assert.equal((await mfa(s2.mfaToken, { webauthn: device.authenticate(req2) })).statusCode, 200);

      const list = (await call('GET', '/api/v1/mfa/webauthn', token)).json();
      assert.equal(list[0].name, 'Work laptop');
      assert.ok(list[0].lastUsedAt);
      assert.equal((await call('DELETE', `/api/v1/mfa/webauthn/${passkey.id}`, token)).statusCode, 204);
      assert.equal(code(await call('DELETE', `/api/v1/mfa/webauthn/${passkey.id}`, token)), 'IAM_MFA_NOT_ENROLLED');
      assert.deepEqual((await call('GET', '/api/v1/mfa/webauthn', token)).json(), []);
      assert.equal((await login('frank@acme.test')).status, 'signed-in');
      assert.deepEqual((await auditOf('mfa.webauthn.removed')).map((r) => r.outcome), ['success']);
    });

    test("an admin resets a user's lost MFA: every factor goes, sessions end, it is audited; others cannot", async () => {
      const dora = await totpUser('dora@acme.test');
      assert.deepEqual((await login('dora@acme.test')).methods, ['totp', 'recovery']);
      await createUser('dev@acme.test', 'developer');
      const dev = (await login('dev@acme.test')).accessToken as string;
      assert.equal(code(await call('DELETE', '/api/v1/tenants/acme/users/dora@acme.test/mfa', dev)), 'IAM_FORBIDDEN');
      const reset = await call('DELETE', '/api/v1/tenants/acme/users/dora@acme.test/mfa', ops);
      assert.equal(reset.statusCode, 200, reset.body);
      const body = reset.json();
      assert.equal(body.totp, true);
      assert.equal(body.recoveryCodes, 10);
      assert.ok(body.sessionsRevoked >= 1);
      assert.equal(code(await call('GET', '/api/v1/mfa', dora.token)), 'IAM_SESSION_ENDED');
      assert.notEqual((await login('dora@acme.test')).status, 'mfa-required', 'no factor left to ask for');
      assert.equal((await auditOf('mfa.reset')).length, 1);
      assert.equal(code(await call('DELETE', '/api/v1/tenants/acme/users/nobody@acme.test/mfa', ops)), 'IAM_USER_NOT_FOUND');
    });

    test('an end user with TOTP completes the sign-in on the stage it began on, and nowhere else', async () => {
      const erin = await totpUser('enduser-erin@acme.test');
      const start = await call('POST', '/t/acme/development/auth/login', undefined, { email: 'enduser-erin@acme.test', password: PASSWORD });
      assert.equal(start.json().status, 'mfa-required');
      const mfaToken = start.json().mfaToken as string;
      secrets.push(mfaToken);
      // The code is for the next step: the current one was spent confirming the enrolment.
      const code30 = totpAt(erin.secret, 30);
      assert.equal(code(await call('POST', '/api/v1/auth/mfa', undefined, { mfaToken, totp: code30 })), 'IAM_MFA_CHALLENGE_INVALID');
      assert.equal(code(await call('POST', '/t/acme/production/auth/mfa', undefined, { mfaToken, totp: code30 })), 'IAM_MFA_CHALLENGE_INVALID');
      const done = await call('POST', '/t/acme/development/auth/mfa', undefined, { mfaToken, totp: code30 });
      assert.equal(done.statusCode, 200, done.body);
      const me = await call('GET', '/t/acme/development/auth/me', done.json().accessToken);
      assert.equal(me.json().email, 'enduser-erin@acme.test');
    });

    test('API clients get IAM_WRONG_AUDIENCE on MFA routes', async () => {
      const tenant = await database.db.selectFrom('accord.tenants').select('id').where('name', '=', 'acme').executeTakeFirstOrThrow();
      const client = await database.db
        .insertInto('accord.api_clients')
        .values({ tenant_id: tenant.id, name: 'ci', client_id: 'acc_mfa_test', expires_at: new Date(Date.now() + 3600_000) })
        .returning('id')
        .executeTakeFirstOrThrow();
      const now = Math.floor(Date.now() / 1000);
      // A client token names the (live) secret it was obtained with.
      const secret = await database.db
        .insertInto('accord.api_client_secrets')
        .values({ client_id: client.id, secret_hash: Buffer.alloc(32, 7), expires_at: new Date(Date.now() + 3_600_000) })
        .returning('id')
        .executeTakeFirstOrThrow();
      const token = signAccessToken(testIamKey, { typ: 'client', sub: client.id, sid: null, sv: secret.id, iat: now, exp: now + 300 });
      assert.equal(code(await call('GET', '/api/v1/mfa', token)), 'IAM_WRONG_AUDIENCE');
      assert.equal(code(await call('POST', '/api/v1/mfa/totp', token)), 'IAM_WRONG_AUDIENCE');
    });

    test('no TOTP secret, recovery code or MFA challenge token ever appears in the audit trail', async () => {
      assert.ok(secrets.length > 40);
      const trail = JSON.stringify(await database.db.selectFrom('accord.audit_events').selectAll().execute());
      const leaked = secrets.filter((s) => trail.includes(s));
      assert.deepEqual(leaked, []);
    });
  });
}
