import {
  type AuthenticationResponseJSON,
  generateAuthenticationOptions,
  generateRegistrationOptions,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
} from '@simplewebauthn/server';
import type { DbOrTrx, Trx } from '../../db/index.ts';
import { AccordError } from '../../errors/index.ts';
import { hashToken } from '../sessions/tokens.ts';

/** The relying party: this installation's host name, the origin browsers report, a display name. */
export interface RelyingParty {
  readonly rpId: string;
  readonly origin: string;
  readonly rpName?: string;
}

/** A passkey as its owner sees it (never the public key or the raw credential id). */
export interface PasskeyView {
  readonly id: string;
  readonly name: string;
  readonly createdAt: string;
  readonly lastUsedAt: string | null;
  readonly transports: readonly string[];
}

/** How long a registration or sign-in challenge may be answered. */
export const WEBAUTHN_CHALLENGE_SECONDS = 5 * 60;
// ES256 first (every platform authenticator and security key), then EdDSA and RS256 (Windows Hello).
const ALGORITHMS = [-7, -8, -257];
export const PASSKEY_NAME_MAX = 64;

const uuidBytes = (id: string) => new Uint8Array(Buffer.from(id.replaceAll('-', ''), 'hex'));

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A rough shape check before the library parses it: what any browser sends has these. */
function looksLikeCredential(v: unknown): v is { id: string; response: Record<string, unknown> } {
  return isObject(v) && typeof v.id === 'string' && v.id.length > 0 && v.id.length <= 1024 && isObject(v.response);
}

/** A user's passkeys, oldest first. */
export async function listPasskeys(db: DbOrTrx, userId: string): Promise<PasskeyView[]> {
  const rows = await db
    .selectFrom('accord.webauthn_credentials')
    .select(['id', 'name', 'created_at', 'last_used_at', 'transports'])
    .where('user_id', '=', userId)
    .orderBy('created_at')
    .orderBy('id')
    .execute();
  return rows.map((r) => ({ id: r.id, name: r.name, createdAt: r.created_at.toISOString(), lastUsedAt: r.last_used_at?.toISOString() ?? null, transports: r.transports }));
}

/**
 * Options for navigator.credentials.create(): a fresh challenge, stored as a single-use
 * 'webauthn-register' token of the user for five minutes (replacing any earlier pending one).
 * Passkeys the user already has are excluded, so an authenticator is not registered twice.
 */
export async function registrationOptions(
  trx: Trx,
  rp: RelyingParty,
  user: { id: string; email: string; displayName: string },
  now: Date,
): Promise<PublicKeyCredentialCreationOptionsJSON> {
  const existing = await trx.selectFrom('accord.webauthn_credentials').select(['credential_id', 'transports']).where('user_id', '=', user.id).execute();
  const options = await generateRegistrationOptions({
    rpName: rp.rpName ?? 'Accord',
    rpID: rp.rpId,
    userName: user.email,
    userID: uuidBytes(user.id),
    userDisplayName: user.displayName || user.email,
    timeout: WEBAUTHN_CHALLENGE_SECONDS * 1000,
    attestationType: 'none',
    excludeCredentials: existing.map((c) => ({ id: c.credential_id, transports: c.transports })),
    authenticatorSelection: { residentKey: 'preferred', userVerification: 'preferred' },
    supportedAlgorithmIDs: ALGORITHMS,
  });
  await trx.deleteFrom('accord.user_tokens').where('user_id', '=', user.id).where('purpose', '=', 'webauthn-register').where('used_at', 'is', null).execute();
  await trx
    .insertInto('accord.user_tokens')
    .values({
      user_id: user.id,
      purpose: 'webauthn-register',
      token_hash: hashToken(options.challenge),
      expires_at: new Date(now.getTime() + WEBAUTHN_CHALLENGE_SECONDS * 1000),
      data: JSON.stringify({ challenge: options.challenge }),
    })
    .execute();
  return options;
}

/**
 * Verifies a registration response (attestation 'none' or any the library checks; the challenge
 * must be a pending one of this user, and is spent) and stores the passkey. Every failure is
 * IAM_WEBAUTHN_INVALID.
 */
export async function registerPasskey(trx: Trx, rp: RelyingParty, userId: string, response: unknown, name: string | undefined, now: Date): Promise<PasskeyView> {
  const invalid = (reason: string) => new AccordError('IAM_WEBAUTHN_INVALID', { details: { reason } });
  if (!looksLikeCredential(response)) throw invalid('malformed');
  let challengeRow: string | undefined;
  let verification: Awaited<ReturnType<typeof verifyRegistrationResponse>>;
  try {
    verification = await verifyRegistrationResponse({
      response: response as unknown as RegistrationResponseJSON,
      expectedChallenge: async (challenge) => {
        const row = await trx
          .selectFrom('accord.user_tokens')
          .select('id')
          .where('token_hash', '=', hashToken(challenge))
          .where('user_id', '=', userId)
          .where('purpose', '=', 'webauthn-register')
          .where('used_at', 'is', null)
          .where('expires_at', '>', now)
          .executeTakeFirst();
        challengeRow = row?.id;
        return row !== undefined;
      },
      expectedOrigin: rp.origin,
      expectedRPID: rp.rpId,
      // A passkey here is a second factor after the password: presence is enough.
      requireUserVerification: false,
      supportedAlgorithmIDs: ALGORITHMS,
    });
  } catch {
    throw invalid(challengeRow === undefined ? 'challenge' : 'verification');
  }
  if (!verification.verified || !challengeRow) throw invalid('verification');
  const spent = await trx.updateTable('accord.user_tokens').set({ used_at: now }).where('id', '=', challengeRow).where('used_at', 'is', null).executeTakeFirst();
  if (spent.numUpdatedRows === 0n) throw invalid('challenge');
  const { credential } = verification.registrationInfo;
  const inserted = await trx
    .insertInto('accord.webauthn_credentials')
    .values({
      user_id: userId,
      credential_id: credential.id,
      public_key: Buffer.from(credential.publicKey),
      counter: credential.counter,
      transports: (credential.transports ?? []).slice(0, 10).map((t) => String(t).slice(0, 32)),
      name: (name?.trim() || 'Passkey').slice(0, PASSKEY_NAME_MAX),
    })
    .onConflict((oc) => oc.column('credential_id').doNothing())
    .returning(['id', 'name', 'created_at', 'last_used_at', 'transports'])
    .executeTakeFirst();
  if (!inserted) throw invalid('already-registered');
  return { id: inserted.id, name: inserted.name, createdAt: inserted.created_at.toISOString(), lastUsedAt: null, transports: inserted.transports };
}

/** Options for navigator.credentials.get() during a sign-in, limited to the user's passkeys. */
export async function authenticationOptions(db: DbOrTrx, rp: RelyingParty, userId: string): Promise<PublicKeyCredentialRequestOptionsJSON | undefined> {
  const creds = await db.selectFrom('accord.webauthn_credentials').select(['credential_id', 'transports']).where('user_id', '=', userId).execute();
  if (creds.length === 0) return undefined;
  return generateAuthenticationOptions({
    rpID: rp.rpId,
    allowCredentials: creds.map((c) => ({ id: c.credential_id, transports: c.transports })),
    userVerification: 'preferred',
    timeout: WEBAUTHN_CHALLENGE_SECONDS * 1000,
  });
}

export type AssertionCheck = 'ok' | 'bad-passkey' | 'no-factor';

/**
 * Verifies a passkey assertion of this user against the expected challenge: signature, origin,
 * RP id, user presence, and a signature counter that must grow when the authenticator keeps one
 * (a counter that does not is a cloned authenticator or a replay). The counter is moved forward
 * with a conditional UPDATE, so two racing uses of one assertion cannot both pass.
 */
export async function verifyAssertion(trx: Trx, rp: RelyingParty, userId: string, response: unknown, expectedChallenge: string | undefined, now: Date): Promise<AssertionCheck> {
  if (!expectedChallenge || !looksLikeCredential(response)) return 'bad-passkey';
  const cred = await trx
    .selectFrom('accord.webauthn_credentials')
    .select(['id', 'credential_id', 'public_key', 'counter', 'transports'])
    .where('user_id', '=', userId)
    .where('credential_id', '=', response.id)
    .executeTakeFirst();
  if (!cred) {
    const any = await trx.selectFrom('accord.webauthn_credentials').select('id').where('user_id', '=', userId).limit(1).executeTakeFirst();
    return any ? 'bad-passkey' : 'no-factor';
  }
  const stored = Number(cred.counter);
  let newCounter: number;
  try {
    const v = await verifyAuthenticationResponse({
      response: response as unknown as AuthenticationResponseJSON,
      expectedChallenge,
      expectedOrigin: rp.origin,
      expectedRPID: rp.rpId,
      credential: { id: cred.credential_id, publicKey: new Uint8Array(cred.public_key), counter: stored, transports: cred.transports },
      requireUserVerification: false,
    });
    if (!v.verified) return 'bad-passkey';
    newCounter = v.authenticationInfo.newCounter;
  } catch {
    return 'bad-passkey';
  }
  // The library refuses a counter that did not grow; this repeats it where it cannot be raced.
  if ((newCounter > 0 || stored > 0) && newCounter <= stored) return 'bad-passkey';
  const res = await trx
    .updateTable('accord.webauthn_credentials')
    .set({ counter: newCounter, last_used_at: now })
    .where('id', '=', cred.id)
    .where('counter', '=', String(stored))
    .executeTakeFirst();
  return res.numUpdatedRows > 0n ? 'ok' : 'bad-passkey';
}

/** Removes one of the user's passkeys; whether it existed. */
export async function removePasskey(trx: Trx, userId: string, id: string): Promise<{ name: string } | undefined> {
  return trx.deleteFrom('accord.webauthn_credentials').where('id', '=', id).where('user_id', '=', userId).returning('name').executeTakeFirst();
}

/** Renames one of the user's passkeys; whether it existed. */
export async function renamePasskey(trx: Trx, userId: string, id: string, name: string): Promise<boolean> {
  const res = await trx.updateTable('accord.webauthn_credentials').set({ name: name.trim().slice(0, PASSKEY_NAME_MAX) }).where('id', '=', id).where('user_id', '=', userId).executeTakeFirst();
  return res.numUpdatedRows > 0n;
}
