import { X509Certificate } from 'node:crypto';
import { type Static, Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { AccordError } from '../../errors/index.ts';

/** ID token algorithms an OIDC provider may be configured to use; `none` and HMAC never are. */
export const OIDC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;

const ClaimNames = Type.Object(
  {
    email: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    groups: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  },
  { additionalProperties: false },
);
const Pem = Type.String({ minLength: 1, maxLength: 20_000 });

export const OidcSettings = Type.Object(
  {
    issuer: Type.String({ minLength: 1, maxLength: 2000 }),
    clientId: Type.String({ minLength: 1, maxLength: 500 }),
    scopes: Type.Optional(Type.Array(Type.String({ pattern: '^[\\x21\\x23-\\x5b\\x5d-\\x7e]{1,100}$' }), { maxItems: 20 })),
    /** The one algorithm ID tokens must be signed with (the allowlist; default RS256). */
    algorithm: Type.Optional(Type.Union(OIDC_ALGORITHMS.map((a) => Type.Literal(a)))),
    clockSkewSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 300 })),
    userinfo: Type.Optional(Type.Boolean()),
    claims: Type.Optional(ClaimNames),
    /** A private CA the provider's certificate chains to (PEM), besides the system's. */
    caCertificate: Type.Optional(Pem),
  },
  { additionalProperties: false },
);

export const LdapSettings = Type.Object(
  {
    url: Type.String({ minLength: 1, maxLength: 2000 }),
    startTls: Type.Optional(Type.Boolean()),
    /** Plain LDAP without TLS: refused unless this is set (never in production). */
    allowPlaintext: Type.Optional(Type.Boolean()),
    caCertificate: Type.Optional(Pem),
    /** Bind as the user directly: a DN template with {login}, e.g. uid={login},ou=people,dc=example,dc=test. */
    userDnTemplate: Type.Optional(Type.String({ minLength: 1, maxLength: 1000 })),
    /** Search-then-bind: the service account and where users live. */
    bindDn: Type.Optional(Type.String({ minLength: 1, maxLength: 1000 })),
    userBase: Type.Optional(Type.String({ minLength: 1, maxLength: 1000 })),
    /** Filter with {login} (escaped); default matches uid, sAMAccountName, userPrincipalName or mail. */
    userFilter: Type.Optional(Type.String({ minLength: 1, maxLength: 1000 })),
    /** Where to look for nested groups (groups that are members of the user's groups). */
    groupBase: Type.Optional(Type.String({ minLength: 1, maxLength: 1000 })),
    nestedGroups: Type.Optional(Type.Boolean()),
    attributes: Type.Optional(ClaimNames),
  },
  { additionalProperties: false },
);

export const SamlSettings = Type.Object(
  {
    entryPoint: Type.String({ minLength: 1, maxLength: 2000 }),
    idpIssuer: Type.String({ minLength: 1, maxLength: 2000 }),
    idpCertificate: Pem,
    allowIdpInitiated: Type.Optional(Type.Boolean()),
    clockSkewSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 300 })),
    attributes: Type.Optional(ClaimNames),
  },
  { additionalProperties: false },
);

export type OidcSettings = Static<typeof OidcSettings>;
export type LdapSettings = Static<typeof LdapSettings>;
export type SamlSettings = Static<typeof SamlSettings>;
export type IdpKind = 'oidc' | 'saml' | 'ldap';

const checkers = { oidc: TypeCompiler.Compile(OidcSettings), ldap: TypeCompiler.Compile(LdapSettings), saml: TypeCompiler.Compile(SamlSettings) };

const invalid = (reason: string) => new AccordError('IAM_IDP_INVALID', { message: `Invalid identity provider settings: ${reason}.`, details: { reason } });

function httpsUrl(value: string, what: string): void {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw invalid(`${what} is not a URL`);
  }
  if (u.protocol !== 'https:') throw invalid(`${what} must be an https URL`);
}

function certificate(pem: string | undefined, what: string): void {
  if (pem === undefined) return;
  try {
    new X509Certificate(pem);
  } catch {
    throw invalid(`${what} is not a PEM certificate`);
  }
}

/**
 * Validates the settings of a kind, before anything is stored: what cannot work (an http issuer,
 * LDAP without TLS, a certificate that does not parse) is refused here, not at the first sign-in.
 */
export function validateSettings(kind: IdpKind, settings: unknown): OidcSettings | LdapSettings | SamlSettings {
  const checker = checkers[kind];
  if (!checker.Check(settings)) {
    const first = [...checker.Errors(settings)][0];
    throw invalid(`${first?.path || '/'} ${first?.message ?? 'is invalid'}`);
  }
  if (kind === 'oidc') {
    const s = settings as OidcSettings;
    httpsUrl(s.issuer, 'issuer');
    certificate(s.caCertificate, 'caCertificate');
    if (s.scopes && !s.scopes.includes('openid')) throw invalid('scopes must include openid');
    return s;
  }
  if (kind === 'ldap') {
    const s = settings as LdapSettings;
    let u: URL;
    try {
      u = new URL(s.url);
    } catch {
      throw invalid('url is not a URL');
    }
    if (u.protocol !== 'ldaps:' && u.protocol !== 'ldap:') throw invalid('url must be ldaps:// or ldap://');
    if (u.protocol === 'ldap:' && !s.startTls && !s.allowPlaintext) throw invalid('ldap:// needs startTls (or use ldaps://)');
    if (u.protocol === 'ldaps:' && s.startTls) throw invalid('startTls is for ldap:// URLs');
    if (!s.userDnTemplate && !(s.bindDn && s.userBase)) throw invalid('give userDnTemplate (bind as the user) or bindDn and userBase (search then bind)');
    if (s.userDnTemplate && !s.userDnTemplate.includes('{login}')) throw invalid('userDnTemplate must contain {login}');
    certificate(s.caCertificate, 'caCertificate');
    return s;
  }
  const s = settings as SamlSettings;
  httpsUrl(s.entryPoint, 'entryPoint');
  certificate(s.idpCertificate, 'idpCertificate');
  return s;
}

/** Settings as admins see them: certificates shortened to their fingerprint. */
export function publicSettings(settings: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(settings)) {
    if ((k === 'caCertificate' || k === 'idpCertificate') && typeof v === 'string') {
      try {
        out[k] = `sha256:${new X509Certificate(v).fingerprint256}`;
      } catch {
        out[k] = 'unreadable';
      }
    } else out[k] = v;
  }
  return out;
}
