// What every benchmark shares: its knobs from the environment, the machine description printed
// with its figures, and fresh PostgreSQL databases owned the way production owns them.
import { readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';

export { createOwnedDatabase } from '../test/harness/postgres.ts';

/** An integer knob from the environment (BENCH_N, BENCH_RUNS...), at least 1. */
export function positiveInt(name: string, fallback: number): number {
  const raw = process.env[name];
  const n = raw === undefined ? fallback : Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${raw}`);
  return n;
}

/** The machine a run happened on, recorded with its results. */
export function machine() {
  let cpuinfo = '';
  try {
    cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    // Not Linux: the model stays unknown.
  }
  return {
    cpuModel: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? 'unknown',
    nproc: availableParallelism(),
    node: process.version,
    openssl: process.versions.openssl,
    platform: `${process.platform} ${process.arch}`,
    date: new Date().toISOString(),
    loadAverage1m: Math.round((loadavg()[0] ?? 0) * 100) / 100,
  };
}

/**
 * CPU milliseconds this process's main thread has used (Linux: /proc/self/task/<pid>/stat; 0
 * elsewhere). Unlike req/s it does not change when other work shares the machine, so it is the
 * figure to compare on a busy box; a load generator in a worker thread is not counted.
 */
export function mainThreadCpuMs(): number {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces, hence the last ')'): utime is the
    // 14th field of the line, stime the 15th, in clock ticks (100 per second on Linux).
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return 0;
  }
}
