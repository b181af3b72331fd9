import type { Config } from '../config/index.ts';
import type { Db } from '../db/index.ts';
import { GrantUsage } from './reviews/grant-usage.ts';
import type { IamKey } from './iam-key.ts';
import { PrincipalCache } from './sessions/principal-cache.ts';
import { lockoutPolicyFromConfig } from './sign-in/lockout.ts';
import type { SignInDeps } from './sign-in/login.ts';
import type { SessionPolicy, TokenIssuer } from './sessions/sessions.ts';

/**
 * What the IAM routes and the authenticator share, built once per server from the frozen
 * configuration and the IAM key.
 */
export interface IamServices {
  readonly db: Db;
  readonly config: Config;
  readonly key: IamKey;
  readonly issuer: TokenIssuer;
  readonly defaults: SessionPolicy;
  readonly signIn: SignInDeps;
  /** WebAuthn relying party: id (a host name) and the origin browsers report. */
  readonly webauthn: { readonly rpId: string; readonly origin: string; readonly rpName: string };
  /** Last use of grants (access reviews); flush() before reading last_used_at. */
  readonly grantUsage: GrantUsage;
  /** Who sessions and clients are, remembered for seconds (see PrincipalCache). */
  readonly principals: PrincipalCache;
  /** The origin browsers and identity providers reach the platform at (redirect URIs, SAML ACS). */
  readonly publicOrigin: string;
}

export function iamServices(db: Db, config: Config, key: IamKey, publicUrl?: string): IamServices {
  const issuer: TokenIssuer = { key, accessTtlSeconds: config.accessTokenTtlSeconds };
  const defaults: SessionPolicy = { idleSeconds: config.sessionIdleTimeoutSeconds, absoluteSeconds: config.sessionAbsoluteTimeoutSeconds };
  const url = new URL(publicUrl ?? config.publicUrl ?? `https://localhost:${config.port}`);
  return Object.freeze({
    db,
    config,
    key,
    issuer,
    defaults,
    signIn: Object.freeze({ db, issuer, defaults, lockout: lockoutPolicyFromConfig(config), platformRequireMfa: config.platformRequireMfa }),
    grantUsage: new GrantUsage(db),
    principals: new PrincipalCache({ ttlMs: config.authCacheMilliseconds }),
    publicOrigin: url.origin,
    webauthn: Object.freeze({ rpId: config.webauthnRpId ?? url.hostname, origin: url.origin, rpName: 'Accord' }),
  });
}
