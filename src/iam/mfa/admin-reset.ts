import { Type } from '@sinclair/typebox';
import { AccordError } from '../../errors/index.ts';
import { access, type RouteDefinition, route } from '../../http/index.ts';
import type { IamServices } from '../services.ts';
import { revokeUserSessions } from '../sessions/sessions.ts';
import { assertOutranks, type TenantScope } from '../users/admin.ts';
import { findUserByEmail, normaliseEmail } from '../users/users.ts';

/**
 * The help-desk case: a user lost their authenticator and their recovery codes. An admin with
 * standing over the user removes every factor (TOTP, passkeys, recovery codes) and ends the
 * user's sessions; the next sign-in enrols afresh (forced, when the tenant requires MFA).
 */
export function mfaAdminRoutes(_iam: IamServices): RouteDefinition[] {
  return [
    route({
      method: 'DELETE',
      url: '/api/v1/tenants/:tenant/users/:email/mfa',
      access: access.permission('user:manage', { tenantParam: 'tenant' }),
      schema: {
        summary: "Reset a user's MFA: remove every factor and end their sessions (they enrol again at the next sign-in)",
        tags: ['iam'],
        params: Type.Object({ tenant: Type.String({ maxLength: 63 }), email: Type.String({ maxLength: 254 }) }),
        response: { 200: Type.Object({ totp: Type.Boolean(), passkeys: Type.Integer(), recoveryCodes: Type.Integer(), sessionsRevoked: Type.Integer() }) },
      },
      handler: async ({ auth, tenant, params, unit }) => {
        const scope: TenantScope = { tenantId: tenant.id, tenantName: tenant.name };
        return unit(async ({ trx, audit }) => {
          const user = await findUserByEmail(trx, scope.tenantId, params.email);
          if (!user) throw new AccordError('IAM_USER_NOT_FOUND', { details: { email: normaliseEmail(params.email) } });
          await assertOutranks(trx, auth, scope, user.id);
          const totp = await trx.deleteFrom('accord.mfa_totp').where('user_id', '=', user.id).executeTakeFirst();
          const passkeys = await trx.deleteFrom('accord.webauthn_credentials').where('user_id', '=', user.id).executeTakeFirst();
          const codes = await trx.deleteFrom('accord.mfa_recovery_codes').where('user_id', '=', user.id).executeTakeFirst();
          const removed = {
            totp: Number(totp.numDeletedRows) > 0,
            passkeys: Number(passkeys.numDeletedRows),
            recoveryCodes: Number(codes.numDeletedRows),
            sessionsRevoked: await revokeUserSessions(trx, user.id, 'mfa-reset'),
          };
          await audit({ tenantId: scope.tenantId, action: 'mfa.reset', target: { type: 'user', id: user.id }, outcome: 'success', details: { email: user.email, ...removed } });
          return removed;
        });
      },
    }),
  ];
}
