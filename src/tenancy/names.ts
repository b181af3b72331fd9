import { AccordError } from '../errors/index.ts';

// DNS-label-like: usable later as a host label (acme.apps.example.com) and safe in URLs.
const TENANT = /^[a-z][a-z0-9-]{0,38}[a-z0-9]$/;
const STAGE = /^[a-z][a-z0-9-]{0,30}[a-z0-9]$/;
const REGION = /^[a-z0-9][a-z0-9-]{0,31}$/;

/** Names that would be confusing or collide with platform host names and paths. */
const RESERVED_TENANTS = new Set(['accord', 'admin', 'api', 'platform', 'system', 'www', 'console', 'status', 'trust']);

/** Checks a tenant name for creation; throws TENANCY_TENANT_NAME_INVALID. */
export function assertTenantName(name: string): void {
  if (!TENANT.test(name) || name.includes('--')) {
    throw new AccordError('TENANCY_TENANT_NAME_INVALID', { details: { name } });
  }
  if (RESERVED_TENANTS.has(name)) {
    throw new AccordError('TENANCY_TENANT_NAME_INVALID', {
      message: `The tenant name "${name}" is reserved by the platform; choose another.`,
      details: { name, reserved: true },
    });
  }
}

/** Checks a stage name; throws TENANCY_STAGE_NAME_INVALID. */
export function assertStageName(name: string): void {
  if (!STAGE.test(name) || name.includes('--')) {
    throw new AccordError('TENANCY_STAGE_NAME_INVALID', { details: { name } });
  }
}

/** Checks a region label; regions are labels here, placement comes with the resilience issue. */
export function assertRegion(region: string): void {
  if (!REGION.test(region)) {
    throw new AccordError('REQUEST_INVALID', {
      message: 'A region is 1-32 characters: lowercase letters, digits and hyphens.',
      details: { region },
    });
  }
}

/** Whether a path segment could be a tenant name at all (anything else is simply not found). */
export const looksLikeTenantName = (name: string): boolean => TENANT.test(name);

/** The stages every new tenant starts with, in order. */
export const DEFAULT_STAGES = ['development', 'test', 'production'] as const;
