import type { Selectable } from 'kysely';
import type { AuditSource } from '../../audit-chain/index.ts';
import type { AccessReviewItemsTable, Db, DbOrTrx } from '../../db/index.ts';
import { AccordError } from '../../errors/index.ts';
import type { AuthContext } from '../../http/index.ts';
import { unitOfWork, type Work } from '../../kernel/index.ts';
import { requireStanding, type TenantScope } from '../users/standing.ts';

/** Who holds a grant: a console user or an API client of the tenant. */
export interface PrincipalView {
  readonly type: 'user' | 'client';
  readonly id: string;
  /** Email of a user, name of an API client. */
  readonly label: string;
  /** Users: active, disabled or invited. Clients: active, expired or revoked. */
  readonly status: string;
}

/** One grant on a tenant as an access review lists it. */
export interface GrantEntry {
  readonly id: string;
  readonly kind: 'role' | 'app-role';
  readonly principal: PrincipalView;
  readonly role: string;
  /** The app of an app-role grant; null for a role grant. */
  readonly app: string | null;
  /** null: a role grant on the whole tenant. */
  readonly stage: string | null;
  readonly grantedAt: string;
  /** Email of the user who granted it; null when unknown (granted at setup or by a client, or that user is gone). */
  readonly grantedBy: string | null;
  /** null: never used since last-use tracking began. */
  readonly lastUsedAt: string | null;
}

export interface ReviewCounts {
  readonly items: number;
  readonly confirmed: number;
  readonly revoked: number;
  readonly undecided: number;
}

export interface ReviewView {
  readonly id: string;
  readonly name: string;
  readonly startedBy: string;
  readonly startedAt: string;
  readonly closedAt: string | null;
  readonly closedBy: string | null;
  readonly counts: ReviewCounts;
}

export interface ReviewItemView {
  readonly id: string;
  readonly kind: 'role' | 'app-role';
  readonly grantId: string;
  readonly principal: { readonly type: 'user' | 'client'; readonly id: string; readonly label: string };
  readonly role: string;
  readonly app: string | null;
  readonly stage: string | null;
  readonly lastUsedAt: string | null;
  readonly decision: 'confirm' | 'revoke' | null;
  readonly decidedBy: string | null;
  readonly decidedAt: string | null;
  readonly note: string | null;
}

const iso = (d: Date | null): string | null => d?.toISOString() ?? null;

function clientStatus(c: { revoked_at: Date | null; expires_at: Date }, now: Date): string {
  if (c.revoked_at !== null) return 'revoked';
  return c.expires_at <= now ? 'expired' : 'active';
}

/**
 * Every grant on a tenant: role grants of its users and of its API clients (tenant-wide or on
 * one stage) and app-role grants, with who granted them and when they were last used.
 * Platform-wide grants are not on any tenant and are not listed. Flush pending last-use notes
 * first (GrantUsage.flush) for an up-to-date `lastUsedAt`.
 */
export async function listTenantGrants(db: DbOrTrx, tenantId: string, now = new Date()): Promise<GrantEntry[]> {
  const roleRows = await db
    .selectFrom('accord.role_grants as g')
    .leftJoin('accord.users as u', 'u.id', 'g.user_id')
    .leftJoin('accord.api_clients as c', 'c.id', 'g.client_id')
    .leftJoin('accord.stages as s', 's.id', 'g.stage_id')
    .leftJoin('accord.users as by', 'by.id', 'g.granted_by')
    .select([
      'g.id',
      'g.role',
      'g.user_id',
      'g.client_id',
      'g.created_at',
      'g.last_used_at',
      'u.email',
      'u.status',
      'c.name as client_name',
      'c.revoked_at',
      'c.expires_at',
      's.name as stage',
      'by.email as granted_by',
    ])
    .where('g.tenant_id', '=', tenantId)
    .execute();
  const appRows = await db
    .selectFrom('accord.app_role_grants as a')
    .leftJoin('accord.users as u', 'u.id', 'a.user_id')
    .leftJoin('accord.api_clients as c', 'c.id', 'a.client_id')
    .innerJoin('accord.stages as s', 's.id', 'a.stage_id')
    .leftJoin('accord.users as by', 'by.id', 'a.granted_by')
    .select(['a.id', 'a.app', 'a.role', 'a.created_at', 'a.last_used_at', 'u.id as user_id', 'u.email', 'u.status', 'a.client_id', 'c.name as client_name', 'c.revoked_at', 'c.expires_at', 's.name as stage', 'by.email as granted_by'])
    .where('a.tenant_id', '=', tenantId)
    .execute();
  const entries: GrantEntry[] = [];
  for (const r of roleRows) {
    let principal: PrincipalView;
    if (r.user_id !== null) principal = { type: 'user', id: r.user_id, label: r.email ?? '', status: r.status ?? 'active' };
    else if (r.client_id !== null && r.expires_at !== null) {
      principal = { type: 'client', id: r.client_id, label: r.client_name ?? '', status: clientStatus({ revoked_at: r.revoked_at, expires_at: r.expires_at }, now) };
    } else continue;
    entries.push({
      id: r.id,
      kind: 'role',
      principal,
      role: r.role,
      app: null,
      stage: r.stage,
      grantedAt: r.created_at.toISOString(),
      grantedBy: r.granted_by,
      lastUsedAt: iso(r.last_used_at),
    });
  }
  for (const r of appRows) {
    let principal: PrincipalView;
    if (r.user_id !== null) principal = { type: 'user', id: r.user_id, label: r.email ?? '', status: r.status ?? 'active' };
    else if (r.client_id !== null && r.expires_at !== null) {
      principal = { type: 'client', id: r.client_id, label: r.client_name ?? '', status: clientStatus({ revoked_at: r.revoked_at, expires_at: r.expires_at }, now) };
    } else continue;
    entries.push({
      id: r.id,
      kind: 'app-role',
      principal,
      role: r.role,
      app: r.app,
      stage: r.stage,
      grantedAt: r.created_at.toISOString(),
      grantedBy: r.granted_by,
      lastUsedAt: iso(r.last_used_at),
    });
  }
  const key = (e: GrantEntry) => `${e.principal.type}\u0000${e.principal.label}\u0000${e.kind}\u0000${e.app ?? ''}\u0000${e.role}\u0000${e.stage ?? ''}`;
  return entries.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

async function countsOf(db: DbOrTrx, reviewIds: readonly string[]): Promise<Map<string, ReviewCounts>> {
  const out = new Map<string, ReviewCounts>();
  if (reviewIds.length === 0) return out;
  const rows = await db
    .selectFrom('accord.access_review_items')
    .select((eb) => ['review_id', 'decision', eb.fn.countAll<string>().as('n')])
    .where('review_id', 'in', reviewIds)
    .groupBy(['review_id', 'decision'])
    .execute();
  for (const id of reviewIds) {
    const mine = rows.filter((r) => r.review_id === id);
    const n = (d: string | null) => Number(mine.find((r) => r.decision === d)?.n ?? 0);
    const confirmed = n('confirm');
    const revoked = n('revoke');
    const undecided = n(null);
    out.set(id, { items: confirmed + revoked + undecided, confirmed, revoked, undecided });
  }
  return out;
}

type ReviewRow = { id: string; name: string; started_by: string; started_at: Date; closed_at: Date | null; closed_by: string | null };

function reviewView(r: ReviewRow, counts: ReviewCounts | undefined): ReviewView {
  return {
    id: r.id,
    name: r.name,
    startedBy: r.started_by,
    startedAt: r.started_at.toISOString(),
    closedAt: iso(r.closed_at),
    closedBy: r.closed_by,
    counts: counts ?? { items: 0, confirmed: 0, revoked: 0, undecided: 0 },
  };
}

/**
 * Starts an access review campaign: every grant on the tenant at this moment becomes an item
 * awaiting a decision. Later grants are not added; a later campaign picks them up.
 */
export async function startReview(db: Db, actor: AuthContext, source: AuditSource, scope: TenantScope, name: string): Promise<ReviewView> {
  return unitOfWork(db, source, async ({ trx, audit }) => {
    const grants = await listTenantGrants(trx, scope.tenantId);
    const review = await trx
      .insertInto('accord.access_reviews')
      .values({ tenant_id: scope.tenantId, name, started_by: actor.label, closed_at: null, closed_by: null })
      .returning(['id', 'name', 'started_by', 'started_at', 'closed_at', 'closed_by'])
      .executeTakeFirstOrThrow();
    if (grants.length > 0) {
      await trx
        .insertInto('accord.access_review_items')
        .values(
          grants.map((g) => ({
            review_id: review.id,
            kind: g.kind,
            grant_id: g.id,
            principal_type: g.principal.type,
            principal_id: g.principal.id,
            principal_label: g.principal.label,
            role: g.role,
            app: g.app,
            stage: g.stage,
            last_used_at: g.lastUsedAt === null ? null : new Date(g.lastUsedAt),
            decision: null,
            decided_by: null,
            decided_at: null,
            note: null,
          })),
        )
        .execute();
    }
    await audit({
      tenantId: scope.tenantId,
      action: 'access.review.started',
      target: { type: 'access-review', id: review.id },
      outcome: 'success',
      details: { name, items: grants.length },
    });
    return reviewView(review, { items: grants.length, confirmed: 0, revoked: 0, undecided: grants.length });
  });
}

/** The tenant's review campaigns, newest first, with their decision counts. */
export async function listReviews(db: DbOrTrx, scope: TenantScope): Promise<ReviewView[]> {
  const rows = await db
    .selectFrom('accord.access_reviews')
    .select(['id', 'name', 'started_by', 'started_at', 'closed_at', 'closed_by'])
    .where('tenant_id', '=', scope.tenantId)
    .orderBy('started_at', 'desc')
    .orderBy('id')
    .execute();
  const counts = await countsOf(db, rows.map((r) => r.id));
  return rows.map((r) => reviewView(r, counts.get(r.id)));
}

async function reviewRow(db: DbOrTrx, scope: TenantScope, id: string, lock = false): Promise<ReviewRow> {
  let q = db.selectFrom('accord.access_reviews').select(['id', 'name', 'started_by', 'started_at', 'closed_at', 'closed_by']).where('tenant_id', '=', scope.tenantId).where('id', '=', id);
  if (lock) q = q.forUpdate();
  const row = await q.executeTakeFirst();
  if (!row) throw new AccordError('IAM_REVIEW_NOT_FOUND', { details: { review: id } });
  return row;
}

/** A review item as stored (its review is known to the caller). */
type ItemRow = Omit<Selectable<AccessReviewItemsTable>, 'review_id'>;

const ITEM_COLUMNS = ['id', 'kind', 'grant_id', 'principal_type', 'principal_id', 'principal_label', 'role', 'app', 'stage', 'last_used_at', 'decision', 'decided_by', 'decided_at', 'note'] as const;

function itemView(r: ItemRow): ReviewItemView {
  return {
    id: r.id,
    kind: r.kind,
    grantId: r.grant_id,
    principal: { type: r.principal_type, id: r.principal_id, label: r.principal_label },
    role: r.role,
    app: r.app,
    stage: r.stage,
    lastUsedAt: iso(r.last_used_at),
    decision: r.decision,
    decidedBy: r.decided_by,
    decidedAt: iso(r.decided_at),
    note: r.note,
  };
}

/** A campaign with every item and its decision: who decided what, when, and why. */
export async function getReview(db: DbOrTrx, scope: TenantScope, id: string): Promise<ReviewView & { items: ReviewItemView[] }> {
  const review = await reviewRow(db, scope, id);
  const items = await db.selectFrom('accord.access_review_items').select(ITEM_COLUMNS).where('review_id', '=', id).orderBy('principal_label').orderBy('kind').orderBy('role').orderBy('id').execute();
  const counts = await countsOf(db, [id]);
  return { ...reviewView(review, counts.get(id)), items: items.map(itemView) };
}

const GONE_NOTE = 'The grant no longer existed when the decision was recorded.';

/** Deletes a role grant for a review; false when it is already gone. */
async function revokeRoleGrant({ trx, audit }: Work, actor: AuthContext, scope: TenantScope, item: ItemRow, reviewId: string): Promise<boolean> {
  const grant = await trx
    .selectFrom('accord.role_grants as g')
    .leftJoin('accord.stages as s', 's.id', 'g.stage_id')
    .select(['g.id', 'g.role', 'g.user_id', 'g.client_id', 's.name as stage'])
    .where('g.id', '=', item.grant_id)
    .where('g.tenant_id', '=', scope.tenantId)
    .forUpdate('g')
    .executeTakeFirst();
  if (!grant) return false;
  // The reviewer needs the same standing as anyone revoking this grant. A grant of a custom role
  // deleted since carries nothing: anyone reviewing may remove it.
  await requireStanding(trx, actor, scope, { grant: { role: grant.role, stage: grant.stage } });
  await trx.deleteFrom('accord.role_grants').where('id', '=', grant.id).execute();
  await audit({
    tenantId: scope.tenantId,
    action: 'role.revoked',
    target: grant.user_id !== null ? { type: 'user', id: grant.user_id } : { type: 'client', id: grant.client_id ?? item.principal_id },
    outcome: 'success',
    details: { role: grant.role, stage: grant.stage, accessReview: reviewId },
  });
  return true;
}

/** Deletes an app-role grant for a review (needs user:manage on its stage); false when already gone. */
async function revokeAppRoleGrant({ trx, audit }: Work, actor: AuthContext, scope: TenantScope, item: ItemRow, reviewId: string): Promise<boolean> {
  const grant = await trx
    .selectFrom('accord.app_role_grants as a')
    .innerJoin('accord.stages as s', 's.id', 'a.stage_id')
    .select(['a.id', 'a.app', 'a.role', 'a.user_id', 'a.client_id', 's.name as stage'])
    .where('a.id', '=', item.grant_id)
    .where('a.tenant_id', '=', scope.tenantId)
    .forUpdate('a')
    .executeTakeFirst();
  if (!grant) return false;
  await requireStanding(trx, actor, scope, { appRoleGrant: { stage: grant.stage } });
  await trx.deleteFrom('accord.app_role_grants').where('id', '=', grant.id).execute();
  await audit({
    tenantId: scope.tenantId,
    action: 'app-role.revoked',
    target: grant.user_id !== null ? { type: 'user', id: grant.user_id } : { type: 'client', id: grant.client_id ?? item.principal_id },
    outcome: 'success',
    details: { app: grant.app, role: grant.role, stage: grant.stage, accessReview: reviewId },
  });
  return true;
}

/**
 * Records a reviewer's decision on one item. Revoking deletes the grant at once (the reviewer
 * needs the standing to revoke it). A grant already gone is recorded as revoked with a note,
 * whatever was asked: the evidence must say what is true. Decisions are final.
 */
export async function decideItem(
  db: Db,
  actor: AuthContext,
  source: AuditSource,
  scope: TenantScope,
  input: { reviewId: string; itemId: string; decision: 'confirm' | 'revoke'; note?: string | undefined },
  now = new Date(),
): Promise<ReviewItemView> {
  return unitOfWork(db, source, async (w) => {
    const { trx, audit } = w;
    const review = await reviewRow(trx, scope, input.reviewId, true);
    if (review.closed_at !== null) throw new AccordError('IAM_REVIEW_CLOSED', { details: { review: review.id } });
    const item = await trx.selectFrom('accord.access_review_items').select(ITEM_COLUMNS).where('id', '=', input.itemId).where('review_id', '=', review.id).forUpdate().executeTakeFirst();
    if (!item) throw new AccordError('IAM_REVIEW_NOT_FOUND', { details: { review: review.id, item: input.itemId } });
    if (item.decision !== null) throw new AccordError('IAM_REVIEW_ITEM_DECIDED', { details: { item: item.id, decision: item.decision, decidedBy: item.decided_by } });
    let exists: boolean;
    if (input.decision === 'revoke') {
      exists = item.kind === 'role' ? await revokeRoleGrant(w, actor, scope, item, review.id) : await revokeAppRoleGrant(w, actor, scope, item, review.id);
    } else {
      const found =
        item.kind === 'role'
          ? await trx.selectFrom('accord.role_grants').select('id').where('id', '=', item.grant_id).where('tenant_id', '=', scope.tenantId).executeTakeFirst()
          : await trx.selectFrom('accord.app_role_grants').select('id').where('id', '=', item.grant_id).where('tenant_id', '=', scope.tenantId).executeTakeFirst();
      exists = found !== undefined;
    }
    const decision = exists ? input.decision : 'revoke';
    const note = exists ? (input.note ?? null) : [input.note, GONE_NOTE].filter((x) => x).join(' ');
    const decided = await trx
      .updateTable('accord.access_review_items')
      .set({ decision, decided_by: actor.label, decided_at: now, note })
      .where('id', '=', item.id)
      .returning(ITEM_COLUMNS)
      .executeTakeFirstOrThrow();
    await audit({
      tenantId: scope.tenantId,
      action: 'access.review.decided',
      target: { type: 'access-review', id: review.id },
      outcome: 'success',
      details: {
        item: item.id,
        decision,
        ...(exists ? {} : { requested: input.decision, grantGone: true }),
        kind: item.kind,
        grant: item.grant_id,
        principal: { type: item.principal_type, id: item.principal_id, label: item.principal_label },
        role: item.role,
        app: item.app,
        stage: item.stage,
        ...(note === null ? {} : { note }),
      },
    });
    return itemView(decided);
  });
}

/** Closes a campaign: no more decisions. Items left undecided stay so, and are counted. */
export async function closeReview(db: Db, actor: AuthContext, source: AuditSource, scope: TenantScope, id: string, now = new Date()): Promise<ReviewView> {
  return unitOfWork(db, source, async ({ trx, audit }) => {
    const review = await reviewRow(trx, scope, id, true);
    if (review.closed_at !== null) throw new AccordError('IAM_REVIEW_CLOSED', { details: { review: id } });
    const closed = await trx
      .updateTable('accord.access_reviews')
      .set({ closed_at: now, closed_by: actor.label })
      .where('id', '=', id)
      .returning(['id', 'name', 'started_by', 'started_at', 'closed_at', 'closed_by'])
      .executeTakeFirstOrThrow();
    const counts = (await countsOf(trx, [id])).get(id);
    await audit({
      tenantId: scope.tenantId,
      action: 'access.review.closed',
      target: { type: 'access-review', id },
      outcome: 'success',
      details: { name: review.name, ...counts },
    });
    return reviewView(closed, counts);
  });
}
