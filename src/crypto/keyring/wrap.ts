import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { AccordError } from '../../errors/index.ts';

/**
 * Wraps a 32-byte key under another with AES-256-GCM: nonce (12) || ciphertext (32) || tag (16).
 * `aad` names the wrapped key's owner and version, so a wrapped key moved to another stage or
 * version does not unwrap.
 */
export function wrapKey(kek: Buffer, key: Buffer, aad: string): Buffer {
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', kek, nonce);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const ct = Buffer.concat([cipher.update(key), cipher.final()]);
  return Buffer.concat([nonce, ct, cipher.getAuthTag()]);
}

/** Unwraps what wrapKey produced; throws on any tampering or a wrong aad. */
export function unwrapKey(kek: Buffer, wrapped: Buffer, aad: string): Buffer {
  if (wrapped.length !== 12 + 32 + 16) throw new AccordError('CRYPTO_ENVELOPE_INVALID', { details: { reason: 'wrapped key length' } });
  try {
    const decipher = createDecipheriv('aes-256-gcm', kek, wrapped.subarray(0, 12));
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(wrapped.subarray(44));
    return Buffer.concat([decipher.update(wrapped.subarray(12, 44)), decipher.final()]);
  } catch (cause) {
    throw new AccordError('CRYPTO_DECRYPT_FAILED', { details: { reason: 'wrapped key' }, cause });
  }
}

export const kekAad = (tenantId: string, version: number) => `accord/tenant-kek/${tenantId}/v${version}`;
export const dekAad = (stageId: string, version: number) => `accord/stage-dek/${stageId}/v${version}`;
