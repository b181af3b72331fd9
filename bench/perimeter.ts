// The cost of the perimeter (issue 10), on PGlite over plain HTTP (TLS would cost both sides alike):
// (a) an authenticated GET with the rate limiter and IP lists on (the default quotas, user quota
//     raised so the load is never refused, and 20 rules on the control plane's lists) vs off
//     (every quota off, no rules), two servers measured in alternating rounds in the same run;
// (b) the operator's latency, one request every 20 ms, idle and during a bounded anonymous flood
//     of 200 connections against a protected route (the connection cap per source is lifted, as
//     the flood comes from one address), with the default anonymous quota and with it off.
import { Agent, request as httpRequest } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { ephemeralSigner, systemSource } from '../src/audit-chain/index.ts';
import { loadConfig } from '../src/config/index.ts';
import { Keyring } from '../src/crypto/keyring/index.ts';
import { openKms } from '../src/crypto/kms/index.ts';
import { migrate, openDatabase } from '../src/db/index.ts';
import { access, registerRoutes } from '../src/http/index.ts';
import { createUser, grantRole, IamKey, openSession } from '../src/iam/index.ts';
import { addRule, addressMatcher, checkRequestHead, RateLimiter, requestLimits } from '../src/perimeter/index.ts';
import { buildApp } from '../src/server/index.ts';
import { createTenant } from '../src/tenancy/index.ts';
import { machine, positiveInt } from './lib.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESULTS = join(ROOT, 'bench', 'results', 'perimeter.json');
const round3 = (n: number) => Math.round(n * 1000) / 1000;
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
};

interface Node {
  app: FastifyInstance;
  port: number;
  token: string;
  close(): Promise<void>;
}

async function node(flags: Record<string, unknown>, rules: number): Promise<Node> {
  const database = await openDatabase({ dataDir: 'unused', inMemory: true });
  await migrate(database.db);
  const kmsDir = await mkdtemp(join(tmpdir(), 'accord-bench-perimeter-'));
  const kms = await openKms({ kms: 'local', dataDir: kmsDir });
  const keyring = new Keyring(kms);
  const iamKey = IamKey.ephemeral();
  const config = loadConfig({ env: {}, flags: { logLevel: 'silent', ...flags } });
  const app = await buildApp({ config, database, logger: pino({ level: 'silent' }), signer: ephemeralSigner(), keyring, iamKey });
  registerRoutes(app, app.routeKit, [
    { method: 'GET', url: '/bench/closed/:t', access: access.permission('tenant:read', { tenantParam: 't' }), schema: { summary: 'bench' }, handler: async () => ({ ok: true }) },
  ]);
  const tenant = await createTenant(database.db, keyring, systemSource, { name: 'bench' });
  const token = await database.db.transaction().execute(async (trx) => {
    const userId = await createUser(trx, { tenantId: tenant.id, email: 'bench@bench.test', password: 'benchmark passphrase long enough' });
    await grantRole(trx, { userId, role: 'developer', tenantId: tenant.id, stageId: null });
    const s = await openSession(trx, { key: iamKey, accessTtlSeconds: 900 }, { userId, policy: { idleSeconds: 86400, absoluteSeconds: 86400 }, source: { ip: null, userAgent: null } });
    return s.accessToken;
  });
  // The lists a real installation might hold: loopback allowed, and a few denied ranges.
  if (rules > 0) await addRule(database.db, systemSource, { kind: 'platform' }, { action: 'allow', cidr: '127.0.0.0/8' });
  for (let i = 1; i < rules; i++) await addRule(database.db, systemSource, { kind: 'platform' }, { action: 'deny', cidr: i % 2 ? `203.0.${i}.0/24` : `2001:db8:${i.toString(16)}::/48` });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    app,
    port,
    token,
    close: async () => {
      await app.close();
      await database.close();
      await kms.close();
      await rm(kmsDir, { recursive: true, force: true });
    },
  };
}

/** One request at a time over a keep-alive connection, every `gapMs`, until `until()` is false. */
async function probe(n: Node, path: string, headers: Record<string, string>, opts: { count: number; gapMs: number }): Promise<number[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const out: number[] = [];
  for (let i = 0; i < opts.count; i++) {
    out.push(
      await new Promise<number>((resolve, reject) => {
        const t = performance.now();
        const req = httpRequest({ host: '127.0.0.1', port: n.port, path, agent, headers }, (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - t) : reject(new Error(`${path}: ${res.statusCode}`))));
        });
        req.on('error', reject);
        req.end();
      }),
    );
    if (opts.gapMs > 0) await sleep(opts.gapMs);
  }
  agent.destroy();
  return out;
}

export async function run(): Promise<void> {
  const seconds = positiveInt('BENCH_SECONDS', 5);
  const rounds = positiveInt('BENCH_ROUNDS', 3);
  const results: Record<string, unknown> = { machine: machine(), seconds, rounds };

  // (c) the perimeter's own work per request, in-process (what the loaded end-to-end runs blur):
  // the head check, an allow list of 1 and a deny list of 19 ranges, one rate-limit take.
  {
    const limits = requestLimits({ maxHeaderCount: 100, maxHeaderBytes: 8192, maxUrlLength: 4096, maxJsonDepth: 32, maxJsonKeys: 10_000 });
    const allow = addressMatcher(['127.0.0.0/8']);
    const deny = addressMatcher(Array.from({ length: 19 }, (_, i) => (i % 2 ? `203.0.${i}.0/24` : `2001:db8:${i.toString(16)}::/48`)));
    const limiter = new RateLimiter({ policy: { user: { limit: 1e9, windowSeconds: 60 }, tenant: { limit: 1e9, windowSeconds: 60 } } });
    const raw = ['host', '127.0.0.1:8443', 'authorization', 'Bearer aca_x', 'user-agent', 'autocannon', 'accept', '*/*'];
    const n = positiveInt('BENCH_N', 200_000);
    let sink = 0;
    const t = performance.now();
    for (let i = 0; i < n; i++) {
      checkRequestHead(limits, '/bench/closed/bench', raw);
      if (!deny('127.0.0.1') && allow('127.0.0.1')) sink++;
      if (limiter.take({ user: `u${i & 63}`, tenant: 't' }).allowed) sink++;
    }
    const us = ((performance.now() - t) * 1000) / n;
    results.inProcess = { requests: n, microsecondsPerRequest: round3(us), sink };
    console.log('in-process perimeter work', JSON.stringify(results.inProcess));
  }

  // (a) on vs off, alternating rounds.
  const on = await node({ rateLimitUser: '100000000/60', rateLimitTenant: '100000000/60', maxConnectionsPerSource: 0 }, 20);
  const off = await node({ rateLimitIp: 'off', rateLimitUser: 'off', rateLimitClient: 'off', rateLimitTenant: 'off', maxConnectionsPerSource: 0 }, 0);
  const fire = (n: Node) =>
    autocannon({ url: `http://127.0.0.1:${n.port}/bench/closed/bench`, connections: 10, duration: seconds, headers: { authorization: `Bearer ${n.token}` } });
  await fire(on);
  await fire(off);
  const ab: { onRps: number; offRps: number; onP99: number; offP99: number }[] = [];
  for (let r = 0; r < rounds; r++) {
    const a = await fire(on);
    const b = await fire(off);
    if (a.non2xx + b.non2xx > 0) throw new Error(`non-2xx answers during the run (on ${a.non2xx}, off ${b.non2xx})`);
    ab.push({ onRps: a.requests.average, offRps: b.requests.average, onP99: a.latency.p99, offP99: b.latency.p99 });
  }
  const med = (xs: number[]) => pct(xs, 50);
  results.authenticatedGet = {
    rounds: ab,
    onRpsMedian: Math.round(med(ab.map((x) => x.onRps))),
    offRpsMedian: Math.round(med(ab.map((x) => x.offRps))),
    costPercent: round3((1 - med(ab.map((x) => x.onRps)) / med(ab.map((x) => x.offRps))) * 100),
    onP99MsMedian: med(ab.map((x) => x.onP99)),
    offP99MsMedian: med(ab.map((x) => x.offP99)),
  };
  console.log('authenticated GET', JSON.stringify(results.authenticatedGet));
  await off.close();
  await on.close();

  // (b) the operator during an anonymous flood of 200 connections.
  const flood = async (flags: Record<string, unknown>) => {
    const n = await node({ maxConnectionsPerSource: 0, ...flags }, 0);
    const auth = { authorization: `Bearer ${n.token}` };
    const path = '/bench/closed/bench';
    await probe(n, path, auth, { count: 20, gapMs: 0 });
    const idle = await probe(n, path, auth, { count: 100, gapMs: 20 });
    const attack = autocannon({ url: `http://127.0.0.1:${n.port}${path}`, connections: 200, duration: seconds });
    await sleep(500);
    const during = await probe(n, path, auth, { count: Math.max(20, Math.floor(((seconds - 1) * 1000) / 25)), gapMs: 20 });
    const a = await attack;
    await n.close();
    return {
      idleP50Ms: round3(pct(idle, 50)),
      floodP50Ms: round3(pct(during, 50)),
      floodP99Ms: round3(pct(during, 99)),
      ratioP50: round3(pct(during, 50) / pct(idle, 50)),
      probes: during.length,
      flood: { requests: a.requests.total, rps: Math.round(a.requests.average), status429: a.statusCodeStats?.['429']?.count ?? 0, status401: a.statusCodeStats?.['401']?.count ?? 0 },
    };
  };
  results.operatorDuringFlood = { withLimits: await flood({}), anonymousQuotaOff: await flood({ rateLimitIp: 'off' }) };
  console.log('operator during flood', JSON.stringify(results.operatorDuringFlood));
  await writeFile(RESULTS, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`written ${RESULTS}`);
}
