// The data API's headline figures (issue 12): autocannon over HTTPS against the platform's data
// API — (a) GET one Claim by id as a Manager (authn, app roles, row rule, RLS, 2 decrypted fields,
// audit of the restricted read), (b) a list of 20 with a filter, (c) a create — and, in the same
// run, a bare Fastify + pg (or PGlite) handler over HTTPS with the same certificate, keep-alive
// and pool size doing the same SELECT/INSERT on the same table (no decryption, no audit). Also the
// same GET as an Auditor (a role without a row rule, and without the IBAN) and as the owner, an
// Employee (a row rule and a field rule).
// BENCH_SECONDS (default 5) per measurement, BENCH_CONNECTIONS (default 10).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon, { type Options, type Result } from 'autocannon';
import Fastify from 'fastify';
import { CompiledQuery } from 'kysely';
import pg from 'pg';
import pino from 'pino';
import { ephemeralSigner } from '../src/audit-chain/index.ts';
import { loadConfig } from '../src/config/index.ts';
import { migrate, openDatabase } from '../src/db/index.ts';
import { openDataPlane } from '../src/kernel/index.ts';
import { buildApp } from '../src/server/index.ts';
import { endUser, expensesManifest, type Platform, tenantWithApp } from '../test/harness/data-api.ts';
import { testIamKey } from '../test/harness/iam.ts';
import { testKeyring } from '../test/harness/keys.ts';
import { type PostgresServer, startPostgres } from '../test/harness/postgres.ts';
import { createOwnedDatabase, machine, mainThreadCpuMs, positiveInt } from './lib.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESULTS = join(ROOT, 'bench', 'results', 'api.json');
const POOL = 10;
// The quotas stay on (their bookkeeping is part of the request path) but high enough that a
// benchmark is not a flood; the connection cap likewise.
const BENCH_FLAGS = { logLevel: 'silent', rateLimitUser: '1000000000/60', rateLimitClient: '1000000000/60', rateLimitTenant: '1000000000/60', maxConnectionsPerSource: 0 };

function selfSigned() {
  const dir = mkdtempSync(join(tmpdir(), 'accord-bench-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
  const out = { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') };
  rmSync(dir, { recursive: true, force: true });
  return out;
}

interface Figure {
  rps: number;
  p50: number;
  /** autocannon reports no p95: p97.5 is the nearest percentile it has. */
  p97_5: number;
  p99: number;
  /** Server main-thread CPU per request, microseconds (see mainThreadCpuMs). */
  cpuUs: number;
}
async function measured(fire: (extra?: Partial<Options>) => Promise<Result>): Promise<Figure> {
  // One unmeasured second first: JIT, plan caches and the pools warm up on the same request.
  await fire({ duration: 1 });
  const cpu0 = mainThreadCpuMs();
  const r = await fire();
  const cpu = mainThreadCpuMs() - cpu0;
  // A figure with refused or failed requests measures the refusal, not the request.
  if (r.non2xx + r.errors > 0) throw new Error(`${r.url}: ${r.non2xx} non-2xx answers and ${r.errors} errors out of ${r.requests.total}`);
  return { rps: Math.round(r.requests.average), p50: r.latency.p50, p97_5: r.latency.p97_5, p99: r.latency.p99, cpuUs: Math.round((cpu * 1000) / Math.max(1, r.requests.total)) };
}

async function engineRun(engine: 'pglite' | 'postgres', url: string | undefined, seconds: number, connections: number) {
  const tls = selfSigned();
  const database = await openDatabase({ dataDir: 'unused', inMemory: url === undefined, ...(url ? { databaseUrl: url, maxConnections: POOL + 2 } : {}) });
  await migrate(database.db);
  const keyring = await testKeyring();
  const plane = await openDataPlane(database, { databaseUrl: url, kms: keyring.kms, maxConnections: POOL });
  const app = await buildApp({ config: loadConfig({ env: {}, flags: BENCH_FLAGS }), database, logger: pino({ level: 'silent' }), signer: ephemeralSigner(), keyring, iamKey: testIamKey, dataPlane: plane, https: tls });
  const p = { database, url, keyring, plane, app } as unknown as Platform;
  const [prod] = (await tenantWithApp(p, 'acme', expensesManifest())).filter((s) => s.stage === 'production');
  if (!prod) throw new Error('no production stage');
  // BENCH_WAF_MODE=off|detect|block: the stage's firewall mode (default: the platform's default).
  const wafMode = process.env.BENCH_WAF_MODE;
  if (wafMode) await database.db.insertInto('accord.waf_settings').values({ stage_id: prod.stageId, tenant_id: prod.tenantId, mode: wafMode as 'off' | 'detect' | 'block', paranoia_level: 1, threshold: 5 }).execute();
  const bob = await endUser(p, prod, 'bob@acme.test', 'expenses', ['Employee']);
  const carol = await endUser(p, prod, 'carol@acme.test', 'expenses', ['Manager']);
  const erin = await endUser(p, prod, 'erin@acme.test', 'expenses', ['Auditor']);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as { port: number }).port;
  const base = `https://127.0.0.1:${port}/t/acme/production/apps/expenses/api`;
  const h = (t: string) => ({ authorization: `Bearer ${t}`, 'content-type': 'application/json' });
  // 200 claims by bob, half submitted; one is the GET target.
  let target = '';
  for (let i = 0; i < 200; i++) {
    const r = await app.inject({ method: 'POST', url: '/t/acme/production/apps/expenses/api/Claim', headers: h(bob.token), payload: JSON.stringify({ title: `claim ${i}`, amount: `${10 + i}.00`, iban: 'DE89370400440532013000', notes: 'n', status: i % 2 ? 'submitted' : 'draft' }) });
    if (r.statusCode !== 201) throw new Error(r.body);
    if (i === 1) target = r.json().id;
  }
  const fire = (path: string, token: string, extra: Partial<Options> = {}) => autocannon({ url: `${base}${path}`, connections, duration: seconds, headers: h(token), workers: 1, ...extra });
  const filter = encodeURIComponent('row.status == "submitted"');
  const results: Record<string, Figure> = {};
  // BENCH_ONLY=get,list20,create picks cases (for profiling); ratios need both sides of a case.
  const only = process.env.BENCH_ONLY?.split(',');
  const want = (c: string) => only === undefined || only.includes(c);
  if (want('get')) results.getManager = await measured((w) => fire(`/Claim/${target}`, carol.token, w));
  if (want('get')) results.getAuditor = await measured((w) => fire(`/Claim/${target}`, erin.token, w));
  // The same record read by its owner, an Employee: the row rule (own) and the IBAN's field rule.
  if (want('get')) results.getEmployeeOwn = await measured((w) => fire(`/Claim/${target}`, bob.token, w));
  if (want('list20')) results.list20 = await measured((w) => fire(`/Claim?filter=${filter}&limit=20`, carol.token, w));
  if (want('create')) results.create = await measured((w) => fire('/Claim', bob.token, { method: 'POST', body: JSON.stringify({ title: 'bench', amount: '5.00', iban: 'DE89370400440532013000' }), ...w }));
  await app.close();

  // The baseline: bare Fastify over HTTPS (same certificate), the same queries on the same table.
  const schema = prod.schema;
  let query: (text: string, params: unknown[]) => Promise<unknown[]>;
  let closeBase: () => Promise<void>;
  if (url) {
    const su = new URL((await server)!.url);
    const u = new URL(url);
    u.username = su.username;
    u.password = su.password;
    const pool = new pg.Pool({ connectionString: u.toString(), max: POOL });
    query = async (text, params) => (await pool.query(text, params)).rows;
    closeBase = () => pool.end();
  } else {
    query = async (text, params) => (await database.db.executeQuery(CompiledQuery.raw(text, params))).rows as unknown[];
    closeBase = async () => {};
  }
  const bare = Fastify({ https: tls });
  const cols = 'id, _version, title, amount::text, currency, status, iban, notes, owner, category';
  bare.get('/claim/:id', async (req) => (await query(`select ${cols} from "${schema}"."Claim" where id = $1::uuid`, [(req.params as { id: string }).id]))[0]);
  bare.get('/claims', async () => query(`select ${cols} from "${schema}"."Claim" where status = $1 order by id limit 20`, ['submitted']));
  bare.post('/claims', async (req) => {
    const b = req.body as { title: string; amount: string };
    return (await query(`insert into "${schema}"."Claim" (title, amount, owner) values ($1, $2::numeric, $3::uuid) returning ${cols}`, [b.title, b.amount, bob.id]))[0];
  });
  await bare.listen({ host: '127.0.0.1', port: 0 });
  const bport = (bare.server.address() as { port: number }).port;
  const bfire = (path: string, extra: Partial<Options> = {}) => autocannon({ url: `https://127.0.0.1:${bport}${path}`, connections, duration: seconds, headers: { 'content-type': 'application/json' }, workers: 1, ...extra });
  if (want('get')) results.baselineGet = await measured((w) => bfire(`/claim/${target}`, w));
  if (want('list20')) results.baselineList20 = await measured((w) => bfire('/claims', w));
  if (want('create')) results.baselineCreate = await measured((w) => bfire('/claims', { method: 'POST', body: JSON.stringify({ title: 'bench', amount: '5.00' }), ...w }));
  await bare.close();
  await closeBase();
  await plane.close();
  await database.close();
  const ratio = (a: Figure, b: Figure) => Math.round((a.rps / b.rps) * 1000) / 1000;
  const cases = [
    ['get', results.getManager, results.baselineGet],
    ['list20', results.list20, results.baselineList20],
    ['create', results.create, results.baselineCreate],
  ] as const;
  const pairs = (f: (platform: Figure, bare: Figure) => number) => Object.fromEntries(cases.flatMap(([k, a, b]) => (a && b ? [[k, f(a, b)]] : [])));
  return {
    engine,
    wafMode: wafMode ?? 'default',
    figures: results,
    ratios: pairs((a, b) => ratio(a, b)),
    // Baseline CPU over platform CPU per request: the throughput ratio on a CPU-bound server
    // thread, a figure that does not move when other work shares the machine.
    cpuRatios: pairs((a, b) => Math.round((b.cpuUs / Math.max(1, a.cpuUs)) * 1000) / 1000),
  };
}

let server: Promise<PostgresServer> | undefined;

export async function run(): Promise<void> {
  // The benchmark's own self-signed certificate.
  process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
  const seconds = positiveInt('BENCH_SECONDS', 5);
  const connections = positiveInt('BENCH_CONNECTIONS', 10);
  const out: Record<string, unknown> = { machine: machine(), seconds, connections, pool: POOL };
  try {
    server = startPostgres({ tls: false });
    const url = await createOwnedDatabase((await server).url, 'benchapi');
    out.postgres = await engineRun('postgres', url, seconds, connections);
    console.log(JSON.stringify(out.postgres));
    if (process.env.BENCH_PGLITE !== '0') {
      out.pglite = await engineRun('pglite', undefined, seconds, connections);
      console.log(JSON.stringify(out.pglite));
    }
  } finally {
    await (await server)?.stop();
  }
  await writeFile(RESULTS, `${JSON.stringify(out, null, 2)}\n`);
  console.log(`written ${RESULTS}`);
}
