// `npm run bench -- crypto`: the field library, the KMS providers and the key hierarchy (Keyring
// cache, rotation jobs), one after the other.
import { run as runField } from './crypto-field.ts';
import { run as runKeys } from './crypto-keys.ts';
import { run as runKms } from './crypto-kms.ts';

export async function run(): Promise<void> {
  await runField();
  await runKms();
  await runKeys();
}
