import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { cliError } from './output.ts';

/** What `accord login` remembers so later commands need no flags. */
export interface Profile {
  readonly url: string;
  /** PEM of the CA to trust for this server (absent: the system's trust store). */
  readonly ca?: string;
  /** The current access token (short-lived) and the refresh token that renews it. */
  readonly token?: string;
  readonly refreshToken?: string;
  readonly email?: string;
  /** When the access token expires. */
  readonly expiresAt?: string;
  /** When the session ends at the latest. */
  readonly sessionExpiresAt?: string;
  /** Set when the session may only enrol an MFA factor. */
  readonly enrolmentOnly?: boolean;
  /** The device token of the last sign-in: a lock set by strangers does not stop this device. */
  readonly deviceToken?: string;
}

export function configDir(): string {
  return process.env.ACCORD_CONFIG_DIR ?? join(homedir(), '.config', 'accord');
}

const profilePath = () => join(configDir(), 'profile.json');

/** The saved profile, or undefined when there is none (or it is unreadable). */
export function loadProfile(): Profile | undefined {
  try {
    return JSON.parse(readFileSync(profilePath(), 'utf8')) as Profile;
  } catch {
    return undefined;
  }
}

/** Saves the profile readable by the owner only: it holds a session token. */
export function saveProfile(profile: Profile): void {
  mkdirSync(configDir(), { recursive: true, mode: 0o700 });
  const path = profilePath();
  writeFileSync(path, `${JSON.stringify(profile, null, 2)}\n`, { mode: 0o600 });
  // writeFileSync keeps the mode of an existing file; tighten it whatever it was.
  chmodSync(path, 0o600);
}

export function removeProfile(): void {
  rmSync(profilePath(), { force: true });
}

/** Reads a file named on the command line (a password, a CA), with a clear error. */
export function readArgFile(path: string, flag: string, opts: { trimNewline?: boolean } = {}): string {
  try {
    const text = readFileSync(path, 'utf8');
    return opts.trimNewline ? text.replace(/\r?\n$/, '') : text;
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    throw cliError('CLI_FILE_UNREADABLE', `Cannot read ${flag} ${path} (${reason}).`, { flag, path });
  }
}
