import { createHash } from 'node:crypto';
import * as client from 'openid-client';
import type { IamKey } from '../iam-key.ts';
import { peerFetch } from './peer-fetch.ts';
import { openSecret, type Provider } from './providers.ts';
import { type FederatedIdentity, FederationRefusal } from './provisioning.ts';
import type { OidcSettings } from './settings.ts';

// Discovery and the JWKS are fetched once per provider and settings, not per sign-in; a key
// rotation at the provider is picked up by openid-client itself (an unknown kid refetches).
const CACHE_MS = 10 * 60 * 1000;
const cache = new Map<string, { at: number; config: client.Configuration }>();

const cacheKey = (p: Provider, secret: string) => createHash('sha256').update(JSON.stringify([p.id, p.settings, secret])).digest('hex');

/** The openid-client configuration of a provider (discovery, client authentication, checks). */
export async function oidcConfiguration(key: IamKey, p: Provider, fresh = false): Promise<client.Configuration> {
  const s = p.settings as OidcSettings;
  const secret = openSecret(key, p) ?? '';
  const k = cacheKey(p, secret);
  const hit = cache.get(k);
  if (hit && !fresh && Date.now() - hit.at < CACHE_MS) return hit.config;
  const config = await client.discovery(
    new URL(s.issuer),
    s.clientId,
    {
      // The allowlist: ID tokens signed any other way (another algorithm, `none`, HMAC) fail.
      id_token_signed_response_alg: s.algorithm ?? 'RS256',
      [client.clockTolerance]: s.clockSkewSeconds ?? 30,
    },
    client.ClientSecretBasic(secret),
    { [client.customFetch]: peerFetch(s.caCertificate), timeout: 10 },
  );
  // Token-endpoint ID tokens arrive over TLS, which OIDC Core (3.1.3.7) lets a client accept
  // unsigned-checked; we verify the signature anyway (JWKS, the configured algorithm), so a
  // compromised path between us and the provider cannot mint identities.
  client.enableNonRepudiationChecks(config);
  cache.set(k, { at: Date.now(), config });
  return config;
}

/** What a sign-in start keeps for its callback. */
export interface OidcStart {
  readonly url: string;
  readonly state: string;
  readonly nonce: string;
  readonly codeVerifier: string;
}

/** The authorization request: code flow, PKCE S256, state and nonce. */
export async function oidcStart(key: IamKey, p: Provider, redirectUri: string): Promise<OidcStart> {
  const s = p.settings as OidcSettings;
  const config = await oidcConfiguration(key, p);
  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: (s.scopes ?? ['openid', 'email', 'profile']).join(' '),
    response_type: 'code',
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  });
  return { url: url.href, state, nonce, codeVerifier };
}

/**
 * A library error as one line for the audit trail: its message, its code, the claim it is
 * about and the underlying cause (a TLS error under a fetch failure). Never claim values.
 */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e && depth < 3; depth++) {
    const x = e as { message?: unknown; code?: unknown; cause?: unknown };
    const claim = x.cause && typeof x.cause === 'object' && 'claim' in x.cause ? ` (claim ${String((x.cause as { claim: unknown }).claim)})` : '';
    if (typeof x.message === 'string') parts.push(`${x.message}${typeof x.code === 'string' ? ` [${x.code}]` : ''}${claim}`);
    e = x.cause instanceof Error ? x.cause : undefined;
  }
  return parts.join(': ').slice(0, 500);
}

function claimString(v: unknown): string | undefined {
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

function claimGroups(v: unknown): string[] {
  if (Array.isArray(v)) return v.filter((g): g is string => typeof g === 'string' && g.length > 0 && g.length <= 256);
  if (typeof v === 'string' && v.length > 0) return [v];
  return [];
}

/**
 * The callback: exchanges the code (with the PKCE verifier) and validates the ID token (issuer,
 * audience, expiry with the clock skew, nonce, signature under the allowed algorithm), then maps
 * the claims (and the userinfo answer when configured). Any failure is a FederationRefusal
 * whose reason goes to the audit trail.
 */
export async function oidcCallback(key: IamKey, p: Provider, currentUrl: URL, flow: { state: string; nonce: string; codeVerifier: string }): Promise<FederatedIdentity> {
  const s = p.settings as OidcSettings;
  let config: client.Configuration;
  try {
    config = await oidcConfiguration(key, p);
  } catch (err) {
    throw new FederationRefusal(`provider-unreachable: ${describeError(err)}`);
  }
  let claims: Record<string, unknown>;
  let accessToken: string;
  try {
    const tokens = await client.authorizationCodeGrant(config, currentUrl, { pkceCodeVerifier: flow.codeVerifier, expectedState: flow.state, expectedNonce: flow.nonce, idTokenExpected: true });
    const idClaims = tokens.claims();
    if (!idClaims) throw new Error('no ID token');
    claims = { ...idClaims };
    accessToken = tokens.access_token;
  } catch (err) {
    throw new FederationRefusal(`token-rejected: ${describeError(err)}`);
  }
  if (s.userinfo) {
    try {
      const info = await client.fetchUserInfo(config, accessToken, claims.sub as string);
      // The ID token's subject and issuer win; userinfo adds profile claims (email, groups).
      claims = { ...info, ...claims, ...Object.fromEntries(Object.entries(info).filter(([k]) => k !== 'sub' && k !== 'iss' && k !== 'aud')) };
    } catch (err) {
      throw new FederationRefusal(`userinfo-failed: ${describeError(err)}`);
    }
  }
  const names = { email: s.claims?.email ?? 'email', name: s.claims?.name ?? 'name', groups: s.claims?.groups ?? 'groups' };
  if (claims.email_verified === false && names.email === 'email') throw new FederationRefusal('email-unverified');
  const email = claimString(claims[names.email]);
  if (!email) throw new FederationRefusal('claim-missing: email');
  return { subject: String(claims.sub), email, name: claimString(claims[names.name]) ?? '', groups: claimGroups(claims[names.groups]) };
}

/** `accord idp test` for OIDC: discovery, the JWKS, and the configured algorithm on offer. */
export async function oidcTest(key: IamKey, p: Provider): Promise<{ ok: boolean; checks: { name: string; ok: boolean; detail: string }[] }> {
  const s = p.settings as OidcSettings;
  const checks: { name: string; ok: boolean; detail: string }[] = [];
  let config: client.Configuration;
  try {
    config = await oidcConfiguration(key, p, true);
    checks.push({ name: 'discovery', ok: true, detail: `issuer ${config.serverMetadata().issuer}` });
  } catch (err) {
    checks.push({ name: 'discovery', ok: false, detail: describeError(err) });
    return { ok: false, checks };
  }
  const meta = config.serverMetadata();
  const alg = s.algorithm ?? 'RS256';
  const offered = meta.id_token_signing_alg_values_supported ?? [];
  checks.push({ name: 'algorithm', ok: offered.includes(alg), detail: `${alg} ${offered.includes(alg) ? 'offered' : `not offered (provider offers ${offered.join(', ') || 'nothing'})`}` });
  checks.push({ name: 'pkce', ok: (meta.code_challenge_methods_supported ?? ['S256']).includes('S256'), detail: 'S256' });
  try {
    if (!meta.jwks_uri) throw new Error('no jwks_uri');
    const r = await peerFetch(s.caCertificate)(meta.jwks_uri, { method: 'GET', headers: { accept: 'application/json' } });
    const jwks = (await r.json()) as { keys?: unknown[] };
    const n = jwks.keys?.length ?? 0;
    checks.push({ name: 'jwks', ok: r.ok && n > 0, detail: `${n} key(s)` });
  } catch (err) {
    checks.push({ name: 'jwks', ok: false, detail: describeError(err) });
  }
  return { ok: checks.every((c) => c.ok), checks };
}
