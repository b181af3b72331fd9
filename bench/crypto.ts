// `npm run bench -- crypto`: the field library and the KMS providers, one after the other.
import { run as runField } from './crypto-field.ts';
import { run as runKms } from './crypto-kms.ts';

export async function run(): Promise<void> {
  await runField();
  await runKms();
}
