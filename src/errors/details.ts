import type { ErrorCode } from './catalog.ts';

/**
 * The public details of the codes that carry some, typed per code: a client can rely on these
 * members (docs/errors.md). Codes not listed take free-form public details. Details are sent to
 * clients on refusals (4xx) only; never put secrets or raw secret input in them.
 */
export interface CatalogDetails {
  REQUEST_INVALID: { readonly in?: string; readonly errors?: readonly { path: string; message?: string; keyword?: string }[]; readonly [field: string]: unknown };
  TENANCY_TENANT_NOT_FOUND: { readonly tenant: string };
  TENANCY_STAGE_NOT_FOUND: { readonly tenant: string; readonly stage: string };
  TENANCY_TENANT_EXISTS: { readonly tenant: string };
  TENANCY_STAGE_EXISTS: { readonly tenant: string; readonly stage: string };
  TENANCY_LAST_STAGE: { readonly tenant: string; readonly stage: string };
  TENANCY_CONFIRMATION_REQUIRED: { readonly tenant?: string; readonly stage?: string };
  TENANCY_TENANT_NAME_INVALID: { readonly name: string; readonly reserved?: boolean };
  TENANCY_STAGE_NAME_INVALID: { readonly name: string };
  IAM_LOCKED: { readonly retryAfterSeconds: number };
  IAM_FORBIDDEN: { readonly permission: string; readonly stage?: string | null };
  IAM_USER_NOT_FOUND: { readonly email: string };
  IAM_USER_EXISTS: { readonly email: string };
  IAM_ROLE_UNKNOWN: { readonly role: string };
  IAM_ROLE_NOT_FOUND: { readonly role: string };
  IAM_ROLE_EXISTS: { readonly role: string };
  IAM_GRANT_ESCALATION: { readonly role: string; readonly missing: readonly string[] };
  IAM_CLIENT_NOT_FOUND: { readonly name: string; readonly revoked?: boolean };
  IAM_CLIENT_EXISTS: { readonly name: string };
  AUDIT_QUERY_INVALID: { readonly field: string };
  WAF_BLOCKED: { readonly reference: string };
  WAF_SETTINGS_INVALID: { readonly field: string };
}

/** The details a code takes: its typed shape, or free-form public data. */
export type DetailsOf<C extends ErrorCode> = C extends keyof CatalogDetails ? CatalogDetails[C] : Readonly<Record<string, unknown>>;
