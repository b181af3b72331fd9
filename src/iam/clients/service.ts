import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import type { AuditSource } from '../../audit-chain/index.ts';
import type { Db, DbOrTrx, Trx } from '../../db/index.ts';
import { AccordError } from '../../errors/index.ts';
import type { AuthContext } from '../../http/index.ts';
import { unitOfWork } from '../../kernel/index.ts';
import { listStages } from '../../tenancy/index.ts';
import { parseDuration } from '../../config/index.ts';
import { newToken } from '../sessions/tokens.ts';
import { requireStanding, type TenantScope } from '../users/standing.ts';

/** A client name: lower case, digits and hyphens, starting with a letter, 2 to 63 characters. */
export const CLIENT_NAME_PATTERN = '^[a-z][a-z0-9-]{1,62}$';

const HOUR = 3600;
const DAY = 86400;
/** Bounds and defaults, in seconds. */
export const CLIENT_LIMITS = Object.freeze({
  expiresInDefault: 90 * DAY,
  expiresInMin: HOUR,
  expiresInMax: 2 * 365 * DAY,
  overlapDefault: DAY,
  overlapMax: 30 * DAY,
  maxGrants: 20,
});

const isUniqueViolation = (err: unknown): boolean => (err as { code?: string })?.code === '23505';

/**
 * A duration from the API (`90d`, `24h`, a bare number of seconds) checked against bounds;
 * IAM_EXPIRY_INVALID when malformed or out of bounds.
 */
export function boundedDuration(text: string | undefined, field: string, bounds: { fallback: number; min: number; max: number }): number {
  if (text === undefined) return bounds.fallback;
  const seconds = parseDuration(text);
  if (seconds === undefined || seconds < bounds.min || seconds > bounds.max) {
    throw new AccordError('IAM_EXPIRY_INVALID', {
      message: `${field} must be a duration such as 90d, 12h or 30m, between ${bounds.min} and ${bounds.max} seconds.`,
      details: { field, min: bounds.min, max: bounds.max },
    });
  }
  return seconds;
}

/** The public identifier of a client at /oauth/token: `acl_` and 128 random bits. */
export function newClientId(): string {
  return `acl_${randomBytes(16).toString('base64url')}`;
}

/** One grant of an API client: a role on the tenant, or on one of its stages. */
export interface ClientGrant {
  readonly role: string;
  readonly stage: string | null;
}

/** An API client as admins see it. Never any secret, not even its hash. */
export interface ClientView {
  readonly name: string;
  readonly clientId: string;
  readonly createdAt: string;
  readonly expiresAt: string;
  readonly revokedAt: string | null;
  readonly lastUsedAt: string | null;
  readonly grants: readonly ClientGrant[];
  readonly secrets: readonly { id: string; createdAt: string; expiresAt: string; revoked: boolean }[];
}

/** What creating a client or rotating its secret hands back: the secret, this once. */
export interface IssuedClientSecret {
  readonly name: string;
  readonly clientId: string;
  readonly clientSecret: string;
  /** When the new secret expires. */
  readonly expiresAt: string;
  readonly grants: readonly ClientGrant[];
}

async function clientGrants(db: DbOrTrx, clientIds: readonly string[]) {
  if (clientIds.length === 0) return [];
  return db
    .selectFrom('accord.role_grants as g')
    .leftJoin('accord.stages as s', 's.id', 'g.stage_id')
    .select(['g.client_id', 'g.role', 's.name as stage'])
    .where('g.client_id', 'in', [...clientIds])
    .orderBy('g.role')
    .orderBy('s.name')
    .execute();
}

async function views(db: DbOrTrx, scope: TenantScope, name?: string): Promise<ClientView[]> {
  let q = db
    .selectFrom('accord.api_clients')
    .select(['id', 'name', 'client_id', 'created_at', 'expires_at', 'revoked_at', 'last_used_at'])
    .where('tenant_id', '=', scope.tenantId)
    .orderBy('name');
  if (name !== undefined) q = q.where('name', '=', name);
  const clients = await q.execute();
  const ids = clients.map((c) => c.id);
  const grants = await clientGrants(db, ids);
  const secrets =
    ids.length === 0
      ? []
      : await db
          .selectFrom('accord.api_client_secrets')
          .select(['id', 'client_id', 'created_at', 'expires_at', 'revoked_at'])
          .where('client_id', 'in', ids)
          .orderBy('created_at', 'desc')
          .orderBy('id')
          .execute();
  return clients.map((c) => ({
    name: c.name,
    clientId: c.client_id,
    createdAt: c.created_at.toISOString(),
    expiresAt: c.expires_at.toISOString(),
    revokedAt: c.revoked_at?.toISOString() ?? null,
    lastUsedAt: c.last_used_at?.toISOString() ?? null,
    grants: grants.filter((g) => g.client_id === c.id).map((g) => ({ role: g.role, stage: g.stage })),
    secrets: secrets
      .filter((s) => s.client_id === c.id)
      .map((s) => ({ id: s.id, createdAt: s.created_at.toISOString(), expiresAt: s.expires_at.toISOString(), revoked: s.revoked_at !== null })),
  }));
}

/** The tenant's API clients (revoked ones too), by name. */
export function listClients(db: DbOrTrx, scope: TenantScope): Promise<ClientView[]> {
  return views(db, scope);
}

/** One API client of the tenant; IAM_CLIENT_NOT_FOUND when there is none by that name. */
export async function getClient(db: DbOrTrx, scope: TenantScope, name: string): Promise<ClientView> {
  const [view] = await views(db, scope, name);
  if (!view) throw new AccordError('IAM_CLIENT_NOT_FOUND', { details: { name } });
  return view;
}

/**
 * Creates an API client with its first secret and its grants. The creator must hold every
 * permission of each role on its scope, as for granting a role to a user: a client can never do
 * more than the person who made it. A revoked client of the same name is replaced (its history
 * stays in the audit trail); a live one is IAM_CLIENT_EXISTS.
 */
export async function createClient(
  db: Db,
  actor: AuthContext,
  source: AuditSource,
  scope: TenantScope,
  input: { name: string; grants: readonly { role: string; stage?: string | undefined }[]; expiresIn?: string | undefined },
  now = new Date(),
): Promise<IssuedClientSecret> {
  const seconds = boundedDuration(input.expiresIn, 'expiresIn', { fallback: CLIENT_LIMITS.expiresInDefault, min: CLIENT_LIMITS.expiresInMin, max: CLIENT_LIMITS.expiresInMax });
  const expiresAt = new Date(now.getTime() + seconds * 1000);
  try {
    return await unitOfWork(db, source, async ({ trx, audit }) => {
      const stages = await listStages(trx, scope.tenantId);
      const wanted = new Map<string, { role: string; stage: { id: string; name: string } | null }>();
      for (const g of input.grants) {
        if (g.role === 'platform-operator') throw new AccordError('IAM_GRANT_ESCALATION', { message: 'platform-operator is granted platform-wide only, not to an API client.' });
        const stage = g.stage === undefined ? null : stages.find((s) => s.name === g.stage);
        if (stage === undefined) throw new AccordError('TENANCY_STAGE_NOT_FOUND', { details: { tenant: scope.tenantName, stage: g.stage ?? '' } });
        await requireStanding(trx, actor, scope, { role: g.role, stage: stage?.name });
        wanted.set(`${g.role}\u0000${stage?.name ?? ''}`, { role: g.role, stage: stage ? { id: stage.id, name: stage.name } : null });
      }
      const replaced = await trx.deleteFrom('accord.api_clients').where('tenant_id', '=', scope.tenantId).where('name', '=', input.name).where('revoked_at', 'is not', null).executeTakeFirst();
      const createdBy = actor.kind === 'user' ? actor.principalId : null;
      const client = await trx
        .insertInto('accord.api_clients')
        .values({ tenant_id: scope.tenantId, name: input.name, client_id: newClientId(), created_by: createdBy, expires_at: expiresAt })
        .returning(['id', 'client_id'])
        .executeTakeFirstOrThrow();
      const secret = newToken('acs');
      await trx.insertInto('accord.api_client_secrets').values({ client_id: client.id, secret_hash: secret.hash, expires_at: expiresAt }).execute();
      const grants = [...wanted.values()];
      await trx
        .insertInto('accord.role_grants')
        .values(grants.map((g) => ({ user_id: null, client_id: client.id, role: g.role, tenant_id: scope.tenantId, stage_id: g.stage?.id ?? null, granted_by: createdBy })))
        .execute();
      const granted = grants.map((g) => ({ role: g.role, stage: g.stage?.name ?? null }));
      await audit({
        tenantId: scope.tenantId,
        action: 'client.created',
        target: { type: 'client', id: client.id },
        outcome: 'success',
        details: { name: input.name, clientId: client.client_id, grants: granted, expiresAt: expiresAt.toISOString(), ...(Number(replaced.numDeletedRows) > 0 ? { replacedRevoked: true } : {}) },
      });
      return { name: input.name, clientId: client.client_id, clientSecret: secret.token, expiresAt: expiresAt.toISOString(), grants: granted };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw new AccordError('IAM_CLIENT_EXISTS', { details: { name: input.name }, cause: err });
    throw err;
  }
}

/** The client row, locked for a change; a revoked client is gone as far as changes go. */
async function lockedClient(trx: Trx, scope: TenantScope, name: string, opts: { allowRevoked?: boolean } = {}) {
  const row = await trx
    .selectFrom('accord.api_clients')
    .select(['id', 'name', 'client_id', 'revoked_at'])
    .where('tenant_id', '=', scope.tenantId)
    .where('name', '=', name)
    .forUpdate()
    .executeTakeFirst();
  if (!row) throw new AccordError('IAM_CLIENT_NOT_FOUND', { details: { name } });
  if (row.revoked_at !== null && !opts.allowRevoked) throw new AccordError('IAM_CLIENT_NOT_FOUND', { message: 'The API client is revoked; create a new one.', details: { name, revoked: true } });
  return row;
}

/**
 * Issues a new secret (shown once) and shortens the client's other live secrets to end at most
 * `overlap` from now, so deployments can switch over without an outage.
 */
export async function rotateClientSecret(
  db: Db,
  actor: AuthContext,
  source: AuditSource,
  scope: TenantScope,
  name: string,
  input: { overlap?: string | undefined; expiresIn?: string | undefined },
  now = new Date(),
): Promise<IssuedClientSecret & { previousSecrets: { id: string; expiresAt: string }[] }> {
  const overlap = boundedDuration(input.overlap, 'overlap', { fallback: CLIENT_LIMITS.overlapDefault, min: 0, max: CLIENT_LIMITS.overlapMax });
  const seconds = boundedDuration(input.expiresIn, 'expiresIn', { fallback: CLIENT_LIMITS.expiresInDefault, min: CLIENT_LIMITS.expiresInMin, max: CLIENT_LIMITS.expiresInMax });
  const expiresAt = new Date(now.getTime() + seconds * 1000);
  const cutoff = new Date(now.getTime() + overlap * 1000);
  return unitOfWork(db, source, async ({ trx, audit }) => {
    const client = await lockedClient(trx, scope, name);
    // Rotating hands out a secret carrying the client's powers: only for someone holding them all.
    await requireStanding(trx, actor, scope, { client: client.id });
    const previous = await trx
      .updateTable('accord.api_client_secrets')
      .set({ expires_at: sql<Date>`least(expires_at, ${cutoff})` })
      .where('client_id', '=', client.id)
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', now)
      .returning(['id', 'expires_at'])
      .execute();
    const secret = newToken('acs');
    const inserted = await trx
      .insertInto('accord.api_client_secrets')
      .values({ client_id: client.id, secret_hash: secret.hash, expires_at: expiresAt })
      .returning('id')
      .executeTakeFirstOrThrow();
    // The client lives as long as its longest-lived secret (normally the new one).
    const clientExpiry = new Date(Math.max(expiresAt.getTime(), ...previous.map((p) => p.expires_at.getTime())));
    await trx.updateTable('accord.api_clients').set({ expires_at: clientExpiry }).where('id', '=', client.id).execute();
    const previousSecrets = previous.map((p) => ({ id: p.id, expiresAt: p.expires_at.toISOString() }));
    await audit({
      tenantId: scope.tenantId,
      action: 'client.secret.rotated',
      target: { type: 'client', id: client.id },
      outcome: 'success',
      details: { name, secretId: inserted.id, expiresAt: expiresAt.toISOString(), overlapSeconds: overlap, previousSecrets },
    });
    const grants = (await clientGrants(trx, [client.id])).map((g) => ({ role: g.role, stage: g.stage }));
    return { name, clientId: client.client_id, clientSecret: secret.token, expiresAt: expiresAt.toISOString(), grants, previousSecrets };
  });
}

/**
 * Revokes a client and all its secrets. Its access tokens stop working at their next request
 * (the authenticator reads the client on every request). Revoking a revoked client changes
 * nothing; returns whether this call revoked it.
 */
export async function revokeClient(db: Db, actor: AuthContext, source: AuditSource, scope: TenantScope, name: string, now = new Date()): Promise<boolean> {
  return unitOfWork(db, source, async ({ trx, audit }) => {
    const client = await lockedClient(trx, scope, name, { allowRevoked: true });
    if (client.revoked_at !== null) return false;
    await requireStanding(trx, actor, scope, { client: client.id });
    await trx.updateTable('accord.api_clients').set({ revoked_at: now }).where('id', '=', client.id).execute();
    const secrets = await trx.updateTable('accord.api_client_secrets').set({ revoked_at: now }).where('client_id', '=', client.id).where('revoked_at', 'is', null).executeTakeFirst();
    await audit({
      tenantId: scope.tenantId,
      action: 'client.revoked',
      target: { type: 'client', id: client.id },
      outcome: 'success',
      details: { name, clientId: client.client_id, secretsRevoked: Number(secrets.numUpdatedRows) },
    });
    return true;
  });
}
