import type { FastifyBaseLogger, FastifyRequest } from 'fastify';
import { Counter, type Registry } from 'prom-client';
import type { Db } from '../db/index.ts';
import { auditSource, textProblem } from '../http/index.ts';
import { auditAlone, unitOfWork } from '../kernel/index.ts';

/** A refusal to audit: the action, the catalog code, and the tenant the path names, if any. */
export interface Refusal {
  readonly action: 'access.denied' | 'request.refused';
  readonly reason: string;
  /** A tenant name taken from the path; looked up only when it could be one. */
  readonly tenantName?: string | undefined;
  readonly details?: Readonly<Record<string, unknown>>;
}

// A tenant name is short lower-case ASCII (src/tenancy/names.ts); anything else names no tenant,
// and must not reach a query that the database could refuse (NUL) and so lose the record.
const COULD_BE_TENANT = /^[a-z][a-z0-9-]{0,62}$/;
const MAX_PATH = 512;

/**
 * Writes refusals of requests to the audit trail, each in its own transaction (the request
 * changes nothing, so nothing else is in it). An event is never dropped silently: if the record
 * cannot be written on the tenant's chain, a reduced one goes to the platform chain; if that
 * fails too, the loss is logged as an error and counted in `accord_audit_write_failures_total`.
 */
export class RefusalAuditor {
  readonly #db: Db;
  readonly #failures: Counter<'action'>;

  constructor(db: Db, registry: Registry) {
    this.#db = db;
    this.#failures = new Counter({
      name: 'accord_audit_write_failures_total',
      help: 'Audit records of refused requests that could not be written anywhere (each also logged as an error).',
      labelNames: ['action'],
      registers: [registry],
    });
  }

  /** Audits one refusal of `req`; resolves once written (or its loss logged and counted). */
  async write(req: FastifyRequest, refusal: Refusal): Promise<void> {
    const source = auditSource(req.meta ?? { requestId: req.id, sourceIp: req.ip ?? null, userAgent: null, auth: undefined });
    const route = `${req.method} ${req.routeOptions?.url ?? 'unmatched'}`;
    const path = req.url.split('?')[0]?.slice(0, MAX_PATH) ?? '';
    const base = { action: refusal.action, target: { type: 'route', id: route }, outcome: 'denied' as const, reason: refusal.reason };
    const name = refusal.tenantName !== undefined && textProblem(refusal.tenantName) === undefined && COULD_BE_TENANT.test(refusal.tenantName) ? refusal.tenantName : undefined;
    try {
      await unitOfWork(this.#db, source, async ({ trx, audit }) => {
        const tenant = name ? await trx.selectFrom('accord.tenants').select('id').where('name', '=', name).executeTakeFirst() : undefined;
        await audit({ ...base, tenantId: tenant?.id ?? null, details: { path, ...refusal.details } });
      });
      return;
    } catch (err) {
      req.log.error({ err }, 'audit write failed for a refused request; writing a reduced record on the platform chain');
    }
    try {
      await auditAlone(this.#db, source, { ...base, tenantId: null, details: { path, auditFallback: true } });
    } catch (err) {
      this.#failures.inc({ action: refusal.action });
      logLoss(req.log, err, refusal);
    }
  }
}

function logLoss(log: FastifyBaseLogger, err: unknown, refusal: Refusal): void {
  log.error({ err, action: refusal.action, reason: refusal.reason }, 'AUDIT RECORD LOST: a refused request could not be audited on any chain');
}
