import { randomBytes, X509Certificate } from 'node:crypto';
import { type CacheProvider, SAML, ValidateInResponseTo } from '@node-saml/node-saml';
import type { Provider } from './providers.ts';
import { type FederatedIdentity, FederationRefusal } from './provisioning.ts';
import type { SamlSettings } from './settings.ts';
import { describeError } from './oidc.ts';

/** The SP's URLs of a provider: its entity id is its metadata URL (the common convention), one ACS. */
export const samlMetadataUrl = (origin: string, tenant: string, idp: string) => `${origin}/api/v1/federation/${tenant}/${idp}/saml/metadata`;
export const samlAcsUrl = (origin: string, tenant: string, idp: string) => `${origin}/api/v1/federation/${tenant}/${idp}/saml/acs`;

/**
 * A cache that knows exactly one request id: the one the flow in hand started. node-saml asks
 * it whether the response's InResponseTo is a request we sent, so a response to another
 * browser's (or no) request is refused, whatever the in-process state of any node.
 */
function oneRequest(requestId: string | undefined): CacheProvider {
  return {
    saveAsync: async () => null,
    // node-saml reads the value as the request's creation time; the flow's own expiry (checked
    // when it is consumed) is the limit that counts, so "now" keeps node-saml's from interfering.
    getAsync: async (key: string) => (requestId !== undefined && key === requestId ? new Date().toISOString() : null),
    removeAsync: async () => null,
  };
}

function samlFor(p: Provider, origin: string, requestId?: string, newId?: string): SAML {
  const s = p.settings as SamlSettings;
  return new SAML({
    entryPoint: s.entryPoint,
    issuer: samlMetadataUrl(origin, p.tenantName, p.name),
    callbackUrl: samlAcsUrl(origin, p.tenantName, p.name),
    audience: samlMetadataUrl(origin, p.tenantName, p.name),
    idpIssuer: s.idpIssuer,
    idpCert: s.idpCertificate,
    // The assertion must carry the IdP's signature; a signed envelope around an unsigned
    // assertion is not enough (that is how wrapping attacks smuggle a forged one in).
    wantAssertionsSigned: true,
    wantAuthnResponseSigned: false,
    acceptedClockSkewMs: (s.clockSkewSeconds ?? 30) * 1000,
    validateInResponseTo: ValidateInResponseTo.always,
    cacheProvider: oneRequest(requestId),
    ...(newId ? { generateUniqueId: () => newId } : {}),
    identifierFormat: null,
    disableRequestedAuthnContext: true,
  });
}

/** The HTTP-Redirect AuthnRequest of a new flow: the URL, and the request id the response must answer. */
export async function samlStart(p: Provider, origin: string, state: string): Promise<{ url: string; requestId: string }> {
  const requestId = `_${randomBytes(20).toString('hex')}`;
  const url = await samlFor(p, origin, undefined, requestId).getAuthorizeUrlAsync(state, undefined, {});
  return { url, requestId };
}

/** The SP metadata admins give the IdP (entity id, ACS with the POST binding, assertions signed). */
export function samlMetadata(p: Provider, origin: string): string {
  return samlFor(p, origin).generateServiceProviderMetadata(null, null);
}

// An attribute value with XML attributes of its own (xsi:type) comes as { _: text, $: {...} }.
const value = (v: unknown): unknown => (v && typeof v === 'object' && !Array.isArray(v) && '_' in v ? (v as { _: unknown })._ : v);
const text = (v: unknown): string | undefined => {
  const x = value(Array.isArray(v) ? v[0] : v);
  return typeof x === 'string' && x.length > 0 ? x : undefined;
};
const list = (v: unknown): string[] => (Array.isArray(v) ? v : v === undefined ? [] : [v]).map(value).filter((g): g is string => typeof g === 'string' && g.length > 0 && g.length <= 256);

/** What a checked assertion yields: the identity and the assertion id and expiry for the replay cache. */
export interface SamlAssertion {
  readonly identity: FederatedIdentity;
  readonly assertionId: string;
  readonly expiresAt: Date;
}

/**
 * Checks a POST-binding response: the assertion's signature under the configured certificate
 * (unsigned and wrapped assertions fail), issuer, audience, recipient/destination, NotBefore and
 * NotOnOrAfter with the clock skew, and InResponseTo equal to the flow's request id (absent
 * means IdP-initiated, refused). Any failure is a FederationRefusal with the library's reason.
 */
export async function samlCallback(p: Provider, origin: string, samlResponse: string, requestId: string, now = new Date()): Promise<SamlAssertion> {
  const s = p.settings as SamlSettings;
  let profile: Record<string, unknown> | null;
  try {
    const r = await samlFor(p, origin, requestId).validatePostResponseAsync({ SAMLResponse: samlResponse });
    profile = r.profile as Record<string, unknown> | null;
  } catch (err) {
    throw new FederationRefusal(`assertion-invalid: ${describeError(err)}`);
  }
  if (!profile) throw new FederationRefusal('assertion-invalid: no assertion');
  const subject = text(profile.nameID);
  if (!subject) throw new FederationRefusal('assertion-invalid: no NameID');
  const a = s.attributes ?? {};
  // node-saml puts attributes on the profile and, when present, under `attributes` too.
  const attrs = (profile.attributes ?? profile) as Record<string, unknown>;
  const email = text(attrs[a.email ?? 'email']) ?? '';
  const name = text(attrs[a.name ?? 'name']) ?? email;
  const groups = list(attrs[a.groups ?? 'groups']);
  const assertionXml = typeof profile.getAssertionXml === 'function' ? String((profile.getAssertionXml as () => string)()) : '';
  const assertionId = /<(?:\w+:)?Assertion\b[^>]*\bID="([^"]{1,200})"/.exec(assertionXml)?.[1];
  if (!assertionId) throw new FederationRefusal('assertion-invalid: no assertion ID');
  const notOnOrAfter = /\bNotOnOrAfter="([^"]{1,64})"/.exec(assertionXml)?.[1];
  const until = notOnOrAfter ? new Date(notOnOrAfter) : new Date(Number.NaN);
  // Remember the id at least as long as the assertion could be accepted (its expiry plus skew).
  const expiresAt = new Date(Math.max(Number.isNaN(until.getTime()) ? now.getTime() + 3600_000 : until.getTime(), now.getTime()) + (s.clockSkewSeconds ?? 30) * 1000);
  return { identity: { subject, email, name, groups }, assertionId, expiresAt };
}

/** `idp test` for SAML: the settings are usable (SSO URL, the certificate parses and is in date). */
export async function samlTest(p: Provider, now = new Date()): Promise<{ ok: boolean; checks: { name: string; ok: boolean; detail: string }[] }> {
  const s = p.settings as SamlSettings;
  const checks: { name: string; ok: boolean; detail: string }[] = [];
  try {
    const c = new X509Certificate(s.idpCertificate);
    const from = new Date(c.validFrom);
    const to = new Date(c.validTo);
    const ok = from <= now && now < to;
    checks.push({ name: 'certificate', ok, detail: ok ? `valid until ${to.toISOString()} (sha256:${c.fingerprint256})` : `not valid now (valid ${from.toISOString()} to ${to.toISOString()})` });
  } catch (err) {
    checks.push({ name: 'certificate', ok: false, detail: describeError(err) });
  }
  try {
    const u = new URL(s.entryPoint);
    checks.push({ name: 'sso-url', ok: u.protocol === 'https:', detail: u.origin + u.pathname });
  } catch (err) {
    checks.push({ name: 'sso-url', ok: false, detail: describeError(err) });
  }
  checks.push({ name: 'idp-initiated', ok: true, detail: s.allowIdpInitiated ? 'allowed by settings but not supported: refused' : 'off' });
  return { ok: checks.every((c) => c.ok), checks };
}
