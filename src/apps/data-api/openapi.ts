// The OpenAPI 3.1 document of an app on a stage, from its revision: the role-independent shape
// of each entity (every attribute; a caller sees only what its rules let it read) and the
// error answers (problem+json with a catalog code).
import type { AppIR, AttributeIR } from '../compile/ir.ts';
import { DEFAULT_LIST_CEILING } from './plan.ts';

function schemaOf(a: AttributeIR): Record<string, unknown> {
  const s: Record<string, unknown> = {};
  switch (a.type.kind) {
    case 'text':
      s.type = 'string';
      if (a.maxLength !== null) s.maxLength = a.maxLength;
      if (a.minLength !== null) s.minLength = a.minLength;
      if (a.pattern !== null) s.pattern = a.pattern;
      if (a.type.format === 'url') s.format = 'uri';
      else if (a.type.format === 'email') s.format = 'email';
      else if (a.type.format === 'markdown') s.contentMediaType = 'text/markdown';
      break;
    case 'enum':
      s.type = 'string';
      s.enum = [...a.type.values];
      break;
    case 'integer':
      s.type = 'integer';
      break;
    case 'decimal':
      s.type = 'string';
      s.format = 'decimal';
      break;
    case 'boolean':
      s.type = 'boolean';
      break;
    case 'date':
      s.type = 'string';
      s.format = 'date';
      break;
    case 'datetime':
      s.type = 'string';
      s.format = 'date-time';
      break;
    case 'json':
      break;
    default:
      s.type = 'string';
      s.format = 'uuid';
  }
  if (!a.required && s.type) s.type = [s.type, 'null'];
  if (a.description) s.description = a.description;
  s['x-classification'] = a.classification;
  if (a.encrypted) s['x-encrypted'] = true;
  if (a.immutable) s['x-immutable'] = true;
  return s;
}

/**
 * `limit` and `count` as the app's roles shape them: the maximum is the largest ceiling of any
 * role (the document is role-independent); which role allows what is in the description.
 */
function listParameters(app: AppIR): Record<string, unknown>[] {
  const ceiling = (r: AppIR['roles'][number]) => r.listLimit ?? DEFAULT_LIST_CEILING;
  const max = Math.max(DEFAULT_LIST_CEILING, ...app.roles.map(ceiling));
  const counting = app.roles.filter((r) => r.exactCount === true).map((r) => r.name);
  return [
    {
      name: 'limit',
      in: 'query',
      required: false,
      description: `Page size, default 20 (or the ceiling when lower). Ceiling per app role: ${app.roles.map((r) => `${r.name} ${ceiling(r)}`).join(', ')}; a caller with several roles gets the largest; above it: 400 DATA_QUERY_INVALID.`,
      schema: { type: 'integer', minimum: 1, maximum: max },
    },
    {
      name: 'count',
      in: 'query',
      required: false,
      description: `none (default), estimated (every reader) or exact (${counting.length ? `roles ${counting.join(', ')}` : 'no role of this app'}; otherwise 403 DATA_COUNT_FORBIDDEN).`,
      schema: { type: 'string', enum: ['none', 'estimated', 'exact'] },
    },
  ];
}

const problem = (description: string) => ({ description, content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } });

/** The document. */
export function openApiOf(app: AppIR, revision: string, base: string): Record<string, unknown> {
  const schemas: Record<string, unknown> = {
    Problem: { type: 'object', properties: { type: { type: 'string' }, title: { type: 'string' }, status: { type: 'integer' }, detail: { type: 'string' }, code: { type: 'string' }, details: {} }, required: ['code', 'status'] },
  };
  const paths: Record<string, unknown> = {};
  const errors = { 400: problem('Invalid input (DATA_BODY_INVALID, DATA_FILTER_INVALID, DATA_QUERY_INVALID, DATA_CURSOR_INVALID, ...)'), 401: problem('Not signed in'), 403: problem('DATA_FORBIDDEN, DATA_FIELD_FORBIDDEN, DATA_CHECK_FAILED'), 404: problem('DATA_NOT_FOUND') };
  for (const e of app.entities) {
    schemas[e.name] = {
      type: 'object',
      properties: { id: { type: 'string', format: 'uuid', readOnly: true }, ...Object.fromEntries(e.attributes.map((a) => [a.name, schemaOf(a)])), _version: { type: 'integer', readOnly: true }, _createdAt: { type: 'string', format: 'date-time', readOnly: true }, _updatedAt: { type: 'string', format: 'date-time', readOnly: true } },
      additionalProperties: false,
    };
    const ref = { $ref: `#/components/schemas/${e.name}` };
    const json = (schema: unknown) => ({ 'application/json': { schema } });
    paths[`${base}/api/${e.name}`] = {
      get: {
        operationId: `list${e.name}`,
        parameters: [...['filter', 'sort', 'fields', 'cursor'].map((n) => ({ name: n, in: 'query', required: false, schema: { type: 'string' } })), ...listParameters(app)],
        responses: { 200: { description: 'A page', content: json({ type: 'object', properties: { items: { type: 'array', items: ref }, next: { type: ['string', 'null'] }, count: { type: 'integer' } } }) }, ...errors, 403: problem('DATA_FORBIDDEN; DATA_COUNT_FORBIDDEN (count=exact without a role that may count)') },
      },
      post: {
        operationId: `create${e.name}`,
        parameters: [{ name: 'Idempotency-Key', in: 'header', required: false, schema: { type: 'string', maxLength: 255 } }],
        requestBody: { content: json(ref) },
        responses: { 201: { description: 'Created', content: json(ref) }, ...errors, 409: problem('DATA_CONFLICT, DATA_IDEMPOTENCY_IN_FLIGHT'), 422: problem('DATA_IDEMPOTENCY_MISMATCH') },
      },
    };
    const id = { name: 'id', in: 'path', required: true, schema: { type: 'string', format: 'uuid' } };
    const ifMatch = { name: 'If-Match', in: 'header', required: false, schema: { type: 'string' } };
    paths[`${base}/api/${e.name}/{id}`] = {
      get: { operationId: `get${e.name}`, parameters: [id], responses: { 200: { description: 'The record (ETag header)', content: json(ref) }, ...errors } },
      patch: { operationId: `update${e.name}`, parameters: [id, ifMatch], requestBody: { content: json(ref) }, responses: { 200: { description: 'Changed', content: json(ref) }, ...errors, 409: problem('DATA_CONFLICT'), 412: problem('DATA_PRECONDITION_FAILED') } },
      delete: { operationId: `delete${e.name}`, parameters: [id, ifMatch], responses: { 204: { description: 'Deleted' }, ...errors, 412: problem('DATA_PRECONDITION_FAILED') } },
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: app.name, version: app.version, ...(app.description ? { description: app.description } : {}), 'x-revision': revision },
    paths,
    components: { schemas, securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    security: [{ bearer: [] }],
  };
}
