import { type FastifyReply, type FastifyRequest, LogController } from 'fastify';
import pino, { type Logger } from 'pino';

/**
 * Keys whose values may be secrets wherever a log line could pick them up; their values are
 * censored at any depth of a line (request and response headers, configuration, anything
 * logged). The rule is still that code never logs them; this is the net under it.
 */
export const secretLogKeys = [
  'authorization',
  'cookie',
  'x-api-key',
  'set-cookie',
  'password',
  'token',
  'secret',
  'databaseUrl',
  'bootstrapPassword',
  'rootKeyPassphrase',
  'pkcs11Pin',
  'pin',
  'passphrase',
] as const;

const CENSOR = '[redacted]';
const secretKeySet: ReadonlySet<string> = new Set(secretLogKeys);
// A key as compact JSON writes it: after `{` or `,`, quoted, before `:`. Inside a string value a
// quote is always escaped, so this cannot match the text of a value. (The keys hold no regular
// expression syntax.)
const SECRET_KEY = new RegExp(`[{,]"(?:${secretLogKeys.join('|')})":`);

function censorDeep(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(censorDeep);
  if (v === null || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = secretKeySet.has(k) ? CENSOR : censorDeep(x);
  return out;
}

/**
 * A log line as written: unchanged unless a secret key occurs in it, then parsed, censored and
 * written again. One scan of the finished line replaces pino's path redaction, which cloned and
 * walked every logged object for each path and cost more than writing the line (issue 9).
 */
export function censorLine(line: string): string {
  if (!SECRET_KEY.test(line)) return line;
  try {
    return `${JSON.stringify(censorDeep(JSON.parse(line)))}\n`;
  } catch {
    // Not one JSON document (never seen from pino): withhold it rather than risk a secret.
    return `${JSON.stringify({ level: 50, time: Date.now(), msg: 'a log line was withheld: it named a secret and could not be censored' })}\n`;
  }
}

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

/**
 * Standard output or error, buffered: written when 4 KiB have gathered or every 100 ms. A
 * write per line was a system call per request on the event loop (issue 9); buffered, one
 * write carries a dozen lines under load, and a quiet server's line still leaves within 100 ms.
 * pino flushes the buffer when the process exits; a crash of the process itself can lose the
 * last 100 ms of lines (never an audit record: the database holds those).
 */
const bufferedFd = (fd: 1 | 2) => pino.destination({ dest: fd, sync: true, minLength: 4096, periodicFlush: 100 });

/**
 * The platform logger: JSON lines to stdout (or to `destination`: `process.stderr`, or a stream
 * in tests), secrets censored.
 */
export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  const out = destination === undefined || destination === process.stdout ? bufferedFd(1) : destination === process.stderr ? bufferedFd(2) : destination;
  return pino(
    {
      level,
      hooks: { streamWrite: censorLine },
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
