// The field encryption library's cost on one core: encryptions and decryptions per second for 32-byte
// and 4-KiB values (next to bare node:crypto AES-256-GCM, to show what the envelope and the
// associated data add), blind-index entries per second with a cached field key, with case folding,
// and with the field key derived on every call.
import { createCipheriv, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { blindIndex, type DataKey, decryptField, deriveFieldKey, encryptField, type FieldContext } from '../src/crypto/field/index.ts';
import { machine } from './lib.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESULTS = join(ROOT, 'bench', 'results', 'crypto-field.json');
/** Envelopes decrypted in turn, so no case measures one buffer over and over. */
const POOL = 256;

function positiveNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  const n = raw === undefined ? fallback : Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got ${raw}`);
  return n;
}


interface Case {
  name: string;
  /** Bytes of plaintext per operation, when it has one. */
  valueBytes: number | null;
  op: (i: number) => unknown;
}

interface Result {
  name: string;
  valueBytes: number | null;
  rounds: number;
  opsPerSecond: number;
  minOpsPerSecond: number;
  maxOpsPerSecond: number;
  microsecondsPerOp: number;
  mebibytesPerSecond: number | null;
  roundsOpsPerSecond: number[];
}

/** Runs `op` for about `ms` milliseconds; returns operations per second. */
function timed(op: (i: number) => unknown, ms: number): number {
  let sink = 0;
  let n = 0;
  const t0 = performance.now();
  let elapsed = 0;
  // Check the clock every 64 operations: cheap next to a microsecond-scale operation.
  while (elapsed < ms) {
    for (let j = 0; j < 64; j++, n++) if (op(n) !== undefined) sink++;
    elapsed = performance.now() - t0;
  }
  if (sink < 0) console.log(sink); // keeps the results observably used
  return (n / elapsed) * 1000;
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

function measure(c: Case, rounds: number, roundMs: number): Result {
  timed(c.op, Math.min(200, roundMs)); // warm-up: JIT, OpenSSL's first-use setup
  const samples: number[] = [];
  for (let r = 0; r < rounds; r++) samples.push(timed(c.op, roundMs));
  const ops = median(samples);
  return {
    name: c.name,
    valueBytes: c.valueBytes,
    rounds,
    opsPerSecond: Math.round(ops),
    minOpsPerSecond: Math.round(Math.min(...samples)),
    maxOpsPerSecond: Math.round(Math.max(...samples)),
    microsecondsPerOp: Math.round((1e6 / ops) * 100) / 100,
    mebibytesPerSecond: c.valueBytes === null ? null : Math.round(((ops * c.valueBytes) / 2 ** 20) * 10) / 10,
    roundsOpsPerSecond: samples.map(Math.round),
  };
}

function cases(): Case[] {
  const key: DataKey = { version: 1, key: randomBytes(32) };
  const keys = (v: number) => (v === key.version ? key : undefined);
  const contexts: FieldContext[] = Array.from({ length: POOL }, (_, i) => ({
    tenant: 'acme',
    stage: 'prod',
    entity: 'Customer',
    field: 'email',
    recordId: `0190f1d2-7c3a-7b4e-9a1f-${i.toString(16).padStart(12, '0')}`,
  }));
  const out: Case[] = [];
  for (const size of [32, 4096]) {
    const values = Array.from({ length: POOL }, () => randomBytes(size));
    const envelopes = values.map((v, i) => encryptField(key, v, contexts[i]!));
    const nonce = randomBytes(12);
    out.push(
      {
        name: 'baseline: bare AES-256-GCM seal (node:crypto, fixed nonce, no AAD, no envelope)',
        valueBytes: size,
        op: (i) => {
          const c = createCipheriv('aes-256-gcm', key.key, nonce, { authTagLength: 16 });
          const ct = c.update(values[i % POOL]!);
          c.final();
          return [ct, c.getAuthTag()];
        },
      },
      { name: 'encryptField', valueBytes: size, op: (i) => encryptField(key, values[i % POOL]!, contexts[i % POOL]!) },
      { name: 'decryptField', valueBytes: size, op: (i) => decryptField(keys, envelopes[i % POOL]!, contexts[i % POOL]!) },
    );
  }
  const root = randomBytes(32);
  const fieldContext = { tenant: 'acme', stage: 'prod', entity: 'Customer', field: 'email' };
  const fieldKey = deriveFieldKey(root, fieldContext, 'blind-index');
  const emails = Array.from({ length: POOL }, (_, i) => `Customer.${i}@Example.com`);
  out.push(
    { name: 'blindIndex (cached field key, 16 bytes)', valueBytes: null, op: (i) => blindIndex(fieldKey, emails[i % POOL]!) },
    {
      name: 'blindIndex (cached field key, 16 bytes, caseInsensitive)',
      valueBytes: null,
      op: (i) => blindIndex(fieldKey, emails[i % POOL]!, { caseInsensitive: true }),
    },
    { name: 'deriveFieldKey (HKDF-SHA-256)', valueBytes: null, op: () => deriveFieldKey(root, fieldContext, 'blind-index') },
    {
      name: 'deriveFieldKey + blindIndex (no key cache)',
      valueBytes: null,
      op: (i) => blindIndex(deriveFieldKey(root, fieldContext, 'blind-index'), emails[i % POOL]!),
    },
  );
  return out;
}

/** Runs the benchmark, prints a markdown table and writes bench/results/crypto-field.json. */
export async function run(): Promise<void> {
  const rounds = Math.round(positiveNumber('BENCH_RUNS', 5));
  const roundMs = positiveNumber('BENCH_ROUND_MS', 1000);
  const host = machine();
  const results: Result[] = [];
  for (const c of cases()) {
    const r = measure(c, rounds, roundMs);
    results.push(r);
    process.stderr.write(`${c.name}${c.valueBytes === null ? '' : ` (${c.valueBytes} B)`}: ${r.opsPerSecond} ops/s\n`);
  }
  const fmt = (n: number) => n.toLocaleString('en-US');
  const rows = [
    '| operation | value | ops/s (median) | min – max ops/s | µs/op | MiB/s |',
    '|---|---:|---:|---:|---:|---:|',
    ...results.map(
      (r) =>
        `| ${r.name} | ${r.valueBytes === null ? '–' : r.valueBytes === 4096 ? '4 KiB' : `${r.valueBytes} B`} | ${fmt(r.opsPerSecond)} | ${fmt(
          r.minOpsPerSecond,
        )} – ${fmt(r.maxOpsPerSecond)} | ${r.microsecondsPerOp} | ${r.mebibytesPerSecond ?? '–'} |`,
    ),
  ];
  const endLoad = Math.round(loadavg()[0]! * 100) / 100;
  const header = `${rounds} rounds of ${roundMs} ms per case, one thread; ${host.cpuModel}, ${host.nproc} CPUs, Node ${host.node}, OpenSSL ${host.openssl}, ${host.date} (1-min load ${host.loadAverage1m} at start, ${endLoad} at end)`;
  process.stdout.write(`\n${header}\n\n${rows.join('\n')}\n`);

  await mkdir(join(ROOT, 'bench', 'results'), { recursive: true });
  await writeFile(
    RESULTS,
    `${JSON.stringify(
      {
        benchmark: 'crypto-field',
        description:
          'single-thread operations per second of src/crypto/field: encryptField/decryptField (AES-256-GCM envelope with bound context) for 32-byte and 4-KiB values, blindIndex, deriveFieldKey; median of rounds',
        machine: { ...host, loadAverage1mAtEnd: endLoad },
        rounds,
        roundMs,
        results,
      },
      null,
      2,
    )}\n`,
  );
  process.stderr.write(`results written to ${RESULTS}\n`);
}
