// Public surface of the KMS: the provider interface, the two providers and the error type.
import { join } from 'node:path';
import { openLocalKms } from './local.ts';
import { openPkcs11Kms } from './pkcs11.ts';
import type { KmsProvider, KmsProviderName } from './provider.ts';

export { isKmsError, KmsError, type KmsErrorCode, type KmsErrorDetails } from './errors.ts';
export { type LocalKmsOptions, openLocalKms, ROOT_KEY_FILE, SCRYPT_PARAMS } from './local.ts';
export { openPkcs11Kms, type Pkcs11KmsOptions } from './pkcs11.ts';
export { type KmsProvider, type KmsProviderName, WRAPPED_BYTES, WRAPPED_KEY_BYTES } from './provider.ts';

/** What {@link openKms} needs from the platform configuration. */
export interface KmsConfig {
  kms: KmsProviderName;
  /** The platform data directory; the local provider keeps its root key file in `<dataDir>/kms`. */
  dataDir: string;
  /** Passphrase sealing the local root key file (read from ACCORD_ROOT_KEY_PASSPHRASE_FILE). */
  passphrase?: string;
  pkcs11?: { module: string; tokenLabel: string; pin: string; keyLabelPrefix?: string };
  /** See LocalKmsOptions.createIfMissing (default true). */
  createIfMissing?: boolean;
}

/**
 * Opens the configured KMS provider. Any failure is thrown (a KmsError with a CRYPTO_KMS_* code);
 * it never falls back to another provider, so a broken HSM cannot turn into a local key file.
 */
export async function openKms(config: KmsConfig): Promise<KmsProvider> {
  const createIfMissing = config.createIfMissing ?? true;
  switch (config.kms) {
    case 'local':
      if (config.pkcs11 !== undefined) throw new TypeError('pkcs11: only with kms "pkcs11"');
      return openLocalKms({
        dir: join(config.dataDir, 'kms'),
        createIfMissing,
        ...(config.passphrase === undefined ? {} : { passphrase: config.passphrase }),
      });
    case 'pkcs11':
      if (config.pkcs11 === undefined) throw new TypeError('pkcs11: required with kms "pkcs11" (module, tokenLabel, pin)');
      // A passphrase only protects a local key file; accepting it here would suggest otherwise.
      if (config.passphrase !== undefined) throw new TypeError('passphrase: only with kms "local"');
      return openPkcs11Kms({ ...config.pkcs11, createIfMissing });
    default:
      throw new TypeError(`kms: expected "local" or "pkcs11", got ${JSON.stringify((config as { kms: unknown }).kms)}`);
  }
}
