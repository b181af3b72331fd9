import { FormatRegistry, type Static, Type } from '@sinclair/typebox';

// TypeBox knows no formats by itself; this is the one email shape the platform accepts.
if (!FormatRegistry.Has('email')) FormatRegistry.Set('email', (v) => /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(v));

/**
 * The one configuration schema. Keys are camelCase here, `ACCORD_SCREAMING_SNAKE` in the
 * environment and `--kebab-case` as flags. Keys listed in `secretKeys` also accept a `*File`
 * variant (`ACCORD_*_FILE`) so secrets need not sit in the environment or a process listing.
 */
export const ConfigSchema = Type.Object(
  {
    dataDir: Type.String({ minLength: 1, default: './.accord', description: 'Data directory (PGlite data, TLS material, locks).' }),
    databaseUrl: Type.Optional(
      Type.String({
        pattern: '^postgres(ql)?://',
        description: 'PostgreSQL server URL; when absent the embedded PGlite engine is used. Honours sslmode and sslrootcert.',
      }),
    ),
    host: Type.String({ minLength: 1, default: '127.0.0.1', description: 'Address to listen on.' }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 8443, description: 'HTTPS port (0 picks a free one).' }),
    publicUrl: Type.Optional(Type.String({ pattern: '^https://', description: 'URL clients use, when behind a proxy or a DNS name.' })),
    tlsCert: Type.Optional(Type.String({ minLength: 1, description: 'PEM certificate chain file; generated under <dataDir>/tls when absent.' })),
    tlsKey: Type.Optional(Type.String({ minLength: 1, description: 'PEM private key file for tlsCert.' })),
    tlsHostnames: Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      description: 'Extra DNS names or IPs for the generated server certificate.',
    }),
    trustedProxies: Type.Array(Type.String({ minLength: 1, maxLength: 64, pattern: '^[0-9a-fA-F.:/]+$' }), {
      default: [],
      description: 'Addresses or CIDR ranges of reverse proxies whose X-Forwarded-For is believed (the client address for lockout and audit); empty: the connection address.',
    }),
    httpHeadersTimeoutSeconds: Type.Integer({ minimum: 1, maximum: 300, default: 10, description: 'A client must send the request line and all headers within this many seconds of its first byte.' }),
    httpRequestTimeoutSeconds: Type.Integer({
      minimum: 1,
      maximum: 3600,
      default: 30,
      description: 'A client must send the whole request, body included, within this many seconds (at least httpHeadersTimeoutSeconds); else 408 and the connection is closed.',
    }),
    httpIdleTimeoutSeconds: Type.Integer({ minimum: 1, maximum: 3600, default: 60, description: 'A connection on which no byte moves either way for this many seconds is closed.' }),
    httpKeepAliveTimeoutSeconds: Type.Integer({ minimum: 1, maximum: 600, default: 5, description: 'How long a kept-alive connection may wait for its next request.' }),
    tlsHandshakeTimeoutSeconds: Type.Integer({ minimum: 1, maximum: 120, default: 10, description: 'A connection must complete its TLS handshake within this many seconds (plain TCP that never starts TLS included).' }),
    maxConnectionsPerSource: Type.Integer({
      minimum: 0,
      maximum: 100_000,
      default: 64,
      description: 'Open connections allowed per source address (IPv6: per /64); more are closed before TLS. trustedProxies are exempt; 0: no cap.',
    }),
    deploymentMode: Type.Union([Type.Literal('managed'), Type.Literal('self-managed')], {
      default: 'managed',
      description: 'managed: an operator runs Accord for customers; self-managed: a customer runs it itself.',
    }),
    logLevel: Type.Union(
      ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
      { default: 'info' },
    ),
    bootstrapEmail: Type.Optional(Type.String({ format: 'email', description: 'Creates the first operator on first start.' })),
    bootstrapPassword: Type.Optional(Type.String({ minLength: 1, description: 'Password of bootstrapEmail (use the _FILE form).' })),
    auditSigningKeyFile: Type.Optional(
      Type.String({ minLength: 1, description: 'Ed25519 key signing audit checkpoints (default <dataDir>/keys/audit-signing-key.pem); share it between nodes.' }),
    ),
    auditCheckpointEveryRecords: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 1000, description: 'Sign a checkpoint after this many records in a chain.' }),
    auditCheckpointEveryMinutes: Type.Number({ minimum: 0.01, maximum: 1440, default: 5, description: '...or after this many minutes with new records.' }),
    auditCheckpointDir: Type.Optional(Type.String({ minLength: 1, description: 'Directory outside the database where signed checkpoints are also written.' })),
    auditSealDelayMs: Type.Integer({
      minimum: 0,
      maximum: 3_600_000,
      default: 10,
      description: 'After this node writes audit events, link them into their chains (seal them) within about this many ms; a pass takes what arrived meanwhile.',
    }),
    auditSealIntervalMs: Type.Integer({
      minimum: 10,
      maximum: 3_600_000,
      default: 1000,
      description: 'Look for unsealed audit events written elsewhere (other nodes, SQL sessions) at least this often.',
    }),
    auditOnlineDays: Type.Integer({ minimum: 1, maximum: 3650, default: 90, description: 'Days of audit records kept online and searchable.' }),
    auditRetentionDays: Type.Integer({ minimum: 1, maximum: 36500, default: 365, description: 'Days before archived audit records are purged.' }),
    auditArchiveDir: Type.Optional(Type.String({ minLength: 1, description: 'Where signed audit archives go (default <dataDir>/audit-archive).' })),
    auditSyslogUrl: Type.Optional(Type.String({ pattern: '^(tls|tcp)://', description: 'SIEM sink: tls://host:port (RFC 5425).' })),
    auditSyslogCaFile: Type.Optional(Type.String({ minLength: 1, description: 'CA to verify the syslog receiver.' })),
    kms: Type.Union([Type.Literal('local'), Type.Literal('pkcs11')], {
      default: 'local',
      description: 'Where the root key lives: local (a key file under <dataDir>/kms) or pkcs11 (an HSM).',
    }),
    rootKeyPassphrase: Type.Optional(Type.String({ minLength: 12, description: 'Protects the local root key file (use the _FILE form).' })),
    pkcs11Module: Type.Optional(Type.String({ minLength: 1, description: 'PKCS#11 module path, e.g. /usr/lib/softhsm/libsofthsm2.so.' })),
    pkcs11TokenLabel: Type.Optional(Type.String({ minLength: 1, maxLength: 32, description: 'Label of the HSM token holding the root key.' })),
    pkcs11Pin: Type.Optional(Type.String({ minLength: 1, description: 'User PIN of the token (use the _FILE form).' })),
    rateLimitIp: Type.String({ pattern: '^([0-9]+/[0-9]+|off)$', default: '120/60', description: 'Anonymous requests per source address (IPv6: per /64): limit/windowSeconds (a token bucket, bursts up to limit), or off.' }),
    rateLimitUser: Type.String({ pattern: '^([0-9]+/[0-9]+|off)$', default: '600/60', description: 'Requests per signed-in user (console or end user): limit/windowSeconds, or off.' }),
    rateLimitClient: Type.String({ pattern: '^([0-9]+/[0-9]+|off)$', default: '1200/60', description: 'Requests per API client: limit/windowSeconds, or off.' }),
    rateLimitTenant: Type.String({ pattern: '^([0-9]+/[0-9]+|off)$', default: '3000/60', description: 'Requests per tenant, all its callers together: limit/windowSeconds, or off.' }),
    rateLimitNodeShare: Type.Integer({ minimum: 1, maximum: 1000, default: 1, description: 'Number of nodes sharing the quotas: each node admits 1/N of every quota (rate limits are counted per node).' }),
    perimeterRefreshMilliseconds: Type.Integer({ minimum: 0, maximum: 60_000, default: 250, description: 'How often a node reads the perimeter version counter (IP lists, stage limits, CORS); changes made through a node apply there at once; 0: on every request.' }),
    denialSummarySeconds: Type.Integer({ minimum: 5, maximum: 3600, default: 60, description: 'Anonymous refusals are counted per source and reason over this window and written as one summary each.' }),
    maxHeaderCount: Type.Integer({ minimum: 16, maximum: 1000, default: 100, description: 'Header fields allowed in one request (more: 431).' }),
    maxHeaderBytes: Type.Integer({ minimum: 256, maximum: 16_384, default: 8192, description: 'Bytes allowed in one header field, name and value (more: 431; all headers together stay under 16 KiB, Node\'s limit).' }),
    maxUrlLength: Type.Integer({ minimum: 256, maximum: 65_536, default: 4096, description: 'Characters allowed in the request target, query included (more: 414).' }),
    maxJsonDepth: Type.Integer({ minimum: 2, maximum: 1000, default: 32, description: 'Nesting depth allowed in a JSON body (more: 400).' }),
    maxJsonKeys: Type.Integer({ minimum: 16, maximum: 1_000_000, default: 10_000, description: 'Object keys allowed in a JSON body, all levels together (more: 400).' }),
    lockoutAccount: Type.Array(Type.String({ pattern: '^[0-9]+:[0-9]+$' }), {
      minItems: 1,
      default: ['3:30', '6:1800'],
      description: 'Sign-in lock steps per account, failures:lockSeconds, ascending (3:30,6:1800: 3 failures lock 30 s, 6 lock 30 min).',
    }),
    lockoutIp: Type.Array(Type.String({ pattern: '^[0-9]+:[0-9]+$' }), {
      default: ['20:300', '50:3600'],
      description: 'Sign-in lock steps per source IP (IPv6: per /64), failures:lockSeconds, ascending; empty disables.',
    }),
    lockoutNet: Type.Array(Type.String({ pattern: '^[0-9]+:[0-9]+$' }), {
      default: ['60:900', '150:3600'],
      description: 'Sign-in lock steps per source IPv4 /24, failures:lockSeconds, ascending; empty disables.',
    }),
    lockoutWindowSeconds: Type.Integer({ minimum: 60, maximum: 7 * 86400, default: 3600, description: 'Failed sign-ins are counted over this many seconds.' }),
    sessionIdleTimeoutSeconds: Type.Integer({ minimum: 60, maximum: 45 * 86400, default: 12 * 3600, description: 'Default idle timeout of sessions (tenants and stages may set their own).' }),
    sessionAbsoluteTimeoutSeconds: Type.Integer({ minimum: 60, maximum: 45 * 86400, default: 12 * 3600, description: 'Default absolute timeout of sessions.' }),
    accessTokenTtlSeconds: Type.Integer({ minimum: 30, maximum: 900, default: 300, description: 'Lifetime of access tokens (at most 15 minutes); refresh tokens renew them.' }),
    authCacheMilliseconds: Type.Integer({
      minimum: 0,
      maximum: 10_000,
      default: 2000,
      description: 'How long a node remembers a session or API client (0: never). Changes made through a node apply there at once; this bounds how long another node takes to see them.',
    }),
    platformRequireMfa: Type.Boolean({ default: false, description: 'Require MFA of platform-directory users (operators, security officers).' }),
    webauthnRpId: Type.Optional(Type.String({ minLength: 1, maxLength: 253, description: 'WebAuthn relying party id (default: the host of publicUrl, else localhost).' })),
  },
  { additionalProperties: false },
);

/** Validated, frozen configuration. */
export type Config = Readonly<Static<typeof ConfigSchema>>;

/** Keys whose values are secrets: never logged, and loadable from `*File` / `ACCORD_*_FILE`. */
export const secretKeys = ['databaseUrl', 'bootstrapPassword', 'rootKeyPassphrase', 'pkcs11Pin'] as const;

/** Keys holding a list; in the environment they are comma-separated. */
export const listKeys = ['tlsHostnames', 'lockoutAccount', 'lockoutIp', 'lockoutNet', 'trustedProxies'] as const;
