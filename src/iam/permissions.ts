/**
 * The permission catalog: the one place permissions are defined (docs/iam.md lists them).
 * Routes name one of these; roles are sets of them.
 */
export const permissions = {
  'platform:manage': 'Manage the installation itself (operators).',
  'metrics:read': 'Read Prometheus metrics.',
  'tenant:create': 'Create tenants.',
  'tenant:read': 'See a tenant and its settings.',
  'tenant:delete': 'Delete a tenant and everything in it.',
  'tenant:manage': "Change a tenant's policies: MFA requirement, console and stage session timeouts.",
  'stage:read': "See a tenant's stages.",
  'stage:manage': 'Create and delete stages.',
  'user:manage': "Create, invite, disable and delete users; grant roles and app roles; see and end users' sessions.",
  'role:manage': 'Define custom roles from the permission catalog.',
  'client:manage': 'Create, rotate and revoke API clients.',
  'idp:manage': "Add, test and remove the tenant's identity providers and their group mappings; force a re-sync.",
  'scim:provision': 'Provision users and groups through the SCIM 2.0 endpoint (an IdP acting as an API client).',
  'access:review': 'Run access reviews: list grants with last use, confirm or revoke them.',
  'audit:read': 'Search and export the audit trail.',
  'security:read': 'Read security events, alerts and incidents.',
  'key:read': 'See key versions and rotation jobs (never key material).',
  'key:rotate': 'Rotate encryption keys.',
  'secret:write': "Set a stage's secret settings (write-only).",
  'app:deploy': 'Deploy app revisions to a stage.',
  'app:promote': 'Promote a revision to the next stage.',
} as const;

export type Permission = keyof typeof permissions;

const all = Object.keys(permissions) as Permission[];

/** A built-in role: what it is for and the permissions it carries. */
export interface BuiltInRole {
  readonly description: string;
  readonly permissions: readonly Permission[];
}

/**
 * Built-in roles. Custom roles (IAM issue) are built from the same catalog. A null-prototype,
 * frozen object: a role name from a request (`constructor`, `__proto__`, `toString`) must never
 * find something Object.prototype put there; look roles up with {@link builtInRole}.
 */
export const builtInRoles: Readonly<Record<string, BuiltInRole>> = nullPrototype({
  'platform-operator': { description: 'Runs the installation.', permissions: all },
  'security-officer': {
    description: 'Reads alerts, incidents and audit trails.',
    permissions: ['tenant:read', 'stage:read', 'audit:read', 'security:read', 'metrics:read', 'key:read'],
  },
  auditor: { description: 'Read-only access to evidence.', permissions: ['tenant:read', 'stage:read', 'audit:read'] },
  'tenant-admin': {
    description: "Manages a tenant's users, stages and keys.",
    permissions: [
      'tenant:read',
      'tenant:manage',
      'stage:read',
      'stage:manage',
      'user:manage',
      'role:manage',
      'client:manage',
      'idp:manage',
      'scim:provision',
      'access:review',
      'audit:read',
      'key:read',
      'key:rotate',
      'secret:write',
      'app:deploy',
      'app:promote',
    ],
  },
  'scim-provisioner': { description: 'An identity provider pushing users and groups over SCIM (grant it to an API client).', permissions: ['scim:provision'] },
  developer: { description: 'Builds and deploys apps.', permissions: ['tenant:read', 'stage:read', 'app:deploy'] },
  'release-manager': {
    description: 'Deploys and promotes revisions.',
    permissions: ['tenant:read', 'stage:read', 'app:deploy', 'app:promote'],
  },
});

function nullPrototype<T extends object>(entries: T): Readonly<T> {
  return Object.freeze(Object.assign(Object.create(null) as T, entries));
}

/** The built-in role of that name, if there is one; names of Object.prototype members are none. */
export function builtInRole(name: string): BuiltInRole | undefined {
  return Object.hasOwn(builtInRoles, name) ? builtInRoles[name] : undefined;
}

/** Whether `role` is a built-in role carrying `permission`. Unknown roles carry nothing (fail closed). */
export function roleHas(role: string, permission: string): boolean {
  return builtInRole(role)?.permissions.includes(permission as Permission) ?? false;
}

/**
 * Permissions that only make sense platform-wide: a custom (tenant) role may not contain them,
 * and a tenant grant of a role carrying them would be meaningless.
 */
export const platformOnlyPermissions: readonly Permission[] = ['platform:manage', 'metrics:read', 'tenant:create'];

/** Whether a string names a permission of the catalog. */
export function isPermission(p: string): p is Permission {
  return Object.hasOwn(permissions, p);
}

// Every name JavaScript objects carry by default, lower-cased: `constructor`, `__proto__`,
// `tostring`, `valueof`, `hasownproperty`, `prototype`, ...
const RESERVED = new Set([...Object.getOwnPropertyNames(Object.prototype), ...Object.getOwnPropertyNames(Function.prototype), 'prototype'].map((n) => n.toLowerCase()));

/**
 * Whether a name is refused for a custom role: a member name of every JavaScript object, which
 * some lookup somewhere (ours, a client library's, a SIEM's) would confuse with the built-in member.
 */
export function isReservedRoleName(name: string): boolean {
  return RESERVED.has(name.toLowerCase());
}
