import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { AccordError } from '../../errors/index.ts';

/**
 * PGlite is single-process: two processes on one data directory would corrupt it. A lock file
 * holding the owner's pid and host makes the second process refuse; a lock left by a dead
 * process on this host is taken over.
 */
export function lockDataDir(dir: string): () => void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, 'accord.lock');
  const me = JSON.stringify({ pid: process.pid, host: hostname(), since: new Date().toISOString() });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(path, me, { flag: 'wx', mode: 0o600 });
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        try {
          if (readFileSync(path, 'utf8') === me) rmSync(path);
        } catch {
          // Already gone: nothing to release.
        }
        process.off('exit', release);
      };
      process.on('exit', release);
      return release;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = readOwner(path);
      if (owner && owner.host === hostname() && isAlive(owner.pid)) {
        throw new AccordError('DB_DATA_DIR_LOCKED', {
          message: `The data directory ${dir} is in use by process ${owner.pid} since ${owner.since}. Stop it first, or use another --data-dir.`,
          details: { dataDir: dir, pid: owner.pid },
        });
      }
      if (owner && owner.host !== hostname()) {
        throw new AccordError('DB_DATA_DIR_LOCKED', {
          message: `The data directory ${dir} is locked by host ${owner.host}. If that host is gone, remove ${path}.`,
          details: { dataDir: dir, host: owner.host },
        });
      }
      rmSync(path, { force: true });
    }
  }
  throw new AccordError('DB_DATA_DIR_LOCKED', { details: { dataDir: dir } });
}

function readOwner(path: string): { pid: number; host: string; since: string } | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
