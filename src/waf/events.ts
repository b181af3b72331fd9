// Detections as security events: a row in accord.waf_events (what `accord waf events` lists) and
// an audit record on the tenant's chain (the platform's for control-plane requests), written in
// one unit of work so neither exists without the other.
import { randomUUID } from 'node:crypto';
import type { AuditSource } from '../audit-chain/index.ts';
import type { Db } from '../db/index.ts';
import { unitOfWork } from '../kernel/index.ts';
import type { WafMatch, WafVerdict } from './engine.ts';

/** What the hook (or a sink check) knows of one detection. */
export interface Detection {
  readonly tenantId: string | null;
  readonly stageId: string | null;
  readonly mode: 'detect' | 'block';
  readonly blocked: boolean;
  readonly kind: 'request' | 'sink';
  readonly requestId: string;
  readonly method: string;
  /** The route pattern (never the URL: it may carry the attack, and tenant names). */
  readonly route: string;
  readonly paranoiaLevel: number;
  readonly verdict: WafVerdict;
  readonly sourceIp: string | null;
}

/** An event as the API shows it. */
export interface WafEventView {
  readonly reference: string;
  readonly at: string;
  readonly mode: string;
  readonly blocked: boolean;
  readonly kind: string;
  readonly requestId: string;
  readonly method: string;
  readonly route: string;
  readonly score: number;
  readonly paranoiaLevel: number;
  readonly ruleIds: readonly number[];
  readonly categories: Readonly<Record<string, number>>;
  readonly fields: readonly string[];
  readonly matches: ReadonlyArray<Pick<WafMatch, 'ruleId' | 'category' | 'score' | 'field' | 'excerpt'>>;
}

const MAX_MATCHES = 20;

/** Records a detection; returns its reference (the event id a blocked caller is given). */
export async function recordDetection(db: Db, source: AuditSource, d: Detection): Promise<string> {
  const id = randomUUID();
  const matches = d.verdict.matches.slice(0, MAX_MATCHES).map((m) => ({ ruleId: m.ruleId, category: m.category, score: m.score, field: m.field, excerpt: m.excerpt }));
  const ruleIds = [...new Set(d.verdict.matches.map((m) => m.ruleId))];
  const fields = [...new Set(d.verdict.matches.map((m) => m.field))].slice(0, MAX_MATCHES);
  await unitOfWork(db, source, async (w) => {
    await w.trx
      .insertInto('accord.waf_events')
      .values({
        id,
        tenant_id: d.tenantId,
        stage_id: d.stageId,
        mode: d.mode,
        blocked: d.blocked,
        kind: d.kind,
        request_id: d.requestId,
        method: d.method,
        route: d.route,
        score: d.verdict.score,
        paranoia_level: d.paranoiaLevel,
        rule_ids: ruleIds,
        categories: JSON.stringify(d.verdict.categories),
        fields,
        matches: JSON.stringify(matches),
        source_ip: d.sourceIp,
      })
      .execute();
    await w.audit({
      tenantId: d.tenantId,
      action: d.kind === 'sink' ? 'waf.sink.violation' : d.blocked ? 'waf.blocked' : 'waf.detected',
      target: { type: 'waf-event', id },
      outcome: d.blocked ? 'denied' : 'success',
      ...(d.blocked ? { reason: 'WAF_BLOCKED' } : {}),
      details: { route: d.route, method: d.method, score: d.verdict.score, ruleIds, fields, stageId: d.stageId },
    });
  });
  return id;
}

/** Lists a stage's events, newest first. */
export async function listEvents(db: Db, tenantId: string, stageId: string, limit: number, reference?: string): Promise<WafEventView[]> {
  let q = db.selectFrom('accord.waf_events').selectAll().where('tenant_id', '=', tenantId).where('stage_id', '=', stageId);
  if (reference) q = q.where('id', '=', reference);
  const rows = await q.orderBy('at', 'desc').limit(limit).execute();
  return rows.map((r) => ({
    reference: r.id,
    at: r.at.toISOString(),
    mode: r.mode,
    blocked: r.blocked,
    kind: r.kind,
    requestId: r.request_id,
    method: r.method,
    route: r.route,
    score: r.score,
    paranoiaLevel: r.paranoia_level,
    ruleIds: r.rule_ids,
    categories: r.categories as Record<string, number>,
    fields: r.fields,
    matches: r.matches as WafEventView['matches'],
  }));
}
