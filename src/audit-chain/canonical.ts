import { createHash } from 'node:crypto';

/** The chain a record belongs to: one per tenant, plus the platform's. */
export const PLATFORM_CHAIN = 'platform';
export const chainIdFor = (tenantId: string | null): string => tenantId ?? PLATFORM_CHAIN;

/** The hash that precedes the first record of every chain. */
export const GENESIS_HASH = Buffer.alloc(32);

/** A stored audit record in the exact shape that is hashed (version 1 of the canonical form). */
export interface CanonicalRecord {
  readonly v: 1;
  readonly chain: string;
  readonly seq: number;
  readonly id: string;
  /** ISO 8601 UTC with milliseconds, e.g. 2026-11-26T14:33:33.123Z. */
  readonly time: string;
  readonly tenant: string | null;
  readonly actor: { readonly type: string; readonly id: string | null; readonly label: string | null; readonly roles: readonly string[] };
  readonly action: string;
  readonly target: { readonly type: string; readonly id: string } | null;
  readonly outcome: string;
  readonly reason: string | null;
  readonly source: { readonly ip: string | null; readonly userAgent: string | null; readonly requestId: string | null };
  readonly details: unknown;
}

/**
 * Canonical JSON (the RFC 8785 scheme for the values we store): object keys sorted by UTF-16
 * code units, no whitespace, strings and numbers as ECMAScript's JSON.stringify writes them.
 * Anyone can rebuild it with `jq -cS` for ASCII keys; docs/audit.md shows how.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) return 'null';
    return JSON.stringify(value) ?? 'null';
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/** hash = SHA-256(prev_hash || canonical(record)). */
export function chainHash(prevHash: Buffer, record: CanonicalRecord): Buffer {
  return createHash('sha256').update(prevHash).update(canonicalJson(record), 'utf8').digest();
}
