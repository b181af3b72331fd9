// A platform with the data API on one engine: catalog, keyring, data plane, server (inject), a
// tenant, an app installed on its stages, end users with app roles and their stage tokens.
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { ephemeralSigner, systemSource } from '../../src/audit-chain/index.ts';
import { loadConfig } from '../../src/config/index.ts';
import type { Keyring } from '../../src/crypto/keyring/index.ts';
import { type Database, migrate, openDatabase } from '../../src/db/index.ts';
import { createUser, openSession } from '../../src/iam/index.ts';
import { type DataPlane, openDataPlane } from '../../src/kernel/index.ts';
import { buildApp } from '../../src/server/index.ts';
import { createTenant } from '../../src/tenancy/index.ts';
import { installApp } from './apps.ts';
import { newPostgresDatabaseUrl, type TestEngine } from './engines.ts';
import { testIamKey, testIssuer } from './iam.ts';
import { testKeyring } from './keys.ts';

export const EXPENSES_PATH = new URL('../../examples/expenses/expenses.app.yaml', import.meta.url).pathname;
export const expensesManifest = () => readFileSync(EXPENSES_PATH, 'utf8');

export interface Platform {
  readonly database: Database;
  readonly url: string | undefined;
  readonly keyring: Keyring;
  readonly plane: DataPlane;
  readonly app: FastifyInstance;
  close(): Promise<void>;
}

export async function startPlatform(engine: TestEngine, opts: { rulesOff?: boolean } = {}): Promise<Platform> {
  const url = engine.name === 'postgres' ? await newPostgresDatabaseUrl() : undefined;
  const database = await openDatabase({ dataDir: 'unused', inMemory: url === undefined, ...(url ? { databaseUrl: url } : {}) });
  await migrate(database.db);
  const keyring = await testKeyring();
  const plane = await openDataPlane(database, { databaseUrl: url, kms: keyring.kms });
  const app = await buildApp({
    config: loadConfig({ env: {}, flags: { logLevel: 'silent' } }),
    database,
    logger: pino({ level: 'silent' }),
    signer: ephemeralSigner(),
    keyring,
    iamKey: testIamKey,
    dataPlane: plane,
    ...(opts.rulesOff ? { testOnlyDataApiRulesOff: true } : {}),
  });
  return {
    database,
    url,
    keyring,
    plane,
    app,
    close: async () => {
      await app.close();
      await plane.close();
      await database.close();
    },
  };
}

export interface TestStage {
  readonly tenantId: string;
  readonly tenant: string;
  readonly stageId: string;
  readonly stage: string;
  readonly schema: string;
  readonly role: string;
}

/** A tenant with its default stages; the app installed on the ones named. */
export async function tenantWithApp(p: Platform, name: string, manifest: string, stages: readonly string[] = ['production']): Promise<TestStage[]> {
  const t = await createTenant(p.database.db, p.keyring, systemSource, { name });
  const out: TestStage[] = [];
  for (const s of t.stages) {
    const st = { tenantId: t.id, tenant: name, stageId: s.id, stage: s.name, schema: s.schema, role: s.role };
    if (stages.includes(s.name)) await installApp(p.database.db, p.database.engine, st, manifest);
    out.push(st);
  }
  return out;
}

/** A tenant user with app roles on a stage, and an end-user access token for that stage. */
export async function endUser(p: Platform, st: TestStage, email: string, app: string, roles: readonly string[]): Promise<{ id: string; token: string }> {
  return p.database.db.transaction().execute(async (trx) => {
    const id = await createUser(trx, { tenantId: st.tenantId, email, password: 'correct horse battery staple' });
    for (const role of roles) await trx.insertInto('accord.app_role_grants').values({ tenant_id: st.tenantId, stage_id: st.stageId, app, role, user_id: id, granted_by: null, last_used_at: null }).execute();
    const s = await openSession(trx, testIssuer, { userId: id, kind: 'end-user', stageId: st.stageId, policy: { idleSeconds: 3600, absoluteSeconds: 3600 }, source: { ip: null, userAgent: null } });
    return { id, token: s.accessToken };
  });
}

/** Grants one more app role to an existing user. */
export async function grant(p: Platform, st: TestStage, userId: string, app: string, role: string): Promise<void> {
  await p.database.db.insertInto('accord.app_role_grants').values({ tenant_id: st.tenantId, stage_id: st.stageId, app, role, user_id: userId, granted_by: null, last_used_at: null }).execute();
}

/** A small HTTP client over inject() for one caller on one stage's app. */
export function client(p: Platform, st: TestStage, app: string, token: string) {
  const base = `/t/${st.tenant}/${st.stage}/apps/${app}/api`;
  const call = async (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await p.app.inject({ method, url: `${base}${path}`, headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers }, ...(body === undefined ? {} : { payload: JSON.stringify(body) }) });
    // biome-ignore lint/suspicious/noExplicitAny: answers are whatever JSON the API sends; tests assert on them
    let json: any;
    try {
      json = res.body ? res.json() : undefined;
    } catch {
      json = undefined;
    }
    return { status: res.statusCode, body: json, headers: res.headers };
  };
  return {
    list: (entity: string, query: Record<string, string> = {}) => call('GET', `/${entity}?${new URLSearchParams(query).toString()}`),
    get: (entity: string, id: string, query = '') => call('GET', `/${entity}/${id}${query}`),
    create: (entity: string, body: unknown, headers?: Record<string, string>) => call('POST', `/${entity}`, body, headers),
    update: (entity: string, id: string, body: unknown, headers?: Record<string, string>) => call('PATCH', `/${entity}/${id}`, body, headers),
    remove: (entity: string, id: string, headers?: Record<string, string>) => call('DELETE', `/${entity}/${id}`, undefined, headers),
    raw: call,
  };
}
