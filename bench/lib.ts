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
