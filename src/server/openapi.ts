import type { RouteAccess } from '../http/index.ts';

/** The problem document every error response carries (RFC 9457 with our stable `code`). */
const Problem = {
  type: 'object',
  required: ['type', 'title', 'status', 'code', 'detail'],
  properties: {
    type: { type: 'string', description: 'https://accord.dev/problems/ + the code in kebab case' },
    title: { type: 'string' },
    status: { type: 'integer' },
    code: { type: 'string', description: 'The stable catalog code (docs/errors.md); clients branch on this.' },
    detail: { type: 'string' },
    requestId: { type: 'string' },
    details: { type: 'object', additionalProperties: true, description: 'Public, code-specific data (refusals only).' },
  },
  additionalProperties: true,
} as const;

const problemResponse = (description: string) => ({ description, content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } });

const ERRORS = {
  '400': problemResponse('Invalid request (REQUEST_INVALID and the route-specific codes).'),
  '401': problemResponse('No valid credentials (IAM_UNAUTHENTICATED, IAM_TOKEN_*).'),
  '403': problemResponse('The caller lacks the permission or the audience (IAM_FORBIDDEN, IAM_WRONG_AUDIENCE).'),
  '404': problemResponse('No such resource, or one the caller may not see (indistinguishable by design).'),
  '415': problemResponse('A body of a media type the route does not take.'),
  '429': problemResponse('Too many attempts (IAM_LOCKED), with Retry-After.'),
  '500': problemResponse('An unexpected server-side failure; only the catalog message is shown.'),
  '503': problemResponse('The platform is not ready (database, migrations, KMS).'),
} as const;

interface Operation {
  operationId?: string;
  responses?: Record<string, unknown>;
  security?: unknown[];
  [k: string]: unknown;
}
type Document = { paths?: Record<string, Record<string, Operation>>; components?: Record<string, unknown>; [k: string]: unknown };

/** `GET /api/v1/tenants/{tenant}/stages` → `getTenantsByTenantStages`: stable, unique per method and path. */
export function operationIdFor(method: string, path: string): string {
  const words = path
    .replace(/^\/api\/v1\//, '/')
    .split('/')
    .filter(Boolean)
    .flatMap((seg) => {
      const param = /^\{(.+)\}$/.exec(seg) ?? /^:(.+)$/.exec(seg);
      return param ? ['by', ...(param[1] as string).split(/[^A-Za-z0-9]+/)] : seg.split(/[^A-Za-z0-9]+/);
    })
    .filter(Boolean);
  return method.toLowerCase() + words.map((w) => w[0]?.toUpperCase() + w.slice(1)).join('');
}

/**
 * Completes the document Fastify's swagger plugin generates from the route schemas: an
 * operationId on every operation, the shared problem+json error responses each route can give,
 * and the credentials it takes. Pure: the served document is this function's output.
 */
export function completeOpenApi(doc: Document, accessOf: (method: string, path: string) => RouteAccess | undefined): Document {
  const paths: Record<string, Record<string, Operation>> = {};
  for (const [path, ops] of Object.entries(doc.paths ?? {})) {
    paths[path] = {};
    for (const [method, op] of Object.entries(ops)) {
      const acc = accessOf(method.toUpperCase(), path);
      const errors: Record<string, unknown> = { '400': ERRORS['400'], '500': ERRORS['500'] };
      if (acc && acc.kind !== 'public') Object.assign(errors, { '401': ERRORS['401'], '403': ERRORS['403'] });
      if (path.includes('{')) errors['404'] = ERRORS['404'];
      if (['post', 'put', 'patch'].includes(method)) errors['415'] = ERRORS['415'];
      if (path.includes('/auth/') || path === '/oauth/token') errors['429'] = ERRORS['429'];
      if (path === '/readyz') errors['503'] = ERRORS['503'];
      const responses = { ...(op.responses ?? {}) };
      for (const [status, response] of Object.entries(errors)) responses[status] ??= response;
      // A route without a success schema still documents its success.
      if (!Object.keys(responses).some((s) => s.startsWith('2'))) responses['200'] = { description: 'Success' };
      paths[path][method] = { ...op, operationId: op.operationId ?? operationIdFor(method, path), responses };
    }
  }
  return {
    ...doc,
    paths,
    components: { ...(doc.components ?? {}), schemas: { ...((doc.components?.schemas as object | undefined) ?? {}), Problem } },
  };
}
