import type { IncomingHttpHeaders } from 'node:http';
import type { Static, TObject, TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { FastifyInstance, FastifyReply, HTTPMethods } from 'fastify';
import type { AuditSource } from '../audit-chain/index.ts';
import type { Db } from '../db/index.ts';
import { AccordError } from '../errors/index.ts';
import { type DataPlane, runAsStage, type StageSession, unitOfWork, type Work } from '../kernel/index.ts';
import { auditSource } from './audit-source.ts';
import type { AuthContext, RequestMeta } from './context.ts';

/**
 * What a route requires of its caller. Every route declares one; the server refuses to start
 * with a route that has none.
 * - `public`: anyone, no session needed (health, login, the OpenAPI document).
 * - `authenticated`: any signed-in user (their own session, their own profile); with
 *   `enrolment`, also a session that may only enrol an MFA factor.
 * - `end-user`: an end user signed in to the stage the path names.
 * - a permission from the IAM catalog, optionally scoped by the tenant (and stage) named in the
 *   path: the caller needs a grant with that permission covering that tenant.
 */
export type PublicAccess = { readonly kind: 'public' };
export type AuthenticatedAccess = { readonly kind: 'authenticated'; readonly enrolment?: boolean };
export type PermissionAccess = { readonly kind: 'permission'; readonly permission: string; readonly tenantParam?: string; readonly stageParam?: string };
export type EndUserAccess = { readonly kind: 'end-user'; readonly tenantParam: string; readonly stageParam: string; readonly clients?: true };
export type RouteAccess = PublicAccess | AuthenticatedAccess | PermissionAccess | EndUserAccess;

export const access = {
  public: { kind: 'public' } as PublicAccess,
  /** Any signed-in console user or API client with a full session. */
  authenticated: { kind: 'authenticated' } as AuthenticatedAccess,
  /** Like `authenticated`, and also open to an enrolment-only session (MFA enrolment, sign-out). */
  enrolment: { kind: 'authenticated', enrolment: true } as AuthenticatedAccess,
  /** An end user signed in to the stage named in the path (app runtime routes under /t/). */
  endUser: (tenantParam = 'tenant', stageParam = 'stage'): EndUserAccess => ({ kind: 'end-user', tenantParam, stageParam }),
  /**
   * Like `endUser`, and also open to an API client of the tenant named in the path (an app's data
   * API: the client acts with the app roles granted to it on the stage).
   */
  appCaller: (tenantParam = 'tenant', stageParam = 'stage'): EndUserAccess => ({ kind: 'end-user', tenantParam, stageParam, clients: true }),
  /** Needs `permission`; with `tenantParam`, on the tenant named by that path parameter. */
  permission: (permission: string, scope: { tenantParam?: string; stageParam?: string } = {}): PermissionAccess => ({
    kind: 'permission',
    permission,
    ...scope,
  }),
};

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: RouteAccess;
  }
  interface FastifyRequest {
    meta: RequestMeta;
  }
}

/** A tenant named by a route's `:tenant` path parameter, looked up once per request. */
export interface ScopeTenant {
  readonly id: string;
  readonly name: string;
  readonly displayName: string;
  readonly region: string;
  readonly createdAt: string;
}

/** A stage named by a route's `:stage` path parameter (with `:tenant`), looked up with it. */
export interface ScopeStage {
  readonly id: string;
  readonly name: string;
  readonly position: number;
  readonly schema: string;
  readonly role: string;
  readonly createdAt: string;
}

/**
 * Finds the tenant (and stage) a path names, in one lookup; throws the catalog's not-found
 * errors, so a missing tenant or stage is the same 404 on every route. Supplied by the server
 * (tenancy owns the tables; the kit knows only the shapes).
 */
export type ScopeResolver = (tenant: string, stage: string | undefined) => Promise<{ tenant: ScopeTenant; stage: ScopeStage | undefined }>;

/** Schemas of one route; TypeBox schemas double as validation, handler types and OpenAPI. */
export interface RouteSchema {
  readonly summary: string;
  readonly tags?: readonly string[];
  readonly params?: TSchema;
  readonly querystring?: TSchema;
  readonly body?: TSchema;
  /**
   * A body that may be absent (a bare POST) or, when present, must match. Fastify cannot say
   * "optional" for a body, so the kit checks it; the handler sees `Static<S> | undefined`.
   */
  readonly optionalBody?: TObject;
  readonly response?: Readonly<Record<number, TSchema>>;
  /** The credentials the OpenAPI document names; default: none for public routes, a bearer token otherwise. */
  readonly security?: readonly Readonly<Record<string, readonly string[]>>[];
}

type StaticOf<S, Absent> = S extends TSchema ? Static<S> : Absent;
type BodyOf<S extends RouteSchema> = S['body'] extends TSchema ? Static<S['body']> : S['optionalBody'] extends TObject ? Static<S['optionalBody']> | undefined : undefined;
/** Non-public routes run only after the authorizer accepted a caller: `auth` is never absent. */
type AuthOf<A extends RouteAccess> = A extends PublicAccess ? AuthContext | undefined : AuthContext;

/** Everything a handler gets: validated, typed request parts, the caller, and the kernel. */
export interface RouteContext<S extends RouteSchema = RouteSchema, A extends RouteAccess = RouteAccess> {
  readonly params: StaticOf<S['params'], Record<string, never>>;
  readonly body: BodyOf<S>;
  readonly query: StaticOf<S['querystring'], Record<string, never>>;
  readonly auth: AuthOf<A>;
  readonly meta: RequestMeta;
  /** The audit view of the caller, for every event this request causes. */
  readonly source: AuditSource;
  readonly requestId: string;
  readonly headers: IncomingHttpHeaders;
  /** For cookies, redirects and non-JSON answers; most handlers just return their result. */
  readonly reply: FastifyReply;
  /** The tenant the path names (routes with `:tenant`); a misuse elsewhere throws. */
  readonly tenant: ScopeTenant;
  /** The stage the path names (routes with `:tenant` and `:stage`). */
  readonly stage: ScopeStage;
  /** Runs `fn` as this request's unit of work (one transaction, audited, after-commit hooks). */
  unit<T>(fn: (w: Work) => Promise<T>): Promise<T>;
  /**
   * Runs `fn` in a stage session on the path's stage: one transaction as the stage's runtime
   * role, the caller in transaction-local settings for row-level security, audit through the
   * narrow append path. Tenant data is read and written only here.
   */
  asStage<T>(fn: (s: StageSession) => Promise<T>, opts?: AsStageOptions): Promise<T>;
}

/** How a route narrows its stage session. */
export interface AsStageOptions {
  /**
   * The roles RLS policies see (`accord.roles`) instead of the caller's platform grants: the data
   * API passes the caller's app roles of the app on the stage.
   */
  readonly roles?: readonly string[];
}

/** A route as the server registers it; built by `route()`, which ties the handler's types to its schemas. */
export interface RouteDefinition {
  readonly method: HTTPMethods;
  readonly url: string;
  readonly access: RouteAccess;
  readonly schema: RouteSchema;
  /** Default 200; 201 for creations; 204 sends no body whatever the handler returns. */
  readonly status?: number;
  // biome-ignore lint/suspicious/noExplicitAny: erased here; `route()` checks the real types.
  readonly handler: (ctx: RouteContext<any, any>) => Promise<unknown>;
}

/**
 * Declares a route. The handler's `params`, `body`, `query` and `auth` types come from the
 * schemas and the access rule, so no handler casts a request part.
 */
export function route<const S extends RouteSchema, const A extends RouteAccess>(def: {
  readonly method: HTTPMethods;
  readonly url: string;
  readonly access: A;
  readonly schema: S;
  readonly status?: number;
  readonly handler: (ctx: RouteContext<S, A>) => Promise<unknown>;
}): RouteDefinition {
  return def as RouteDefinition;
}

const NO_CONTENT = { type: 'null', description: 'No content' } as const;

/** What the kit needs from the server to build a context. */
export interface RouteKit {
  readonly db: Db;
  readonly resolveScope: ScopeResolver;
  /** Where stage sessions run (absent in in-process servers built without one). */
  readonly dataPlane?: DataPlane;
}

/** Registers routes on a Fastify instance with their declared access. */
export function registerRoutes(app: FastifyInstance, kit: RouteKit, routes: readonly RouteDefinition[]): void {
  for (const r of routes) {
    const hasTenant = r.url.includes('/:tenant');
    const hasStage = hasTenant && r.url.includes('/:stage');
    const optional = r.schema.optionalBody ? TypeCompiler.Compile(r.schema.optionalBody) : undefined;
    app.route({
      method: r.method,
      url: r.url,
      config: { access: r.access },
      schema: {
        summary: r.schema.summary,
        ...(r.schema.tags ? { tags: [...r.schema.tags] } : {}),
        ...(r.schema.params ? { params: r.schema.params } : {}),
        ...(r.schema.querystring ? { querystring: r.schema.querystring } : {}),
        ...(r.schema.body ? { body: r.schema.body } : {}),
        // A 204 route documents its empty answer (and the serializer has nothing to allow-list).
        ...(r.schema.response ? { response: r.schema.response } : r.status === 204 ? { response: { 204: NO_CONTENT } } : {}),
        // Shown in the OpenAPI document; the authorizer reads `config.access`, not this.
        security: r.schema.security ? r.schema.security.map((s) => ({ ...s })) : r.access.kind === 'public' ? [] : [{ bearer: [] }],
        ...(r.access.kind === 'permission' ? { 'x-permission': r.access.permission } : {}),
      },
      handler: async (req, reply) => {
        const meta = req.meta;
        // The authorizer ran before us; this only keeps a mistake in it from reaching a handler.
        if (r.access.kind !== 'public' && !meta.auth) throw new AccordError('IAM_UNAUTHENTICATED');
        const params = (req.params ?? {}) as Record<string, string>;
        let body = req.body;
        if (optional && body !== undefined && body !== null) {
          if (!optional.Check(body)) {
            const first = optional.Errors(body).First();
            throw new AccordError('REQUEST_INVALID', { message: `The body is not valid${first ? `: ${first.path || '/'} ${first.message}` : ''}.` });
          }
        } else if (optional) body = undefined;
        const scope = hasTenant ? await kit.resolveScope(params.tenant as string, hasStage ? params.stage : undefined) : undefined;
        // The authorizer knows tenant names only from grants, and an API client may hold none: its
        // own tenant is checked here, against the id the path resolved to.
        if (r.access.kind === 'end-user' && meta.auth?.kind === 'client' && meta.auth.tenantId !== scope?.tenant.id) {
          throw new AccordError('IAM_WRONG_AUDIENCE', { message: 'This API client belongs to another tenant.' });
        }
        const source = auditSource(meta);
        const ctx: RouteContext = {
          params: params as RouteContext['params'],
          body: body as RouteContext['body'],
          query: (req.query ?? {}) as RouteContext['query'],
          auth: meta.auth as AuthContext,
          meta,
          source,
          requestId: meta.requestId,
          headers: req.headers,
          reply,
          get tenant(): ScopeTenant {
            if (!scope) throw new Error(`${r.method} ${r.url} has no :tenant parameter; ctx.tenant is not available.`);
            return scope.tenant;
          },
          get stage(): ScopeStage {
            if (!scope?.stage) throw new Error(`${r.method} ${r.url} has no :stage parameter; ctx.stage is not available.`);
            return scope.stage;
          },
          unit: (fn) => unitOfWork(kit.db, source, fn),
          asStage: (fn, opts) => {
            if (!kit.dataPlane) throw new Error('this server has no data plane; stage sessions are unavailable');
            const stage = ctx.stage;
            const auth = meta.auth;
            return runAsStage(
              kit.dataPlane,
              { tenantId: ctx.tenant.id, stageId: stage.id, schema: stage.schema, role: stage.role },
              {
                kind: auth?.kind ?? 'system',
                principalId: auth?.principalId ?? null,
                roles: opts?.roles ? [...opts.roles] : [...new Set(auth?.grants.map((g) => g.role) ?? [])],
                requestId: meta.requestId,
                source,
              },
              fn,
            );
          },
        };
        const result = await r.handler(ctx);
        if (reply.sent) return reply;
        const status = r.status ?? 200;
        if (status === 204) return reply.code(204).send();
        reply.code(status);
        return result;
      },
    });
  }
}
