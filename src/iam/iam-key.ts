import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Db, Trx } from '../db/index.ts';
import { AccordError } from '../errors/index.ts';
import type { KmsProvider } from '../crypto/kms/index.ts';

/** What a derived key is for; each purpose gets its own HKDF subkey. */
export type IamKeyPurpose = 'access-token' | 'csrf' | 'mfa-secret' | 'recovery-code' | 'idp-secret' | 'device' | 'data-cursor';

const KID = 'iam-1';
const aadOf = (kid: string) => `accord/iam-key/${kid}`;

/**
 * The platform's identity key: 32 random bytes wrapped by the KMS root key and stored in
 * accord.iam_keys, so every node of an installation shares it without a file to copy. Subkeys are
 * derived per purpose with HKDF-SHA-256: access-token MACs, CSRF tokens, sealing of TOTP secrets
 * and the recovery-code pepper. The clear key lives only in this object.
 */
export class IamKey {
  readonly kid: string;
  readonly #sub = new Map<IamKeyPurpose, Buffer>();

  private constructor(kid: string, key: Buffer) {
    this.kid = kid;
    for (const p of ['access-token', 'csrf', 'mfa-secret', 'recovery-code', 'idp-secret', 'device', 'data-cursor'] as const) {
      this.#sub.set(p, Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), `accord/iam/${p}`, 32)));
    }
    key.fill(0);
  }

  /** Loads the key, creating it on first start (two nodes racing both end up with the same one). */
  static async open(db: Db, kms: KmsProvider): Promise<IamKey> {
    let row = await db.selectFrom('accord.iam_keys').selectAll().where('kid', '=', KID).executeTakeFirst();
    if (!row) {
      const fresh = randomBytes(32);
      const { keyId, wrapped } = await kms.wrap(fresh, aadOf(KID));
      fresh.fill(0);
      await db.insertInto('accord.iam_keys').values({ kid: KID, root_key_id: keyId, wrapped }).onConflict((oc) => oc.doNothing()).execute();
      row = await db.selectFrom('accord.iam_keys').selectAll().where('kid', '=', KID).executeTakeFirstOrThrow();
    }
    return new IamKey(row.kid, await kms.unwrap(row.root_key_id, row.wrapped, aadOf(row.kid)));
  }

  /** A key for tests and benchmarks that never touches a KMS. */
  static ephemeral(): IamKey {
    return new IamKey('ephemeral', randomBytes(32));
  }

  /** Rewraps stored IAM keys under the KMS's current root key (root rotation); how many moved. */
  static async rewrap(trx: Trx, kms: KmsProvider): Promise<number> {
    const rows = await trx.selectFrom('accord.iam_keys').selectAll().where('root_key_id', '<>', kms.currentKeyId()).forUpdate().execute();
    for (const r of rows) {
      const clear = await kms.unwrap(r.root_key_id, r.wrapped, aadOf(r.kid));
      const { keyId, wrapped } = await kms.wrap(clear, aadOf(r.kid));
      clear.fill(0);
      await trx.updateTable('accord.iam_keys').set({ root_key_id: keyId, wrapped }).where('kid', '=', r.kid).execute();
    }
    return rows.length;
  }

  /** HMAC-SHA-256 under the purpose's subkey. */
  mac(purpose: IamKeyPurpose, data: string | Buffer): Buffer {
    return createHmac('sha256', this.#subkey(purpose)).update(data).digest();
  }

  /** Constant-time check of a MAC made by {@link mac}. */
  verifyMac(purpose: IamKeyPurpose, data: string | Buffer, mac: Buffer): boolean {
    const expected = this.mac(purpose, data);
    return mac.length === expected.length && timingSafeEqual(mac, expected);
  }

  /** AES-256-GCM seal: nonce (12) || ciphertext || tag (16); `aad` binds it to its owner. */
  seal(purpose: IamKeyPurpose, plaintext: Buffer, aad: string): Buffer {
    const nonce = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.#subkey(purpose), nonce);
    c.setAAD(Buffer.from(aad, 'utf8'));
    const ct = Buffer.concat([c.update(plaintext), c.final()]);
    return Buffer.concat([nonce, ct, c.getAuthTag()]);
  }

  /** Opens what {@link seal} produced; fails closed on any tampering or a wrong owner. */
  open(purpose: IamKeyPurpose, sealed: Buffer, aad: string): Buffer {
    try {
      const d = createDecipheriv('aes-256-gcm', this.#subkey(purpose), sealed.subarray(0, 12));
      d.setAAD(Buffer.from(aad, 'utf8'));
      d.setAuthTag(sealed.subarray(sealed.length - 16));
      return Buffer.concat([d.update(sealed.subarray(12, sealed.length - 16)), d.final()]);
    } catch (cause) {
      throw new AccordError('CRYPTO_DECRYPT_FAILED', { details: { reason: 'sealed IAM secret' }, cause });
    }
  }

  #subkey(purpose: IamKeyPurpose): Buffer {
    const k = this.#sub.get(purpose);
    if (!k) throw new Error(`unknown IAM key purpose ${purpose}`);
    return k;
  }
}
