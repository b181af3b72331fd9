import { createHash, timingSafeEqual } from 'node:crypto';
import type { DbOrTrx, Trx } from '../../db/index.ts';
import type { Audience } from '../sign-in/login.ts';
import { FederationRefusal } from './provisioning.ts';

/** A browser flow's state lives this long: enough to sign in at the IdP, short enough to be useless later. */
export const FLOW_SECONDS = 10 * 60;
/**
 * The cookie that binds a flow to the browser that started it (login CSRF: a callback URL
 * carrying someone else's state is refused). SameSite=None because the IdP's POST binding
 * (SAML) is a cross-site POST; HttpOnly, Secure, __Host- as the session cookies.
 */
export const FLOW_COOKIE = '__Host-accord-federation';

export const flowCookie = (state: string, maxAge = FLOW_SECONDS) => `${FLOW_COOKIE}=${state}; Path=/; Max-Age=${maxAge}; HttpOnly; Secure; SameSite=None`;

const hash = (state: string) => createHash('sha256').update(state, 'utf8').digest();

/** Stores a started flow (state kept as its SHA-256 only). */
export async function saveFlow(
  trx: Trx,
  input: { idpId: string; state: string; nonce: string; codeVerifier: string; audience: Audience; mode: 'bearer' | 'cookie' },
  now = new Date(),
): Promise<void> {
  await trx
    .insertInto('accord.federation_flows')
    .values({
      idp_id: input.idpId,
      state_hash: hash(input.state),
      nonce: input.nonce,
      code_verifier: input.codeVerifier,
      audience: JSON.stringify(input.audience),
      mode: input.mode,
      expires_at: new Date(now.getTime() + FLOW_SECONDS * 1000),
    })
    .execute();
}

/**
 * Spends a flow: it must exist for this provider, be unused and unexpired, and the browser must
 * present the same state in the flow cookie. Single use whatever happens next.
 */
export async function consumeFlow(trx: Trx, idpId: string, state: string | undefined, cookie: string | undefined, now = new Date()) {
  if (!state || state.length > 200) throw new FederationRefusal('state-missing');
  const row = await trx.selectFrom('accord.federation_flows').selectAll().where('state_hash', '=', hash(state)).forUpdate().executeTakeFirst();
  if (!row || row.idp_id !== idpId) throw new FederationRefusal('state-unknown');
  if (row.used_at !== null) throw new FederationRefusal('state-replayed');
  if (row.expires_at <= now) throw new FederationRefusal('state-expired');
  const a = Buffer.from(cookie ?? '', 'utf8');
  const b = Buffer.from(state, 'utf8');
  if (a.length !== b.length || !timingSafeEqual(a, b)) throw new FederationRefusal('state-not-bound-to-browser');
  await trx.updateTable('accord.federation_flows').set({ used_at: now }).where('id', '=', row.id).execute();
  return { nonce: row.nonce, codeVerifier: row.code_verifier, audience: row.audience as unknown as Audience, mode: row.mode };
}

/**
 * The request id a SAML flow's AuthnRequest carried, looked up without spending the flow: the
 * response is checked against it before the flow (bound to the browser) is consumed.
 */
export async function peekFlow(trx: DbOrTrx, idpId: string, state: string | undefined): Promise<{ requestId: string }> {
  if (!state || state.length > 200) throw new FederationRefusal('state-missing (IdP-initiated sign-in is off)');
  const row = await trx.selectFrom('accord.federation_flows').select(['idp_id', 'nonce']).where('state_hash', '=', hash(state)).executeTakeFirst();
  if (!row || row.idp_id !== idpId) throw new FederationRefusal('state-unknown');
  return { requestId: row.nonce };
}

/**
 * The replay cache: an assertion id is accepted once per provider. The insert is its own
 * statement so a second use conflicts on the primary key, on any node.
 */
export async function rememberAssertion(trx: Trx, idpId: string, assertionId: string, expiresAt: Date): Promise<void> {
  const r = await trx.insertInto('accord.saml_assertion_ids').values({ idp_id: idpId, assertion_id: assertionId, expires_at: expiresAt }).onConflict((oc) => oc.doNothing()).returning('assertion_id').executeTakeFirst();
  if (!r) throw new FederationRefusal('assertion-replayed');
}

/** Housekeeping: flows past their expiry are of no use to anyone. */
export async function pruneFlows(trx: Trx, now = new Date()): Promise<number> {
  const r = await trx.deleteFrom('accord.federation_flows').where('expires_at', '<', new Date(now.getTime() - FLOW_SECONDS * 1000)).executeTakeFirst();
  const s = await trx.deleteFrom('accord.saml_assertion_ids').where('expires_at', '<', now).executeTakeFirst();
  return Number(r.numDeletedRows) + Number(s.numDeletedRows);
}
