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

/** The platform logger: JSON lines to stdout, secrets censored. */
export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino({ level, redact: { paths: redactPaths, censor: '[redacted]' }, base: { service: 'accord' } }, destination as pino.DestinationStream);
}
