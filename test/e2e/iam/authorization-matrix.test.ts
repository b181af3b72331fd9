// Every built-in role × every declared route × own tenant / foreign tenant × stage in and out of
// the grant's scope, with the expected outcome computed from the permission catalog and each
// route's declared access (not hand-listed), checked over HTTP. Then standing: every route that
// acts on another principal (found from the routes' schemas, not hand-listed) refuses a caller
// holding its permission but not the target's powers, and lets one holding them act.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { ephemeralSigner, systemSource } from '../../../src/audit-chain/index.ts';
import { loadConfig } from '../../../src/config/index.ts';
import type { Db } from '../../../src/db/index.ts';
import type { RouteAccess } from '../../../src/http/index.ts';
import { builtInRoles, createUser, grantRole } from '../../../src/iam/index.ts';
import { buildApp } from '../../../src/server/index.ts';
import { createTenant, type Stage } from '../../../src/tenancy/index.ts';
import { engines } from '../../harness/engines.ts';
import { testIamKey, sessionToken } from '../../harness/iam.ts';
import { testKeyring } from '../../harness/keys.ts';

const config = loadConfig({ env: {}, flags: { logLevel: 'silent' } });
const VISIBILITY = new Set(['tenant:read', 'stage:read']);
// Routes whose success would end the caller's session or change what the rest of the matrix sees.
const SKIP = new Set(['POST /api/v1/auth/logout', 'POST /api/v1/keys/root/rotate', 'POST /api/v1/setup']);

interface Actor {
  readonly label: string;
  readonly role: string;
  /** 'platform': a platform-wide grant; 'tenant': on acme; 'stage': on acme's development stage only. */
  readonly scope: 'platform' | 'tenant' | 'stage';
  token?: string;
}

/** The expected outcome: 'allow', 'forbidden' (403) or 'hidden' (404: the tenant is not visible). */
function expected(actor: Actor, acc: RouteAccess, tenant: 'acme' | 'globex', stage: 'development' | 'production'): 'allow' | 'forbidden' | 'hidden' | 'wrong-audience' {
  // App routes under /t/ take end-user tokens only; a console session never opens them.
  if (acc.kind === 'end-user') return 'wrong-audience';
  if (acc.kind !== 'permission') return 'allow';
  const perms = builtInRoles[actor.role]?.permissions ?? [];
  const has = (perms as readonly string[]).includes(acc.permission);
  if (acc.tenantParam === undefined) return actor.scope === 'platform' && has ? 'allow' : 'forbidden';
  if (actor.scope !== 'platform' && tenant === 'globex') return 'hidden';
  if (!has) return 'forbidden';
  if (actor.scope !== 'stage') return 'allow';
  if (acc.stageParam !== undefined) return stage === 'development' ? 'allow' : 'forbidden';
  return VISIBILITY.has(acc.permission) ? 'allow' : 'forbidden';
}

// Names in a route's path, query or body that designate another principal or a grant: a mutating
// route taking one acts on someone, and needs standing over them (src/iam/users/standing.ts).
const TARGET_NAMES = new Set(['email', 'user', 'itemId', 'grants']);
const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** The operations of the OpenAPI document, keyed like declared routes: `METHOD /path/:param`. */
type Operation = { parameters?: { in: string; name: string }[]; requestBody?: { content?: Record<string, { schema?: { properties?: Record<string, unknown> } }> } };
function operations(doc: { paths?: Record<string, Record<string, Operation>> }): Map<string, Operation> {
  const out = new Map<string, Operation>();
  for (const [path, ops] of Object.entries(doc.paths ?? {})) {
    for (const [method, op] of Object.entries(ops)) out.set(`${method.toUpperCase()} ${path.replace(/\{([^}]+)\}/g, ':$1')}`, op);
  }
  return out;
}

/** Whether a route acts on another principal: a tenant-scoped admin change naming a user, a client, a grant or a review item. */
function actsOnPrincipal(method: string, url: string, acc: RouteAccess, op: Operation | undefined): boolean {
  if (!MUTATING.has(method) || acc.kind !== 'permission' || acc.tenantParam === undefined) return false;
  if (/\/clients\/:name/.test(url)) return true;
  const names = [
    ...(op?.parameters ?? []).map((p) => p.name),
    ...Object.keys(op?.requestBody?.content?.['application/json']?.schema?.properties ?? {}),
  ];
  return names.some((n) => TARGET_NAMES.has(n));
}

/** How to call one route on a target that holds `role`: the path's parameters, a query, a body. */
type StandingCall = { readonly params?: Record<string, string>; readonly query?: Record<string, string>; readonly payload?: object };
type Fixtures = {
  /** A fresh active user of acme (with a live session) holding `role` tenant-wide, if given; their email. */
  userHolding(role?: string): Promise<string>;
  /** A fresh invited user of acme holding `role`; their email. */
  invitedHolding(role: string): Promise<string>;
  /** A fresh API client of acme holding `role`; its name. */
  clientHolding(role: string): Promise<string>;
  /** A fresh user holding `role`, in a new access review: the review and the grant's item. */
  reviewItemFor(role: string): Promise<{ id: string; itemId: string }>;
  fresh(prefix: string): string;
};

/**
 * Each route that acts on another principal, and how to make it act on a target holding a given
 * role. The test fails for a route found by actsOnPrincipal with neither a case here nor a reason
 * in NO_STANDING: a new route acting on a user cannot arrive without its standing being tested.
 */
const STANDING_CASES: Record<string, (f: Fixtures, role: string) => Promise<StandingCall>> = {
  'PATCH /api/v1/tenants/:tenant/users/:email': async (f, role) => ({ params: { email: await f.userHolding(role) }, payload: { status: 'disabled' } }),
  'DELETE /api/v1/tenants/:tenant/users/:email': async (f, role) => ({ params: { email: await f.userHolding(role) } }),
  'DELETE /api/v1/tenants/:tenant/users/:email/sessions': async (f, role) => ({ params: { email: await f.userHolding(role) } }),
  'DELETE /api/v1/tenants/:tenant/users/:email/mfa': async (f, role) => ({ params: { email: await f.userHolding(role) } }),
  'POST /api/v1/tenants/:tenant/users/:email/password-reset': async (f, role) => ({ params: { email: await f.userHolding(role) } }),
  'POST /api/v1/tenants/:tenant/users/:email/unlock': async (f, role) => ({ params: { email: await f.userHolding(role) } }),
  // Inviting again an email still invited replaces its pending invitation: a way into the account.
  'POST /api/v1/tenants/:tenant/invitations': async (f, role) => ({ payload: { email: await f.invitedHolding(role) } }),
  'POST /api/v1/tenants/:tenant/grants': async (f, role) => ({ payload: { user: await f.userHolding(), role } }),
  'DELETE /api/v1/tenants/:tenant/grants': async (f, role) => ({ query: { user: await f.userHolding(role), role } }),
  'POST /api/v1/tenants/:tenant/clients': async (f, role) => ({ payload: { name: f.fresh('c'), grants: [{ role }] } }),
  'POST /api/v1/tenants/:tenant/clients/:name/rotate': async (f, role) => ({ params: { name: await f.clientHolding(role) } }),
  'DELETE /api/v1/tenants/:tenant/clients/:name': async (f, role) => ({ params: { name: await f.clientHolding(role) } }),
  'POST /api/v1/tenants/:tenant/access-reviews/:id/items/:itemId': async (f, role) => ({ params: await f.reviewItemFor(role), payload: { decision: 'revoke' } }),
};
/** Routes found by actsOnPrincipal that need no standing beyond their permission, and why. */
const NO_STANDING: Record<string, string> = {
  'POST /api/v1/tenants/:tenant/users': 'creates a user: nobody to outrank yet (an existing email is IAM_USER_EXISTS)',
  'POST /api/v1/tenants/:tenant/stages/:stage/app-roles': "app roles carry no platform permission: their standing is user:manage on the stage, the route's own permission",
  'DELETE /api/v1/tenants/:tenant/stages/:stage/app-roles': "app roles carry no platform permission: their standing is user:manage on the stage, the route's own permission",
};
// A target holding STRONG has powers the caller lacks (app:deploy, stage:read); one holding WEAK
// has only tenant:read, which every caller here holds.
const STRONG = 'developer';
const WEAK = 'st-viewer';

for (const engine of engines()) {
  describe(`authorization matrix on ${engine.name}`, { concurrency: false }, () => {
    let app: FastifyInstance;
    let db: Db;
    let acme: Awaited<ReturnType<typeof createTenant>>;
    const actors: Actor[] = [];
    after(async () => app?.close());

    before(async () => {
      const database = await engine.open();
      db = database.db;
      const keyring = await testKeyring();
      app = await buildApp({ config, database, logger: pino({ level: 'silent' }), signer: ephemeralSigner(), keyring, iamKey: testIamKey });
      acme = await createTenant(db, keyring, systemSource, { name: 'acme' });
      const globex = await createTenant(db, keyring, systemSource, { name: 'globex' });
      assert.ok(globex);
      const dev = acme.stages.find((s) => s.name === 'development') as Stage;
      for (const role of Object.keys(builtInRoles)) {
        actors.push({ label: `${role}@platform`, role, scope: 'platform' });
        if (role !== 'platform-operator') {
          actors.push({ label: `${role}@acme`, role, scope: 'tenant' });
          actors.push({ label: `${role}@acme/development`, role, scope: 'stage' });
        }
      }
      await db.transaction().execute(async (trx) => {
        for (const [i, a] of actors.entries()) {
          const userId = await createUser(trx, { tenantId: a.scope === 'platform' ? null : acme.id, email: `u${i}@matrix.test`, password: 'matrix passphrase ok' });
          await grantRole(trx, { userId, role: a.role, tenantId: a.scope === 'platform' ? null : acme.id, stageId: a.scope === 'stage' ? dev.id : null });
          a.token = await sessionToken(trx, userId);
        }
      });
    });

    test('every role gets exactly the access the catalog gives it, on every route and scope', async () => {
      const routes = app.declaredRoutes.filter((r) => r.method !== 'HEAD' && !SKIP.has(`${r.method} ${r.url}`));
      const mismatches: string[] = [];
      let checked = 0;
      for (const r of routes) {
        for (const tenant of ['acme', 'globex'] as const) {
          for (const stage of ['development', 'production'] as const) {
            if (!r.url.includes(':stage') && stage === 'production') continue;
            if (!r.url.includes(':tenant') && tenant === 'globex') continue;
            const url = r.url.replace(':tenant', tenant).replace(':stage', stage).replace(':name', 'X').replace(':email', 'nobody@matrix.test');
            for (const a of actors) {
              const res = await app.inject({ method: r.method as 'GET', url, headers: { authorization: `Bearer ${a.token}` } });
              const body = res.statusCode >= 400 ? res.json() : {};
              let got = res.statusCode === 403 && body.code === 'IAM_WRONG_AUDIENCE' ? 'wrong-audience' : res.statusCode === 403 && body.code === 'IAM_FORBIDDEN' ? 'forbidden' : res.statusCode === 404 && body.code === 'TENANCY_TENANT_NOT_FOUND' && tenant === 'globex' ? 'hidden' : res.statusCode === 401 ? 'unauthenticated' : 'allow';
              const want = expected(a, r.access, tenant, stage);
              // A public route's 401 comes from its own credential check (a refresh token, an MFA
              // challenge, a client secret the matrix does not send), not from authorization.
              if (r.access.kind === 'public' && got === 'unauthenticated') got = 'allow';
              checked++;
              if (got !== want) mismatches.push(`${a.label} ${r.method} ${url}: expected ${want}, got ${got} (${res.statusCode} ${body.code ?? ''})`);
            }
          }
        }
      }
      assert.ok(checked > 500, `checked ${checked}`);
      assert.deepEqual(mismatches, []);
    });

    test('every route acting on another user, grant, client or session refuses a caller without standing over the target, and lets one with it act', async () => {
      await app.ready();
      const ops = operations(app.swagger() as Parameters<typeof operations>[0]);
      const found = app.declaredRoutes.filter((r) => actsOnPrincipal(r.method, r.url, r.access, ops.get(`${r.method} ${r.url}`))).map((r) => `${r.method} ${r.url}`);
      const missing = found.filter((k) => !Object.hasOwn(STANDING_CASES, k) && !Object.hasOwn(NO_STANDING, k));
      assert.deepEqual(missing, [], 'these routes act on another principal: check standing with requireStanding (src/iam/users/standing.ts) and add a case to STANDING_CASES');
      const stale = [...Object.keys(STANDING_CASES), ...Object.keys(NO_STANDING)].filter((k) => !found.includes(k));
      assert.deepEqual(stale, [], 'cases for routes that do not exist or no longer name a target');

      const admin = actors.find((a) => a.label === 'tenant-admin@acme')?.token as string;
      const as = (token: string, method: string, url: string, payload?: object) =>
        app.inject({ method: method as 'GET', url, headers: { authorization: `Bearer ${token}` }, ...(payload ? { payload } : {}) });
      let n = 0;
      const fresh = (prefix: string) => `${prefix}${++n}-standing`;
      const addRole = (name: string, permissions: string[]) =>
        db.insertInto('accord.custom_roles').values({ tenant_id: acme.id, name, description: 'standing test', permissions }).execute();
      const newUser = async (role: string | undefined, status: 'active' | 'invited') =>
        db.transaction().execute(async (trx) => {
          const email = `${fresh('s')}@matrix.test`;
          const userId = await createUser(trx, { tenantId: acme.id, email, password: 'standing passphrase ok' });
          if (status === 'invited') await trx.updateTable('accord.users').set({ status, password_hash: null }).where('id', '=', userId).execute();
          else await sessionToken(trx, userId);
          if (role) await grantRole(trx, { userId, role, tenantId: acme.id, stageId: null });
          return email;
        });
      const f: Fixtures = {
        fresh,
        userHolding: (role) => newUser(role, 'active'),
        invitedHolding: (role) => newUser(role, 'invited'),
        clientHolding: async (role) => {
          const name = fresh('c');
          const res = await as(admin, 'POST', '/api/v1/tenants/acme/clients', { name, grants: [{ role }] });
          assert.equal(res.statusCode, 201, res.body);
          return name;
        },
        reviewItemFor: async (role) => {
          const email = await newUser(role, 'active');
          const started = await as(admin, 'POST', '/api/v1/tenants/acme/access-reviews', { name: fresh('review') });
          assert.equal(started.statusCode, 201, started.body);
          const id = started.json().id as string;
          const items = (await as(admin, 'GET', `/api/v1/tenants/acme/access-reviews/${id}`)).json().items as { id: string; role: string; principal: { label: string } }[];
          const item = items.find((i) => i.principal.label === email && i.role === role);
          assert.ok(item, `review item of ${email}`);
          return { id, itemId: item.id };
        },
      };
      await addRole(WEAK, ['tenant:read']);
      // The caller of each route: its permission (and tenant:read) on acme, nothing more.
      const callers = new Map<string, string>();
      const callerFor = async (permission: string) => {
        const known = callers.get(permission);
        if (known) return known;
        const role = `st-${permission.replace(':', '-')}`;
        await addRole(role, ['tenant:read', permission]);
        const token = await db.transaction().execute(async (trx) => {
          const userId = await createUser(trx, { tenantId: acme.id, email: `${role}@matrix.test`, password: 'standing passphrase ok' });
          await grantRole(trx, { userId, role, tenantId: acme.id, stageId: null });
          return sessionToken(trx, userId);
        });
        callers.set(permission, token);
        return token;
      };

      const mismatches: string[] = [];
      for (const key of Object.keys(STANDING_CASES)) {
        const r = app.declaredRoutes.find((d) => `${d.method} ${d.url}` === key);
        if (r?.access.kind !== 'permission') throw new Error(`${key}: not a declared permission route`);
        const caller = await callerFor(r.access.permission);
        for (const [role, want] of [
          [STRONG, 'refused'],
          [WEAK, 'allowed'],
        ] as const) {
          const call = await (STANDING_CASES[key] as (f: Fixtures, role: string) => Promise<StandingCall>)(f, role);
          let url = r.url.replace(':tenant', 'acme');
          for (const [k, v] of Object.entries(call.params ?? {})) url = url.replace(`:${k}`, encodeURIComponent(v));
          if (call.query) url += `?${new URLSearchParams(call.query)}`;
          const res = await as(caller, r.method, url, call.payload);
          const code = res.statusCode >= 400 ? res.json().code : undefined;
          const got = res.statusCode === 403 && code === 'IAM_GRANT_ESCALATION' ? 'refused' : res.statusCode < 300 ? 'allowed' : `${res.statusCode} ${code}`;
          if (got !== want) mismatches.push(`${key} on a target holding ${role}: expected ${want}, got ${got}`);
        }
      }
      assert.deepEqual(mismatches, []);
    });
  });
}
