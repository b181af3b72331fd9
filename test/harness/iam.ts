import type { Trx } from '../../src/db/index.ts';
import { IamKey, openSession, type SignInDeps, type TokenIssuer } from '../../src/iam/index.ts';
import { defaultLockoutPolicy } from '../../src/iam/sign-in/lockout.ts';

/**
 * One IAM key per test file: pass it to buildApp({ iamKey }) so tokens made here are the
 * server's own, and sign-in code can run without a server.
 */
export const testIamKey = IamKey.ephemeral();
export const testIssuer: TokenIssuer = { key: testIamKey, accessTtlSeconds: 900 };
export const testSignIn = (db: SignInDeps['db']): SignInDeps => ({
  db,
  issuer: testIssuer,
  defaults: { idleSeconds: 3600, absoluteSeconds: 3600 },
  lockout: defaultLockoutPolicy,
  platformRequireMfa: false,
});

/** Opens a console session for a user directly (no password round trip); its access token. */
export async function sessionToken(trx: Trx, userId: string): Promise<string> {
  const s = await openSession(trx, testIssuer, { userId, policy: { idleSeconds: 3600, absoluteSeconds: 3600 }, source: { ip: null, userAgent: null } });
  return s.accessToken;
}
