import { type FastifyReply, type FastifyRequest, LogController } from 'fastify';
import pino, { type Logger } from 'pino';

/**
 * Paths that may carry secrets anywhere a log line could pick them up. The rule is still that
 * code never logs them; this is the net under it.
 */
export const redactPaths = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'res.headers["set-cookie"]',
  '*.password',
  '*.token',
  '*.secret',
  '*.databaseUrl',
  '*.bootstrapPassword',
  '*.rootKeyPassphrase',
  '*.pkcs11Pin',
  '*.pin',
  '*.passphrase',
  'config.databaseUrl',
  'config.bootstrapPassword',
];

/**
 * A request URL as logged: the path and the names of query parameters, never their values. A
 * client that puts a secret in a URL (`?client_secret=`, `?token=`) must not get it into the logs.
 */
export function loggableUrl(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const names = [...new URLSearchParams(url.slice(q + 1)).keys()];
  return `${url.slice(0, q)}?${names.map((n) => `${encodeURIComponent(n)}=[redacted]`).join('&')}`;
}

/**
 * Fastify's per-request log lines, one per request instead of two: the line written when the
 * answer is done carries the request summary too (method, path, client), so the "incoming
 * request" line, which doubled the logging cost of every request (issue 9), is kept for debug
 * level only.
 */
export class RequestLog extends LogController {
  override incomingRequest(request: FastifyRequest): void {
    // A no-op below debug level: pino replaces disabled levels' methods with one.
    if (!this.isLogDisabled(request)) request.log.debug({ req: request }, 'incoming request');
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (this.isLogDisabled(request)) return;
    if (error) reply.log.error({ req: request, res: reply, err: error, responseTime: reply.elapsedTime }, 'request errored');
    else reply.log.info({ req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed');
  }
}

/** Standard output or error, written asynchronously (see {@link createLogger}). */
const asyncFd = (fd: 1 | 2) => pino.destination({ dest: fd, sync: false });

/**
 * The platform logger: JSON lines to stdout (or to `destination`: `process.stderr`, or a stream
 * in tests), secrets censored. Standard output and error are written asynchronously: a
 * synchronous write per line was a system call per request on the event loop; asynchronous
 * writes leave the loop and coalesce under load (pino flushes what is pending when the process
 * exits; only a crash of the process itself can lose the last lines, never an audit record,
 * which the database holds).
 */
export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  const out = destination === undefined || destination === process.stdout ? asyncFd(1) : destination === process.stderr ? asyncFd(2) : destination;
  return pino(
    {
      level,
      redact: { paths: redactPaths, censor: '[redacted]' },
      base: { service: 'accord' },
      serializers: {
        // Fastify's own request summary, with the query values left out.
        req: (req: { method?: string; url?: string; host?: string; ip?: string }) => ({
          method: req.method,
          url: typeof req.url === 'string' ? loggableUrl(req.url) : req.url,
          host: req.host,
          remoteAddress: req.ip,
        }),
      },
    },
    out as pino.DestinationStream,
  );
}
