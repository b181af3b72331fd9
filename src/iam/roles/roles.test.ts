import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isAccordError } from '../../errors/index.ts';
import type { AuthContext, GrantView } from '../../http/index.ts';
import { can } from '../authorize.ts';
import { assertTenantPermissions, missingOnTenant } from './custom-roles.ts';

const grant = (role: string, permissions: string[], tenant: string | null, stage: string | null = null): GrantView => ({
  id: `${role}-${tenant}-${stage}`,
  role,
  permissions,
  tenantId: tenant === null ? null : `id-${tenant}`,
  tenantName: tenant,
  stageId: stage === null ? null : `id-${stage}`,
  stageName: stage,
});
const actor = (...grants: GrantView[]) => ({ grants }) as unknown as AuthContext;

test('a permission counts as held on the tenant only through a tenant-wide or platform-wide grant', () => {
  const a = actor(grant('delegate', ['tenant:read', 'user:manage'], 'acme'), grant('developer', ['tenant:read', 'stage:read', 'app:deploy'], 'acme', 'development'));
  assert.deepEqual(missingOnTenant(a, 'acme', ['tenant:read', 'user:manage']), []);
  // can() lets a stage grant's holder see the tenant (stage:read), but that is not holding it everywhere.
  assert.equal(can(a, 'stage:read', { tenant: 'acme' }), true);
  assert.deepEqual(missingOnTenant(a, 'acme', ['stage:read', 'app:deploy', 'key:read']), ['stage:read', 'app:deploy', 'key:read']);
  assert.deepEqual(missingOnTenant(a, 'globex', ['tenant:read']), ['tenant:read']);
  const operator = actor(grant('platform-operator', ['tenant:read', 'key:rotate'], null));
  assert.deepEqual(missingOnTenant(operator, 'acme', ['tenant:read', 'key:rotate']), []);
});

test('custom roles take catalog permissions only, and none of the platform-only ones', () => {
  assert.doesNotThrow(() => assertTenantPermissions(['tenant:read', 'user:manage', 'access:review']));
  for (const [input, bad] of [
    [['tenant:read', 'tenant:own'], ['tenant:own']],
    [['platform:manage', 'metrics:read', 'tenant:create', 'audit:read'], ['platform:manage', 'metrics:read', 'tenant:create']],
    [['constructor', '__proto__'], ['constructor', '__proto__']],
  ] as const) {
    assert.throws(
      () => assertTenantPermissions(input),
      (err: unknown) => isAccordError(err, 'IAM_PERMISSION_UNKNOWN') && JSON.stringify(err.details?.permissions) === JSON.stringify(bad),
    );
  }
});
