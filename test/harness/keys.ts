import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Keyring } from '../../src/crypto/keyring/index.ts';
import { type KmsProvider, openKms } from '../../src/crypto/kms/index.ts';
import { atEnd } from './at-end.ts';

const opened: KmsProvider[] = [];
const dirs: string[] = [];
// Registered when the harness is imported, so it runs at the end of the test file (a hook
// registered inside a test would run when that test ends).
atEnd(async () => {
  for (const kms of opened.splice(0)) await kms.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A keyring over a local KMS in a temporary directory, closed after the file. */
export async function testKeyring(): Promise<Keyring> {
  const dir = mkdtempSync(join(tmpdir(), 'accord-kms-'));
  dirs.push(dir);
  const kms = await openKms({ kms: 'local', dataDir: dir });
  opened.push(kms);
  return new Keyring(kms);
}
