// A private SoftHSM2 token for tests: its own config file and token directory in a temporary
// directory, initialised with `softhsm2-util`, so tests never touch /etc/softhsm or
// /var/lib/softhsm and can run side by side.
//
// SoftHSM reads SOFTHSM2_CONF in C_Initialize, so a test must put `env.SOFTHSM2_CONF` into
// process.env before it opens the module (and use one token config per process: the library is
// process-global once loaded).
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** Where Debian's `softhsm2` package puts the PKCS#11 module. */
const DEBIAN_MODULE = '/usr/lib/softhsm/libsofthsm2.so';
const INSTALL_HINT = 'install it with `apt-get install -y softhsm2` (.ci/run does this in CI)';

/** A throwaway, initialised SoftHSM2 token. */
export interface SoftHsmToken {
  /** Path of the PKCS#11 module (libsofthsm2.so). */
  module: string;
  /** The private softhsm2.conf. */
  configFile: string;
  /** Temporary directory holding the config and the token directory. */
  dir: string;
  /** Put into process.env (or a child's env) before the module is loaded. */
  env: { SOFTHSM2_CONF: string };
  /** Removes the temporary directory. Idempotent. */
  cleanup(): Promise<void>;
}

/** Options for {@link createSoftHsmToken}. */
export interface SoftHsmTokenOptions {
  label: string;
  /** User PIN (4-255 characters for SoftHSM). */
  pin: string;
  /** Security officer PIN. */
  soPin: string;
}

/** Path of libsofthsm2.so, or undefined when SoftHSM2 is not installed. */
export function findSoftHsmModule(): string | undefined {
  if (existsSync(DEBIAN_MODULE)) return DEBIAN_MODULE;
  try {
    const files = execFileSync('dpkg', ['-L', 'softhsm2', 'libsofthsm2'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return files.split('\n').find((f) => f.endsWith('/libsofthsm2.so') && existsSync(f));
  } catch {
    return undefined;
  }
}

/** Creates a token in a fresh SoftHSM2 token directory; throws when SoftHSM2 is missing. */
export async function createSoftHsmToken(opts: SoftHsmTokenOptions): Promise<SoftHsmToken> {
  const module = findSoftHsmModule();
  if (!module) throw new Error(`SoftHSM2 (libsofthsm2.so) not found: ${INSTALL_HINT}`);

  const dir = await mkdtemp(join(tmpdir(), 'accord-softhsm-'));
  const cleanup = () => rm(dir, { recursive: true, force: true });
  try {
    const tokenDir = join(dir, 'tokens');
    await mkdir(tokenDir, { mode: 0o700 });
    const configFile = join(dir, 'softhsm2.conf');
    await writeFile(
      configFile,
      `directories.tokendir = ${tokenDir}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`,
      { mode: 0o600 },
    );
    const env = { SOFTHSM2_CONF: configFile };
    // The PINs show on this command line; acceptable for throwaway test tokens only.
    await execFileAsync(
      'softhsm2-util',
      ['--init-token', '--free', '--label', opts.label, '--pin', opts.pin, '--so-pin', opts.soPin],
      { env: { ...process.env, ...env } },
    ).catch((err: NodeJS.ErrnoException & { stderr?: string }) => {
      const why = err.code === 'ENOENT' ? `softhsm2-util not found: ${INSTALL_HINT}` : (err.stderr ?? err.message).trim();
      throw new Error(`softhsm2-util --init-token failed: ${why}`);
    });
    return { module, configFile, dir, env, cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
