// The KMS providers' cost: wrap and unwrap of a 32-byte key under the root key, for `local` (a
// key file, AES-256-GCM in node:crypto) and `pkcs11` (a SoftHSM2 token from the test harness,
// CKM_AES_GCM inside the HSM through pkcs11js), sequential (ops/s, median and p99 latency) and with
// 16 calls in flight; plus what opening each provider costs (first start, restart, passphrase).
// An unwrap here is the key hierarchy's cold-cache path: every cache miss pays it once.
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { type KmsProvider, openLocalKms, openPkcs11Kms } from '../src/crypto/kms/index.ts';
import { createSoftHsmToken } from '../test/harness/softhsm.ts';
import { machine, positiveInt } from './lib.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
// BENCH_RESULTS_FILE writes elsewhere (e.g. for a trial run that should not touch the repository).
const RESULTS = process.env.BENCH_RESULTS_FILE ?? join(ROOT, 'bench', 'results', 'crypto-kms.json');
const IN_FLIGHT = 16;
const WARMUP = 200;



const round3 = (n: number) => Math.round(n * 1000) / 1000;

interface Sequential {
  ops: number;
  opsPerSecond: number;
  medianMs: number;
  p99Ms: number;
}

function sequentialResult(samples: number[], totalMs: number): Sequential {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
  return { ops: s.length, opsPerSecond: Math.round((s.length * 1000) / totalMs), medianMs: round3(at(0.5)), p99Ms: round3(at(0.99)) };
}

async function sequential(n: number, op: (i: number) => Promise<unknown>): Promise<Sequential> {
  const samples: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await op(i);
    samples.push(performance.now() - t);
  }
  return sequentialResult(samples, performance.now() - t0);
}

/** ops/s with IN_FLIGHT calls outstanding at all times. */
async function concurrent(n: number, op: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < n) await op(next++);
    }),
  );
  return Math.round((n * 1000) / (performance.now() - t0));
}

interface ProviderResult {
  provider: string;
  wrap: Sequential & { concurrentOpsPerSecond: number };
  unwrap: Sequential & { concurrentOpsPerSecond: number };
}

async function benchProvider(label: string, kms: KmsProvider, n: number, log: (s: string) => void): Promise<ProviderResult> {
  const keys = Array.from({ length: n }, () => randomBytes(32));
  const aad = (i: number) => `tenant:${i % 97}:kek:v1`;
  for (let i = 0; i < WARMUP; i++) {
    const w = await kms.wrap(keys[i % n]!, aad(i));
    await kms.unwrap(w.keyId, w.wrapped, aad(i));
  }

  const wrapped: { keyId: string; wrapped: Buffer }[] = new Array(n);
  const wrapSeq = await sequential(n, async (i) => {
    wrapped[i] = await kms.wrap(keys[i]!, aad(i));
  });
  const unwrapSeq = await sequential(n, (i) => kms.unwrap(wrapped[i]!.keyId, wrapped[i]!.wrapped, aad(i)));
  const wrapConc = await concurrent(n, (i) => kms.wrap(keys[i]!, aad(i)));
  const unwrapConc = await concurrent(n, (i) => kms.unwrap(wrapped[i]!.keyId, wrapped[i]!.wrapped, aad(i)));
  log(`${label}: wrap ${wrapSeq.opsPerSecond}/s (median ${wrapSeq.medianMs} ms), unwrap ${unwrapSeq.opsPerSecond}/s (median ${unwrapSeq.medianMs} ms)`);
  return {
    provider: label,
    wrap: { ...wrapSeq, concurrentOpsPerSecond: wrapConc },
    unwrap: { ...unwrapSeq, concurrentOpsPerSecond: unwrapConc },
  };
}

/** Median of `rounds` timings of `open` + close. */
async function openCost(rounds: number, open: (round: number) => Promise<KmsProvider>): Promise<number> {
  const samples: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t = performance.now();
    const kms = await open(r);
    samples.push(performance.now() - t);
    await kms.close();
  }
  samples.sort((a, b) => a - b);
  return round3(samples[Math.floor(samples.length / 2)]!);
}

function tables(results: ProviderResult[], opens: Record<string, number>): string {
  const out: string[] = [];
  out.push('Wrap / unwrap of a 32-byte key (AES-256-GCM under the root key)', '');
  out.push(
    '| provider | operation | ops/s sequential | median ms | p99 ms | ops/s with 16 in flight |',
    '|---|---|---:|---:|---:|---:|',
  );
  for (const r of results) {
    for (const [name, s] of [['wrap', r.wrap], ['unwrap', r.unwrap]] as const) {
      out.push(`| ${r.provider} | ${name} | ${s.opsPerSecond} | ${s.medianMs} | ${s.p99Ms} | ${s.concurrentOpsPerSecond} |`);
    }
  }
  out.push('', 'Opening a provider (median ms)', '', '| case | ms |', '|---|---:|');
  for (const [name, ms] of Object.entries(opens)) out.push(`| ${name} | ${ms} |`);
  return out.join('\n');
}

/** Runs the benchmark and writes bench/results/crypto-kms.json. */
export async function run(): Promise<void> {
  const n = positiveInt('BENCH_N', 5000);
  const host = machine();
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const dir = await mkdtemp(join(tmpdir(), 'accord-bench-kms-'));
  const pin = randomBytes(8).toString('hex');
  const token = await createSoftHsmToken({ label: 'accord-bench', pin, soPin: randomBytes(8).toString('hex') });
  // SoftHSM reads its config when the module is initialised (first open below).
  process.env.SOFTHSM2_CONF = token.env.SOFTHSM2_CONF;
  const results: ProviderResult[] = [];
  const opens: Record<string, number> = {};
  try {
    const passphrase = randomBytes(16).toString('hex');
    opens['local, first start (new key file)'] = await openCost(5, (r) => openLocalKms({ dir: join(dir, `first-${r}`) }));
    opens['local, restart'] = await openCost(5, () => openLocalKms({ dir: join(dir, 'first-0') }));
    opens['local with passphrase, restart (scrypt N=2^15)'] = await (async () => {
      await (await openLocalKms({ dir: join(dir, 'sealed'), passphrase })).close();
      return openCost(5, () => openLocalKms({ dir: join(dir, 'sealed'), passphrase }));
    })();

    const local = await openLocalKms({ dir: join(dir, 'local') });
    try {
      results.push(await benchProvider('local', local, n, log));
    } finally {
      await local.close();
    }

    const pkcs11Opts = { module: token.module, tokenLabel: 'accord-bench', pin };
    opens['pkcs11 (SoftHSM2), first start (generates the key)'] = await openCost(5, (r) => openPkcs11Kms({ ...pkcs11Opts, keyLabelPrefix: `first${r}` }));
    opens['pkcs11 (SoftHSM2), restart'] = await openCost(5, () => openPkcs11Kms({ ...pkcs11Opts, keyLabelPrefix: 'first0' }));
    const hsm = await openPkcs11Kms(pkcs11Opts);
    try {
      results.push(await benchProvider('pkcs11 (SoftHSM2)', hsm, n, log));
    } finally {
      await hsm.close();
    }
  } finally {
    await token.cleanup();
    await rm(dir, { recursive: true, force: true });
  }
  const loadAtEnd = Math.round(loadavg()[0]! * 100) / 100;
  const header = `N = ${n}; ${host.cpuModel}, ${host.nproc} CPUs, Node ${host.node}, ${host.date} (1-min load ${host.loadAverage1m} at start, ${loadAtEnd} at end)`;
  process.stdout.write(`\n${header}\n\n${tables(results, opens)}\n`);

  await mkdir(join(RESULTS, '..'), { recursive: true });
  await writeFile(
    RESULTS,
    `${JSON.stringify(
      {
        benchmark: 'crypto-kms',
        description: `KMS wrap/unwrap of a 32-byte key: sequential ops/s, median and p99 latency, ops/s with ${IN_FLIGHT} in flight; median cost of opening each provider`,
        machine: { ...host, loadAverage1mAtEnd: loadAtEnd },
        n,
        results,
        openMs: opens,
      },
      null,
      2,
    )}\n`,
  );
  process.stderr.write(`results written to ${RESULTS}\n`);
}
