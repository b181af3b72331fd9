import { type Static, Type } from '@sinclair/typebox';
import type { FastifyReply } from 'fastify';
import {
  type AuditRecordView,
  type CheckpointSigner,
  chainIdFor,
  listCheckpoints,
  type AuditSource,
  PLATFORM_CHAIN,
  sealPending,
  searchAudit,
  toCef,
  toJsonLine,
  verifyChains,
} from '../audit-chain/index.ts';
import type { Config } from '../config/index.ts';
import type { Db } from '../db/index.ts';
import { access, type RouteDefinition, route, type ScopeTenant } from '../http/index.ts';
import { auditAlone } from '../kernel/index.ts';
import { getTenant, listTenants } from '../tenancy/index.ts';
import { encodeCursor, parseAuditFilters } from './query.ts';

const Filters = Type.Object(
  {
    actor: Type.Optional(Type.String({ maxLength: 300 })),
    action: Type.Optional(Type.String({ maxLength: 200 })),
    target: Type.Optional(Type.String({ maxLength: 400 })),
    outcome: Type.Optional(Type.String({ maxLength: 20 })),
    from: Type.Optional(Type.String({ maxLength: 40 })),
    to: Type.Optional(Type.String({ maxLength: 40 })),
    limit: Type.Optional(Type.String({ maxLength: 7 })),
    cursor: Type.Optional(Type.String({ maxLength: 100 })),
  },
  { additionalProperties: false },
);
const ExportFilters = Type.Composite([Filters, Type.Object({ format: Type.Optional(Type.Union([Type.Literal('jsonl'), Type.Literal('cef')])) })], {
  additionalProperties: false,
});
const TenantParams = Type.Object({ tenant: Type.String({ maxLength: 63 }) });
const Checkpoint = Type.Object(
  {
    chain: Type.String({ maxLength: 64 }),
    seq: Type.Integer({ minimum: 1 }),
    hash: Type.String({ pattern: '^[0-9a-f]{64}$' }),
    signedAt: Type.String({ maxLength: 40 }),
    keyId: Type.String({ maxLength: 64 }),
    signature: Type.String({ maxLength: 200 }),
  },
  { additionalProperties: false },
);
const EXPORT_MAX = 100_000;

/** The audit trail's API: search, export, verification and checkpoints (AUD-1..3). */
export function auditRoutes(deps: { db: Db; config: Config; signer: CheckpointSigner }): RouteDefinition[] {
  const { db, config, signer } = deps;
  const trustedKeys = new Map([[signer.keyId, signer.publicKeyPem]]);

  /** The chain a request addresses: the tenant's (named in the path) or the platform's. */
  const chainOf = (tenant: ScopeTenant | undefined): { chain: string; tenantId: string | null } =>
    tenant === undefined ? { chain: PLATFORM_CHAIN, tenantId: null } : { chain: chainIdFor(tenant.id), tenantId: tenant.id };

  // Reading the audit trail is itself audited, on the chain that was read.
  const auditAccess = (source: AuditSource, tenantId: string | null, action: string, details: Record<string, unknown>) =>
    auditAlone(db, source, { tenantId, action, outcome: 'success', details });

  const search = async (source: AuditSource, raw: Static<typeof Filters>, tenant: ScopeTenant | undefined) => {
    const { chain, tenantId } = chainOf(tenant);
    const q = parseAuditFilters(raw, chain, { onlineDays: config.auditOnlineDays, maxLimit: 500 });
    const page = await searchAudit(db, q);
    await auditAccess(source, tenantId, 'audit.searched', { filters: { ...raw, cursor: undefined }, returned: page.records.length });
    return { records: page.records, nextCursor: page.next === null ? null : encodeCursor(page.next) };
  };

  const exportTrail = async (source: AuditSource, reply: FastifyReply, raw: Static<typeof ExportFilters>, tenant: ScopeTenant | undefined) => {
    const { chain, tenantId } = chainOf(tenant);
    const format = raw.format ?? 'jsonl';
    const { format: _f, ...filters } = raw;
    let q = parseAuditFilters({ ...filters, limit: undefined }, chain, { onlineDays: config.auditOnlineDays, maxLimit: 500 });
    // An export holds sealed records only (each with its hash, verifiable offline): seal what has
    // committed first, so the export reaches up to now.
    await sealPending(db, { chains: [chain], wait: true, waitMs: 2000 });
    q = { ...q, sealedOnly: true };
    const lines: string[] = [];
    for (;;) {
      const page = await searchAudit(db, { ...q, limit: 1000 });
      for (const r of page.records) lines.push(format === 'cef' ? toCef(r) : toJsonLine(r));
      if (page.next === null || lines.length >= EXPORT_MAX) break;
      q = { ...q, ...page.next };
    }
    // Oldest first in files, as SIEMs and people read them.
    lines.reverse();
    await auditAccess(source, tenantId, 'audit.exported', { format, records: lines.length, filters });
    return reply
      .type(format === 'cef' ? 'text/plain; charset=utf-8' : 'application/x-ndjson; charset=utf-8')
      .header('content-disposition', `attachment; filename="audit-${chain}.${format === 'cef' ? 'cef' : 'jsonl'}"`)
      .send(lines.join(''));
  };

  const RecordOut = Type.Unsafe<AuditRecordView>(Type.Object({}, { additionalProperties: true }));
  // Verification reports grow findings over time (docs/audit.md lists them): kept open here.
  const ChainReportOut = Type.Object({ chain: Type.String(), tenant: Type.Union([Type.String(), Type.Null()]), ok: Type.Boolean() }, { additionalProperties: true });
  const VerifyOut = Type.Object({ ok: Type.Boolean(), verifiedAt: Type.String({ format: 'date-time' }), keyId: Type.String(), externalCheckpoints: Type.Integer(), chains: Type.Array(ChainReportOut) });
  const SigningKeyOut = Type.Object({ keyId: Type.String(), algorithm: Type.Literal('Ed25519'), publicKeyPem: Type.String() });
  const CheckpointsOut = Type.Object({ keyId: Type.String(), publicKeyPem: Type.String(), checkpoints: Type.Array(Checkpoint) });
  const SearchOut = Type.Object({ records: Type.Array(RecordOut), nextCursor: Type.Union([Type.String(), Type.Null()]) });

  return [
    route({
      method: 'GET',
      url: '/api/v1/audit',
      access: access.permission('audit:read'),
      schema: { summary: 'Search the platform audit chain (newest first)', tags: ['audit'], querystring: Filters, response: { 200: SearchOut } },
      handler: async ({ source, query }) => search(source, query, undefined),
    }),
    route({
      method: 'GET',
      url: '/api/v1/tenants/:tenant/audit',
      access: access.permission('audit:read', { tenantParam: 'tenant' }),
      schema: { summary: "Search a tenant's audit chain (newest first)", tags: ['audit'], params: TenantParams, querystring: Filters, response: { 200: SearchOut } },
      handler: async ({ source, query, tenant }) => search(source, query, tenant),
    }),
    route({
      method: 'GET',
      url: '/api/v1/audit/export',
      access: access.permission('audit:read'),
      schema: { summary: 'Export the platform audit chain as JSON lines or CEF', tags: ['audit'], querystring: ExportFilters },
      handler: async ({ source, reply, query }) => exportTrail(source, reply, query, undefined),
    }),
    route({
      method: 'GET',
      url: '/api/v1/tenants/:tenant/audit/export',
      access: access.permission('audit:read', { tenantParam: 'tenant' }),
      schema: { summary: "Export a tenant's audit chain as JSON lines or CEF", tags: ['audit'], params: TenantParams, querystring: ExportFilters },
      handler: async ({ source, reply, query, tenant }) => exportTrail(source, reply, query, tenant),
    }),
    route({
      method: 'POST',
      url: '/api/v1/audit/verify',
      access: access.permission('audit:read'),
      schema: {
        summary: 'Recompute hash chains and check them against stored and given checkpoints',
        tags: ['audit'],
        body: Type.Object(
          {
            tenant: Type.Optional(Type.String({ maxLength: 63 })),
            platform: Type.Optional(Type.Boolean()),
            checkpoints: Type.Optional(Type.Array(Checkpoint, { maxItems: 100_000 })),
          },
          { additionalProperties: false },
        ),
        response: { 200: VerifyOut },
      },
      handler: async ({ body, source }) => {
        const tenants = await listTenants(db);
        const nameOf = new Map(tenants.map((t) => [t.id, t.name]));
        let chains: string[] | undefined;
        if (body.tenant !== undefined) chains = [chainIdFor((await getTenant(db, body.tenant)).id)];
        if (body.platform) chains = [...(chains ?? []), PLATFORM_CHAIN];
        const external = body.checkpoints?.filter((c) => chains === undefined || chains.includes(c.chain));
        // Seal what has committed first: verification then covers everything written before it
        // began, and an unsealed event it finds older than the horizon is one the sealer skipped.
        await sealPending(db, { ...(chains ? { chains } : {}), wait: true, waitMs: 2000 });
        const reports = await verifyChains(db, { ...(chains ? { chains } : {}), trustedKeys, ...(external ? { external } : {}) });
        const result = {
          ok: reports.every((r) => r.ok),
          verifiedAt: new Date().toISOString(),
          keyId: signer.keyId,
          externalCheckpoints: external?.length ?? 0,
          chains: reports.map((r) => ({ ...r, tenant: r.tenantId ? (nameOf.get(r.tenantId) ?? null) : null })),
        };
        await auditAccess(source, null, 'audit.verified', {
          ok: result.ok,
          chains: reports.length,
          failed: reports.filter((r) => !r.ok).map((r) => ({ chain: r.chain, firstBadSeq: r.firstBadSeq, problem: r.problem })),
        });
        return result;
      },
    }),
    route({
      method: 'GET',
      url: '/api/v1/audit/checkpoints',
      access: access.permission('audit:read'),
      schema: {
        summary: 'Signed checkpoints, to keep outside the database',
        tags: ['audit'],
        querystring: Type.Object({ tenant: Type.Optional(Type.String({ maxLength: 63 })) }, { additionalProperties: false }),
        response: { 200: CheckpointsOut },
      },
      handler: async ({ query }) => {
        const chain = query.tenant === undefined ? undefined : chainIdFor((await getTenant(db, query.tenant)).id);
        return { keyId: signer.keyId, publicKeyPem: signer.publicKeyPem, checkpoints: await listCheckpoints(db, chain === undefined ? {} : { chain }) };
      },
    }),
    route({
      method: 'GET',
      url: '/api/v1/audit/signing-key',
      access: access.permission('audit:read'),
      schema: { summary: 'The public key that verifies checkpoint signatures', tags: ['audit'], response: { 200: SigningKeyOut } },
      handler: async () => ({ keyId: signer.keyId, algorithm: 'Ed25519', publicKeyPem: signer.publicKeyPem }),
    }),
  ];
}

