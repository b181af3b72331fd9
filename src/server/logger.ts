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

/** The platform logger: JSON lines to stdout, secrets censored. */
export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
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
    destination as pino.DestinationStream,
  );
}
