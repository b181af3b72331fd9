import { type Static, Type } from '@sinclair/typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { type AuditSource, record } from '../../audit-chain/index.ts';
import type { DbOrTrx, Trx } from '../../db/index.ts';
import { AccordError, isAccordError } from '../../errors/index.ts';
import { type AuthContext, access, auditSource, parts, type RouteDefinition } from '../../http/index.ts';
import { checkLockout, lockoutAuditEvent, lockoutSubjects, recordFailure } from '../sign-in/lockout.ts';
import { completeSignIn, type UserRef } from '../sign-in/login.ts';
import { caller, SignInOut, signInReply } from '../sign-in/routes.ts';
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

/** A request that failed in a way that must still be audited: the transaction commits, then this is thrown. */
type Refusal = { readonly refusal: 'IAM_MFA_INVALID' | 'IAM_LOCKED' | 'IAM_WEBAUTHN_INVALID'; readonly retryAfter?: number; readonly details?: Record<string, unknown> };

function refuse(r: Refusal): never {
  if (r.refusal === 'IAM_LOCKED') {
    throw new AccordError('IAM_LOCKED', { headers: { 'retry-after': String(r.retryAfter) }, details: { retryAfterSeconds: r.retryAfter } });
  }
  throw new AccordError(r.refusal, r.details ? { details: r.details } : {});
}

const isRefusal = (v: unknown): v is Refusal => typeof v === 'object' && v !== null && 'refusal' in v;

/**
 * Self-service MFA for console users: TOTP enrolment and removal, recovery codes, passkeys, and
 * the passkey step of a sign-in. Every route is open to an enrolment-only session (so a user whom
 * the policy obliges to use MFA can enrol); enrolling the first factor from such a session ends
 * it and answers with a full session.
 */
export function mfaRoutes(iam: IamServices): RouteDefinition[] {
  const { db, key } = iam;
  const rp = iam.webauthn;

  const consoleUser = (req: FastifyRequest): AuthContext => {
    const auth = caller(req);
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
  const audit = (trx: Trx, req: FastifyRequest, user: Me, action: string, outcome: 'success' | 'failure' | 'denied', extra: { reason?: string; details?: Record<string, unknown> } = {}) =>
    record(trx, auditSource(req.meta), { tenantId: user.tenantId, action, target: { type: 'user', id: user.id }, outcome, ...extra });

  /**
   * A change that needs proof of a factor (a TOTP or recovery code): refused while the account is
   * locked, and a wrong code counts as a failed sign-in, so a stolen session cannot guess codes.
   */
  const withProof = async <T>(req: FastifyRequest, user: Me, action: string, code: string, change: (trx: Trx) => Promise<T>): Promise<T> => {
    const source: AuditSource = auditSource(req.meta);
    const subjects = lockoutSubjects({ tenantId: null, email: user.email, ip: source.sourceIp });
    const now = new Date();
    const outcome = await db.transaction().execute(async (trx): Promise<T | Refusal> => {
      const lock = await checkLockout(trx, subjects, now);
      if (lock.locked) {
        await audit(trx, req, user, action, 'denied', { reason: 'IAM_LOCKED' });
        return { refusal: 'IAM_LOCKED', retryAfter: lock.retryAfterSeconds };
      }
      const input = /^[0-9]{6}$/.test(code.trim()) ? { totp: code.trim() } : { recoveryCode: code };
      const proof = await verifySecondFactor(trx, key, rp, user.id, input, {}, now, source);
      if (!proof.ok) {
        const failure = await recordFailure(trx, subjects, iam.signIn.lockout, now);
        await audit(trx, req, user, action, 'failure', { reason: proof.reason });
        for (const l of failure.locks) await record(trx, source, lockoutAuditEvent(l, null));
        return { refusal: 'IAM_MFA_INVALID' };
      }
      return change(trx);
    });
    if (isRefusal(outcome)) refuse(outcome);
    return outcome;
  };

  /** An enrolment-only session that has just enrolled a factor: end it, open a full one. */
  const upgrade = async (trx: Trx, req: FastifyRequest, reply: FastifyReply, auth: AuthContext, user: Me, method: 'totp' | 'webauthn') => {
    if (auth.sessionId) await revokeSession(trx, auth.sessionId, 'mfa-enrolled');
    const result = await completeSignIn(trx, iam.signIn, auditSource(req.meta), user, ['password', method], { kind: 'console' });
    return signInReply(reply, result, auth.via === 'cookie' ? 'cookie' : 'bearer');
  };

  /** Recovery codes back up a real factor: when the last one goes, they go too. */
  const dropOrphanCodes = async (trx: Trx, userId: string) => {
    const left = await mfaFactors(trx, userId);
    if (!left.includes('totp') && !left.includes('webauthn')) await deleteRecoveryCodes(trx, userId);
  };

  return [
    {
      method: 'GET',
      url: '/api/v1/mfa',
      access: access.enrolment,
      schema: { summary: 'My MFA status: TOTP, passkeys, recovery codes left, whether MFA is required of me', tags: ['iam', 'mfa'], response: { 200: StatusOut } },
      handler: async (req) => {
        const user = await me(db, consoleUser(req));
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
    },
    {
      method: 'POST',
      url: '/api/v1/mfa/totp',
      access: access.enrolment,
      status: 201,
      schema: {
        summary: 'Start a TOTP enrolment: the secret, its otpauth:// URI and 10 recovery codes (shown once; active after confirmation)',
        tags: ['iam', 'mfa'],
        response: { 201: Type.Object({ secret: Type.String(), otpauthUri: Type.String(), recoveryCodes: Type.Array(Type.String()) }) },
      },
      handler: async (req) => {
        const auth = consoleUser(req);
        return db.transaction().execute(async (trx) => {
          const user = await me(trx, auth);
          const enrolment = await enrolTotp(trx, key, user);
          await audit(trx, req, user, 'mfa.totp.enrolled', 'success');
          return enrolment;
        });
      },
    },
    {
      method: 'POST',
      url: '/api/v1/mfa/totp/confirm',
      access: access.enrolment,
      schema: {
        summary: 'Confirm the TOTP enrolment with a first code; from an enrolment-only session, answers with a full session',
        tags: ['iam', 'mfa'],
        body: Type.Object({ code: Type.String({ pattern: '^[0-9]{6}$' }) }, { additionalProperties: false }),
        response: { 200: Type.Union([SignInOut, Confirmed]) },
      },
      handler: async (req, reply) => {
        const auth = consoleUser(req);
        const { body } = parts<unknown, { code: string }>(req);
        const now = new Date();
        const outcome = await db.transaction().execute(async (trx) => {
          const user = await me(trx, auth);
          const state = await totpState(trx, user.id);
          if (!state.enrolled) throw new AccordError('IAM_MFA_NOT_ENROLLED', { message: 'No TOTP enrolment to confirm: start one with POST /api/v1/mfa/totp.' });
          if (state.confirmedAt) throw new AccordError('IAM_MFA_ALREADY_ENROLLED', { details: { factor: 'totp' } });
          const r = await confirmTotp(trx, key, user.id, body.code, now);
          if (r !== 'ok') {
            await audit(trx, req, user, 'mfa.totp.confirmed', 'failure', { reason: r });
            return { refusal: 'IAM_MFA_INVALID' } as Refusal;
          }
          await audit(trx, req, user, 'mfa.totp.confirmed', 'success', { details: { recoveryCodesIssued: RECOVERY_CODE_COUNT } });
          if (auth.enrolmentOnly) return upgrade(trx, req, reply, auth, user, 'totp');
          return { confirmed: true as const };
        });
        if (isRefusal(outcome)) refuse(outcome);
        return outcome;
      },
    },
    {
      method: 'DELETE',
      url: '/api/v1/mfa/totp',
      access: access.enrolment,
      status: 204,
      schema: { summary: 'Remove my TOTP; needs a current TOTP code or a recovery code (an unconfirmed enrolment goes without)', tags: ['iam', 'mfa'], body: CodeIn },
      handler: async (req, reply) => {
        const auth = consoleUser(req);
        const { body } = parts<unknown, { code: string }>(req);
        const user = await me(db, auth);
        const state = await totpState(db, user.id);
        if (!state.enrolled) throw new AccordError('IAM_MFA_NOT_ENROLLED', { details: { factor: 'totp' } });
        const remove = async (trx: Trx) => {
          if (!(await removeTotp(trx, user.id))) throw new AccordError('IAM_MFA_NOT_ENROLLED', { details: { factor: 'totp' } });
          await dropOrphanCodes(trx, user.id);
          await audit(trx, req, user, 'mfa.totp.removed', 'success', { details: { confirmed: state.confirmedAt !== null } });
        };
        // A pending enrolment is not a factor yet: nothing to prove to drop it.
        if (state.confirmedAt === null) await db.transaction().execute(remove);
        else await withProof(req, user, 'mfa.totp.removed', body.code, remove);
        return reply.code(204).send();
      },
    },
    {
      method: 'POST',
      url: '/api/v1/mfa/recovery-codes',
      access: access.enrolment,
      schema: {
        summary: 'Replace all my recovery codes with 10 new ones; needs a current TOTP code or a recovery code',
        tags: ['iam', 'mfa'],
        body: CodeIn,
        response: { 200: RecoveryOut },
      },
      handler: async (req) => {
        const auth = consoleUser(req);
        const { body } = parts<unknown, { code: string }>(req);
        const user = await me(db, auth);
        const factors = await mfaFactors(db, user.id);
        if (!factors.includes('totp') && !factors.includes('webauthn')) {
          throw new AccordError('IAM_MFA_NOT_ENROLLED', { message: 'Recovery codes back up a TOTP or a passkey: enrol one first.' });
        }
        return withProof(req, user, 'mfa.recovery.regenerated', body.code, async (trx) => {
          const codes = newRecoveryCodes();
          await replaceRecoveryCodes(trx, key, user.id, codes);
          await audit(trx, req, user, 'mfa.recovery.regenerated', 'success', { details: { count: codes.length } });
          return { recoveryCodes: codes };
        });
      },
    },
    {
      method: 'POST',
      url: '/api/v1/mfa/webauthn/register/options',
      access: access.enrolment,
      schema: {
        summary: 'Options for navigator.credentials.create() to register a passkey (challenge valid 5 minutes, single use)',
        tags: ['iam', 'mfa'],
        response: { 200: WebauthnOptions },
      },
      handler: async (req) => {
        const auth = consoleUser(req);
        return db.transaction().execute(async (trx) => registrationOptions(trx, rp, await me(trx, auth), new Date()));
      },
    },
    {
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
      handler: async (req, reply) => {
        const auth = consoleUser(req);
        const { body } = parts<unknown, { response: unknown; name?: string }>(req);
        const outcome = await db.transaction().execute(async (trx) => {
          const user = await me(trx, auth);
          let passkey: Awaited<ReturnType<typeof registerPasskey>>;
          try {
            passkey = await registerPasskey(trx, rp, user.id, body.response, body.name, new Date());
          } catch (err) {
            if (!isAccordError(err, 'IAM_WEBAUTHN_INVALID')) throw err;
            await audit(trx, req, user, 'mfa.webauthn.registered', 'failure', { reason: String((err.details as { reason?: string } | undefined)?.reason ?? 'invalid') });
            return { refusal: 'IAM_WEBAUTHN_INVALID', details: err.details as Record<string, unknown> } as Refusal;
          }
          await audit(trx, req, user, 'mfa.webauthn.registered', 'success', { details: { passkey: passkey.id, name: passkey.name } });
          if (auth.enrolmentOnly) return upgrade(trx, req, reply, auth, user, 'webauthn');
          return passkey;
        });
        if (isRefusal(outcome)) refuse(outcome);
        return outcome;
      },
    },
    {
      method: 'GET',
      url: '/api/v1/mfa/webauthn',
      access: access.enrolment,
      schema: { summary: 'My passkeys', tags: ['iam', 'mfa'], response: { 200: Type.Array(PasskeyOut) } },
      handler: async (req) => listPasskeys(db, consoleUser(req).principalId),
    },
    {
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
      handler: async (req, reply) => {
        const auth = consoleUser(req);
        const { params, body } = parts<{ id: string }, { name: string }>(req);
        await db.transaction().execute(async (trx) => {
          const user = await me(trx, auth);
          if (!(await renamePasskey(trx, user.id, params.id, body.name))) throw new AccordError('IAM_MFA_NOT_ENROLLED', { message: 'No such passkey.', details: { passkey: params.id } });
          await audit(trx, req, user, 'mfa.webauthn.renamed', 'success', { details: { passkey: params.id, name: body.name.trim() } });
        });
        return reply.code(204).send();
      },
    },
    {
      method: 'DELETE',
      url: '/api/v1/mfa/webauthn/:id',
      access: access.enrolment,
      status: 204,
      schema: { summary: 'Remove one of my passkeys', tags: ['iam', 'mfa'], params: IdParams },
      handler: async (req, reply) => {
        const auth = consoleUser(req);
        const { params } = parts<{ id: string }>(req);
        await db.transaction().execute(async (trx) => {
          const user = await me(trx, auth);
          const removed = await removePasskey(trx, user.id, params.id);
          if (!removed) throw new AccordError('IAM_MFA_NOT_ENROLLED', { message: 'No such passkey.', details: { passkey: params.id } });
          await dropOrphanCodes(trx, user.id);
          await audit(trx, req, user, 'mfa.webauthn.removed', 'success', { details: { passkey: params.id, name: removed.name } });
        });
        return reply.code(204).send();
      },
    },
    {
      method: 'POST',
      url: '/api/v1/auth/mfa/webauthn/options',
      access: access.public,
      schema: {
        summary: 'Second sign-in step with a passkey: options for navigator.credentials.get() for this MFA challenge',
        tags: ['iam', 'mfa'],
        body: MfaTokenIn,
        response: { 200: WebauthnOptions },
      },
      handler: async (req) => {
        const { body } = parts<unknown, Static<typeof MfaTokenIn>>(req);
        const now = new Date();
        return db.transaction().execute(async (trx) => {
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
    },
  ];
}
