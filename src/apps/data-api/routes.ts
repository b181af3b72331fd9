// The generated data API's routes: /t/{tenant}/{stage}/apps/{app}/api/{Entity}[/{id}] and the
// OpenAPI document of an app on a stage. End users of the stage act with their app roles there.
import { Type } from '@sinclair/typebox';
import { isCryptoError } from '../../crypto/field/index.ts';
import { AccordError } from '../../errors/index.ts';
import { access, type RouteContext, type RouteDefinition, route } from '../../http/index.ts';
import { type StageSession, TtlCache } from '../../kernel/index.ts';
import { type DeployedApp, deployedApp } from '../lifecycle/index.ts';
import { loadStageKeys, type StageKeys } from './crypt.ts';
import { idempotent } from './idempotency.ts';
import { dataInventory } from './inventory.ts';
import { openApiOf } from './openapi.ts';
import { createRecord, type DataApiDeps, deleteRecord, getRecord, type ListQuery, listRecords, parseIfMatch, type RequestScope, updateRecord } from './service.ts';

export interface DataApiOptions extends DataApiDeps {
  /** Test-only: the generated SQL leaves the rules out, so RLS alone stands (see RequestScope). */
  readonly testOnlyAppRulesOff?: boolean;
}

const Name = Type.String({ pattern: '^[A-Za-z][A-Za-z0-9-]{0,62}$' });
const AppParams = Type.Object({ tenant: Type.String({ maxLength: 63 }), stage: Type.String({ maxLength: 63 }), app: Name });
const EntityParams = Type.Object({ tenant: Type.String({ maxLength: 63 }), stage: Type.String({ maxLength: 63 }), app: Name, entity: Name });
const RecordParams = Type.Object({ tenant: Type.String({ maxLength: 63 }), stage: Type.String({ maxLength: 63 }), app: Name, entity: Name, id: Type.String({ maxLength: 64 }) });
// The named parameters; any other is an attribute parameter (name=value, name.op=value).
const Query = Type.Object(
  {
    filter: Type.Optional(Type.String({ maxLength: 2000 })),
    sort: Type.Optional(Type.String({ maxLength: 1000 })),
    fields: Type.Optional(Type.String({ maxLength: 4000 })),
    limit: Type.Optional(Type.String({ maxLength: 7 })),
    cursor: Type.Optional(Type.String({ maxLength: 4200 })),
    count: Type.Optional(Type.String({ maxLength: 9 })),
  },
  { additionalProperties: true },
);
const RecordQuery = Type.Object({ fields: Type.Optional(Type.String({ maxLength: 4000 })) });
// Role-independent on purpose: which attributes a record carries depends on the caller's rules
// (the app's own OpenAPI document, openapi.json, describes each entity).
const RecordOut = Type.Object({ id: Type.String({ format: 'uuid' }), _version: Type.Optional(Type.Integer()) }, { additionalProperties: true });
const PageOut = Type.Object({ items: Type.Array(RecordOut), next: Type.Union([Type.String(), Type.Null()]), count: Type.Optional(Type.Integer()) });
const DocOut = Type.Object({ openapi: Type.String() }, { additionalProperties: true });
const InventoryOut = Type.Object({ tenant: Type.String(), entries: Type.Array(Type.Object({}, { additionalProperties: true })) });
const Body = Type.Unknown();
const RESERVED = new Set(['filter', 'sort', 'fields', 'limit', 'cursor', 'count']);

type Ctx = RouteContext & { params: { app: string; entity?: string; id?: string } };

// What every request would otherwise read from the catalog before its stage session — the
// revision running on the stage, the caller's app roles, the stage's keys — is kept for one second
// per node (TtlCache). So a deploy, a revoked app role or a rotated key takes effect within a
// second (the principal cache of the IAM layer has the same bound for platform grants).
async function inScope<T>(o: DataApiOptions, ctx: Ctx, fn: (s: StageSession, scope: RequestScope) => Promise<T>): Promise<T> {
  const c = caches.get(o) as NonNullable<ReturnType<typeof caches.get>>;
  const deployed = await c.apps.get(`${ctx.stage.id}/${ctx.params.app}`, () => deployedApp(o.db, ctx.stage.id, ctx.params.app));
  if (!deployed) throw new AccordError('DATA_APP_NOT_FOUND', { details: { app: ctx.params.app } });
  const principal = ctx.auth?.principalId;
  if (!principal) throw new AccordError('IAM_UNAUTHENTICATED');
  const roles = await c.roles.get(`${ctx.stage.id}/${ctx.params.app}/${principal}`, async () =>
    (await o.db.selectFrom('accord.app_role_grants').select('role').where('stage_id', '=', ctx.stage.id).where('app', '=', ctx.params.app).where(ctx.auth?.kind === 'client' ? 'client_id' : 'user_id', '=', principal).execute()).map((g) => g.role),
  );
  const encrypted = deployed.ir.entities.some((e) => e.attributes.some((a) => a.encrypted));
  const run = (keys: StageKeys | undefined): Promise<T> => {
    const scope: RequestScope = {
      deps: o,
      app: deployed.ir,
      revision: deployed.revision,
      tenantId: ctx.tenant.id,
      stageId: ctx.stage.id,
      schema: ctx.stage.schema,
      caller: { user: principal, roles, now: new Date() },
      ...(keys ? { keys } : {}),
      ...(o.testOnlyAppRulesOff ? { appRulesOff: true } : {}),
    };
    return ctx.asStage((s) => fn(s, scope), { roles });
  };
  const attempt = async (): Promise<T> => run(encrypted ? await c.keys.get(ctx.stage.id, () => loadStageKeys(o.db, o.keyring, ctx.tenant.id, ctx.stage.id)) : undefined);
  try {
    return await attempt();
  } catch (err) {
    // A value under a DEK version newer than the cached keys (a rotation within the last second):
    // the session rolled back; reload the keys and run the request once more.
    if (!encrypted || !isCryptoError(err) || err.code !== 'CRYPTO_KEY_VERSION_UNKNOWN') throw err;
    c.keys.forget(ctx.stage.id);
    return attempt();
  }
}

function listQuery(q: Record<string, unknown>): ListQuery {
  const one = (k: string): string | undefined => {
    const v = q[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw new AccordError('DATA_QUERY_INVALID', { message: `${k} may be given once.`, details: { parameter: k } });
    return v;
  };
  const params = new Map<string, string>();
  for (const k of Object.keys(q)) if (!RESERVED.has(k)) params.set(k, one(k) as string);
  const limitText = one('limit');
  const limit = limitText === undefined ? undefined : /^\d{1,6}$/.test(limitText) ? Number(limitText) : Number.NaN;
  const count = one('count');
  if (count !== undefined && count !== 'none' && count !== 'estimated' && count !== 'exact') throw new AccordError('DATA_QUERY_INVALID', { message: 'count must be none, estimated or exact.', details: { parameter: 'count' } });
  const out: { -readonly [K in keyof ListQuery]: ListQuery[K] } = { params };
  const filter = one('filter');
  const sort = one('sort');
  const fields = one('fields');
  const cursor = one('cursor');
  if (filter !== undefined) out.filter = filter;
  if (sort !== undefined) out.sort = sort;
  if (fields !== undefined) out.fields = fields;
  if (cursor !== undefined) out.cursor = cursor;
  if (limit !== undefined) out.limit = limit;
  if (count !== undefined) out.count = count;
  return out;
}

const etag = (r: Record<string, unknown>) => `"${r._version}"`;
const header = (ctx: RouteContext, name: string) => {
  const v = ctx.headers[name];
  return Array.isArray(v) ? v[0] : v;
};

/** The tenant's data inventory on the control plane (`accord data inventory`). */
export function inventoryRoutes(o: Pick<DataApiDeps, 'db'>): RouteDefinition[] {
  return [
    route({
      method: 'GET',
      url: '/api/v1/tenants/:tenant/data/inventory',
      access: access.permission('tenant:read', { tenantParam: 'tenant' }),
      schema: { summary: "The tenant's data inventory: classification, encryption and readers of every attribute of every deployed app", tags: ['data'], params: Type.Object({ tenant: Type.String({ maxLength: 63 }) }), response: { 200: InventoryOut } },
      handler: async (ctx) => ({ tenant: ctx.tenant.name, entries: await dataInventory(o.db, ctx.tenant.id) }),
    }),
  ];
}

const caches = new WeakMap<DataApiOptions, { apps: TtlCache<DeployedApp | null>; roles: TtlCache<string[]>; keys: TtlCache<StageKeys> }>();

/** The data API's routes. */
export function dataApiRoutes(o: DataApiOptions): RouteDefinition[] {
  caches.set(o, { apps: new TtlCache(), roles: new TtlCache(), keys: new TtlCache() });
  const base = '/t/:tenant/:stage/apps/:app';
  return [
    route({
      method: 'GET',
      url: `${base}/openapi.json`,
      access: access.appCaller(),
      schema: { summary: 'The OpenAPI 3.1 document of an app on this stage', tags: ['data'], params: AppParams, response: { 200: DocOut } },
      handler: async (ctx) => {
        const deployed = await deployedApp(o.db, ctx.stage.id, ctx.params.app);
        if (!deployed) throw new AccordError('DATA_APP_NOT_FOUND', { details: { app: ctx.params.app } });
        return openApiOf(deployed.ir, deployed.revision, `/t/${ctx.tenant.name}/${ctx.stage.name}/apps/${deployed.app}`);
      },
    }),
    route({
      method: 'GET',
      url: `${base}/api/:entity`,
      access: access.appCaller(),
      schema: { summary: 'List records (filter, sort, keyset cursor, fields, count)', tags: ['data'], params: EntityParams, querystring: Query, response: { 200: PageOut } },
      handler: async (ctx) => inScope(o, ctx as Ctx, (s, scope) => listRecords(s, scope, ctx.params.entity, listQuery(ctx.query as Record<string, unknown>))),
    }),
    route({
      method: 'GET',
      url: `${base}/api/:entity/:id`,
      access: access.appCaller(),
      schema: { summary: 'Read one record', tags: ['data'], params: RecordParams, querystring: RecordQuery, response: { 200: RecordOut } },
      handler: async (ctx) => {
        const r = await inScope(o, ctx as Ctx, (s, scope) => getRecord(s, scope, ctx.params.entity, ctx.params.id, ctx.query.fields));
        ctx.reply.header('etag', etag(r));
        return r;
      },
    }),
    route({
      method: 'POST',
      url: `${base}/api/:entity`,
      access: access.appCaller(),
      status: 201,
      schema: { summary: 'Create a record (Idempotency-Key supported)', tags: ['data'], params: EntityParams, body: Body, response: { 201: RecordOut } },
      handler: async (ctx) => {
        const key = header(ctx, 'idempotency-key');
        const run = () => inScope(o, ctx as Ctx, (s, scope) => createRecord(s, scope, ctx.params.entity, ctx.body));
        let r: Record<string, unknown>;
        if (key === undefined) r = await run();
        else {
          const done = await idempotent(o.db, { stageId: ctx.stage.id, app: ctx.params.app, principalId: (ctx.auth as { principalId: string }).principalId }, key, ctx.params.entity, ctx.body, run);
          if (done.replayed) ctx.reply.header('idempotent-replayed', 'true');
          r = done.value;
        }
        if (r._version !== undefined) ctx.reply.header('etag', etag(r));
        ctx.reply.header('location', `/t/${ctx.tenant.name}/${ctx.stage.name}/apps/${ctx.params.app}/api/${ctx.params.entity}/${r.id}`);
        return r;
      },
    }),
    route({
      method: 'PATCH',
      url: `${base}/api/:entity/:id`,
      access: access.appCaller(),
      schema: { summary: 'Change a record (If-Match: the ETag read)', tags: ['data'], params: RecordParams, body: Body, response: { 200: RecordOut } },
      handler: async (ctx) => {
        const ifMatch = parseIfMatch(header(ctx, 'if-match'));
        const r = await inScope(o, ctx as Ctx, (s, scope) => updateRecord(s, scope, ctx.params.entity, ctx.params.id, ctx.body, ifMatch));
        if (r._version !== undefined) ctx.reply.header('etag', etag(r));
        return r;
      },
    }),
    route({
      method: 'DELETE',
      url: `${base}/api/:entity/:id`,
      access: access.appCaller(),
      status: 204,
      schema: { summary: 'Delete a record (If-Match: the ETag read)', tags: ['data'], params: RecordParams },
      handler: async (ctx) => {
        const ifMatch = parseIfMatch(header(ctx, 'if-match'));
        await inScope(o, ctx as Ctx, (s, scope) => deleteRecord(s, scope, ctx.params.entity, ctx.params.id, ifMatch));
      },
    }),
  ];
}
