import { timingSafeEqual } from 'node:crypto';
import type { AuditSource } from '../../audit-chain/index.ts';
import type { Db } from '../../db/index.ts';
import { AccordError } from '../../errors/index.ts';
import { unitOfWork } from '../../kernel/index.ts';
import type { TokenIssuer } from '../sessions/sessions.ts';
import { hashToken, signAccessToken } from '../sessions/tokens.ts';
import { grantsOf } from '../users/users.ts';

/**
 * The value the form parser (src/server/app.ts) gives a parameter sent more than once: a symbol,
 * which no client can send and the input rule (strings only) leaves alone.
 */
export const DUPLICATE_PARAMETER: unique symbol = Symbol('duplicate parameter');

const CLIENT_ID = /^acl_[A-Za-z0-9_-]{22}$/;
// Real secrets are 47 characters; anything much longer is not worth hashing.
const MAX_SECRET = 200;

/** A token request, once its shape is known to be right (credentials not verified yet). */
export interface TokenRequest {
  readonly clientId: string;
  readonly clientSecret: string;
  /** How the client authenticated: HTTP Basic or parameters in the body. */
  readonly method: 'basic' | 'body';
}

/** RFC 6749 section 5.2 error codes, carried in problem details next to the catalog code. */
export type OAuthErrorCode = 'invalid_request' | 'invalid_client' | 'unsupported_grant_type';

/**
 * A catalog error carrying the RFC 6749 `error` and `error_description`. They sit in `details`
 * because problem documents (src/errors/index.ts) have no top-level extension members yet.
 */
export function oauthError(error: OAuthErrorCode, description: string): AccordError {
  // RFC 6749 section 5.2 members at the top level, where OAuth2 client libraries look for them.
  const extensions = { error, error_description: description };
  if (error === 'invalid_client') {
    return new AccordError('IAM_CLIENT_INVALID', { extensions, headers: { 'www-authenticate': 'Basic realm="accord"' } });
  }
  if (error === 'unsupported_grant_type') return new AccordError('IAM_GRANT_TYPE_UNSUPPORTED', { extensions });
  return new AccordError('REQUEST_INVALID', { message: description, extensions });
}

const CLIENT_AUTH_FAILED = 'Client authentication failed.';

/** Decodes application/x-www-form-urlencoded text (RFC 6749 appendix B); undefined when malformed. */
function formDecode(text: string): string | undefined {
  try {
    return decodeURIComponent(text.replaceAll('+', ' '));
  } catch {
    return undefined;
  }
}

/**
 * Client id and secret from an HTTP Basic header. RFC 6749 section 2.3.1 form-encodes both before
 * they are joined with a colon and base64-encoded, so a `:` or `%` in either survives.
 */
export function basicCredentials(header: string): { id: string; secret: string } {
  const m = /^Basic +([A-Za-z0-9+/]+={0,2}) *$/i.exec(header);
  if (!m?.[1]) throw oauthError('invalid_client', 'Send client credentials as HTTP Basic (client_id:client_secret) or as client_id and client_secret in the body.');
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  const id = colon < 0 ? undefined : formDecode(decoded.slice(0, colon));
  const secret = colon < 0 ? undefined : formDecode(decoded.slice(colon + 1));
  if (!id || !secret) throw oauthError('invalid_client', 'The HTTP Basic credentials are malformed.');
  return { id, secret };
}

/**
 * Checks a token request's shape (RFC 6749 sections 3.2, 4.4.2) before any database work:
 * parameters once each, grant_type client_credentials, exactly one client authentication method.
 */
export function parseTokenRequest(body: unknown, authorization: string | undefined): TokenRequest {
  if (body !== undefined && body !== null && (typeof body !== 'object' || Array.isArray(body))) {
    throw oauthError('invalid_request', 'The body must be form-encoded parameters or a JSON object.');
  }
  const params = (body ?? {}) as Record<string, unknown>;
  for (const [name, value] of Object.entries(params)) {
    if (value === DUPLICATE_PARAMETER) throw oauthError('invalid_request', `The parameter ${name.slice(0, 40)} is repeated.`);
  }
  const param = (name: string): string | undefined => {
    const v = params[name];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw oauthError('invalid_request', `The parameter ${name} must be a string.`);
    return v;
  };
  const grantType = param('grant_type');
  if (!grantType) throw oauthError('invalid_request', 'The grant_type parameter is missing.');
  if (grantType !== 'client_credentials') throw oauthError('unsupported_grant_type', 'Only grant_type=client_credentials is supported.');
  const bodyId = param('client_id');
  const bodySecret = param('client_secret');
  let request: TokenRequest;
  if (authorization !== undefined) {
    if (bodySecret !== undefined) throw oauthError('invalid_request', 'Use one client authentication method: HTTP Basic or client_secret in the body, not both.');
    const basic = basicCredentials(authorization);
    // A client may name itself in the body too (section 3.2.1); it must then be the same client.
    if (bodyId !== undefined && bodyId !== basic.id) throw oauthError('invalid_request', 'client_id in the body differs from the HTTP Basic credentials.');
    request = { clientId: basic.id, clientSecret: basic.secret, method: 'basic' };
  } else {
    if (!bodyId || !bodySecret) throw oauthError('invalid_client', 'Send client credentials as HTTP Basic (client_id:client_secret) or as client_id and client_secret in the body.');
    request = { clientId: bodyId, clientSecret: bodySecret, method: 'body' };
  }
  return request;
}

/** The successful token response (RFC 6749 section 5.1). No refresh token: clients ask again. */
export interface TokenResponse {
  readonly access_token: string;
  readonly token_type: 'Bearer';
  readonly expires_in: number;
}

type Failure = 'unknown-client' | 'bad-secret' | 'expired-secret' | 'expired-client' | 'revoked';

/**
 * Verifies the client's credentials and issues an access token for it (typ `client`, no session).
 * Every failure is one answer to the caller (IAM_CLIENT_INVALID) and a precise reason in the audit
 * trail: on the client's tenant chain when the client id is known, else the platform's. The
 * presented secret is never recorded, and the presented id only when it looks like a client id
 * (a secret pasted into the id field must not end up in the trail).
 */
export async function issueClientToken(db: Db, issuer: TokenIssuer, source: AuditSource, request: TokenRequest, now = new Date()): Promise<TokenResponse> {
  return unitOfWork(db, source, async (w) => {
    const { trx, refuse } = w;
    // A committed refusal: the failure's record stays, the caller gets one answer for all reasons.
    const fail = (reason: Failure, tenantId: string | null, target?: { type: string; id: string }) =>
      refuse(oauthError('invalid_client', CLIENT_AUTH_FAILED), {
        tenantId,
        action: 'client.token',
        ...(target ? { target } : {}),
        outcome: 'failure',
        reason,
        details: { method: request.method, ...(CLIENT_ID.test(request.clientId) ? { clientId: request.clientId } : {}) },
      });
    if (!CLIENT_ID.test(request.clientId)) return fail('unknown-client', null);
    const client = await trx
      .selectFrom('accord.api_clients')
      .select(['id', 'tenant_id', 'name', 'expires_at', 'revoked_at'])
      .where('client_id', '=', request.clientId)
      .executeTakeFirst();
    if (!client) return fail('unknown-client', null);
    const target = { type: 'client', id: client.id };
    if (client.revoked_at !== null) return fail('revoked', client.tenant_id, target);
    const presented = request.clientSecret.length > MAX_SECRET ? undefined : hashToken(request.clientSecret);
    const secrets = await trx.selectFrom('accord.api_client_secrets').select(['id', 'secret_hash', 'expires_at', 'revoked_at']).where('client_id', '=', client.id).execute();
    // Compare against every secret of the client, in constant time each, without stopping early.
    let match: (typeof secrets)[number] | undefined;
    for (const s of secrets) {
      if (presented && s.secret_hash.length === presented.length && timingSafeEqual(s.secret_hash, presented)) match = s;
    }
    if (!match) return fail('bad-secret', client.tenant_id, target);
    if (match.revoked_at !== null) return fail('revoked', client.tenant_id, target);
    if (match.expires_at <= now) return fail('expired-secret', client.tenant_id, target);
    if (client.expires_at <= now) return fail('expired-client', client.tenant_id, target);
    const iat = Math.floor(now.getTime() / 1000);
    // An access token outlives neither the secret that obtained it nor the client.
    const exp = Math.min(iat + issuer.accessTtlSeconds, Math.floor(match.expires_at.getTime() / 1000), Math.floor(client.expires_at.getTime() / 1000));
    if (exp <= iat) return fail('expired-secret', client.tenant_id, target);
    await trx.updateTable('accord.api_clients').set({ last_used_at: now }).where('id', '=', client.id).execute();
    const roles = [...new Set((await grantsOf(trx, { clientId: client.id })).map((g) => g.role))];
    // Audited as the client it has just authenticated (the request was anonymous until now).
    await w.as({ ...source, actor: { type: 'client', id: client.id, label: client.name, roles } }).audit(
      { tenantId: client.tenant_id, action: 'client.token.issued', target, outcome: 'success', details: { method: request.method, secretId: match.id, expiresIn: exp - iat } },
    );
    return { access_token: signAccessToken(issuer.key, { typ: 'client', sub: client.id, sid: null, sv: match.id, iat, exp }), token_type: 'Bearer', expires_in: exp - iat };
  });
}
