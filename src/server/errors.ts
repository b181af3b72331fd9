import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AccordError, isAccordError, toProblem } from '../errors/index.ts';
import type { RefusalAuditor } from './refusals.ts';
import { applySecurityHeaders } from './security-headers.ts';

/** Maps Fastify's own errors (validation, body parsing) onto the catalog. */
function fromFastify(err: FastifyError): AccordError | undefined {
  if (err.validation) {
    return new AccordError('REQUEST_INVALID', {
      message: `Invalid ${err.validationContext ?? 'request'}: ${err.validation
        .map((v) => `${v.instancePath || '/'} ${v.message ?? 'is invalid'}`)
        .join('; ')}`,
      details: {
        in: err.validationContext,
        errors: err.validation.map((v) => ({ path: v.instancePath || '/', message: v.message, keyword: v.keyword })),
      },
    });
  }
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AccordError('REQUEST_TOO_LARGE');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new AccordError('REQUEST_UNSUPPORTED_MEDIA_TYPE');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new AccordError('REQUEST_INVALID', { message: 'The request body is not valid JSON.' });
  }
  if (err.statusCode === 400 && (err as { type?: string }).type === 'entity.parse.failed') {
    return new AccordError('REQUEST_INVALID', { message: 'The request body is not valid JSON.' });
  }
  if (err instanceof SyntaxError && err.statusCode === 400) {
    return new AccordError('REQUEST_INVALID', { message: 'The request body is not valid JSON.' });
  }
  return undefined;
}

/**
 * Every error leaves as RFC 9457 problem+json with a catalog code. Clients get the public
 * message only; the cause goes to the log, and unknown errors become a generic 500.
 */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, req, reply) => {
    const known = isAccordError(err) ? err : fromFastify(err);
    if (!known) req.log.error({ err }, 'unhandled error');
    else if (known.status >= 500) req.log.error({ err: known, cause: known.cause }, known.message);
    else req.log.info({ code: known.code }, 'request refused');
    const problem = toProblem(known ?? err, req.id);
    if (known?.headers) reply.headers(known.headers);
    return reply.code(problem.status).type('application/problem+json').send(problem);
  });
  app.setNotFoundHandler((req, reply) => {
    const problem = toProblem(new AccordError('REQUEST_NOT_FOUND'), req.id);
    return reply.code(404).type('application/problem+json').send(problem);
  });
}

// Router errors, raised before any hook: the caller's URL is never echoed back.
const ROUTER_ERRORS = new Map<string, 'REQUEST_URL_INVALID' | 'REQUEST_URL_TOO_LONG'>([
  ['FST_ERR_BAD_URL', 'REQUEST_URL_INVALID'],
  ['FST_ERR_MAX_PARAM_LENGTH', 'REQUEST_URL_TOO_LONG'],
]);

/**
 * Fastify's `frameworkErrors`: what the router refuses before any hook has run (a bad
 * percent-encoding, bytes that are not UTF-8, an over-long path parameter) leaves like every
 * other refusal: problem+json with a catalog code, the security headers, `cache-control:
 * no-store`, the request id, and an audit record (`request.refused`; the caller counts as
 * anonymous, since no token was looked at).
 */
export function frameworkErrorHandler(auditor: () => RefusalAuditor | undefined) {
  return async (err: FastifyError, req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const code = ROUTER_ERRORS.get(err.code);
    const known = code ? new AccordError(code) : undefined;
    if (known) req.log.info({ code: known.code }, 'request refused by the router');
    else req.log.error({ err }, 'unhandled router error');
    applySecurityHeaders(req.raw, reply.raw);
    reply.header('x-request-id', req.id);
    reply.header('cache-control', 'no-store');
    await auditor()?.write(req, { action: 'request.refused', reason: known?.code ?? 'INTERNAL', details: { credentialsPresented: req.headers.authorization !== undefined || req.headers.cookie !== undefined } });
    const problem = toProblem(known ?? err, req.id);
    await reply.code(problem.status).type('application/problem+json').send(problem);
  };
}
