import type { Server } from 'node:net';
import type { Config } from '../config/index.ts';
import { addressMatcher, type ConnectionCapStats, capConnectionsPerSource } from '../perimeter/index.ts';
import { tlsServerOptions } from './tls/index.ts';

// Node checks the header and request deadlines on a timer, not per byte; once a second keeps a
// deadline within a second of its setting at the cost of one walk over open connections.
const CHECK_EVERY_MS = 1000;

type ListenerConfig = Pick<
  Config,
  'httpHeadersTimeoutSeconds' | 'httpRequestTimeoutSeconds' | 'httpIdleTimeoutSeconds' | 'httpKeepAliveTimeoutSeconds' | 'tlsHandshakeTimeoutSeconds'
>;

/**
 * Fastify's own connection options: the whole request (headers and body) within
 * `httpRequestTimeoutSeconds` (else 408), no byte either way for `httpIdleTimeoutSeconds` closes
 * the socket, and a kept-alive connection waits `httpKeepAliveTimeoutSeconds` for its next request.
 */
export function fastifyTimeouts(config: ListenerConfig): { requestTimeout: number; connectionTimeout: number; keepAliveTimeout: number } {
  return {
    requestTimeout: config.httpRequestTimeoutSeconds * 1000,
    connectionTimeout: config.httpIdleTimeoutSeconds * 1000,
    keepAliveTimeout: config.httpKeepAliveTimeoutSeconds * 1000,
  };
}

/** The HTTPS server's options: key and certificate, the TLS policy, header and handshake deadlines. */
export function httpsOptions(config: ListenerConfig, material: { readonly key: string; readonly cert: string }) {
  return {
    key: material.key,
    cert: material.cert,
    ...tlsServerOptions(),
    // Counted from the TCP connection: plain TCP that never starts TLS is closed after this too.
    handshakeTimeout: config.tlsHandshakeTimeoutSeconds * 1000,
    headersTimeout: config.httpHeadersTimeoutSeconds * 1000,
    connectionsCheckingInterval: CHECK_EVERY_MS,
  };
}

/** Caps the open connections per source on the server; trusted proxies are exempt. */
export function capConnections(server: Server, config: Pick<Config, 'maxConnectionsPerSource' | 'trustedProxies'>): ConnectionCapStats {
  const proxies = addressMatcher(config.trustedProxies);
  return capConnectionsPerSource(server, { max: config.maxConnectionsPerSource, exempt: (ip) => proxies(ip) });
}
