// Every built-in role × every declared route × own tenant / foreign tenant × stage in and out of
// the grant's scope, with the expected outcome computed from the permission catalog and each
// route's declared access (not hand-listed), checked over HTTP.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
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

for (const engine of engines()) {
  describe(`authorization matrix on ${engine.name}`, () => {
    let app: FastifyInstance;
    after(async () => app?.close());

    test('every role gets exactly the access the catalog gives it, on every route and scope', async () => {
      const database = await engine.open();
      const db: Db = database.db;
      const keyring = await testKeyring();
      app = await buildApp({ config, database, logger: pino({ level: 'silent' }), signer: ephemeralSigner(), keyring, iamKey: testIamKey });
      const acme = await createTenant(db, keyring, systemSource, { name: 'acme' });
      const globex = await createTenant(db, keyring, systemSource, { name: 'globex' });
      assert.ok(globex);
      const dev = acme.stages.find((s) => s.name === 'development') as Stage;
      const actors: Actor[] = [];
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
  });
}
