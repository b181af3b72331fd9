import { sql } from 'kysely';
import type { Trx } from '../../db/index.ts';
import { AccordError } from '../../errors/index.ts';
import type { Work } from '../../kernel/index.ts';
import { asUser } from '../sessions/acting-as.ts';
import { type Audience, completeSignIn, type SignInDeps, type SignInResult, type UserRef } from '../sign-in/login.ts';
import { revokeUserSessions } from '../sessions/sessions.ts';
import { normaliseEmail } from '../users/users.ts';
import type { Provider } from './providers.ts';

/** What an identity provider vouched for, after its protocol's checks passed. */
export interface FederatedIdentity {
  /** The provider's stable id of the user (OIDC sub, SAML NameID, LDAP DN). */
  readonly subject: string;
  readonly email: string;
  readonly name: string;
  readonly groups: readonly string[];
}

/** A refused federated step: the user gets IAM_FEDERATION_FAILED, the audit gets `reason`. */
export class FederationRefusal extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

/** The roles and app roles a set of groups maps to, and what applying them changed. */
export interface SyncResult {
  readonly roles: readonly string[];
  readonly added: readonly string[];
  readonly removed: readonly string[];
}

const label = (m: { kind: string; role: string; stage: string | null; app: string | null }) =>
  m.kind === 'app-role' ? `app:${m.app}/${m.role}@${m.stage}` : m.stage ? `${m.role}@${m.stage}` : m.role;

/**
 * Makes the grants a provider's mappings give this user exactly those its groups map to: grants
 * this provider made earlier and no longer mapped are removed, new ones added. Grants made by
 * hand are never touched (and a hand-made grant of a mapped role is not duplicated).
 */
export async function applyGroupMappings(trx: Trx, idp: Pick<Provider, 'id' | 'tenantId'>, userId: string, groups: readonly string[]): Promise<SyncResult> {
  const mappings = await trx
    .selectFrom('accord.idp_group_mappings as m')
    .leftJoin('accord.stages as s', 's.id', 'm.stage_id')
    .select(['m.group_name', 'm.kind', 'm.role', 'm.stage_id', 's.name as stage', 'm.app'])
    .where('m.idp_id', '=', idp.id)
    .execute();
  const wanted = mappings.filter((m) => groups.includes(m.group_name));
  const roleKey = (r: { role: string; stage_id: string | null }) => `${r.role}|${r.stage_id ?? ''}`;
  const appKey = (r: { app: string | null; role: string; stage_id: string | null }) => `${r.app}|${r.role}|${r.stage_id}`;
  const wantRoles = new Map(wanted.filter((m) => m.kind === 'role').map((m) => [roleKey(m), m]));
  const wantApps = new Map(wanted.filter((m) => m.kind === 'app-role').map((m) => [appKey(m), m]));
  const added: string[] = [];
  const removed: string[] = [];

  const heldRoles = await trx.selectFrom('accord.role_grants as g').leftJoin('accord.stages as s', 's.id', 'g.stage_id').select(['g.id', 'g.role', 'g.stage_id', 's.name as stage']).where('g.user_id', '=', userId).where('g.via_idp', '=', idp.id).execute();
  for (const g of heldRoles) {
    if (wantRoles.has(roleKey(g))) wantRoles.delete(roleKey(g));
    else {
      await trx.deleteFrom('accord.role_grants').where('id', '=', g.id).execute();
      removed.push(label({ kind: 'role', role: g.role, stage: g.stage, app: null }));
    }
  }
  for (const m of wantRoles.values()) {
    const row = await trx
      .insertInto('accord.role_grants')
      .values({ user_id: userId, role: m.role, tenant_id: idp.tenantId, stage_id: m.stage_id, via_idp: idp.id })
      .onConflict((oc) => oc.doNothing())
      .returning('id')
      .executeTakeFirst();
    if (row) added.push(label(m));
  }
  const heldApps = await trx.selectFrom('accord.app_role_grants as g').innerJoin('accord.stages as s', 's.id', 'g.stage_id').select(['g.id', 'g.app', 'g.role', 'g.stage_id', 's.name as stage']).where('g.user_id', '=', userId).where('g.via_idp', '=', idp.id).execute();
  for (const g of heldApps) {
    if (wantApps.has(appKey(g))) wantApps.delete(appKey(g));
    else {
      await trx.deleteFrom('accord.app_role_grants').where('id', '=', g.id).execute();
      removed.push(label({ kind: 'app-role', role: g.role, stage: g.stage, app: g.app }));
    }
  }
  for (const m of wantApps.values()) {
    const row = await trx
      .insertInto('accord.app_role_grants')
      .values({ tenant_id: idp.tenantId, stage_id: m.stage_id as string, app: m.app as string, role: m.role, user_id: userId, via_idp: idp.id })
      .onConflict((oc) => oc.doNothing())
      .returning('id')
      .executeTakeFirst();
    if (row) added.push(label(m));
  }
  return { roles: wanted.map(label).sort(), added, removed };
}

/**
 * Finds or creates (just in time) the user a provider vouches for. The link is the provider's
 * subject; a first sign-in may also claim an existing account of the same email, but only one
 * without a password (created by SCIM, or invited and never activated): an IdP asserting an
 * email must not take over an account someone else set a password for.
 */
async function userFor(trx: Trx, idp: Provider, id: FederatedIdentity): Promise<{ user: UserRef; status: string; created: boolean }> {
  const linked = await trx
    .selectFrom('accord.federated_identities as f')
    .innerJoin('accord.users as u', 'u.id', 'f.user_id')
    .select(['u.id', 'u.email', 'u.status'])
    .where('f.idp_id', '=', idp.id)
    .where('f.subject', '=', id.subject)
    .executeTakeFirst();
  const ref = (u: { id: string; email: string }): UserRef => ({ id: u.id, email: u.email, tenantId: idp.tenantId, tenant: idp.tenantName });
  if (linked) return { user: ref(linked), status: linked.status, created: false };
  const email = normaliseEmail(id.email);
  if (!/^[^@\s]+@[^@\s]+$/.test(email) || email.length > 254) throw new FederationRefusal('no usable email claim');
  const existing = await trx.selectFrom('accord.users').select(['id', 'email', 'status', 'password_hash']).where('tenant_id', '=', idp.tenantId).where('email', '=', email).executeTakeFirst();
  if (existing) {
    if (existing.password_hash !== null) throw new FederationRefusal('email belongs to a local account with a password');
    const other = await trx.selectFrom('accord.federated_identities').select('subject').where('idp_id', '=', idp.id).where('user_id', '=', existing.id).executeTakeFirst();
    // SCIM provisioned this user without the IdP's id (no externalId): the first sign-in names it.
    if (other?.subject.startsWith('scim:')) {
      await trx.updateTable('accord.federated_identities').set({ subject: id.subject }).where('idp_id', '=', idp.id).where('user_id', '=', existing.id).execute();
    } else if (other) throw new FederationRefusal('email belongs to another subject of this provider');
    else await trx.insertInto('accord.federated_identities').values({ idp_id: idp.id, user_id: existing.id, subject: id.subject }).execute();
    // An invitation nobody accepted is superseded by the provider's sign-in.
    if (existing.status === 'invited') await trx.updateTable('accord.users').set({ status: 'active' }).where('id', '=', existing.id).execute();
    return { user: ref(existing), status: existing.status === 'invited' ? 'active' : existing.status, created: false };
  }
  const row = await trx
    .insertInto('accord.users')
    .values({ tenant_id: idp.tenantId, email, display_name: id.name.slice(0, 200), password_hash: null })
    .returning(['id', 'email'])
    .executeTakeFirstOrThrow();
  await trx.insertInto('accord.federated_identities').values({ idp_id: idp.id, user_id: row.id, subject: id.subject }).execute();
  return { user: ref(row), status: 'active', created: true };
}

/**
 * The common end of every federated sign-in (OIDC, SAML, LDAP), inside the sign-in's unit of
 * work: find or create the user, re-sync their grants from the groups the provider sent, audit
 * which provider, subject and roles, and open the session. A disabled user is refused.
 */
export async function federatedSignIn(w: Work, deps: SignInDeps, idp: Provider, identity: FederatedIdentity, audience: Audience, now = new Date()): Promise<SignInResult> {
  const { trx } = w;
  const { user, status, created } = await userFor(trx, idp, identity);
  if (status !== 'active') throw new FederationRefusal(`user is ${status}`);
  // Groups the provider pushed over SCIM count as much as the ones its token names: either
  // channel may carry membership, and a sign-in must not undo what provisioning set.
  const pushed = await trx
    .selectFrom('accord.scim_group_members as m')
    .innerJoin('accord.scim_groups as g', 'g.id', 'm.group_id')
    .select('g.display_name')
    .where('g.idp_id', '=', idp.id)
    .where('m.user_id', '=', user.id)
    .execute();
  const groups = [...new Set([...identity.groups, ...pushed.map((g) => g.display_name)])].slice(0, 500);
  await trx.updateTable('accord.federated_identities').set({ groups, last_login_at: now, synced_at: now }).where('idp_id', '=', idp.id).where('user_id', '=', user.id).execute();
  const sync = await applyGroupMappings(trx, idp, user.id, groups);
  const as = w.as(asUser(w.source, user));
  if (created) {
    await as.audit({ tenantId: idp.tenantId, action: 'user.provisioned', target: { type: 'user', id: user.id }, outcome: 'success', details: { idp: idp.name, kind: idp.kind, subject: identity.subject, email: user.email } });
  }
  await as.audit({
    tenantId: idp.tenantId,
    action: 'auth.federated.login',
    target: { type: 'user', id: user.id },
    outcome: 'success',
    details: { idp: idp.name, kind: idp.kind, subject: identity.subject, audience: audience.kind, groups, roles: sync.roles, added: sync.added, removed: sync.removed },
  });
  return completeSignIn(w, deps, user, [`idp:${idp.kind}`], audience, now);
}

/** The audit record of a refused federated step (the user only sees IAM_FEDERATION_FAILED). */
export function federationFailure(idp: Pick<Provider, 'name' | 'kind' | 'tenantId'>, reason: string, extra: Record<string, unknown> = {}) {
  return {
    tenantId: idp.tenantId,
    action: 'auth.federated.login',
    outcome: 'failure' as const,
    reason,
    details: { idp: idp.name, kind: idp.kind, ...extra },
  };
}

/** The generic answer to a refused federated sign-in. */
export const federationFailed = () => new AccordError('IAM_FEDERATION_FAILED');

/**
 * Ends a user's access at once: disabled, every session revoked (access tokens name their
 * session, so they die with it; other nodes see it within their principal-cache time).
 */
export async function deprovision(trx: Trx, userId: string, reason: string): Promise<number> {
  await trx.updateTable('accord.users').set({ status: 'disabled' }).where('id', '=', userId).execute();
  return revokeUserSessions(trx, userId, reason);
}

/**
 * Re-applies a provider's current mappings to the groups last seen for each of its users (after
 * a mapping changed, or on an admin's request); returns per-user changes for the audit.
 */
export async function resyncProvider(trx: Trx, idp: Pick<Provider, 'id' | 'tenantId'>, onlyUser?: string): Promise<{ userId: string; email: string; sync: SyncResult }[]> {
  let q = trx.selectFrom('accord.federated_identities as f').innerJoin('accord.users as u', 'u.id', 'f.user_id').select(['f.user_id', 'u.email', 'f.groups']).where('f.idp_id', '=', idp.id);
  if (onlyUser) q = q.where('u.email', '=', normaliseEmail(onlyUser));
  const out: { userId: string; email: string; sync: SyncResult }[] = [];
  for (const f of await q.orderBy('u.email').execute()) {
    out.push({ userId: f.user_id, email: f.email, sync: await applyGroupMappings(trx, idp, f.user_id, f.groups) });
    await trx.updateTable('accord.federated_identities').set({ synced_at: sql`now()` }).where('idp_id', '=', idp.id).where('user_id', '=', f.user_id).execute();
  }
  return out;
}
