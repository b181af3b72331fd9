import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { engines } from '../../../test/harness/engines.ts';
import { SoftAuthenticator } from '../../../test/harness/webauthn.ts';
import { systemSource } from '../../audit-chain/index.ts';
import type { Db } from '../../db/index.ts';
import { isAccordError } from '../../errors/index.ts';
import { unitOfWork } from '../../kernel/index.ts';
import { IamKey } from '../iam-key.ts';
import { createUser } from '../users/users.ts';
import { mfaFactors } from './factors.ts';
import { formatRecoveryCode, newRecoveryCodes, normaliseRecoveryCode, recoveryCodesLeft, replaceRecoveryCodes } from './recovery.ts';
import { base32Decode, hotp, totpCode, totpStep } from './totp.ts';
import { confirmTotp, enrolTotp, type TotpEnrolment } from './totp-factor.ts';
import { type SecondFactorInput, verifySecondFactor, WEBAUTHN_CHALLENGE_KEY } from './verify.ts';
import { authenticationOptions, listPasskeys, registerPasskey, registrationOptions } from './webauthn.ts';

const key = IamKey.ephemeral();
const rp = { rpId: 'accord.test', origin: 'https://accord.test', rpName: 'Accord' };
const t0 = new Date('2026-03-01T10:00:05.000Z');
const at = (seconds: number) => new Date(t0.getTime() + seconds * 1000);

describe('recovery code format', () => {
  test('codes are ten groups of 4x4 base32 characters, accepted in any case with or without dashes', () => {
    const codes = newRecoveryCodes();
    assert.equal(codes.length, 10);
    assert.equal(new Set(codes).size, 10);
    for (const c of codes) assert.match(c, /^[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}$/);
    const c = codes[0] as string;
    const plain = c.replaceAll('-', '');
    assert.equal(normaliseRecoveryCode(c.toLowerCase()), plain);
    assert.equal(normaliseRecoveryCode(plain.toLowerCase()), plain);
    assert.equal(normaliseRecoveryCode(` ${c} `), plain);
    assert.equal(formatRecoveryCode(plain), c);
    for (const bad of ['', 'ABCD-EFGH', `${plain}A`, 'ABCD-EFGH-JKLM-NPQ1', '123456']) assert.equal(normaliseRecoveryCode(bad), undefined, bad);
  });
});

for (const engine of engines()) {
  describe(`MFA factors on ${engine.name}`, { concurrency: false }, () => {
    let db: Db;
    let n = 0;
    const newUser = () => db.transaction().execute((trx) => createUser(trx, { tenantId: null, email: `u${++n}@mfa.test`, password: 'a long enough passphrase' }));
    const verify = (userId: string, input: SecondFactorInput, now: Date, challenge: Record<string, unknown> = {}) =>
      unitOfWork(db, systemSource, (w) => verifySecondFactor(w, key, rp, userId, input, challenge, now));
    const enrol = (userId: string): Promise<TotpEnrolment> => db.transaction().execute((trx) => enrolTotp(trx, key, { id: userId, email: `u@mfa.test` }));
    const confirm = (userId: string, code: string, now: Date) => db.transaction().execute((trx) => confirmTotp(trx, key, userId, code, now));
    const secretOf = (e: TotpEnrolment) => base32Decode(e.secret) as Buffer;
    /** A user with a confirmed TOTP (confirmed with the code of t0's step) and its secret. */
    const totpUser = async () => {
      const id = await newUser();
      const e = await enrol(id);
      assert.equal(await confirm(id, totpCode(secretOf(e), t0), t0), 'ok');
      return { id, secret: secretOf(e), enrolment: e };
    };

    before(async () => {
      db = (await engine.open()).db;
    });

    test('an enrolment is not a factor until confirmed with a code, and its secret is stored sealed', async () => {
      const id = await newUser();
      const e = await enrol(id);
      const secret = secretOf(e);
      assert.equal(secret.length, 20);
      const row = await db.selectFrom('accord.mfa_totp').selectAll().where('user_id', '=', id).executeTakeFirstOrThrow();
      assert.equal(row.secret_sealed.includes(secret), false);
      assert.deepEqual(key.open('mfa-secret', row.secret_sealed, `accord/mfa-totp/${id}`), secret);
      assert.deepEqual(await mfaFactors(db, id), []);
      assert.deepEqual(await verify(id, { totp: totpCode(secret, t0) }, t0), { ok: false, reason: 'no-factor' });
      assert.equal(await confirm(id, hotp(secret, totpStep(t0) + 5), t0), 'bad-totp');
      assert.equal(await confirm(id, totpCode(secret, t0), t0), 'ok');
      assert.deepEqual(await mfaFactors(db, id), ['totp', 'recovery']);
      await assert.rejects(enrol(id), (err) => isAccordError(err, 'IAM_MFA_ALREADY_ENROLLED'));
    });

    test('the confirming code cannot sign in, and a step is accepted only once and only if later than the last', async () => {
      const { id, secret } = await totpUser();
      const step = totpStep(t0);
      // t0's code confirmed the enrolment: its step is spent.
      assert.deepEqual(await verify(id, { totp: totpCode(secret, t0) }, t0), { ok: false, reason: 'replayed-totp' });
      // The next step's code (the app is a little ahead) is accepted once.
      const next = hotp(secret, step + 1);
      assert.deepEqual(await verify(id, { totp: next }, t0), { ok: true, method: 'totp' });
      assert.deepEqual(await verify(id, { totp: next }, t0), { ok: false, reason: 'replayed-totp' });
      assert.deepEqual(await verify(id, { totp: next }, at(30)), { ok: false, reason: 'replayed-totp' });
      // An earlier step, even inside the window, is a replay now.
      assert.deepEqual(await verify(id, { totp: hotp(secret, step) }, at(30)), { ok: false, reason: 'replayed-totp' });
      // Outside the ±1 window it is simply wrong.
      assert.deepEqual(await verify(id, { totp: hotp(secret, step + 3) }, at(30)), { ok: false, reason: 'bad-totp' });
      assert.deepEqual(await verify(id, { totp: hotp(secret, step + 2) }, at(30)), { ok: true, method: 'totp' });
      assert.equal(Number((await db.selectFrom('accord.mfa_totp').select('last_step').where('user_id', '=', id).executeTakeFirstOrThrow()).last_step), step + 2);
    });

    test('two concurrent uses of one code: exactly one passes', async () => {
      const { id, secret } = await totpUser();
      const code = hotp(secret, totpStep(t0) + 1);
      const results = await Promise.all([verify(id, { totp: code }, t0), verify(id, { totp: code }, t0), verify(id, { totp: code }, t0)]);
      assert.equal(results.filter((r) => r.ok).length, 1, JSON.stringify(results));
      assert.ok(results.filter((r) => !r.ok).every((r) => !r.ok && r.reason === 'replayed-totp'));
    });

    test('recovery codes from the enrolment work once each after confirmation, in any spelling, and are audited without the code', async () => {
      const id = await newUser();
      const e = await enrol(id);
      const [first, second] = e.recoveryCodes as [string, string];
      // Not active while the enrolment is pending.
      assert.deepEqual(await verify(id, { recoveryCode: first }, t0), { ok: false, reason: 'no-factor' });
      assert.equal(await confirm(id, totpCode(secretOf(e), t0), t0), 'ok');
      assert.equal(await recoveryCodesLeft(db, id), 10);
      assert.deepEqual(await verify(id, { recoveryCode: first.toLowerCase().replaceAll('-', '') }, t0), { ok: true, method: 'recovery' });
      assert.deepEqual(await verify(id, { recoveryCode: first }, t0), { ok: false, reason: 'bad-recovery-code' });
      assert.deepEqual(await verify(id, { recoveryCode: 'AAAA-BBBB-CCCC-DDDD' }, t0), { ok: false, reason: 'bad-recovery-code' });
      assert.deepEqual(await verify(id, { recoveryCode: 'not a code' }, t0), { ok: false, reason: 'bad-recovery-code' });
      assert.deepEqual(await verify(id, { recoveryCode: second }, t0), { ok: true, method: 'recovery' });
      assert.equal(await recoveryCodesLeft(db, id), 8);
      const used = await db.selectFrom('accord.audit_events').selectAll().where('action', '=', 'mfa.recovery.used').where('actor_id', '=', id).orderBy('ins').execute();
      assert.equal(used.length, 2);
      assert.deepEqual(used.map((u) => u.details), [{ remaining: 9 }, { remaining: 8 }]);
      const trail = JSON.stringify(await db.selectFrom('accord.audit_events').selectAll().execute());
      for (const c of e.recoveryCodes) assert.equal(trail.includes(c.replaceAll('-', '')) || trail.includes(c), false);
    });

    test('re-enrolling before confirmation replaces the secret and the recovery codes shown earlier never work', async () => {
      const id = await newUser();
      const stale = await enrol(id);
      const fresh = await enrol(id);
      assert.notEqual(stale.secret, fresh.secret);
      assert.equal(await confirm(id, totpCode(secretOf(stale), t0), t0), 'bad-totp');
      assert.equal(await confirm(id, totpCode(secretOf(fresh), t0), t0), 'ok');
      assert.deepEqual(await verify(id, { recoveryCode: stale.recoveryCodes[0] }, t0), { ok: false, reason: 'bad-recovery-code' });
      assert.deepEqual(await verify(id, { recoveryCode: fresh.recoveryCodes[0] }, t0), { ok: true, method: 'recovery' });
    });

    test('regenerated codes replace all earlier ones', async () => {
      const { id, enrolment } = await totpUser();
      const codes = newRecoveryCodes();
      await db.transaction().execute((trx) => replaceRecoveryCodes(trx, key, id, codes));
      assert.deepEqual(await verify(id, { recoveryCode: enrolment.recoveryCodes[3] }, t0), { ok: false, reason: 'bad-recovery-code' });
      assert.deepEqual(await verify(id, { recoveryCode: codes[3] }, t0), { ok: true, method: 'recovery' });
      assert.equal(await recoveryCodesLeft(db, id), 9);
    });

    test('exactly one factor must be given', async () => {
      const { id, secret } = await totpUser();
      assert.deepEqual(await verify(id, {}, t0), { ok: false, reason: 'one-factor' });
      assert.deepEqual(await verify(id, { totp: hotp(secret, totpStep(t0) + 1), recoveryCode: 'AAAA-BBBB-CCCC-DDDD' }, t0), { ok: false, reason: 'one-factor' });
      // Nothing was consumed by the refused attempt.
      assert.deepEqual(await verify(id, { totp: hotp(secret, totpStep(t0) + 1) }, t0), { ok: true, method: 'totp' });
    });

    test('a passkey registers once per challenge and signs in with a growing counter and the right challenge only', async () => {
      const id = await newUser();
      const device = new SoftAuthenticator(rp.origin);
      const regOptions = await db.transaction().execute((trx) => registrationOptions(trx, rp, { id, email: 'p@mfa.test', displayName: '' }, t0));
      assert.equal(regOptions.rp.id, rp.rpId);
      assert.equal(regOptions.attestation, 'none');
      const reg = device.register(regOptions);
      // A response for another origin, or for a challenge never issued, is refused.
      const otherOrigin = device.register(regOptions, { origin: 'https://evil.test' });
      await assert.rejects(db.transaction().execute((trx) => registerPasskey(trx, rp, id, otherOrigin, 'x', t0)), (err) => isAccordError(err, 'IAM_WEBAUTHN_INVALID'));
      const forged = device.register(regOptions, { challenge: Buffer.from('never issued').toString('base64url') });
      await assert.rejects(db.transaction().execute((trx) => registerPasskey(trx, rp, id, forged, 'x', t0)), (err) => isAccordError(err, 'IAM_WEBAUTHN_INVALID'));
      const passkey = await db.transaction().execute((trx) => registerPasskey(trx, rp, id, reg, 'Laptop', t0));
      assert.equal(passkey.name, 'Laptop');
      // The challenge is spent: the same response cannot register again.
      await assert.rejects(db.transaction().execute((trx) => registerPasskey(trx, rp, id, reg, 'Again', t0)), (err) => isAccordError(err, 'IAM_WEBAUTHN_INVALID'));
      // An expired challenge is refused.
      const late = await db.transaction().execute((trx) => registrationOptions(trx, rp, { id, email: 'p@mfa.test', displayName: '' }, t0));
      await assert.rejects(db.transaction().execute((trx) => registerPasskey(trx, rp, id, new SoftAuthenticator(rp.origin).register(late), 'Late', at(301))), (err) => isAccordError(err, 'IAM_WEBAUTHN_INVALID'));
      assert.deepEqual((await listPasskeys(db, id)).map((p) => p.name), ['Laptop']);
      assert.deepEqual(await mfaFactors(db, id), ['webauthn']);

      const options = await authenticationOptions(db, rp, id);
      assert.ok(options);
      const challenge = { [WEBAUTHN_CHALLENGE_KEY]: options.challenge };
      const assertion = device.authenticate(options);
      assert.deepEqual(await verify(id, { webauthn: assertion }, t0, challenge), { ok: true, method: 'webauthn' });
      // The same assertion again: its counter did not grow.
      assert.deepEqual(await verify(id, { webauthn: assertion }, t0, challenge), { ok: false, reason: 'bad-passkey' });
      const credId = device.credentialIds[0] as string;
      assert.deepEqual(await verify(id, { webauthn: device.authenticate(options, { counter: 1 }) }, t0, challenge), { ok: false, reason: 'bad-passkey' });
      assert.deepEqual(await verify(id, { webauthn: device.authenticate(options, { challenge: Buffer.from('other').toString('base64url') }) }, t0, challenge), { ok: false, reason: 'bad-passkey' });
      assert.deepEqual(await verify(id, { webauthn: device.authenticate(options) }, t0, {}), { ok: false, reason: 'bad-passkey' });
      assert.deepEqual(await verify(id, { webauthn: device.authenticate(options, { origin: 'https://evil.test' }) }, t0, challenge), { ok: false, reason: 'bad-passkey' });
      assert.deepEqual(await verify(id, { webauthn: { id: 'x' } }, t0, challenge), { ok: false, reason: 'bad-passkey' });
      assert.deepEqual(await verify(id, { webauthn: 'garbage' }, t0, challenge), { ok: false, reason: 'bad-passkey' });
      device.setCounter(credId, 10);
      assert.deepEqual(await verify(id, { webauthn: device.authenticate(options) }, at(1), challenge), { ok: true, method: 'webauthn' });
      const stored = await db.selectFrom('accord.webauthn_credentials').select(['counter', 'last_used_at']).where('user_id', '=', id).executeTakeFirstOrThrow();
      assert.equal(Number(stored.counter), 11);
      assert.equal(stored.last_used_at?.toISOString(), at(1).toISOString());
      // Someone else's passkey does not sign this user in.
      const other = await newUser();
      assert.deepEqual(await verify(other, { webauthn: device.authenticate(options) }, t0, challenge), { ok: false, reason: 'no-factor' });
    });
  });
}
