import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import pino from 'pino';
import { ephemeralSigner, systemSource } from '../../../src/audit-chain/index.ts';
import { loadConfig } from '../../../src/config/index.ts';
import type { Db } from '../../../src/db/index.ts';
import type { RouteAccess } from '../../../src/http/index.ts';
import { createUser, grantRole } from '../../../src/iam/index.ts';
import { buildApp } from '../../../src/server/index.ts';
import { createTenant } from '../../../src/tenancy/index.ts';
import { engines } from '../../harness/engines.ts';
import { sessionToken, testIamKey } from '../../harness/iam.ts';
import { testKeyring } from '../../harness/keys.ts';

const config = loadConfig({ env: {}, flags: { logLevel: 'silent' } });
const VISIBILITY = new Set(['tenant:read', 'stage:read']);
// Routes whose success would change what the rest of the suite sees.
const SKIP = new Set(['POST /api/v1/keys/root/rotate']);

/** What a holder of `perms` on acme (tenant-wide, or on development only) should get from a route needing a permission. */
function expected(perms: readonly string[], stageOnly: boolean, acc: RouteAccess, stage: string): 'allow' | 'forbidden' {
  if (acc.kind !== 'permission') throw new Error('only routes that need a permission');
  if (acc.tenantParam === undefined || !perms.includes(acc.permission)) return 'forbidden';
  if (!stageOnly) return 'allow';
  if (acc.stageParam !== undefined) return stage === 'development' ? 'allow' : 'forbidden';
  return VISIBILITY.has(acc.permission) ? 'allow' : 'forbidden';
}

for (const engine of engines()) {
  describe(`custom roles and app-role grants on ${engine.name}`, { concurrency: false }, () => {
    let app: FastifyInstance;
    let db: Db;
    const tokens: Record<string, string> = {};
    after(async () => app?.close());
    const call = (method: string, url: string, who: string, payload?: unknown) =>
      app.inject({ method: method as 'GET', url, headers: { authorization: `Bearer ${tokens[who]}` }, ...(payload === undefined ? {} : { payload: payload as object }) });
    const code = (r: LightMyRequestResponse) => (r.statusCode >= 400 ? r.json().code : r.statusCode);
    const customRoles = async () => ((await call('GET', '/api/v1/tenants/acme/roles', 'admin')).json() as { name: string; builtIn: boolean }[]).filter((r) => !r.builtIn).map((r) => r.name);
    // The audit search's action filter takes no hyphen (app-role.*), so filter here.
    const auditActions = async (pattern: string) => {
      const records = (await call('GET', '/api/v1/tenants/acme/audit?limit=500', 'admin')).json().records as { action: string; details: Record<string, unknown> }[];
      return records.filter((r) => (pattern.endsWith('.*') ? r.action.startsWith(pattern.slice(0, -1)) : r.action === pattern));
    };

    test('a tenant admin defines a custom role; the tenant lists it beside the built-in roles', async () => {
      const database = await engine.open();
      db = database.db;
      const keyring = await testKeyring();
      app = await buildApp({ config, database, logger: pino({ level: 'silent' }), signer: ephemeralSigner(), keyring, iamKey: testIamKey });
      const acme = await createTenant(db, keyring, systemSource, { name: 'acme' });
      const globex = await createTenant(db, keyring, systemSource, { name: 'globex' });
      await db.transaction().execute(async (trx) => {
        for (const name of ['admin', 'delegate', 'carol', 'dave', 'erin']) {
          const id = await createUser(trx, { tenantId: acme.id, email: `${name}@acme.test`, password: 'roles passphrase ok' });
          if (name === 'admin') await grantRole(trx, { userId: id, role: 'tenant-admin', tenantId: acme.id, stageId: null });
          tokens[name] = await sessionToken(trx, id);
        }
        const g = await createUser(trx, { tenantId: globex.id, email: 'admin@globex.test', password: 'roles passphrase ok' });
        await grantRole(trx, { userId: g, role: 'tenant-admin', tenantId: globex.id, stageId: null });
        tokens.globex = await sessionToken(trx, g);
      });
      const created = await call('POST', '/api/v1/tenants/acme/roles', 'admin', { name: 'key-viewer', description: 'Sees keys and the audit trail', permissions: ['key:read', 'tenant:read', 'audit:read'] });
      assert.equal(created.statusCode, 201, created.body);
      // Stored in the catalog's order, whatever order they were given in.
      assert.deepEqual(created.json(), { name: 'key-viewer', description: 'Sees keys and the audit trail', permissions: ['tenant:read', 'audit:read', 'key:read'], builtIn: false });
      const list = (await call('GET', '/api/v1/tenants/acme/roles', 'admin')).json() as { name: string; builtIn: boolean; permissions: string[] }[];
      assert.deepEqual(list.find((r) => r.name === 'developer'), { name: 'developer', description: 'Builds and deploys apps.', permissions: ['tenant:read', 'stage:read', 'app:deploy'], builtIn: true });
      assert.equal(list.find((r) => r.name === 'key-viewer')?.builtIn, false);
      assert.equal(list.find((r) => r.name === 'platform-operator'), undefined, 'platform-operator is never granted on a tenant');
      // Custom roles belong to their tenant.
      const other = (await call('GET', '/api/v1/tenants/globex/roles', 'globex')).json() as { name: string }[];
      assert.equal(other.find((r) => r.name === 'key-viewer'), undefined);
      assert.equal(code(await call('GET', '/api/v1/tenants/acme/roles', 'globex')), 'TENANCY_TENANT_NOT_FOUND');
    });

    test('unknown, platform-only and malformed definitions are refused and create nothing', async () => {
      const unknown = await call('POST', '/api/v1/tenants/acme/roles', 'admin', { name: 'wizard', permissions: ['tenant:read', 'tenant:own', 'app:fly'] });
      assert.equal(unknown.statusCode, 400);
      assert.equal(unknown.json().code, 'IAM_PERMISSION_UNKNOWN');
      assert.deepEqual(unknown.json().details.permissions, ['tenant:own', 'app:fly']);
      const platform = await call('POST', '/api/v1/tenants/acme/roles', 'admin', { name: 'wizard', permissions: ['tenant:read', 'metrics:read', 'tenant:create'] });
      assert.equal(code(platform), 'IAM_PERMISSION_UNKNOWN');
      assert.deepEqual(platform.json().details.permissions, ['metrics:read', 'tenant:create']);
      assert.equal(code(await call('POST', '/api/v1/tenants/acme/roles', 'admin', { name: 'developer', permissions: ['tenant:read'] })), 'IAM_ROLE_EXISTS');
      assert.equal(code(await call('POST', '/api/v1/tenants/acme/roles', 'admin', { name: 'key-viewer', permissions: ['tenant:read'] })), 'IAM_ROLE_EXISTS');
      for (const body of [
        { name: 'Bad_Name', permissions: ['tenant:read'] },
        { name: 'x', permissions: ['tenant:read'] },
        { name: 'wizard', permissions: [] },
        { name: 'wizard', permissions: ['tenant:read', 'tenant:read'] },
        { name: 'wizard', permissions: Array.from({ length: 51 }, (_, i) => `p:${i}`) },
        { name: 'wizard', permissions: ['tenant:read'], extra: true },
      ]) {
        assert.equal(code(await call('POST', '/api/v1/tenants/acme/roles', 'admin', body)), 'REQUEST_INVALID', JSON.stringify(body).slice(0, 60));
      }
      assert.deepEqual(await customRoles(), ['key-viewer']);
      assert.equal((await auditActions('role.created')).length, 1);
    });

    test('nobody defines, widens or edits a role beyond the permissions they hold on the whole tenant', async () => {
      const esc = await call('POST', '/api/v1/tenants/acme/roles', 'admin', { name: 'watcher', permissions: ['tenant:read', 'security:read'] });
      assert.equal(code(esc), 'IAM_GRANT_ESCALATION');
      assert.deepEqual(esc.json().details.missing, ['security:read']);
      // A delegate administers users and roles but holds nothing else.
      assert.equal((await call('POST', '/api/v1/tenants/acme/roles', 'admin', { name: 'delegate', permissions: ['tenant:read', 'user:manage', 'role:manage'] })).statusCode, 201);
      assert.equal((await call('POST', '/api/v1/tenants/acme/grants', 'admin', { user: 'delegate@acme.test', role: 'delegate' })).statusCode, 204);
      const more = await call('POST', '/api/v1/tenants/acme/roles', 'delegate', { name: 'helper', permissions: ['tenant:read', 'key:read'] });
      assert.equal(code(more), 'IAM_GRANT_ESCALATION');
      assert.deepEqual(more.json().details.missing, ['key:read']);
      assert.equal((await call('POST', '/api/v1/tenants/acme/roles', 'delegate', { name: 'helper', permissions: ['tenant:read', 'user:manage'] })).statusCode, 201);
      // Widening its own role would raise every holder, itself included.
      const widen = await call('PATCH', '/api/v1/tenants/acme/roles/delegate', 'delegate', { permissions: ['tenant:read', 'user:manage', 'role:manage', 'key:rotate'] });
      assert.equal(code(widen), 'IAM_GRANT_ESCALATION');
      assert.deepEqual(widen.json().details.missing, ['key:rotate']);
      // Changing a role whose present permissions it lacks would strip powers it does not have.
      assert.equal(code(await call('PATCH', '/api/v1/tenants/acme/roles/key-viewer', 'delegate', { permissions: ['tenant:read'] })), 'IAM_GRANT_ESCALATION');
      assert.equal(code(await call('PATCH', '/api/v1/tenants/acme/roles/key-viewer', 'delegate', { description: 'nothing to see' })), 'IAM_GRANT_ESCALATION');
      assert.equal(code(await call('DELETE', '/api/v1/tenants/acme/roles/key-viewer', 'delegate')), 'IAM_GRANT_ESCALATION');
      // A grant on one stage does not count as holding a permission on the whole tenant, not even
      // the tenant:read / stage:read it lets its holder use to see the tenant.
      assert.equal((await call('POST', '/api/v1/tenants/acme/grants', 'admin', { user: 'delegate@acme.test', role: 'developer', stage: 'development' })).statusCode, 204);
      const staged = await call('POST', '/api/v1/tenants/acme/roles', 'delegate', { name: 'viewer', permissions: ['stage:read', 'app:deploy'] });
      assert.equal(code(staged), 'IAM_GRANT_ESCALATION');
      assert.deepEqual(staged.json().details.missing, ['stage:read', 'app:deploy']);
      assert.equal(code(await call('PATCH', '/api/v1/tenants/acme/roles/nothing-here', 'admin', { description: 'x' })), 'IAM_ROLE_NOT_FOUND');
      assert.equal(code(await call('PATCH', '/api/v1/tenants/acme/roles/developer', 'admin', { description: 'x' })), 'IAM_ROLE_NOT_FOUND');
      assert.equal(code(await call('DELETE', '/api/v1/tenants/acme/roles/developer', 'admin')), 'IAM_ROLE_NOT_FOUND');
      // Without role:manage, no role changes at all.
      assert.equal(code(await call('POST', '/api/v1/tenants/acme/roles', 'carol', { name: 'mine', permissions: ['tenant:read'] })), 'TENANCY_TENANT_NOT_FOUND');
      assert.deepEqual((await customRoles()).sort(), ['delegate', 'helper', 'key-viewer']);
    });

    test('a custom role gives exactly its permissions on every route, tenant-wide or on one stage', async () => {
      assert.equal((await call('POST', '/api/v1/tenants/acme/grants', 'admin', { user: 'carol@acme.test', role: 'key-viewer' })).statusCode, 204);
      assert.equal((await call('POST', '/api/v1/tenants/acme/grants', 'admin', { user: 'dave@acme.test', role: 'key-viewer', stage: 'development' })).statusCode, 204);
      const perms = ['tenant:read', 'audit:read', 'key:read'];
      // Routes that need a permission: what a role decides (public and sign-in routes are another matter).
      const routes = app.declaredRoutes.filter((r) => r.method !== 'HEAD' && r.access.kind === 'permission' && !SKIP.has(`${r.method} ${r.url}`));
      const mismatches: string[] = [];
      let allowed = 0;
      for (const r of routes) {
        for (const stage of r.url.includes(':stage') ? ['development', 'production'] : ['development']) {
          const url = r.url.replace(':tenant', 'acme').replace(':stage', stage).replace(':name', 'X').replace(':email', 'nobody@acme.test');
          for (const [who, stageOnly] of [
            ['carol', false],
            ['dave', true],
          ] as const) {
            const res = await call(r.method, url, who);
            const body = res.statusCode >= 400 ? res.json() : {};
            const got = res.statusCode === 403 && body.code === 'IAM_FORBIDDEN' ? 'forbidden' : res.statusCode === 401 ? 'unauthenticated' : 'allow';
            const want = expected(perms, stageOnly, r.access, stage);
            if (want === 'allow') allowed++;
            if (got !== want) mismatches.push(`${who} ${r.method} ${url}: expected ${want}, got ${got} (${res.statusCode} ${body.code ?? ''})`);
          }
        }
      }
      assert.ok(allowed >= 4, `allowed ${allowed}`);
      assert.deepEqual(mismatches, []);
    });

    test("changing a custom role changes its holders' powers at their next request", async () => {
      assert.equal((await call('GET', '/api/v1/tenants/acme/audit', 'carol')).statusCode, 200);
      const r = await call('PATCH', '/api/v1/tenants/acme/roles/key-viewer', 'admin', { permissions: ['tenant:read', 'key:read'], description: 'Sees keys' });
      assert.equal(r.statusCode, 200, r.body);
      assert.deepEqual(r.json().permissions, ['tenant:read', 'key:read']);
      assert.equal(code(await call('GET', '/api/v1/tenants/acme/audit', 'carol')), 'IAM_FORBIDDEN');
      const who = await call('GET', '/api/v1/auth/session', 'carol');
      assert.deepEqual(who.json().grants, [{ role: 'key-viewer', tenant: 'acme', stage: null, permissions: ['tenant:read', 'key:read'] }]);
      const [updated] = await auditActions('role.updated');
      assert.deepEqual(updated?.details.before, { description: 'Sees keys and the audit trail', permissions: ['tenant:read', 'audit:read', 'key:read'] });
      assert.deepEqual(updated?.details.after, { description: 'Sees keys', permissions: ['tenant:read', 'key:read'] });
    });

    test('a role still granted, or named by the MFA policy, cannot be deleted', async () => {
      const inUse = await call('DELETE', '/api/v1/tenants/acme/roles/key-viewer', 'admin');
      assert.equal(code(inUse), 'IAM_ROLE_IN_USE');
      assert.equal(inUse.json().details.grants, 2);
      assert.equal((await call('DELETE', '/api/v1/tenants/acme/grants?user=carol@acme.test&role=key-viewer', 'admin')).statusCode, 204);
      assert.equal((await call('DELETE', '/api/v1/tenants/acme/grants?user=dave@acme.test&role=key-viewer&stage=development', 'admin')).statusCode, 204);
      assert.equal((await call('PATCH', '/api/v1/tenants/acme/policy', 'admin', { mfaRequiredRoles: ['key-viewer'] })).statusCode, 200);
      const named = await call('DELETE', '/api/v1/tenants/acme/roles/key-viewer', 'admin');
      assert.equal(code(named), 'IAM_ROLE_IN_USE');
      assert.deepEqual(named.json().details.mfaRequiredRoles, ['key-viewer']);
      assert.equal((await call('PATCH', '/api/v1/tenants/acme/policy', 'admin', { mfaRequiredRoles: [] })).statusCode, 200);
      assert.equal((await call('DELETE', '/api/v1/tenants/acme/roles/key-viewer', 'admin')).statusCode, 204);
      assert.equal(code(await call('DELETE', '/api/v1/tenants/acme/roles/key-viewer', 'admin')), 'IAM_ROLE_NOT_FOUND');
      assert.deepEqual((await customRoles()).sort(), ['delegate', 'helper']);
      assert.equal(code(await call('POST', '/api/v1/tenants/acme/grants', 'admin', { user: 'carol@acme.test', role: 'key-viewer' })), 'IAM_ROLE_UNKNOWN');
      const actions = (await auditActions('role.*')).map((a) => a.action);
      for (const a of ['role.created', 'role.updated', 'role.deleted']) assert.ok(actions.includes(a), a);
      const [deleted] = await auditActions('role.deleted');
      assert.deepEqual(deleted?.details, { role: 'key-viewer', permissions: ['tenant:read', 'key:read'] });
    });

    test('app roles are granted per app and stage to tenant users, listed, revoked and audited', async () => {
      const base = '/api/v1/tenants/acme/stages/development/app-roles';
      const first = await call('POST', base, 'admin', { user: 'Carol@acme.test', app: 'crm', role: 'sales' });
      assert.equal(first.statusCode, 201, first.body);
      assert.equal(first.json().user, 'carol@acme.test');
      assert.equal(first.json().grantedBy, 'admin@acme.test');
      assert.equal(first.json().lastUsedAt, null);
      const again = await call('POST', base, 'admin', { user: 'carol@acme.test', app: 'crm', role: 'sales' });
      assert.equal(again.json().id, first.json().id, 'granting again adds nothing');
      await call('POST', base, 'admin', { user: 'carol@acme.test', app: 'crm', role: 'manager' });
      await call('POST', base, 'admin', { user: 'dave@acme.test', app: 'hr', role: 'viewer' });
      assert.equal((await call('POST', '/api/v1/tenants/acme/stages/production/app-roles', 'admin', { user: 'carol@acme.test', app: 'crm', role: 'sales' })).statusCode, 201);
      const all = (await call('GET', base, 'admin')).json() as { user: string; app: string; role: string; stage: string }[];
      assert.deepEqual(all.map((g) => `${g.user} ${g.app}/${g.role}@${g.stage}`), ['carol@acme.test crm/manager@development', 'carol@acme.test crm/sales@development', 'dave@acme.test hr/viewer@development']);
      assert.equal((await call('GET', `${base}?app=crm`, 'admin')).json().length, 2);
      assert.equal((await call('GET', `${base}?user=dave@acme.test`, 'admin')).json().length, 1);
      assert.equal(code(await call('POST', base, 'admin', { user: 'nobody@acme.test', app: 'crm', role: 'sales' })), 'IAM_USER_NOT_FOUND');
      assert.equal(code(await call('POST', base, 'admin', { user: 'admin@globex.test', app: 'crm', role: 'sales' })), 'IAM_USER_NOT_FOUND');
      assert.equal(code(await call('POST', '/api/v1/tenants/acme/stages/nowhere/app-roles', 'admin', { user: 'carol@acme.test', app: 'crm', role: 'sales' })), 'TENANCY_STAGE_NOT_FOUND');
      for (const body of [{ user: 'carol@acme.test', app: 'CRM', role: 'sales' }, { user: 'carol@acme.test', app: 'crm', role: '-x' }, { user: 'carol@acme.test', app: 'crm' }]) {
        assert.equal(code(await call('POST', base, 'admin', body)), 'REQUEST_INVALID');
      }
      // user:manage on one stage is enough there, and only there.
      assert.equal((await call('POST', '/api/v1/tenants/acme/grants', 'admin', { user: 'erin@acme.test', role: 'helper', stage: 'development' })).statusCode, 204);
      assert.equal((await call('POST', base, 'erin', { user: 'erin@acme.test', app: 'crm', role: 'sales' })).statusCode, 201);
      assert.equal(code(await call('POST', '/api/v1/tenants/acme/stages/production/app-roles', 'erin', { user: 'erin@acme.test', app: 'crm', role: 'sales' })), 'IAM_FORBIDDEN');
      // App roles carry no platform permission.
      const who = await call('GET', '/api/v1/auth/session', 'carol');
      assert.deepEqual(who.json().grants, []);
      assert.equal((await call('DELETE', `${base}?user=carol@acme.test&app=crm&role=manager`, 'admin')).statusCode, 204);
      assert.equal(code(await call('DELETE', `${base}?user=carol@acme.test&app=crm&role=manager`, 'admin')), 'IAM_GRANT_NOT_FOUND');
      assert.equal((await call('GET', `${base}?user=carol@acme.test`, 'admin')).json().length, 1);
      const granted = await auditActions('app-role.granted');
      assert.ok(granted.some((r) => r.details.app === 'crm' && r.details.role === 'sales' && r.details.stage === 'production'));
      const revoked = await auditActions('app-role.revoked');
      assert.deepEqual(revoked.map((r) => r.details), [{ app: 'crm', role: 'manager', stage: 'development' }]);
    });

    test('granting an app role the user already holds changes nothing, records nothing, and says so', async () => {
      const base = '/api/v1/tenants/acme/stages/development/app-roles';
      const ref = { user: 'dave@acme.test', app: 'wiki', role: 'editor' };
      const events = async () => (await auditActions('app-role.granted')).filter((r) => r.details.app === 'wiki');
      const first = await call('POST', base, 'admin', ref);
      assert.equal(first.statusCode, 201, first.body);
      assert.equal(first.json().created, true);
      assert.equal((await events()).length, 1);
      const again = await call('POST', base, 'admin', ref);
      assert.equal(again.statusCode, 201, again.body);
      assert.equal(again.json().created, false);
      assert.equal(again.json().id, first.json().id);
      assert.equal(again.json().grantedAt, first.json().grantedAt, 'the answer is the earlier grant');
      assert.equal((await events()).length, 1, 'a grant that was not inserted is not audited');
      // Revoked, it can be granted (and is audited) anew.
      assert.equal((await call('DELETE', `${base}?${new URLSearchParams(ref)}`, 'admin')).statusCode, 204);
      assert.equal((await call('POST', base, 'admin', ref)).json().created, true);
      assert.equal((await events()).length, 2);
    });
  });
}
