import type { Trx } from '../../db/index.ts';
import { AccordError } from '../../errors/index.ts';
import type { Work } from '../../kernel/index.ts';
import { normaliseEmail } from '../users/users.ts';
import type { Provider } from './providers.ts';
import { applyGroupMappings, deprovision } from './provisioning.ts';
import { type Flat, matches, parseFilter } from './scim-filter.ts';

export const USER_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:User';
export const GROUP_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Group';
export const LIST_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:ListResponse';
export const PATCH_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';

const invalid = (reason: string) => new AccordError('IAM_SCIM_INVALID', { message: `Invalid SCIM request: ${reason}.`, details: { reason } });
const notFound = () => new AccordError('IAM_USER_NOT_FOUND', { message: 'No such SCIM resource.' });

/** A placeholder subject until the user first signs in through the provider (which replaces it). */
export const scimSubject = (externalId: string | null | undefined, userId: string) => externalId ?? `scim:${userId}`;

type UserRow = { id: string; email: string; display_name: string; status: string; external_id: string | null; created_at: Date };

/**
 * The users a provider's SCIM client may see and change: those it provisioned or that signed in
 * through it, never the tenant's other accounts (a provisioning client must not be able to
 * disable the tenant admin).
 */
function usersOf(trx: Trx, idp: Provider) {
  return trx
    .selectFrom('accord.users as u')
    .innerJoin('accord.federated_identities as f', 'f.user_id', 'u.id')
    .select(['u.id', 'u.email', 'u.display_name', 'u.status', 'u.external_id', 'u.created_at'])
    .where('f.idp_id', '=', idp.id)
    .where('u.tenant_id', '=', idp.tenantId);
}

async function groupsOfUser(trx: Trx, idp: Provider, userId: string) {
  return trx
    .selectFrom('accord.scim_group_members as m')
    .innerJoin('accord.scim_groups as g', 'g.id', 'm.group_id')
    .select(['g.id', 'g.display_name'])
    .where('g.idp_id', '=', idp.id)
    .where('m.user_id', '=', userId)
    .orderBy('g.display_name')
    .execute();
}

/** A user as a SCIM resource. */
export async function userResource(trx: Trx, idp: Provider, base: string, u: UserRow) {
  const groups = await groupsOfUser(trx, idp, u.id);
  return {
    schemas: [USER_SCHEMA],
    id: u.id,
    ...(u.external_id ? { externalId: u.external_id } : {}),
    userName: u.email,
    displayName: u.display_name,
    name: { formatted: u.display_name },
    emails: [{ value: u.email, primary: true, type: 'work' }],
    active: u.status === 'active',
    groups: groups.map((g) => ({ value: g.id, display: g.display_name, $ref: `${base}/Groups/${g.id}` })),
    meta: { resourceType: 'User', created: u.created_at.toISOString(), location: `${base}/Users/${u.id}` },
  };
}

const flatUser = (u: UserRow): Flat => ({
  id: [u.id],
  username: [u.email],
  externalid: u.external_id ? [u.external_id] : [],
  displayname: [u.display_name],
  'emails.value': [u.email],
  emails: [u.email],
  active: [u.status === 'active'],
});
const USER_ATTRS = new Set(['id', 'username', 'externalid', 'displayname', 'emails.value', 'emails', 'active']);
const GROUP_ATTRS = new Set(['id', 'displayname', 'externalid']);

/** Paging per RFC 7644 3.4.2.4 (1-based startIndex). */
export function page<T>(all: T[], startIndex = 1, count = 100) {
  const start = Math.max(1, startIndex);
  const n = Math.max(0, Math.min(count, 500));
  return { schemas: [LIST_SCHEMA], totalResults: all.length, startIndex: start, itemsPerPage: Math.min(n, Math.max(0, all.length - start + 1)), Resources: all.slice(start - 1, start - 1 + n) };
}

export async function listUsers(trx: Trx, idp: Provider, base: string, q: { filter?: string | undefined; startIndex?: number | undefined; count?: number | undefined }) {
  const filter = q.filter ? parseFilter(q.filter, USER_ATTRS) : undefined;
  const rows = (await usersOf(trx, idp).orderBy('u.created_at').orderBy('u.id').execute()).filter((u) => !filter || matches(filter, flatUser(u)));
  const p = page(rows, q.startIndex, q.count);
  return { ...p, Resources: await Promise.all(p.Resources.map((u) => userResource(trx, idp, base, u))) };
}

export async function getUser(trx: Trx, idp: Provider, id: string): Promise<UserRow> {
  const u = await usersOf(trx, idp).where('u.id', '=', id).executeTakeFirst();
  if (!u) throw notFound();
  return u;
}

/** The email, name, active flag and externalId a SCIM User body carries. */
export function readUserBody(body: Record<string, unknown>): { email: string; displayName: string; active: boolean; externalId: string | null } {
  const userName = typeof body.userName === 'string' ? body.userName : '';
  const emails = Array.isArray(body.emails) ? (body.emails as { value?: unknown; primary?: unknown }[]) : [];
  const primary = emails.find((e) => e.primary === true) ?? emails[0];
  const email = userName.includes('@') ? userName : typeof primary?.value === 'string' ? primary.value : '';
  if (!/^[^@\s]+@[^@\s]+$/.test(email) || email.length > 254) throw invalid('userName (or a primary email) must be an email address');
  const name = body.name as { formatted?: unknown; givenName?: unknown; familyName?: unknown } | undefined;
  const displayName =
    typeof body.displayName === 'string' ? body.displayName : typeof name?.formatted === 'string' ? name.formatted : [name?.givenName, name?.familyName].filter((x) => typeof x === 'string').join(' ');
  const externalId = typeof body.externalId === 'string' && body.externalId.length > 0 ? body.externalId.slice(0, 256) : null;
  return { email: normaliseEmail(email), displayName: displayName.slice(0, 200), active: body.active !== false, externalId };
}

/** SCIM POST /Users: a user of the tenant linked to this provider (no password; signs in through the IdP). */
export async function createUser(w: Work, idp: Provider, body: Record<string, unknown>): Promise<UserRow> {
  const { trx } = w;
  const u = readUserBody(body);
  const existing = await trx.selectFrom('accord.users').select('id').where('tenant_id', '=', idp.tenantId).where('email', '=', u.email).executeTakeFirst();
  if (existing) throw new AccordError('IAM_USER_EXISTS', { details: { email: u.email } });
  const row = await trx
    .insertInto('accord.users')
    .values({ tenant_id: idp.tenantId, email: u.email, display_name: u.displayName, password_hash: null, status: u.active ? 'active' : 'disabled', external_id: u.externalId })
    .returning(['id', 'email', 'display_name', 'status', 'external_id', 'created_at'])
    .executeTakeFirstOrThrow();
  await trx.insertInto('accord.federated_identities').values({ idp_id: idp.id, user_id: row.id, subject: scimSubject(u.externalId, row.id) }).execute();
  await w.audit({ tenantId: idp.tenantId, action: 'scim.user.created', target: { type: 'user', id: row.id }, outcome: 'success', details: { idp: idp.name, email: u.email, externalId: u.externalId, active: u.active } });
  return row;
}

/** Applies attribute changes; deactivation deprovisions at once (sessions revoked). */
async function changeUser(w: Work, idp: Provider, user: UserRow, change: { email?: string; displayName?: string; active?: boolean; externalId?: string | null }): Promise<UserRow> {
  const { trx } = w;
  const set: { email?: string; display_name?: string; status?: 'active' | 'disabled'; external_id?: string | null } = {};
  if (change.email !== undefined && change.email !== user.email) set.email = change.email;
  if (change.displayName !== undefined && change.displayName !== user.display_name) set.display_name = change.displayName;
  if (change.externalId !== undefined && change.externalId !== user.external_id) set.external_id = change.externalId;
  let revoked = 0;
  if (change.active === false && user.status === 'active') revoked = await deprovision(trx, user.id, 'deprovisioned');
  else if (change.active === true && user.status === 'disabled') set.status = 'active';
  if (Object.keys(set).length > 0) {
    try {
      await trx.updateTable('accord.users').set(set).where('id', '=', user.id).execute();
    } catch (err) {
      if ((err as { code?: string }).code === '23505') throw new AccordError('IAM_USER_EXISTS', { details: { email: set.email ?? user.email }, cause: err });
      throw err;
    }
  }
  if (set.external_id !== undefined) {
    // The placeholder subject becomes the IdP's id of the user, which its sign-ins will carry.
    await trx.updateTable('accord.federated_identities').set({ subject: scimSubject(set.external_id, user.id) }).where('idp_id', '=', idp.id).where('user_id', '=', user.id).where('subject', 'like', 'scim:%').execute();
  }
  if (change.active === false && user.status === 'active') {
    await w.audit({ tenantId: idp.tenantId, action: 'scim.user.deactivated', target: { type: 'user', id: user.id }, outcome: 'success', details: { idp: idp.name, sessionsRevoked: revoked } });
  } else if (Object.keys(set).length > 0) {
    await w.audit({ tenantId: idp.tenantId, action: 'scim.user.updated', target: { type: 'user', id: user.id }, outcome: 'success', details: { idp: idp.name, changed: Object.keys(set) } });
  }
  return getUser(trx, idp, user.id);
}

export async function replaceUser(w: Work, idp: Provider, id: string, body: Record<string, unknown>): Promise<UserRow> {
  const user = await getUser(w.trx, idp, id);
  const u = readUserBody(body);
  return changeUser(w, idp, user, { email: u.email, displayName: u.displayName, active: u.active, externalId: u.externalId });
}

type PatchOp = { op?: unknown; path?: unknown; value?: unknown };

function patchOps(body: Record<string, unknown>): PatchOp[] {
  const ops = body.Operations;
  if (!Array.isArray(ops) || ops.length === 0 || ops.length > 100) throw invalid('Operations must be a non-empty array');
  return ops as PatchOp[];
}

/** SCIM PATCH /Users/{id}: replace/add/remove on active, userName, displayName, name, externalId. */
export async function patchUser(w: Work, idp: Provider, id: string, body: Record<string, unknown>): Promise<UserRow> {
  const user = await getUser(w.trx, idp, id);
  const change: { email?: string; displayName?: string; active?: boolean; externalId?: string | null } = {};
  const assign = (path: string, value: unknown) => {
    const p = path.toLowerCase();
    if (p === 'active') {
      // Some IdPs send "False" as a string.
      const v = typeof value === 'string' ? value.toLowerCase() === 'true' : value;
      if (typeof v !== 'boolean') throw invalid('active must be a boolean');
      change.active = v;
    } else if (p === 'username' || p === 'emails[type eq "work"].value' || p === 'emails') {
      const v = Array.isArray(value) ? (value[0] as { value?: unknown })?.value : value;
      if (typeof v !== 'string' || !/^[^@\s]+@[^@\s]+$/.test(v)) throw invalid(`${path} must be an email address`);
      change.email = normaliseEmail(v);
    } else if (p === 'displayname' || p === 'name.formatted') {
      if (typeof value !== 'string') throw invalid(`${path} must be a string`);
      change.displayName = value.slice(0, 200);
    } else if (p === 'externalid') {
      change.externalId = typeof value === 'string' && value ? value.slice(0, 256) : null;
    } else if (p === 'name.givenname' || p === 'name.familyname' || p === 'name') {
      // Names beyond the display name are not kept.
    } else throw invalid(`path ${path} is not supported`);
  };
  for (const op of patchOps(body)) {
    const kind = typeof op.op === 'string' ? op.op.toLowerCase() : '';
    if (kind !== 'replace' && kind !== 'add' && kind !== 'remove') throw invalid(`op ${String(op.op)} is not supported`);
    if (kind === 'remove') {
      if (op.path === 'externalId') change.externalId = null;
      else throw invalid('remove is supported on externalId only');
      continue;
    }
    if (typeof op.path === 'string') assign(op.path, op.value);
    else if (op.value && typeof op.value === 'object') for (const [k, v] of Object.entries(op.value)) assign(k, v);
    else throw invalid('an operation needs a path or an object value');
  }
  return changeUser(w, idp, user, change);
}

/** SCIM DELETE /Users/{id}: the user, their grants and sessions are gone. */
export async function deleteUser(w: Work, idp: Provider, id: string): Promise<void> {
  const user = await getUser(w.trx, idp, id);
  const revoked = await deprovision(w.trx, user.id, 'deprovisioned');
  await w.trx.deleteFrom('accord.users').where('id', '=', user.id).execute();
  await w.audit({ tenantId: idp.tenantId, action: 'scim.user.deleted', target: { type: 'user', id: user.id }, outcome: 'success', details: { idp: idp.name, email: user.email, sessionsRevoked: revoked } });
}

// Groups

type GroupRow = { id: string; display_name: string; external_id: string | null; created_at: Date };

export async function groupResource(trx: Trx, base: string, g: GroupRow) {
  const members = await trx
    .selectFrom('accord.scim_group_members as m')
    .innerJoin('accord.users as u', 'u.id', 'm.user_id')
    .select(['u.id', 'u.email'])
    .where('m.group_id', '=', g.id)
    .orderBy('u.email')
    .execute();
  return {
    schemas: [GROUP_SCHEMA],
    id: g.id,
    displayName: g.display_name,
    ...(g.external_id ? { externalId: g.external_id } : {}),
    members: members.map((m) => ({ value: m.id, display: m.email, $ref: `${base}/Users/${m.id}` })),
    meta: { resourceType: 'Group', created: g.created_at.toISOString(), location: `${base}/Groups/${g.id}` },
  };
}

export async function getGroup(trx: Trx, idp: Provider, id: string): Promise<GroupRow> {
  const g = await trx.selectFrom('accord.scim_groups').select(['id', 'display_name', 'external_id', 'created_at']).where('idp_id', '=', idp.id).where('id', '=', id).executeTakeFirst();
  if (!g) throw notFound();
  return g;
}

export async function listGroups(trx: Trx, idp: Provider, base: string, q: { filter?: string | undefined; startIndex?: number | undefined; count?: number | undefined }) {
  const filter = q.filter ? parseFilter(q.filter, GROUP_ATTRS) : undefined;
  const rows = (await trx.selectFrom('accord.scim_groups').select(['id', 'display_name', 'external_id', 'created_at']).where('idp_id', '=', idp.id).orderBy('created_at').orderBy('id').execute()).filter(
    (g) => !filter || matches(filter, { id: [g.id], displayname: [g.display_name], externalid: g.external_id ? [g.external_id] : [] }),
  );
  const p = page(rows, q.startIndex, q.count);
  return { ...p, Resources: await Promise.all(p.Resources.map((g) => groupResource(trx, base, g))) };
}

function memberIds(value: unknown): string[] {
  if (!Array.isArray(value)) throw invalid('members must be an array');
  return value.map((m) => {
    const v = (m as { value?: unknown })?.value;
    if (typeof v !== 'string' || !/^[0-9a-f-]{36}$/i.test(v)) throw invalid('a member value must be a user id');
    return v;
  });
}

/**
 * Re-derives the groups of users whose memberships changed and applies the provider's mappings
 * to them: SCIM is the provider telling us group membership between sign-ins.
 */
async function resync(w: Work, idp: Provider, userIds: Iterable<string>): Promise<void> {
  for (const userId of new Set(userIds)) {
    const groups = (await groupsOfUser(w.trx, idp, userId)).map((g) => g.display_name);
    await w.trx.updateTable('accord.federated_identities').set({ groups, synced_at: new Date() }).where('idp_id', '=', idp.id).where('user_id', '=', userId).execute();
    const sync = await applyGroupMappings(w.trx, idp, userId, groups);
    if (sync.added.length + sync.removed.length > 0) {
      await w.audit({ tenantId: idp.tenantId, action: 'idp.resynced', target: { type: 'user', id: userId }, outcome: 'success', details: { idp: idp.name, via: 'scim', groups, roles: sync.roles, added: sync.added, removed: sync.removed } });
    }
  }
}

async function setMembers(w: Work, idp: Provider, groupId: string, add: string[], remove: string[]): Promise<string[]> {
  const touched: string[] = [];
  for (const id of add) {
    await getUser(w.trx, idp, id);
    const r = await w.trx.insertInto('accord.scim_group_members').values({ group_id: groupId, user_id: id }).onConflict((oc) => oc.doNothing()).returning('user_id').executeTakeFirst();
    if (r) touched.push(id);
  }
  for (const id of remove) {
    const r = await w.trx.deleteFrom('accord.scim_group_members').where('group_id', '=', groupId).where('user_id', '=', id).executeTakeFirst();
    if (Number(r.numDeletedRows) > 0) touched.push(id);
  }
  return touched;
}

export async function createGroup(w: Work, idp: Provider, body: Record<string, unknown>): Promise<GroupRow> {
  if (typeof body.displayName !== 'string' || body.displayName.length === 0 || body.displayName.length > 256) throw invalid('displayName is required');
  const exists = await w.trx.selectFrom('accord.scim_groups').select('id').where('idp_id', '=', idp.id).where('display_name', '=', body.displayName).executeTakeFirst();
  if (exists) throw invalid('a group with this displayName exists');
  const g = await w.trx
    .insertInto('accord.scim_groups')
    .values({ idp_id: idp.id, display_name: body.displayName, external_id: typeof body.externalId === 'string' ? body.externalId.slice(0, 256) : null })
    .returning(['id', 'display_name', 'external_id', 'created_at'])
    .executeTakeFirstOrThrow();
  const touched = body.members === undefined ? [] : await setMembers(w, idp, g.id, memberIds(body.members), []);
  await w.audit({ tenantId: idp.tenantId, action: 'scim.group.created', target: { type: 'scim-group', id: g.id }, outcome: 'success', details: { idp: idp.name, displayName: g.display_name, members: touched.length } });
  await resync(w, idp, touched);
  return g;
}

export async function patchGroup(w: Work, idp: Provider, id: string, body: Record<string, unknown>): Promise<GroupRow> {
  const g = await getGroup(w.trx, idp, id);
  const touched: string[] = [];
  let rename: string | undefined;
  for (const op of patchOps(body)) {
    const kind = typeof op.op === 'string' ? op.op.toLowerCase() : '';
    const path = typeof op.path === 'string' ? op.path : undefined;
    const filtered = path ? /^members\[value eq "([0-9a-f-]{36})"\]$/i.exec(path) : null;
    if (kind === 'add' && path?.toLowerCase() === 'members') touched.push(...(await setMembers(w, idp, g.id, memberIds(op.value), [])));
    else if (kind === 'remove' && filtered) touched.push(...(await setMembers(w, idp, g.id, [], [filtered[1] as string])));
    else if (kind === 'remove' && path?.toLowerCase() === 'members') {
      const current = (await w.trx.selectFrom('accord.scim_group_members').select('user_id').where('group_id', '=', g.id).execute()).map((m) => m.user_id);
      touched.push(...(await setMembers(w, idp, g.id, [], op.value === undefined ? current : memberIds(op.value))));
    } else if (kind === 'replace' && path?.toLowerCase() === 'members') {
      const want = memberIds(op.value);
      const current = (await w.trx.selectFrom('accord.scim_group_members').select('user_id').where('group_id', '=', g.id).execute()).map((m) => m.user_id);
      touched.push(...(await setMembers(w, idp, g.id, want.filter((x) => !current.includes(x)), current.filter((x) => !want.includes(x)))));
    } else if (kind === 'replace' && (path?.toLowerCase() === 'displayname' || (!path && op.value && typeof op.value === 'object' && 'displayName' in op.value))) {
      const v = path ? op.value : (op.value as { displayName: unknown }).displayName;
      if (typeof v !== 'string' || v.length === 0 || v.length > 256) throw invalid('displayName must be a string');
      rename = v;
    } else throw invalid(`op ${String(op.op)} on ${path ?? '(no path)'} is not supported`);
  }
  if (rename !== undefined && rename !== g.display_name) {
    await w.trx.updateTable('accord.scim_groups').set({ display_name: rename }).where('id', '=', g.id).execute();
    // A renamed group maps differently: every member is re-synced.
    touched.push(...(await w.trx.selectFrom('accord.scim_group_members').select('user_id').where('group_id', '=', g.id).execute()).map((m) => m.user_id));
  }
  await w.audit({ tenantId: idp.tenantId, action: 'scim.group.updated', target: { type: 'scim-group', id: g.id }, outcome: 'success', details: { idp: idp.name, displayName: rename ?? g.display_name, membersChanged: new Set(touched).size } });
  await resync(w, idp, touched);
  return getGroup(w.trx, idp, g.id);
}

export async function replaceGroup(w: Work, idp: Provider, id: string, body: Record<string, unknown>): Promise<GroupRow> {
  if (typeof body.displayName !== 'string') throw invalid('displayName is required');
  return patchGroup(w, idp, id, {
    Operations: [
      { op: 'replace', path: 'displayName', value: body.displayName },
      { op: 'replace', path: 'members', value: body.members ?? [] },
    ],
  });
}

export async function deleteGroup(w: Work, idp: Provider, id: string): Promise<void> {
  const g = await getGroup(w.trx, idp, id);
  const members = (await w.trx.selectFrom('accord.scim_group_members').select('user_id').where('group_id', '=', g.id).execute()).map((m) => m.user_id);
  await w.trx.deleteFrom('accord.scim_groups').where('id', '=', g.id).execute();
  await w.audit({ tenantId: idp.tenantId, action: 'scim.group.deleted', target: { type: 'scim-group', id: g.id }, outcome: 'success', details: { idp: idp.name, displayName: g.display_name } });
  await resync(w, idp, members);
}
