// The cost of identity: (a) argon2id per hash and sign-ins per second (argon2 dominates); (b)
// access-token verifications per second (MAC + expiry, no database); (c) what authentication and
// authorization add to a request: the same trivial route served public and behind a tenant-scoped
// permission, measured with autocannon in the same run, on PGlite and on PostgreSQL. Plain HTTP
// (TLS would be the same for both routes and only blur the difference).
import { Agent, request as httpRequest } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import pino from 'pino';
import { ephemeralSigner, systemSource } from '../src/audit-chain/index.ts';
import { loadConfig } from '../src/config/index.ts';
import { Keyring } from '../src/crypto/keyring/index.ts';
import { openKms } from '../src/crypto/kms/index.ts';
import { type Database, migrate, openDatabase } from '../src/db/index.ts';
import { access, registerRoutes } from '../src/http/index.ts';
import { createUser, grantRole, hashPassword, IamKey, login, openSession, signAccessToken, verifyAccessToken } from '../src/iam/index.ts';
import { defaultLockoutPolicy } from '../src/iam/sign-in/lockout.ts';
import { buildApp } from '../src/server/index.ts';
import { createTenant } from '../src/tenancy/index.ts';
import { type PostgresServer, startPostgres } from '../test/harness/postgres.ts';
import { createOwnedDatabase, machine, positiveInt } from './lib.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESULTS = join(ROOT, 'bench', 'results', 'auth.json');
const PASSWORD = 'benchmark passphrase long enough';

const round3 = (n: number) => Math.round(n * 1000) / 1000;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

async function argon2(n: number) {
  await hashPassword(PASSWORD);
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await hashPassword(PASSWORD);
    samples.push(performance.now() - t);
  }
  return { params: 'argon2id m=19456 KiB, t=2, p=1', hashes: n, medianMs: round3(median(samples)) };
}

function tokenVerification(n: number) {
  const key = IamKey.ephemeral();
  const now = Math.floor(Date.now() / 1000);
  const token = signAccessToken(key, { typ: 'user', sub: crypto.randomUUID(), sid: crypto.randomUUID(), iat: now, exp: now + 300 });
  for (let i = 0; i < 1000; i++) verifyAccessToken(key, token);
  const t = performance.now();
  for (let i = 0; i < n; i++) if (!verifyAccessToken(key, token).ok) throw new Error('token refused');
  const ms = performance.now() - t;
  return { verifications: n, perSecond: Math.round((n / ms) * 1000), microsecondsEach: round3((ms / n) * 1000), tokenBytes: token.length };
}

async function engineRun(database: Database, name: string, opts: { logins: number; seconds: number; requests: number }, cacheMs: number) {
  const db = database.db;
  await migrate(db);
  const t = cacheMs > 0 ? 'warm' : 'cold';
  const kmsDir = await mkdtemp(join(tmpdir(), `accord-bench-kms-${name}-`));
  const kms = await openKms({ kms: 'local', dataDir: kmsDir });
  const keyring = new Keyring(kms);
  const iamKey = IamKey.ephemeral();
  const config = loadConfig({ env: {}, flags: { logLevel: 'silent', authCacheMilliseconds: cacheMs } });
  const app = await buildApp({ config, database, logger: pino({ level: 'silent' }), signer: ephemeralSigner(), keyring, iamKey });
  const handler = async () => ({ ok: true });
  // `:t`, not `:tenant`: the kit would look a `:tenant` up, and this measures auth alone.
  registerRoutes(app, app.routeKit, [
    { method: 'GET', url: '/bench/open/:t', access: access.public, schema: { summary: 'bench' }, handler },
    { method: 'GET', url: '/bench/closed/:t', access: access.permission('tenant:read', { tenantParam: 't' }), schema: { summary: 'bench' }, handler },
  ]);
  const tenant = await createTenant(db, keyring, systemSource, { name: t });
  const token = await db.transaction().execute(async (trx) => {
    const userId = await createUser(trx, { tenantId: tenant.id, email: `bench@${t}.test`, password: PASSWORD });
    await grantRole(trx, { userId, role: 'developer', tenantId: tenant.id, stageId: null });
    const s = await openSession(trx, { key: iamKey, accessTtlSeconds: 900 }, { userId, policy: { idleSeconds: 86400, absoluteSeconds: 86400 }, source: { ip: null, userAgent: null } });
    return s.accessToken;
  });

  // Sign-ins per second, sequential (each is one argon2 verify plus its transaction).
  const signIn = { db, issuer: { key: iamKey, accessTtlSeconds: 300 }, defaults: { idleSeconds: 3600, absoluteSeconds: 3600 }, lockout: defaultLockoutPolicy, platformRequireMfa: false };
  const t0 = performance.now();
  for (let i = 0; i < opts.logins; i++) {
    const r = await login(signIn, { ...systemSource, sourceIp: `10.0.${i >> 8}.${i & 255}`, userAgent: null, requestId: 'bench' }, { email: `bench@${t}.test`, password: PASSWORD });
    if (r.status !== 'signed-in') throw new Error('sign-in failed');
  }
  const loginsPerSecond = round3(opts.logins / ((performance.now() - t0) / 1000));

  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const fire = (path: string, connections: number, headers: Record<string, string> = {}) =>
    autocannon({ url: `http://127.0.0.1:${port}${path}`, connections, duration: opts.seconds, headers });
  const probe = async (path: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { headers });
    if (res.status !== 200) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  };
  const auth = { authorization: `Bearer ${token}` };
  await probe(`/bench/open/${t}`);
  await probe(`/bench/closed/${t}`, auth);

  // Latency, one request at a time over one keep-alive connection, the two routes interleaved so
  // drift in the machine hits both alike; timed here in microseconds (autocannon rounds to ms).
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const once = (path: string, headers: Record<string, string> = {}) =>
    new Promise<number>((resolve, reject) => {
      const t = performance.now();
      const req = httpRequest({ host: '127.0.0.1', port, path, agent, headers }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - t) : reject(new Error(`${path}: ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end();
    });
  const openLat: number[] = [];
  const closedLat: number[] = [];
  for (let i = 0; i < 500; i++) {
    await once(`/bench/open/${t}`);
    await once(`/bench/closed/${t}`, auth);
  }
  for (let i = 0; i < opts.requests; i++) {
    openLat.push(await once(`/bench/open/${t}`));
    closedLat.push(await once(`/bench/closed/${t}`, auth));
  }
  agent.destroy();

  // Throughput with autocannon, 10 connections, alternating rounds.
  const rounds: { openRps: number; closedRps: number }[] = [];
  for (let r = 0; r < 3; r++) {
    const open10 = await fire(`/bench/open/${t}`, 10);
    const closed10 = await fire(`/bench/closed/${t}`, 10, auth);
    if (closed10.non2xx + open10.non2xx > 0) throw new Error('non-2xx answers during the run');
    rounds.push({ openRps: open10.requests.average, closedRps: closed10.requests.average });
  }
  await app.close();
  await kms.close();
  await rm(kmsDir, { recursive: true, force: true });
  const openMedian = median(openLat);
  const closedMedian = median(closedLat);
  const openRps = median(rounds.map((r) => r.openRps));
  const closedRps = median(rounds.map((r) => r.closedRps));
  return {
    engine: name,
    principalCacheMs: cacheMs,
    loginsPerSecond,
    sequential: {
      requests: opts.requests,
      publicMedianMs: round3(openMedian),
      authedMedianMs: round3(closedMedian),
      addedMedianMs: round3(closedMedian - openMedian),
      ratio: round3(closedMedian / openMedian),
    },
    autocannon10: { publicRps: Math.round(openRps), authedRps: Math.round(closedRps), ratio: round3(openRps / closedRps), rounds },
  };
}

export async function run(): Promise<void> {
  const seconds = positiveInt('BENCH_SECONDS', 5);
  const requests = positiveInt('BENCH_REQUESTS', 3000);
  const logins = positiveInt('BENCH_LOGINS', 40);
  const results: Record<string, unknown> = { machine: machine() };
  results.argon2 = await argon2(positiveInt('BENCH_HASHES', 20));
  console.log('argon2', results.argon2);
  results.tokens = tokenVerification(positiveInt('BENCH_N', 200_000));
  console.log('tokens', results.tokens);
  const pglite = await openDatabase({ dataDir: 'unused', inMemory: true });
  // warm: the default 2 s principal cache; cold: cache off, every request reads session and grants.
  results.pglite = { warm: await engineRun(pglite, 'pglite', { logins, seconds, requests }, 2000), cold: await engineRun(pglite, 'pglite', { logins, seconds, requests }, 0) };
  await pglite.close();
  console.log('pglite', JSON.stringify(results.pglite));
  let server: PostgresServer | undefined;
  try {
    server = await startPostgres({ tls: false });
    const postgres = await openDatabase({ dataDir: 'unused', databaseUrl: await createOwnedDatabase(server.url, 'bench'), maxConnections: 12 });
    results.postgres = { warm: await engineRun(postgres, 'postgres', { logins, seconds, requests }, 2000), cold: await engineRun(postgres, 'postgres', { logins, seconds, requests }, 0) };
    await postgres.close();
    console.log('postgres', JSON.stringify(results.postgres));
  } finally {
    await server?.stop();
  }
  await writeFile(RESULTS, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`written ${RESULTS}`);
}
