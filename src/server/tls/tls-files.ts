import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { TlsError } from './tls-error.ts';

// Windows has no POSIX permission bits; NTFS ACLs inherited from the data directory apply there.
const POSIX = process.platform !== 'win32';
/** Mode of private key files. */
export const KEY_MODE = 0o600;
/** Mode of certificate files: public by nature, and other tools (browsers, curl) need to read ca.pem. */
export const CERT_MODE = 0o644;
const DIR_MODE = 0o700;
// Generating everything takes tens of milliseconds; a lock this old belongs to a dead process
// (on another host, where its pid cannot be checked).
const LOCK_STALE_MS = 30_000;
const LOCK_TIMEOUT_MS = 45_000;

function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string'
    ? err.code
    : undefined;
}

function reason(err: unknown): string {
  switch (errnoCode(err)) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'it is a directory';
    default:
      return errnoCode(err) ?? 'unknown error';
  }
}

/** The error for a file that exists (or must exist) but cannot be read; names the path only. */
export function unreadable(path: string, err: unknown): TlsError {
  return new TlsError('TLS_FILE_UNREADABLE', `cannot read ${path}: ${reason(err)}`, { path, cause: err });
}

function unwritable(path: string, err: unknown): TlsError {
  return new TlsError('TLS_FILE_UNWRITABLE', `cannot write ${path}: ${reason(err)}`, { path, cause: err });
}

/** Reads a UTF-8 file; the error names the path and never the content. */
export async function readRequired(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw unreadable(path, err);
  }
}

/** Reads a UTF-8 file, or `undefined` when it does not exist; any other failure is an error. */
export async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw unreadable(path, err);
  }
}

/** Creates `dir` (and its parents) and makes sure only the owner can list or enter it. */
export async function ensurePrivateDir(dir: string): Promise<void> {
  try {
    // The parent is the operator's data directory: it keeps whatever mode they (or umask) give it.
    await mkdir(dirname(dir), { recursive: true });
    await mkdir(dir, { mode: DIR_MODE }).catch((err: unknown) => {
      if (errnoCode(err) !== 'EEXIST') throw err;
    });
    // mkdir's mode goes through umask, and an existing directory may be wider than it should be.
    if (POSIX && ((await stat(dir)).mode & 0o777) !== DIR_MODE) await chmod(dir, DIR_MODE);
  } catch (err) {
    throw unwritable(dir, err);
  }
}

/**
 * Narrows a private key file that is readable by group or others down to {@link KEY_MODE}. A key
 * on a read-only mount, or owned by someone else, is left as it is: it still works, and refusing
 * to start over it would turn a hardening step into an outage.
 */
export async function tightenKeyMode(path: string): Promise<void> {
  if (!POSIX) return;
  try {
    if (((await stat(path)).mode & 0o077) !== 0) await chmod(path, KEY_MODE);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'EROFS' || code === 'EPERM' || code === 'ENOENT') return;
    throw unwritable(path, err);
  }
}

async function syncDir(dir: string): Promise<void> {
  // Makes the rename itself durable. Windows cannot open a directory, so there it stays best effort.
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {}
}

async function writeTemp(path: string, data: string, mode: number): Promise<string> {
  const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    // Created with its final mode so a key is never readable by others, not even for a moment.
    const handle = await open(temp, 'wx', mode);
    try {
      await handle.writeFile(data, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    // The mode given to open() went through umask; certificates must end up world-readable.
    if (POSIX) await chmod(temp, mode);
    return temp;
  } catch (err) {
    await rm(temp, { force: true });
    throw unwritable(path, err);
  }
}

/** Replaces `path` with `data` atomically: readers see the old file or the new one, never a mix. */
export async function writeAtomic(path: string, data: string, mode: number): Promise<void> {
  const temp = await writeTemp(path, data, mode);
  try {
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw unwritable(path, err);
  }
  await syncDir(dirname(path));
}

/**
 * Creates `path` with `data` only if it does not exist yet, atomically. Returns false when it
 * already exists. A hard link, unlike rename, refuses to replace its target, so this works as an
 * exclusive create that never exposes a half-written file.
 */
export async function publishExclusive(path: string, data: string, mode: number): Promise<boolean> {
  const temp = await writeTemp(path, data, mode);
  try {
    await link(temp, path);
  } catch (err) {
    if (errnoCode(err) === 'EEXIST') return false;
    throw unwritable(path, err);
  } finally {
    await rm(temp, { force: true });
  }
  await syncDir(dirname(path));
  return true;
}

/** Removes a file that may already be gone. */
export async function removeFile(path: string): Promise<void> {
  try {
    await rm(path, { force: true });
  } catch (err) {
    throw unwritable(path, err);
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return errnoCode(err) === 'EPERM';
  }
}

async function lockIsStale(lockPath: string): Promise<boolean> {
  let content: string;
  let ageMs: number;
  try {
    content = await readFile(lockPath, 'utf8');
    ageMs = Date.now() - (await stat(lockPath)).mtimeMs;
  } catch (err) {
    // Released while we looked: not stale, just try to take it again.
    if (errnoCode(err) === 'ENOENT') return false;
    throw unreadable(lockPath, err);
  }
  if (ageMs > LOCK_STALE_MS) return true;
  try {
    const owner = JSON.parse(content) as { pid?: unknown; host?: unknown };
    return owner.host === hostname() && typeof owner.pid === 'number' && !processAlive(owner.pid);
  } catch {
    // Empty or torn: its writer may still be filling it in, so only age can tell.
    return false;
  }
}

/**
 * Runs `fn` while holding `<dir>/.lock`, so that processes starting together on the same data
 * directory take turns instead of generating competing files. A lock left by a crashed process
 * is taken over once its pid is gone (same host) or it is {@link LOCK_STALE_MS} old.
 */
export async function withLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const lockPath = join(dir, '.lock');
  const deadline = Date.now() + LOCK_TIMEOUT_MS;
  for (;;) {
    try {
      const handle = await open(lockPath, 'wx', KEY_MODE);
      try {
        await handle.writeFile(JSON.stringify({ pid: process.pid, host: hostname() }), 'utf8');
      } finally {
        await handle.close();
      }
      break;
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw unwritable(lockPath, err);
    }
    if (await lockIsStale(lockPath)) {
      // Moving it aside first means that of several processes breaking the same lock, one wins.
      const aside = `${lockPath}.${randomBytes(6).toString('hex')}.stale`;
      await rename(lockPath, aside).then(
        () => rm(aside, { force: true }),
        (err: unknown) => {
          if (errnoCode(err) !== 'ENOENT') throw unwritable(lockPath, err);
        },
      );
      continue;
    }
    if (Date.now() > deadline) {
      throw new TlsError('TLS_LOCK_TIMEOUT', `${lockPath} has been held by another process for too long`, {
        path: lockPath,
      });
    }
    await sleep(20 + Math.random() * 40);
  }
  try {
    return await fn();
  } finally {
    await rm(lockPath, { force: true });
  }
}
