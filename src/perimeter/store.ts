import { sql } from 'kysely';
import type { AuditSource } from '../audit-chain/index.ts';
import type { Db, DbOrTrx, Trx } from '../db/index.ts';
import { AccordError } from '../errors/index.ts';
import { unitOfWork } from '../kernel/index.ts';
import { addressMatcher } from './address.ts';
import type { RateLimitKind, RateLimitPolicy, RateLimitQuota } from './rate-limit.ts';

/** Where an address rule applies: the control plane (platform-wide) or one stage. */
export type RuleScope = { readonly kind: 'platform' } | { readonly kind: 'stage'; readonly tenantId: string; readonly stageId: string; readonly label: string };

/** One allow or deny rule. */
export interface IpRule {
  readonly id: string;
  readonly action: 'allow' | 'deny';
  readonly cidr: string;
  readonly note: string;
  readonly createdAt: string;
}

/** A stage's own perimeter settings (what it does not set, it takes from the platform). */
export interface StageSettings {
  readonly rateLimits: RateLimitPolicy;
  readonly corsOrigins: readonly string[];
}

const KINDS: readonly RateLimitKind[] = ['ip', 'user', 'client', 'tenant'];
const MAX_RULES = 500;
const MAX_ORIGINS = 50;

/**
 * The canonical spelling of a rule (lower case, no brackets or zone); PERIMETER_RULE_INVALID when
 * it is not an IPv4/IPv6 address or CIDR range.
 */
export function canonicalCidr(input: string): string {
  const cidr = input.trim().toLowerCase();
  try {
    if (cidr.length === 0 || cidr.length > 64 || /[^0-9a-f.:/]/.test(cidr)) throw new TypeError('bad');
    addressMatcher([cidr]);
  } catch {
    throw new AccordError('PERIMETER_RULE_INVALID', { message: `Not an IPv4/IPv6 address or CIDR range: ${JSON.stringify(input.slice(0, 80))}.`, details: { cidr: input.slice(0, 80) } });
  }
  return cidr;
}

/** Checks a stage's settings; PERIMETER_SETTINGS_INVALID names the field. */
export function checkStageSettings(input: { rateLimits?: Record<string, RateLimitQuota | null> | undefined; corsOrigins?: readonly string[] | undefined }): Partial<StageSettings> {
  const out: { rateLimits?: RateLimitPolicy; corsOrigins?: string[] } = {};
  const bad = (field: string, why: string) => new AccordError('PERIMETER_SETTINGS_INVALID', { message: `${field}: ${why}`, details: { field } });
  if (input.rateLimits !== undefined) {
    const limits: Partial<Record<RateLimitKind, RateLimitQuota>> = {};
    for (const [k, q] of Object.entries(input.rateLimits)) {
      if (!KINDS.includes(k as RateLimitKind)) throw bad(`rateLimits.${k}`, `not a rate-limit kind (${KINDS.join(', ')})`);
      if (q === null) continue;
      if (!Number.isSafeInteger(q.limit) || q.limit < 1 || q.limit > 1_000_000) throw bad(`rateLimits.${k}.limit`, 'an integer from 1 to 1000000');
      if (!Number.isSafeInteger(q.windowSeconds) || q.windowSeconds < 1 || q.windowSeconds > 86_400) throw bad(`rateLimits.${k}.windowSeconds`, 'an integer from 1 to 86400');
      limits[k as RateLimitKind] = { limit: q.limit, windowSeconds: q.windowSeconds };
    }
    out.rateLimits = limits;
  }
  if (input.corsOrigins !== undefined) {
    if (input.corsOrigins.length > MAX_ORIGINS) throw bad('corsOrigins', `at most ${MAX_ORIGINS} origins`);
    out.corsOrigins = input.corsOrigins.map((o, i) => {
      let url: URL | undefined;
      try {
        url = new URL(o);
      } catch {
        url = undefined;
      }
      // An origin is scheme://host[:port], nothing more: a path or a wildcard is a mistake.
      if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:') || url.origin !== o.replace(/\/$/, '').toLowerCase()) {
        throw bad(`corsOrigins[${i}]`, 'an origin such as https://app.example.com (scheme, host, optional port; no path, no wildcard)');
      }
      return url.origin;
    });
  }
  return out;
}

const bump = (trx: Trx) => sql`update accord.perimeter_version set version = version + 1 where id = 1`.execute(trx);

/** The version counter: every change bumps it in its own transaction, so nodes know to reload. */
export async function perimeterVersion(db: DbOrTrx): Promise<string> {
  const row = await db.selectFrom('accord.perimeter_version').select('version').where('id', '=', 1).executeTakeFirst();
  return String(row?.version ?? '0');
}

const stageIdOf = (scope: RuleScope): string | null => (scope.kind === 'stage' ? scope.stageId : null);
const tenantIdOf = (scope: RuleScope): string | null => (scope.kind === 'stage' ? scope.tenantId : null);
const scopeTarget = (scope: RuleScope) => (scope.kind === 'stage' ? { type: 'stage', id: scope.stageId } : { type: 'platform', id: 'control-plane' });

/** The rules of one list, oldest first. */
export async function listRules(db: DbOrTrx, scope: RuleScope): Promise<IpRule[]> {
  const stageId = stageIdOf(scope);
  const rows = await db
    .selectFrom('accord.ip_rules')
    .select(['id', 'action', 'cidr', 'note', 'created_at'])
    .where((eb) => (stageId === null ? eb('stage_id', 'is', null) : eb('stage_id', '=', stageId)))
    .orderBy('created_at')
    .orderBy('id')
    .execute();
  return rows.map((r) => ({ id: r.id, action: r.action, cidr: r.cidr, note: r.note, createdAt: new Date(r.created_at).toISOString() }));
}

/** Adds an allow or deny rule, audited as `network.rule.added`; effective at once on this node. */
export async function addRule(db: Db, source: AuditSource, scope: RuleScope, input: { action: 'allow' | 'deny'; cidr: string; note?: string | undefined }): Promise<IpRule> {
  const cidr = canonicalCidr(input.cidr);
  return unitOfWork(db, source, async ({ trx, audit }) => {
    const existing = await listRules(trx, scope);
    if (existing.some((r) => r.action === input.action && r.cidr === cidr)) {
      throw new AccordError('PERIMETER_RULE_EXISTS', { message: `${input.action} ${cidr} is already on this list.`, details: { action: input.action, cidr } });
    }
    if (existing.length >= MAX_RULES) throw new AccordError('PERIMETER_SETTINGS_INVALID', { message: `At most ${MAX_RULES} rules per list.`, details: { field: 'rules' } });
    const row = await trx
      .insertInto('accord.ip_rules')
      .values({ stage_id: stageIdOf(scope), action: input.action, cidr, note: input.note ?? '' })
      .returning(['id', 'created_at'])
      .executeTakeFirstOrThrow();
    await bump(trx);
    await audit({
      tenantId: tenantIdOf(scope),
      action: 'network.rule.added',
      target: scopeTarget(scope),
      outcome: 'success',
      details: { id: row.id, action: input.action, cidr, ...(scope.kind === 'stage' ? { stage: scope.label } : { plane: 'control' }) },
    });
    return { id: row.id, action: input.action, cidr, note: input.note ?? '', createdAt: new Date(row.created_at).toISOString() };
  });
}

/** Removes a rule by id (or by its CIDR), audited as `network.rule.removed`. */
export async function removeRule(db: Db, source: AuditSource, scope: RuleScope, idOrCidr: string): Promise<IpRule> {
  return unitOfWork(db, source, async ({ trx, audit }) => {
    const rules = await listRules(trx, scope);
    const lower = idOrCidr.trim().toLowerCase();
    const hits = rules.filter((r) => r.id === lower || r.cidr === lower);
    const rule = hits[0];
    if (!rule || hits.length > 1) {
      throw new AccordError('PERIMETER_RULE_NOT_FOUND', {
        message: hits.length > 1 ? `${idOrCidr} is both allowed and denied: remove it by id.` : `No rule ${idOrCidr} on this list.`,
        details: { rule: idOrCidr.slice(0, 80) },
      });
    }
    await trx.deleteFrom('accord.ip_rules').where('id', '=', rule.id).execute();
    await bump(trx);
    await audit({
      tenantId: tenantIdOf(scope),
      action: 'network.rule.removed',
      target: scopeTarget(scope),
      outcome: 'success',
      details: { id: rule.id, action: rule.action, cidr: rule.cidr, ...(scope.kind === 'stage' ? { stage: scope.label } : { plane: 'control' }) },
    });
    return rule;
  });
}

/** A stage's settings (empty when it never set any). */
export async function stageSettings(db: DbOrTrx, stageId: string): Promise<StageSettings> {
  const row = await db.selectFrom('accord.stage_perimeter').select(['rate_limits', 'cors_origins']).where('stage_id', '=', stageId).executeTakeFirst();
  return { rateLimits: (row?.rate_limits ?? {}) as RateLimitPolicy, corsOrigins: (row?.cors_origins ?? []) as string[] };
}

/** Replaces the parts of a stage's settings given, audited as `network.settings.changed`. */
export async function setStageSettings(
  db: Db,
  source: AuditSource,
  scope: RuleScope & { kind: 'stage' },
  input: { rateLimits?: Record<string, RateLimitQuota | null> | undefined; corsOrigins?: readonly string[] | undefined },
): Promise<StageSettings> {
  const checked = checkStageSettings(input);
  return unitOfWork(db, source, async ({ trx, audit }) => {
    const before = await stageSettings(trx, scope.stageId);
    const next: StageSettings = { rateLimits: checked.rateLimits ?? before.rateLimits, corsOrigins: checked.corsOrigins ?? before.corsOrigins };
    const values = { rate_limits: JSON.stringify(next.rateLimits), cors_origins: JSON.stringify(next.corsOrigins) };
    await trx
      .insertInto('accord.stage_perimeter')
      .values({ stage_id: scope.stageId, ...values })
      .onConflict((oc) => oc.column('stage_id').doUpdateSet({ ...values, updated_at: new Date() }))
      .execute();
    await bump(trx);
    await audit({
      tenantId: scope.tenantId,
      action: 'network.settings.changed',
      target: scopeTarget(scope),
      outcome: 'success',
      details: { stage: scope.label, before, after: next },
    });
    return next;
  });
}

/** Everything a node's perimeter needs, read in one go (see PerimeterState). */
export async function loadPerimeter(db: DbOrTrx): Promise<{
  version: string;
  rules: { stageKey: string | null; stageId: string | null; action: 'allow' | 'deny'; cidr: string }[];
  stages: { stageKey: string; stageId: string; rateLimits: RateLimitPolicy; corsOrigins: string[] }[];
}> {
  const version = await perimeterVersion(db);
  const rules = await db
    .selectFrom('accord.ip_rules as r')
    .leftJoin('accord.stages as s', 's.id', 'r.stage_id')
    .leftJoin('accord.tenants as t', 't.id', 's.tenant_id')
    .select(['r.stage_id', 'r.action', 'r.cidr', 's.name as stage', 't.name as tenant'])
    .execute();
  const stages = await db
    .selectFrom('accord.stage_perimeter as p')
    .innerJoin('accord.stages as s', 's.id', 'p.stage_id')
    .innerJoin('accord.tenants as t', 't.id', 's.tenant_id')
    .select(['p.stage_id', 'p.rate_limits', 'p.cors_origins', 's.name as stage', 't.name as tenant'])
    .execute();
  return {
    version,
    rules: rules.map((r) => ({ stageKey: r.stage_id ? `${r.tenant}/${r.stage}` : null, stageId: r.stage_id, action: r.action, cidr: r.cidr })),
    stages: stages.map((s) => ({
      stageKey: `${s.tenant}/${s.stage}`,
      stageId: s.stage_id,
      rateLimits: (s.rate_limits ?? {}) as RateLimitPolicy,
      corsOrigins: (s.cors_origins ?? []) as string[],
    })),
  };
}
