import { X509Certificate } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config/index.ts';
import type { Db } from '../db/index.ts';
import { access, type RouteDefinition, route } from '../http/index.ts';
import { type SurfaceEndpoint, surfaceReport } from '../perimeter/index.ts';
import type { PerimeterWiring } from './perimeter.ts';
import { TLS_POLICY } from './tls/index.ts';

const DAY_MS = 86_400_000;

/** The listening endpoint of this node, with its TLS configuration and certificate. */
function endpoints(app: FastifyInstance, config: Config, cert: string | undefined, now: Date): SurfaceEndpoint[] {
  const address = app.server.address();
  const host = typeof address === 'object' && address ? address.address : config.host;
  const port = typeof address === 'object' && address ? address.port : config.port;
  let certificate: NonNullable<SurfaceEndpoint['tls']>['certificate'] = null;
  if (cert) {
    const x = new X509Certificate(cert);
    const notAfter = new Date(x.validTo);
    certificate = {
      subject: x.subject.replace(/\n/g, ', '),
      issuer: x.issuer.replace(/\n/g, ', '),
      notAfter: notAfter.toISOString(),
      daysLeft: Math.floor((notAfter.getTime() - now.getTime()) / DAY_MS),
      selfIssuedByLocalCa: x.issuer !== x.subject && /accord/i.test(x.issuer),
    };
  }
  const scheme = cert ? 'https' : 'http';
  return [
    {
      url: `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`,
      host,
      port,
      tls: cert
        ? { protocols: ['TLSv1.2', 'TLSv1.3'], tls13Suites: [...TLS_POLICY.tls13Suites], tls12Suites: [...TLS_POLICY.tls12Suites], curves: [...TLS_POLICY.curves], certificate }
        : null,
    },
  ];
}

/** `GET /api/v1/security/surface`: the attack-surface report, for the security officer. */
export function surfaceRoute(deps: { app: FastifyInstance; config: Config; db: Db; perimeter: PerimeterWiring; cert: string | undefined }): RouteDefinition {
  const { app, config, db, perimeter } = deps;
  return route({
    method: 'GET',
    url: '/api/v1/security/surface',
    access: access.permission('security:read'),
    schema: {
      summary: 'Attack-surface report: endpoints and TLS, anonymous routes, rate limits and IP lists per stage, findings against the policy',
      tags: ['perimeter'],
      response: { 200: Type.Object({}, { additionalProperties: true }) },
    },
    handler: async () => {
      const now = new Date();
      return surfaceReport(
        db,
        {
          endpoints: endpoints(app, config, deps.cert, now),
          routes: app.declaredRoutes,
          platformLimits: perimeter.state.platformLimits,
          requestLimits: { ...perimeter.limits, bodyBytes: 1024 * 1024 },
          listensOnAllInterfaces: config.host === '0.0.0.0' || config.host === '::',
        },
        now,
      );
    },
  });
}
