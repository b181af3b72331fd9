// Per-stage firewall settings and rule exclusions, read on every stage-scoped request through a
// short cache (a change made through this node clears it at once; other nodes see it within the
// cache's lifetime).
import type { Db } from '../db/index.ts';
import type { RuleExclusion } from './engine.ts';

export type WafMode = 'off' | 'detect' | 'block';

/** What the hook applies to one request. */
export interface WafSettings {
  readonly mode: WafMode;
  readonly paranoiaLevel: number;
  readonly threshold: number;
  readonly exclusions: readonly RuleExclusion[];
  /** The stage these settings belong to (absent for the control plane's). */
  readonly tenantId?: string;
  readonly stageId?: string;
}

/** A stage's settings as stored and shown, without exclusions. */
export interface StageWafSettings {
  readonly mode: WafMode;
  readonly paranoiaLevel: number;
  readonly threshold: number;
}

/**
 * The defaults: detect (ModSecurity's recommended `DetectionOnly` start), PL1, CRS's inbound
 * threshold 5. Detect records every detection as a security event and lets the request pass:
 * measured on realistic traffic, PL1 still refuses 7.7% of legitimate API requests even with the
 * manifest's field kinds (docs/PERFORMANCE.md), far from the < 1% a default-on block needs, so a
 * stage turns blocking on itself (`accord waf set --mode block`) once its events look clean.
 */
export const DEFAULT_SETTINGS: WafSettings = Object.freeze({ mode: 'detect', paranoiaLevel: 1, threshold: 5, exclusions: Object.freeze([]) });

const CACHE_MS = 2000;

/** Looks up a stage's settings (by tenant and stage names, as the path gives them), cached briefly. */
export class WafSettingsCache {
  readonly #db: Db;
  readonly #cache = new Map<string, { at: number; settings: WafSettings | undefined }>();

  constructor(db: Db) {
    this.#db = db;
  }

  /** The settings of the stage a path names; undefined when no such stage exists (the route answers 404 itself). */
  async forStage(tenant: string, stage: string, now = Date.now()): Promise<WafSettings | undefined> {
    const key = `${tenant}\u0000${stage}`;
    const hit = this.#cache.get(key);
    if (hit && now - hit.at < CACHE_MS) return hit.settings;
    const settings = await this.#load(tenant, stage, new Date(now));
    if (this.#cache.size > 10_000) this.#cache.clear();
    this.#cache.set(key, { at: now, settings });
    return settings;
  }

  /** Forgets every cached stage (after a change through this node). */
  invalidate(): void {
    this.#cache.clear();
  }

  async #load(tenant: string, stage: string, now: Date): Promise<WafSettings | undefined> {
    const row = await this.#db
      .selectFrom('accord.stages as s')
      .innerJoin('accord.tenants as t', 't.id', 's.tenant_id')
      .leftJoin('accord.waf_settings as w', 'w.stage_id', 's.id')
      .select(['s.id as stageId', 't.id as tenantId', 'w.mode', 'w.paranoia_level', 'w.threshold'])
      .where('t.name', '=', tenant)
      .where('s.name', '=', stage)
      .executeTakeFirst();
    if (!row) return undefined;
    const exclusions = await this.#db
      .selectFrom('accord.waf_exclusions')
      .select(['rule_id', 'field'])
      .where('stage_id', '=', row.stageId)
      .where('removed_at', 'is', null)
      .where('expires_at', '>', now)
      .execute();
    return Object.freeze({
      mode: row.mode ?? DEFAULT_SETTINGS.mode,
      paranoiaLevel: row.paranoia_level ?? DEFAULT_SETTINGS.paranoiaLevel,
      threshold: row.threshold ?? DEFAULT_SETTINGS.threshold,
      tenantId: row.tenantId,
      stageId: row.stageId,
      exclusions: Object.freeze(exclusions.map((e) => Object.freeze({ ruleId: e.rule_id, field: e.field }))),
    });
  }
}

/** Reads a stage's stored settings (defaults when it has none). */
export async function readStageSettings(db: Db, stageId: string): Promise<StageWafSettings> {
  const row = await db.selectFrom('accord.waf_settings').select(['mode', 'paranoia_level', 'threshold']).where('stage_id', '=', stageId).executeTakeFirst();
  return row ? { mode: row.mode, paranoiaLevel: row.paranoia_level, threshold: row.threshold } : { mode: DEFAULT_SETTINGS.mode, paranoiaLevel: DEFAULT_SETTINGS.paranoiaLevel, threshold: DEFAULT_SETTINGS.threshold };
}
