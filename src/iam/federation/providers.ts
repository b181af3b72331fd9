import type { AuditSource } from '../../audit-chain/index.ts';
import type { Db, DbOrTrx, Trx } from '../../db/index.ts';
import { AccordError } from '../../errors/index.ts';
import type { AuthContext } from '../../http/index.ts';
import { unitOfWork } from '../../kernel/index.ts';
import type { IamKey } from '../iam-key.ts';
import { builtInRole } from '../permissions.ts';
import { APP_NAME, APP_ROLE_NAME } from '../roles/app-roles.ts';
import { requireStanding, type TenantScope } from '../users/standing.ts';
import { type IdpKind, type LdapSettings, type OidcSettings, publicSettings, type SamlSettings, validateSettings } from './settings.ts';

/** An identity provider as the sign-in code uses it: settings parsed, secret still sealed. */
export interface Provider {
  readonly id: string;
  readonly tenantId: string;
  readonly tenantName: string;
  readonly name: string;
  readonly kind: IdpKind;
  readonly settings: OidcSettings | LdapSettings | SamlSettings;
  readonly sealedSecret: Buffer | null;
  readonly console: boolean;
  readonly enabled: boolean;
  readonly stageIds: readonly string[];
}

/** An identity provider as admins see it: never its secret, only whether one is set. */
export interface ProviderView {
  readonly name: string;
  readonly kind: IdpKind;
  readonly enabled: boolean;
  readonly console: boolean;
  readonly stages: readonly string[];
  readonly settings: Record<string, unknown>;
  readonly secretSet: boolean;
  readonly createdAt: string;
  readonly mappings: readonly MappingView[];
}

export interface MappingView {
  readonly id: string;
  readonly group: string;
  readonly kind: 'role' | 'app-role';
  readonly role: string;
  readonly stage: string | null;
  readonly app: string | null;
}

const secretAad = (id: string) => `accord/idp/${id}`;

/** Seals a provider's client secret or bind password under the IAM key, bound to the provider. */
export const sealSecret = (key: IamKey, id: string, secret: string): Buffer => key.seal('idp-secret', Buffer.from(secret, 'utf8'), secretAad(id));

/** The clear secret of a provider, for the one request that needs it. */
export function openSecret(key: IamKey, p: Provider): string | undefined {
  if (!p.sealedSecret) return undefined;
  return key.open('idp-secret', p.sealedSecret, secretAad(p.id)).toString('utf8');
}

const isUniqueViolation = (err: unknown): boolean => (err as { code?: string })?.code === '23505';

async function stageIdsByName(trx: DbOrTrx, scope: TenantScope, names: readonly string[]): Promise<Map<string, string>> {
  if (names.length === 0) return new Map();
  const rows = await trx.selectFrom('accord.stages').select(['id', 'name']).where('tenant_id', '=', scope.tenantId).where('name', 'in', [...names]).execute();
  const byName = new Map<string, string>(rows.map((r) => [r.name, r.id]));
  const missing = names.filter((n) => !byName.has(n));
  if (missing.length > 0) throw new AccordError('TENANCY_STAGE_NOT_FOUND', { details: { tenant: scope.tenantName, stage: missing[0] as string } });
  return byName;
}

/**
 * Adds an identity provider to a tenant, attached to the console and/or to stages. Settings are
 * validated first (nothing is stored for settings that cannot work); the secret is sealed.
 */
export async function addProvider(
  db: Db,
  key: IamKey,
  source: AuditSource,
  scope: TenantScope,
  input: { name: string; kind: IdpKind; settings: unknown; secret?: string | undefined; console?: boolean | undefined; stages?: readonly string[] | undefined },
): Promise<ProviderView> {
  const settings = validateSettings(input.kind, input.settings);
  if (input.kind === 'oidc' && !input.secret) {
    // Confidential clients only: the platform is a server and can keep a secret.
    throw new AccordError('IAM_IDP_INVALID', { message: 'Invalid identity provider settings: an OIDC provider needs a client secret.', details: { reason: 'client secret missing' } });
  }
  if (input.kind === 'ldap' && (settings as LdapSettings).bindDn && !input.secret) {
    throw new AccordError('IAM_IDP_INVALID', { message: 'Invalid identity provider settings: bindDn needs a bind password.', details: { reason: 'bind password missing' } });
  }
  try {
    await unitOfWork(db, source, async ({ trx, audit }) => {
      const stages = await stageIdsByName(trx, scope, input.stages ?? []);
      const row = await trx
        .insertInto('accord.identity_providers')
        .values({ tenant_id: scope.tenantId, name: input.name, kind: input.kind, settings: JSON.stringify(settings), console: input.console ?? false })
        .returning('id')
        .executeTakeFirstOrThrow();
      if (input.secret) {
        await trx.updateTable('accord.identity_providers').set({ sealed_secret: sealSecret(key, row.id, input.secret) }).where('id', '=', row.id).execute();
      }
      for (const stageId of stages.values()) await trx.insertInto('accord.identity_provider_stages').values({ idp_id: row.id, stage_id: stageId }).execute();
      await audit({
        tenantId: scope.tenantId,
        action: 'idp.added',
        target: { type: 'identity-provider', id: row.id },
        outcome: 'success',
        details: { name: input.name, kind: input.kind, console: input.console ?? false, stages: [...stages.keys()], settings: publicSettings(settings as Record<string, unknown>) },
      });
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw new AccordError('IAM_IDP_EXISTS', { details: { name: input.name }, cause: err });
    throw err;
  }
  return (await listProviders(db, scope)).find((p) => p.name === input.name) as ProviderView;
}

/** A tenant's identity providers with attachments and mappings. */
export async function listProviders(db: DbOrTrx, scope: TenantScope): Promise<ProviderView[]> {
  const rows = await db.selectFrom('accord.identity_providers').selectAll().where('tenant_id', '=', scope.tenantId).orderBy('name').execute();
  if (rows.length === 0) return [];
  const ids = rows.map((r) => r.id);
  const stages = await db
    .selectFrom('accord.identity_provider_stages as a')
    .innerJoin('accord.stages as s', 's.id', 'a.stage_id')
    .select(['a.idp_id', 's.name', 's.position'])
    .where('a.idp_id', 'in', ids)
    .orderBy('s.position')
    .execute();
  const maps = await mappingRows(db, ids);
  return rows.map((r) => ({
    name: r.name,
    kind: r.kind,
    enabled: r.enabled,
    console: r.console,
    stages: stages.filter((s) => s.idp_id === r.id).map((s) => s.name),
    settings: publicSettings(r.settings),
    secretSet: r.sealed_secret !== null,
    createdAt: r.created_at.toISOString(),
    mappings: maps.filter((m) => m.idp_id === r.id).map(({ idp_id: _, ...m }) => m),
  }));
}

async function mappingRows(db: DbOrTrx, ids: readonly string[]) {
  const rows = await db
    .selectFrom('accord.idp_group_mappings as m')
    .leftJoin('accord.stages as s', 's.id', 'm.stage_id')
    .select(['m.id', 'm.idp_id', 'm.group_name', 'm.kind', 'm.role', 's.name as stage', 'm.app'])
    .where('m.idp_id', 'in', [...ids])
    .orderBy('m.group_name')
    .orderBy('m.role')
    .execute();
  return rows.map((r) => ({ id: r.id, idp_id: r.idp_id, group: r.group_name, kind: r.kind, role: r.role, stage: r.stage, app: r.app }));
}

/** The provider of that name in a tenant (any state), or IAM_IDP_NOT_FOUND. */
export async function getProvider(db: DbOrTrx, tenant: { id: string; name: string }, name: string): Promise<Provider> {
  const r = await db.selectFrom('accord.identity_providers').selectAll().where('tenant_id', '=', tenant.id).where('name', '=', name).executeTakeFirst();
  if (!r) throw new AccordError('IAM_IDP_NOT_FOUND', { details: { name } });
  const stages = await db.selectFrom('accord.identity_provider_stages').select('stage_id').where('idp_id', '=', r.id).execute();
  return {
    id: r.id,
    tenantId: r.tenant_id,
    tenantName: tenant.name,
    name: r.name,
    kind: r.kind,
    settings: r.settings as Provider['settings'],
    sealedSecret: r.sealed_secret,
    console: r.console,
    enabled: r.enabled,
    stageIds: stages.map((s) => s.stage_id),
  };
}

/**
 * The provider a sign-in names, only when it is enabled and attached where the sign-in leads
 * (the console, or that stage); otherwise the same not-found answer.
 */
export async function providerFor(db: DbOrTrx, tenant: { id: string; name: string }, name: string, audience: { kind: 'console' } | { kind: 'end-user'; stageId: string }): Promise<Provider> {
  const p = await getProvider(db, tenant, name);
  const attached = audience.kind === 'console' ? p.console : p.stageIds.includes(audience.stageId);
  if (!p.enabled || !attached) throw new AccordError('IAM_IDP_NOT_FOUND', { details: { name } });
  return p;
}

/** Removes a provider: its mappings and the grants they made go with it; its users stay (disabled ones stay disabled). */
export async function removeProvider(db: Db, source: AuditSource, scope: TenantScope, name: string): Promise<void> {
  await unitOfWork(db, source, async ({ trx, audit }) => {
    const p = await getProvider(trx, { id: scope.tenantId, name: scope.tenantName }, name);
    const removed = await trx.deleteFrom('accord.role_grants').where('via_idp', '=', p.id).executeTakeFirst();
    const removedApp = await trx.deleteFrom('accord.app_role_grants').where('via_idp', '=', p.id).executeTakeFirst();
    await trx.deleteFrom('accord.identity_providers').where('id', '=', p.id).execute();
    await audit({
      tenantId: scope.tenantId,
      action: 'idp.removed',
      target: { type: 'identity-provider', id: p.id },
      outcome: 'success',
      details: { name, grantsRemoved: Number(removed.numDeletedRows) + Number(removedApp.numDeletedRows) },
    });
  });
}

/**
 * Adds a group mapping. Whoever maps a group to a role hands that role out to everyone the IdP
 * puts in the group, so they need the same standing as for granting it by hand.
 */
export async function addMapping(
  db: Db,
  actor: AuthContext,
  source: AuditSource,
  scope: TenantScope,
  idpName: string,
  input: { group: string; role?: string | undefined; stage?: string | undefined; app?: string | undefined; appRole?: string | undefined },
): Promise<MappingView> {
  const isApp = input.app !== undefined || input.appRole !== undefined;
  const bad = (reason: string) => new AccordError('IAM_IDP_MAPPING_INVALID', { message: `Invalid group mapping: ${reason}.`, details: { reason } });
  if (isApp) {
    if (!input.app || !input.appRole || !input.stage) throw bad('an app-role mapping needs app, appRole and stage');
    if (input.role) throw bad('give either role or app and appRole');
    if (!new RegExp(APP_NAME).test(input.app) || !new RegExp(APP_ROLE_NAME).test(input.appRole)) throw bad('app or app role name is malformed');
  } else if (!input.role) throw bad('give role, or app and appRole');
  if (input.role === 'platform-operator') throw new AccordError('IAM_GRANT_ESCALATION', { message: 'platform-operator is granted platform-wide only, not from an IdP group.' });
  try {
    return await unitOfWork(db, source, async ({ trx, audit }) => {
      const p = await getProvider(trx, { id: scope.tenantId, name: scope.tenantName }, idpName);
      const stageId = input.stage ? (await stageIdsByName(trx, scope, [input.stage])).get(input.stage) ?? null : null;
      if (isApp) await requireStanding(trx, actor, scope, { appRoleGrant: { stage: input.stage as string } });
      else {
        if (!builtInRole(input.role as string)) {
          const custom = await trx.selectFrom('accord.custom_roles').select('name').where('tenant_id', '=', scope.tenantId).where('name', '=', input.role as string).executeTakeFirst();
          if (!custom) throw bad(`no role ${input.role}`);
        }
        await requireStanding(trx, actor, scope, { role: input.role as string, stage: input.stage });
      }
      const row = await trx
        .insertInto('accord.idp_group_mappings')
        .values({ idp_id: p.id, group_name: input.group, kind: isApp ? 'app-role' : 'role', role: (isApp ? input.appRole : input.role) as string, stage_id: stageId, app: isApp ? (input.app as string) : null })
        .returning('id')
        .executeTakeFirstOrThrow();
      const view: MappingView = { id: row.id, group: input.group, kind: isApp ? 'app-role' : 'role', role: (isApp ? input.appRole : input.role) as string, stage: input.stage ?? null, app: isApp ? (input.app as string) : null };
      await audit({ tenantId: scope.tenantId, action: 'idp.mapping.added', target: { type: 'identity-provider', id: p.id }, outcome: 'success', details: { idp: idpName, ...view } });
      return view;
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw bad('this mapping exists already');
    throw err;
  }
}

/** Removes a mapping; the grants it made go at the next sign-in or re-sync of each user. */
export async function removeMapping(db: Db, actor: AuthContext, source: AuditSource, scope: TenantScope, idpName: string, mappingId: string): Promise<void> {
  await unitOfWork(db, source, async ({ trx, audit }) => {
    const p = await getProvider(trx, { id: scope.tenantId, name: scope.tenantName }, idpName);
    const m = await trx.selectFrom('accord.idp_group_mappings as m').leftJoin('accord.stages as s', 's.id', 'm.stage_id').select(['m.id', 'm.kind', 'm.role', 's.name as stage']).where('m.idp_id', '=', p.id).where('m.id', '=', mappingId).executeTakeFirst();
    if (!m) throw new AccordError('IAM_IDP_MAPPING_INVALID', { message: 'Invalid group mapping: no such mapping.', details: { reason: 'no such mapping' } });
    if (m.kind === 'app-role') await requireStanding(trx, actor, scope, { appRoleGrant: { stage: m.stage as string } });
    else await requireStanding(trx, actor, scope, { role: m.role, stage: m.stage });
    await trx.deleteFrom('accord.idp_group_mappings').where('id', '=', m.id).execute();
    await audit({ tenantId: scope.tenantId, action: 'idp.mapping.removed', target: { type: 'identity-provider', id: p.id }, outcome: 'success', details: { idp: idpName, mapping: m.id } });
  });
}

/**
 * Turns password sign-in off (or on again) for a tenant's console users or one stage's end
 * users. Off only where an enabled provider is attached: nobody is locked out by accident.
 * Platform operators (the platform directory) are never affected.
 */
export async function setBuiltinSignIn(db: Db, source: AuditSource, scope: TenantScope, input: { stage?: { id: string; name: string } | undefined; disabled: boolean }): Promise<void> {
  await unitOfWork(db, source, async ({ trx, audit }) => {
    if (input.disabled) {
      let q = trx.selectFrom('accord.identity_providers as p').select('p.id').where('p.tenant_id', '=', scope.tenantId).where('p.enabled', '=', true);
      q = input.stage
        ? q.where((eb) => eb.exists(eb.selectFrom('accord.identity_provider_stages as a').select('a.idp_id').whereRef('a.idp_id', '=', 'p.id').where('a.stage_id', '=', (input.stage as { id: string }).id)))
        : q.where('p.console', '=', true);
      if (!(await q.limit(1).executeTakeFirst())) throw new AccordError('IAM_BUILTIN_SIGN_IN_DISABLED');
    }
    if (input.stage) await trx.updateTable('accord.stages').set({ builtin_sign_in_disabled: input.disabled }).where('id', '=', input.stage.id).execute();
    else await trx.updateTable('accord.tenants').set({ builtin_sign_in_disabled: input.disabled }).where('id', '=', scope.tenantId).execute();
    await audit({
      tenantId: scope.tenantId,
      action: input.disabled ? 'idp.builtin.disabled' : 'idp.builtin.enabled',
      target: input.stage ? { type: 'stage', id: input.stage.id } : { type: 'tenant', id: scope.tenantId },
      outcome: 'success',
      details: { stage: input.stage?.name ?? null },
    });
  });
}

/** Whether password sign-in is off for this user's directory at this audience. */
export async function builtinSignInDisabled(trx: Trx | Db, tenantId: string | null, stageId: string | null): Promise<boolean> {
  if (tenantId === null) return false;
  if (stageId) return (await trx.selectFrom('accord.stages').select('builtin_sign_in_disabled').where('id', '=', stageId).executeTakeFirst())?.builtin_sign_in_disabled ?? false;
  return (await trx.selectFrom('accord.tenants').select('builtin_sign_in_disabled').where('id', '=', tenantId).executeTakeFirst())?.builtin_sign_in_disabled ?? false;
}
