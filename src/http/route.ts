import type { Static, TObject, TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { AccordError } from '../errors/index.ts';
import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify';
import type { RequestMeta } from './context.ts';

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
export type RouteAccess =
  | { readonly kind: 'public' }
  | { readonly kind: 'authenticated'; readonly enrolment?: boolean }
  | { readonly kind: 'permission'; readonly permission: string; readonly tenantParam?: string; readonly stageParam?: string }
  | { readonly kind: 'end-user'; readonly tenantParam: string; readonly stageParam: string };

export const access = {
  public: { kind: 'public' } as const,
  /** Any signed-in console user or API client with a full session. */
  authenticated: { kind: 'authenticated' } as const,
  /** Like `authenticated`, and also open to an enrolment-only session (MFA enrolment, sign-out). */
  enrolment: { kind: 'authenticated', enrolment: true } as const,
  /** An end user signed in to the stage named in the path (app runtime routes under /t/). */
  endUser: (tenantParam = 'tenant', stageParam = 'stage'): RouteAccess => ({ kind: 'end-user', tenantParam, stageParam }),
  /** Needs `permission`; with `tenantParam`, on the tenant named by that path parameter. */
  permission: (permission: string, scope: { tenantParam?: string; stageParam?: string } = {}): RouteAccess => ({
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

/** Schemas of one route; TypeBox schemas double as validation and OpenAPI. */
export interface RouteSchema {
  readonly summary: string;
  readonly tags?: readonly string[];
  readonly params?: TSchema;
  readonly querystring?: TSchema;
  readonly body?: TSchema;
  readonly response?: Readonly<Record<number, TSchema>>;
}

export interface RouteDefinition {
  readonly method: HTTPMethods;
  readonly url: string;
  readonly access: RouteAccess;
  readonly schema: RouteSchema;
  /** Default 200; 201 for creations. */
  readonly status?: number;
  readonly handler: (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>;
}

/** Registers routes on a Fastify instance with their declared access. */
export function registerRoutes(app: FastifyInstance, routes: readonly RouteDefinition[]): void {
  for (const r of routes) {
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
        ...(r.schema.response ? { response: r.schema.response } : {}),
        // Shown in the OpenAPI document; the authorizer reads `config.access`, not this.
        security: r.access.kind === 'public' ? [] : [{ bearer: [] }],
        ...(r.access.kind === 'permission' ? { 'x-permission': r.access.permission } : {}),
      },
      handler: async (req, reply) => {
        const result = await r.handler(req, reply);
        if (reply.sent) return reply;
        reply.code(r.status ?? 200);
        return result;
      },
    });
  }
}

/** Typed access to validated request parts (Fastify validated them against the route schema). */
export function parts<P = unknown, B = unknown, Q = unknown>(req: FastifyRequest): { params: P; body: B; query: Q } {
  return { params: req.params as P, body: req.body as B, query: req.query as Q };
}

/**
 * A body that may be absent (a bare POST) or, when present, must match `schema`. A Fastify body
 * schema cannot say "optional" (it validates a missing body as undefined against the object
 * schema), so such routes declare none and check here; the schema is still the documentation.
 */
export function optionalBody<S extends TObject>(req: FastifyRequest, schema: S): Static<S> | undefined {
  const body = req.body as unknown;
  if (body === undefined || body === null) return undefined;
  if (!Value.Check(schema, body)) {
    const first = Value.Errors(schema, body).First();
    throw new AccordError('REQUEST_INVALID', { message: `The body is not valid${first ? `: ${first.path || '/'} ${first.message}` : ''}.` });
  }
  return body as Static<S>;
}
