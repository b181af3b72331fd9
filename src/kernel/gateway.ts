import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import type { KmsProvider } from '../crypto/kms/index.ts';
import type { Db, DbOrTrx, Trx } from '../db/index.ts';
import { systemSource } from '../audit-chain/index.ts';
import { unitOfWork } from './unit-of-work.ts';

/**
 * The gateway role: the login role of data-plane connections on PostgreSQL. It is created by
 * migration 007 (one per installation, `accord_gw_<16 hex>`: roles are cluster-wide), is a
 * NOINHERIT member of every stage runtime role and holds nothing itself, so a session that resets
 * its role lands on no privileges.
 *
 * Its password is made by the platform, not configured: 32 random bytes, wrapped by the KMS root
 * key in accord.data_plane_gateway like the IAM key, so every node of an installation finds it
 * without a second secret to distribute, and root rotation moves it with the other wrapped keys.
 * The server only ever sees a SCRAM-SHA-256 verifier computed here (as psql's \password does),
 * never the password, so it cannot surface in server logs or pg_stat_statements.
 */
export const GATEWAY_ROLE = /^accord_gw_[0-9a-f]{16}$/;

const aadOf = (role: string) => `accord/data-plane-gateway/${role}`;

/** The installation's gateway role name (from the catalog). */
export async function gatewayRoleName(db: DbOrTrx): Promise<string> {
  const r = await sql<{ role_name: string }>`select role_name from accord.data_plane_gateway`.execute(db);
  const role = r.rows[0]?.role_name;
  if (role === undefined || !GATEWAY_ROLE.test(role)) throw new Error('accord.data_plane_gateway holds no valid gateway role; is migration 007 applied?');
  return role;
}

/**
 * The gateway's role and password, setting a password on first use (two nodes racing agree on
 * one: the row is locked while the first sets it). PostgreSQL only; PGlite opens no connection.
 */
export async function gatewayCredentials(db: Db, kms: KmsProvider): Promise<{ role: string; password: string }> {
  type Row = { role_name: string; root_key_id: string | null; wrapped: Buffer | null };
  const row = await unitOfWork(db, systemSource, async ({ trx, audit }) => {
    const r = (await sql<Row>`select role_name, root_key_id, wrapped from accord.data_plane_gateway for update`.execute(trx)).rows[0];
    if (r === undefined || !GATEWAY_ROLE.test(r.role_name)) throw new Error('accord.data_plane_gateway holds no valid gateway role; is migration 007 applied?');
    if (r.wrapped !== null) return r;
    const secret = randomBytes(32);
    const { keyId, wrapped } = await kms.wrap(secret, aadOf(r.role_name));
    const verifier = scramSha256Verifier(passwordOf(secret));
    secret.fill(0);
    // ALTER ROLE takes no parameters; the verifier's alphabet is checked by scramSha256Verifier.
    await sql`alter role ${sql.id(r.role_name)} password ${sql.lit(verifier)}`.execute(trx);
    await sql`update accord.data_plane_gateway set root_key_id = ${keyId}, wrapped = ${wrapped}`.execute(trx);
    // A credential of the installation was set: on the platform chain, with the change.
    await audit({ tenantId: null, action: 'gateway.password.set', target: { type: 'role', id: r.role_name }, outcome: 'success', details: { rootKeyId: keyId } });
    return { role_name: r.role_name, root_key_id: keyId, wrapped };
  });
  const secret = await kms.unwrap(row.root_key_id!, row.wrapped!, aadOf(row.role_name));
  const password = passwordOf(secret);
  secret.fill(0);
  return { role: row.role_name, password };
}

/** Rewraps the gateway password under the KMS's current root key (root rotation); how many moved. */
export async function rewrapGatewayPassword(trx: Trx, kms: KmsProvider): Promise<number> {
  type Row = { role_name: string; root_key_id: string; wrapped: Buffer };
  const rows = await sql<Row>`
    select role_name, root_key_id, wrapped from accord.data_plane_gateway
    where wrapped is not null and root_key_id <> ${kms.currentKeyId()} for update
  `.execute(trx);
  for (const r of rows.rows) {
    const clear = await kms.unwrap(r.root_key_id, r.wrapped, aadOf(r.role_name));
    const { keyId, wrapped } = await kms.wrap(clear, aadOf(r.role_name));
    clear.fill(0);
    await sql`update accord.data_plane_gateway set root_key_id = ${keyId}, wrapped = ${wrapped}`.execute(trx);
  }
  return rows.rows.length;
}

/** Whether the gateway password is still wrapped under `rootKeyId` (which then must not be retired). */
export async function gatewayWrappedUnder(db: DbOrTrx, rootKeyId: string): Promise<boolean> {
  const r = await sql`select 1 from accord.data_plane_gateway where root_key_id = ${rootKeyId}`.execute(db);
  return r.rows.length > 0;
}

// ASCII only, so SASLprep (which the server applies to the password) leaves it unchanged.
const passwordOf = (secret: Buffer) => secret.toString('base64url');

const VERIFIER = /^SCRAM-SHA-256\$\d{4,7}:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/;

/**
 * The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802 / 7677):
 * `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, all base64. The password must be
 * ASCII without control characters (SASLprep is not applied here).
 */
export function scramSha256Verifier(password: string, salt: Buffer = randomBytes(16), iterations = 4096): string {
  if (!/^[\x21-\x7e]+$/.test(password)) throw new Error('scramSha256Verifier: password must be printable ASCII');
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  const verifier = `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
  if (!VERIFIER.test(verifier)) throw new Error('scramSha256Verifier: unexpected output');
  return verifier;
}
