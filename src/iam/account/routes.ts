import { Type } from '@sinclair/typebox';
import { access, type RouteDefinition, route, type ScopeTenant } from '../../http/index.ts';
import type { IamServices } from '../services.ts';
import { acceptInvitation, inviteUser } from './invitations.ts';
import { changePassword } from './password-change.ts';
import { profileOf, selfId, updateProfile } from './profile.ts';
import { issuePasswordReset, resetPassword } from './reset.ts';
import type { TenantScope } from '../users/admin.ts';

const Email = Type.String({ format: 'email', maxLength: 254 });
const Password = Type.String({ minLength: 1, maxLength: 1024 });
const OneTimeToken = Type.String({ minLength: 1, maxLength: 200 });
const DisplayName = Type.String({ maxLength: 100 });
const TenantParams = Type.Object({ tenant: Type.String({ maxLength: 63 }) });
const UserParams = Type.Object({ tenant: Type.String({ maxLength: 63 }), email: Type.String({ maxLength: 254 }) });
const Nullable = (t: ReturnType<typeof Type.String>) => Type.Union([t, Type.Null()]);
const AccountOut = Type.Object({ userId: Type.String(), email: Type.String(), tenant: Nullable(Type.String()) });
const ProfileOut = Type.Object({
  id: Type.String(),
  email: Type.String(),
  displayName: Type.String(),
  tenant: Nullable(Type.String()),
  status: Type.String(),
  createdAt: Type.String({ format: 'date-time' }),
  passwordChangedAt: Nullable(Type.String({ format: 'date-time' })),
  mfa: Type.Array(Type.String()),
});
const manage = access.permission('user:manage', { tenantParam: 'tenant' });
/** The tenant the path names (the route kit has looked it up), as the user services take it. */
const scopeOf = (tenant: ScopeTenant): TenantScope => ({ tenantId: tenant.id, tenantName: tenant.name });

/** Invitations, password change and reset, and the caller's own profile. */
export function accountRoutes(iam: IamServices): RouteDefinition[] {
  const { db } = iam;
  return [
    route({
      method: 'POST',
      url: '/api/v1/tenants/:tenant/invitations',
      access: manage,
      status: 201,
      schema: {
        summary: 'Invite a person into the tenant: an invited user and a one-time token (7 days) to hand over',
        tags: ['iam'],
        params: TenantParams,
        body: Type.Object({ email: Email, displayName: Type.Optional(DisplayName) }, { additionalProperties: false }),
        response: { 201: Type.Object({ email: Type.String(), inviteToken: Type.String(), expiresAt: Type.String({ format: 'date-time' }) }) },
      },
      handler: async ({ auth, source, tenant, body }) => inviteUser(db, auth, source, scopeOf(tenant), body),
    }),
    route({
      method: 'POST',
      url: '/api/v1/auth/invitation',
      access: access.public,
      schema: {
        summary: 'Accept an invitation: choose a password with the one-time token; then sign in',
        tags: ['iam'],
        body: Type.Object({ token: OneTimeToken, password: Password }, { additionalProperties: false }),
        response: { 200: AccountOut },
      },
      handler: async ({ source, body }) => acceptInvitation(db, source, body),
    }),
    route({
      method: 'POST',
      url: '/api/v1/tenants/:tenant/users/:email/password-reset',
      access: manage,
      status: 201,
      schema: {
        summary: 'Start a password reset for a user: a one-time token (30 minutes) to hand over',
        tags: ['iam'],
        params: UserParams,
        response: { 201: Type.Object({ email: Type.String(), resetToken: Type.String(), expiresAt: Type.String({ format: 'date-time' }) }) },
      },
      handler: async ({ auth, source, tenant, params }) => issuePasswordReset(db, auth, source, scopeOf(tenant), params.email),
    }),
    route({
      method: 'POST',
      url: '/api/v1/auth/password-reset',
      access: access.public,
      schema: {
        summary: "Set a new password with a reset token; ends all the user's sessions",
        tags: ['iam'],
        body: Type.Object({ token: OneTimeToken, password: Password }, { additionalProperties: false }),
        response: { 200: Type.Object({ userId: Type.String(), email: Type.String(), tenant: Nullable(Type.String()), sessionsRevoked: Type.Integer() }) },
      },
      handler: async ({ source, body }) => resetPassword(db, source, body),
    }),
    route({
      method: 'POST',
      url: '/api/v1/me/password',
      access: access.authenticated,
      schema: {
        summary: 'Change my password (the current one is required); ends my other sessions',
        tags: ['iam'],
        body: Type.Object({ currentPassword: Password, newPassword: Password }, { additionalProperties: false }),
        response: { 200: Type.Object({ passwordChangedAt: Type.String({ format: 'date-time' }), otherSessionsRevoked: Type.Integer() }) },
      },
      handler: async ({ auth, source, body }) => changePassword(iam.signIn, source, auth, body),
    }),
    route({
      method: 'GET',
      url: '/api/v1/me',
      access: access.authenticated,
      schema: { summary: 'My profile', tags: ['iam'], response: { 200: ProfileOut } },
      handler: async ({ auth }) => profileOf(db, selfId(auth)),
    }),
    route({
      method: 'PATCH',
      url: '/api/v1/me',
      access: access.authenticated,
      schema: {
        summary: 'Change my display name',
        tags: ['iam'],
        body: Type.Object({ displayName: DisplayName }, { additionalProperties: false }),
        response: { 200: ProfileOut },
      },
      handler: async ({ auth, source, body }) => updateProfile(db, source, auth, body),
    }),
  ];
}
