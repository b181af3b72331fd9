import { Type } from '@sinclair/typebox';
import type { FastifyReply } from 'fastify';
import type { AuditEvent } from '../../audit-chain/index.ts';
import type { DbOrTrx, Trx } from '../../db/index.ts';
import { AccordError, isAccordError } from '../../errors/index.ts';
import { type AuthContext, access, type RouteContext, type RouteDefinition, route } from '../../http/index.ts';
import type { Work } from '../../kernel/index.ts';
import { checkLockout, lockedError, lockoutAuditEvent, lockoutSubjects, recordFailure } from '../sign-in/lockout.ts';
import { completeSignIn, type UserRef } from '../sign-in/login.ts';
import { SignInOut, signInReply } from '../sign-in/routes.ts';
import type { IamServices } from '../services.ts';
import { revokeSession } from '../sessions/sessions.ts';
import { hashToken } from '../sessions/tokens.ts';
import { mfaFactors, mfaRequired } from './factors.ts';
import { deleteRecoveryCodes, newRecoveryCodes, RECOVERY_CODE_COUNT, recoveryCodesLeft, replaceRecoveryCodes } from './recovery.ts';
import { confirmTotp, enrolTotp, removeTotp, totpState } from './totp-factor.ts';
import { verifySecondFactor, WEBAUTHN_CHALLENGE_KEY } from './verify.ts';
import { authenticationOptions, listPasskeys, PASSKEY_NAME_MAX, registerPasskey, registrationOptions, removePasskey, renamePasskey } from './webauthn.ts';

const PasskeyOut = Type.Object({
  id: Type.String(),
  name: Type.String(),
  createdAt: Type.String({ format: 'date-time' }),
  lastUsedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  transports: Type.Array(Type.String()),
});
const StatusOut = Type.Object({
  /** Whether the tenant's (or the platform's) policy requires MFA of this user. */
  required: Type.Boolean(),
  /** Factors that can complete a sign-in now. */
  methods: Type.Array(Type.String()),
  totp: Type.Object({ enrolled: Type.Boolean(), confirmed: Type.Boolean(), confirmedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]) }),
  passkeys: Type.Array(PasskeyOut),
  recoveryCodesLeft: Type.Integer(),
});
const CodeIn = Type.Object({ code: Type.String({ minLength: 1, maxLength: 64, description: 'a TOTP code or a recovery code' }) }, { additionalProperties: false });
const RecoveryOut = Type.Object({ recoveryCodes: Type.Array(Type.String()) });
const Confirmed = Type.Object({ confirmed: Type.Literal(true) });
const WebauthnOptions = Type.Object({ challenge: Type.String() }, { additionalProperties: true, description: 'PublicKeyCredential options JSON for the browser' });
const IdParams = Type.Object({ id: Type.String({ format: 'uuid' }) });
const MfaTokenIn = Type.Object({ mfaToken: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false });

interface Me extends UserRef {
  readonly displayName: string;
}

/**
 * Self-service MFA for console users: TOTP enrolment and removal, recovery codes, passkeys, and
 * the passkey step of a sign-in. Every route is open to an enrolment-only session (so a user whom
 * the policy obliges to use MFA can enrol); enrolling the first factor from such a session ends
 * it and answers with a full session. A failed attempt that must leave a record (a wrong code, a
 * refused passkey, a locked account) is a committed refusal of the request's unit of work.
 */
export function mfaRoutes(iam: IamServices): RouteDefinition[] {
  const { db, key } = iam;
  const rp = iam.webauthn;

  const consoleUser = (auth: AuthContext): AuthContext => {
    if (auth.kind !== 'user') throw new AccordError('IAM_WRONG_AUDIENCE', { message: 'MFA belongs to console users; API clients have none.' });
    return auth;
  };
  const me = async (trx: DbOrTrx, auth: AuthContext): Promise<Me> => {
    const u = await trx
      .selectFrom('accord.users as u')
      .leftJoin('accord.tenants as t', 't.id', 'u.tenant_id')
      .select(['u.id', 'u.email', 'u.tenant_id', 'u.display_name', 't.name as tenant_name'])
      .where('u.id', '=', auth.principalId)
      .executeTakeFirst();
    if (!u) throw new AccordError('IAM_SESSION_ENDED');
    return { id: u.id, email: u.email, tenantId: u.tenant_id, tenant: u.tenant_name, displayName: u.display_name };
  };
  /** An event about the user's own factors, on their directory's chain. */
  const event = (user: Me, action: string, outcome: 'success' | 'failure' | 'denied', extra: { reason?: string; details?: Record<string, unknown> } = {}): AuditEvent => ({
    tenantId: user.tenantId,
    action,
    target: { type: 'user', id: user.id },
    outcome,
    ...extra,
  });

  /**
   * A change that needs proof of a factor (a TOTP or recovery code): refused while the account is
   * locked, and a wrong code counts as a failed sign-in, so a stolen session cannot guess codes.
   */
  const withProof = async <T>(ctx: Pick<RouteContext, 'unit' | 'source'>, user: Me, action: string, code: string, change: (w: Work) => Promise<T>): Promise<T> => {
    const subjects = lockoutSubjects({ tenantId: null, email: user.email, ip: ctx.source.sourceIp });
    const now = new Date();
    return ctx.unit(async (w) => {
      const lock = await checkLockout(w.trx, subjects, now);
      if (lock.locked) return w.refuse(lockedError(lock.retryAfterSeconds), event(user, action, 'denied', { reason: 'IAM_LOCKED' }));
      const input = /^[0-9]{6}$/.test(code.trim()) ? { totp: code.trim() } : { recoveryCode: code };
      const proof = await verifySecondFactor(w, key, rp, user.id, input, {}, now);
      if (!proof.ok) {
        // The lockout rows first, as at sign-in: one lock order everywhere.
        const failure = await recordFailure(w.trx, subjects, iam.signIn.lockout, now);
        return w.refuse(
          new AccordError('IAM_MFA_INVALID'),
          event(user, action, 'failure', { reason: proof.reason }),
          ...failure.locks.map((l) => lockoutAuditEvent(l, null)),
        );
      }
      return change(w);
    });
  };

  /** An enrolment-only session that has just enrolled a factor: end it, open a full one. */
  const upgrade = async (w: Work, reply: FastifyReply, auth: AuthContext, user: Me, method: 'totp' | 'webauthn') => {
    if (auth.sessionId) await revokeSession(w.trx, auth.sessionId, 'mfa-enrolled');
    const result = await completeSignIn(w, iam.signIn, user, ['password', method], { kind: 'console' });
    return signInReply(reply, result, auth.via === 'cookie' ? 'cookie' : 'bearer');
  };

  /** Recovery codes back up a real factor: when the last one goes, they go too. */
  const dropOrphanCodes = async (trx: Trx, userId: string) => {
    const left = await mfaFactors(trx, userId);
    if (!left.includes('totp') && !left.includes('webauthn')) await deleteRecoveryCodes(trx, userId);
  };

  return [
    route({
      method: 'GET',
      url: '/api/v1/mfa',
      access: access.enrolment,
      schema: { summary: 'My MFA status: TOTP, passkeys, recovery codes left, whether MFA is required of me', tags: ['iam', 'mfa'], response: { 200: StatusOut } },
      handler: async ({ auth }) => {
        const user = await me(db, consoleUser(auth));
        const [methods, required, totp, passkeys, left] = await Promise.all([
          mfaFactors(db, user.id),
          mfaRequired(db, user.id, user.tenantId, iam.signIn.platformRequireMfa),
          totpState(db, user.id),
          listPasskeys(db, user.id),
          recoveryCodesLeft(db, user.id),
        ]);
        return {
          required,
          methods,
          totp: { enrolled: totp.enrolled, confirmed: totp.confirmedAt !== null, confirmedAt: totp.confirmedAt?.toISOString() ?? null },
          passkeys,
          recoveryCodesLeft: left,
        };
      },
    }),
    route({
      method: 'POST',
      url: '/api/v1/mfa/totp',
      access: access.enrolment,
      status: 201,
      schema: {
        summary: 'Start a TOTP enrolment: the secret, its otpauth:// URI and 10 recovery codes (shown once; active after confirmation)',
        tags: ['iam', 'mfa'],
        response: { 201: Type.Object({ secret: Type.String(), otpauthUri: Type.String(), recoveryCodes: Type.Array(Type.String()) }) },
      },
      handler: async ({ auth, unit }) => {
        consoleUser(auth);
        return unit(async ({ trx, audit }) => {
          const user = await me(trx, auth);
          const enrolment = await enrolTotp(trx, key, user);
          await audit(event(user, 'mfa.totp.enrolled', 'success'));
          return enrolment;
        });
      },
    }),
    route({
      method: 'POST',
      url: '/api/v1/mfa/totp/confirm',
      access: access.enrolment,
      schema: {
        summary: 'Confirm the TOTP enrolment with a first code; from an enrolment-only session, answers with a full session',
        tags: ['iam', 'mfa'],
        body: Type.Object({ code: Type.String({ pattern: '^[0-9]{6}$' }) }, { additionalProperties: false }),
        response: { 200: Type.Union([SignInOut, Confirmed]) },
      },
      handler: async ({ auth, body, reply, unit }) => {
        consoleUser(auth);
        const now = new Date();
        return unit(async (w) => {
          const user = await me(w.trx, auth);
          const state = await totpState(w.trx, user.id);
          if (!state.enrolled) throw new AccordError('IAM_MFA_NOT_ENROLLED', { message: 'No TOTP enrolment to confirm: start one with POST /api/v1/mfa/totp.' });
          if (state.confirmedAt) throw new AccordError('IAM_MFA_ALREADY_ENROLLED', { details: { factor: 'totp' } });
          const r = await confirmTotp(w.trx, key, user.id, body.code, now);
          if (r !== 'ok') return w.refuse(new AccordError('IAM_MFA_INVALID'), event(user, 'mfa.totp.confirmed', 'failure', { reason: r }));
          await w.audit(event(user, 'mfa.totp.confirmed', 'success', { details: { recoveryCodesIssued: RECOVERY_CODE_COUNT } }));
          if (auth.enrolmentOnly) return upgrade(w, reply, auth, user, 'totp');
          return { confirmed: true as const };
        });
      },
    }),
    route({
      method: 'DELETE',
      url: '/api/v1/mfa/totp',
      access: access.enrolment,
      status: 204,
      schema: { summary: 'Remove my TOTP; needs a current TOTP code or a recovery code (an unconfirmed enrolment goes without)', tags: ['iam', 'mfa'], body: CodeIn },
      handler: async (ctx) => {
        const user = await me(db, consoleUser(ctx.auth));
        const state = await totpState(db, user.id);
        if (!state.enrolled) throw new AccordError('IAM_MFA_NOT_ENROLLED', { details: { factor: 'totp' } });
        const remove = async ({ trx, audit }: Work) => {
          if (!(await removeTotp(trx, user.id))) throw new AccordError('IAM_MFA_NOT_ENROLLED', { details: { factor: 'totp' } });
          await dropOrphanCodes(trx, user.id);
          await audit(event(user, 'mfa.totp.removed', 'success', { details: { confirmed: state.confirmedAt !== null } }));
        };
        // A pending enrolment is not a factor yet: nothing to prove to drop it.
        if (state.confirmedAt === null) await ctx.unit(remove);
        else await withProof(ctx, user, 'mfa.totp.removed', ctx.body.code, remove);
      },
    }),
    route({
      method: 'POST',
      url: '/api/v1/mfa/recovery-codes',
      access: access.enrolment,
      schema: {
        summary: 'Replace all my recovery codes with 10 new ones; needs a current TOTP code or a recovery code',
        tags: ['iam', 'mfa'],
        body: CodeIn,
        response: { 200: RecoveryOut },
      },
      handler: async (ctx) => {
        const user = await me(db, consoleUser(ctx.auth));
        const factors = await mfaFactors(db, user.id);
        if (!factors.includes('totp') && !factors.includes('webauthn')) {
          throw new AccordError('IAM_MFA_NOT_ENROLLED', { message: 'Recovery codes back up a TOTP or a passkey: enrol one first.' });
        }
        return withProof(ctx, user, 'mfa.recovery.regenerated', ctx.body.code, async ({ trx, audit }) => {
          const codes = newRecoveryCodes();
          await replaceRecoveryCodes(trx, key, user.id, codes);
          await audit(event(user, 'mfa.recovery.regenerated', 'success', { details: { count: codes.length } }));
          return { recoveryCodes: codes };
        });
      },
    }),
    route({
      method: 'POST',
      url: '/api/v1/mfa/webauthn/register/options',
      access: access.enrolment,
      schema: {
        summary: 'Options for navigator.credentials.create() to register a passkey (challenge valid 5 minutes, single use)',
        tags: ['iam', 'mfa'],
        response: { 200: WebauthnOptions },
      },
      handler: async ({ auth, unit }) => {
        consoleUser(auth);
        return unit(async ({ trx }) => registrationOptions(trx, rp, await me(trx, auth), new Date()));
      },
    }),
    route({
      method: 'POST',
      url: '/api/v1/mfa/webauthn/register',
      access: access.enrolment,
      schema: {
        summary: 'Register a passkey with the browser’s response; from an enrolment-only session, answers with a full session',
        tags: ['iam', 'mfa'],
        body: Type.Object(
          {
            response: Type.Object({}, { additionalProperties: true, description: 'the PublicKeyCredential as JSON (RegistrationResponseJSON)' }),
            name: Type.Optional(Type.String({ minLength: 1, maxLength: PASSKEY_NAME_MAX })),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Union([SignInOut, PasskeyOut]) },
      },
      handler: async ({ auth, body, reply, unit }) => {
        consoleUser(auth);
        return unit(async (w) => {
          const user = await me(w.trx, auth);
          let passkey: Awaited<ReturnType<typeof registerPasskey>>;
          try {
            passkey = await registerPasskey(w.trx, rp, user.id, body.response, body.name, new Date());
          } catch (err) {
            if (!isAccordError(err, 'IAM_WEBAUTHN_INVALID')) throw err;
            const details = err.details as Record<string, unknown> | undefined;
            return w.refuse(
              new AccordError('IAM_WEBAUTHN_INVALID', details ? { details } : {}),
              event(user, 'mfa.webauthn.registered', 'failure', { reason: String(details?.reason ?? 'invalid') }),
            );
          }
          await w.audit(event(user, 'mfa.webauthn.registered', 'success', { details: { passkey: passkey.id, name: passkey.name } }));
          if (auth.enrolmentOnly) return upgrade(w, reply, auth, user, 'webauthn');
          return passkey;
        });
      },
    }),
    route({
      method: 'GET',
      url: '/api/v1/mfa/webauthn',
      access: access.enrolment,
      schema: { summary: 'My passkeys', tags: ['iam', 'mfa'], response: { 200: Type.Array(PasskeyOut) } },
      handler: async ({ auth }) => listPasskeys(db, consoleUser(auth).principalId),
    }),
    route({
      method: 'PATCH',
      url: '/api/v1/mfa/webauthn/:id',
      access: access.enrolment,
      status: 204,
      schema: {
        summary: 'Rename one of my passkeys',
        tags: ['iam', 'mfa'],
        params: IdParams,
        body: Type.Object({ name: Type.String({ minLength: 1, maxLength: PASSKEY_NAME_MAX }) }, { additionalProperties: false }),
      },
      handler: async ({ auth, params, body, unit }) => {
        consoleUser(auth);
        await unit(async ({ trx, audit }) => {
          const user = await me(trx, auth);
          if (!(await renamePasskey(trx, user.id, params.id, body.name))) throw new AccordError('IAM_MFA_NOT_ENROLLED', { message: 'No such passkey.', details: { passkey: params.id } });
          await audit(event(user, 'mfa.webauthn.renamed', 'success', { details: { passkey: params.id, name: body.name.trim() } }));
        });
      },
    }),
    route({
      method: 'DELETE',
      url: '/api/v1/mfa/webauthn/:id',
      access: access.enrolment,
      status: 204,
      schema: { summary: 'Remove one of my passkeys', tags: ['iam', 'mfa'], params: IdParams },
      handler: async ({ auth, params, unit }) => {
        consoleUser(auth);
        await unit(async ({ trx, audit }) => {
          const user = await me(trx, auth);
          const removed = await removePasskey(trx, user.id, params.id);
          if (!removed) throw new AccordError('IAM_MFA_NOT_ENROLLED', { message: 'No such passkey.', details: { passkey: params.id } });
          await dropOrphanCodes(trx, user.id);
          await audit(event(user, 'mfa.webauthn.removed', 'success', { details: { passkey: params.id, name: removed.name } }));
        });
      },
    }),
    route({
      method: 'POST',
      url: '/api/v1/auth/mfa/webauthn/options',
      access: access.public,
      schema: {
        summary: 'Second sign-in step with a passkey: options for navigator.credentials.get() for this MFA challenge',
        tags: ['iam', 'mfa'],
        body: MfaTokenIn,
        response: { 200: WebauthnOptions },
      },
      handler: async ({ body, unit }) => {
        const now = new Date();
        return unit(async ({ trx }) => {
          const row = await trx
            .selectFrom('accord.user_tokens as t')
            .innerJoin('accord.users as u', 'u.id', 't.user_id')
            .select(['t.id', 't.data', 't.user_id'])
            .where('t.token_hash', '=', hashToken(body.mfaToken))
            .where('t.purpose', '=', 'mfa-challenge')
            .where('t.used_at', 'is', null)
            .where('t.expires_at', '>', now)
            .where('u.status', '=', 'active')
            .forUpdate('t')
            .executeTakeFirst();
          if (!row) throw new AccordError('IAM_MFA_CHALLENGE_INVALID');
          const options = await authenticationOptions(trx, rp, row.user_id);
          if (!options) throw new AccordError('IAM_MFA_NOT_ENROLLED', { message: 'No passkey is registered for this account: use another factor.' });
          // The latest options win: an earlier passkey challenge of this sign-in stops working.
          await trx
            .updateTable('accord.user_tokens')
            .set({ data: JSON.stringify({ ...row.data, [WEBAUTHN_CHALLENGE_KEY]: options.challenge }) })
            .where('id', '=', row.id)
            .execute();
          return options;
        });
      },
    }),
  ];
}
