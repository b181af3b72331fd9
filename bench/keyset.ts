// A rule-filtered keyset page over a 1,000,000-row entity (issue 12's last benchmark figure): on
// PostgreSQL started by the harness, an app whose Employee reads only its own rows, deployed with
// the indexes the app validator recommends for its rules (the bench compiles the manifest without
// indexes, takes the APP_RULE_UNINDEXED hints and adds exactly those), then 1M rows bulk-loaded as
// the stage owner with INSERT ... SELECT generate_series over many owners. Measured, sequentially:
// one Employee's first page (limit 20) and a page deep in through its cursor, (a) through the data
// API's list function inside a stage session (kernel session, rule SQL, RLS, keyset, audit) and
// (b) through the whole HTTP stack in process (inject: authentication, WAF, quotas, routing,
// serialization; no TLS or socket), with the statement's EXPLAIN (ANALYZE, BUFFERS).
// For comparison, the same with an index on the rule's column alone instead.
// BENCH_ROWS (default 1000000), BENCH_OWNERS (default 1000), BENCH_N requests per figure (2000).
import { writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { CompiledQuery, type QueryResult, sql } from 'kysely';
import pino from 'pino';
import { compileManifestText } from '../src/apps/index.ts';
import { type RequestScope, listRecords } from '../src/apps/data-api/service.ts';
import { ephemeralSigner } from '../src/audit-chain/index.ts';
import { loadConfig } from '../src/config/index.ts';
import { migrate, openDatabase } from '../src/db/index.ts';
import { openDataPlane, runAsStage, type StageSession } from '../src/kernel/index.ts';
import { buildApp } from '../src/server/index.ts';
import { compileForTest, installApp } from '../test/harness/apps.ts';
import { endUser, type Platform, type TestStage } from '../test/harness/data-api.ts';
import { testIamKey } from '../test/harness/iam.ts';
import { testKeyring } from '../test/harness/keys.ts';
import { startPostgres } from '../test/harness/postgres.ts';
import { createTenant } from '../src/tenancy/index.ts';
import { systemSource } from '../src/audit-chain/index.ts';
import { createOwnedDatabase, machine, positiveInt } from './lib.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESULTS = join(ROOT, 'bench', 'results', 'keyset.json');
const BENCH_FLAGS = { logLevel: 'silent', rateLimitUser: '1000000000/60', rateLimitClient: '1000000000/60', rateLimitTenant: '1000000000/60', maxConnectionsPerSource: 0 };
const LIMIT = 20;

// No indexes: the validator is asked which ones the rules need.
const MANIFEST = `app: ledger
version: 1.0.0
roles:
  Employee: { description: Books and reads own entries }
  Manager: { description: Reads every entry }
entities:
  Entry:
    attributes:
      title:  { type: text, required: true, maxLength: 200 }
      amount: { type: decimal, precision: 12, scale: 2, required: true }
      status: { type: enum, values: [open, booked, void], default: open, required: true }
      owner:  { type: user, required: true, immutable: true }
    access:
      read:
        - Manager
        - { role: Employee, where: row.owner == auth.user }
      create:
        - { role: Employee, preset: { owner: auth.user } }
`;

/** The manifest with the indexes of the validator's APP_RULE_UNINDEXED hints (`add indexes: [[a, b]] to E`). */
function withRecommendedIndexes(text: string): { text: string; indexes: string[][] } {
  const c = compileManifestText(text, { file: 'ledger.app.yaml' });
  if (!c.ok) throw new Error(`bench manifest invalid: ${c.errors.map((e) => e.message).join('; ')}`);
  const indexes: string[][] = [];
  for (const w of c.warnings.filter((x) => x.code === 'APP_RULE_UNINDEXED')) {
    const m = /add indexes: \[\[([^\]]+)\]\] to Entry/.exec(w.hint);
    if (!m) throw new Error(`unexpected hint: ${w.hint}`);
    const cols = (m[1] as string).split(',').map((s) => s.trim());
    if (!indexes.some((ix) => ix.join() === cols.join())) indexes.push(cols);
  }
  if (indexes.length === 0) throw new Error('the validator recommends no index for the owner rule');
  const out = text.replace('    access:\n', `    indexes: [${indexes.map((ix) => `[${ix.join(', ')}]`).join(', ')}]\n    access:\n`);
  const again = compileManifestText(out, { file: 'ledger.app.yaml' });
  if (again.warnings.some((x) => x.code === 'APP_RULE_UNINDEXED')) throw new Error('still unindexed after adding the recommended indexes');
  return { text: out, indexes };
}

interface Stats {
  n: number;
  p50: number;
  p99: number;
  mean: number;
}
const round = (x: number) => Math.round(x * 1000) / 1000;
function stats(ms: number[]): Stats {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
  return { n: s.length, p50: round(at(0.5)), p99: round(at(0.99)), mean: round(s.reduce((a, b) => a + b, 0) / s.length) };
}
async function timed(n: number, fn: () => Promise<void>): Promise<Stats> {
  for (let i = 0; i < Math.min(200, n); i++) await fn();
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    out.push(performance.now() - t);
  }
  return stats(out);
}

/** A session whose statements are recorded (to EXPLAIN the one the list function sent). */
function recording(s: StageSession, seen: CompiledQuery[]): StageSession {
  const db = new Proxy(s.db, {
    get(target, key) {
      // Compiled statements (the data API's templated reads) go straight to executeQuery.
      if (key === 'executeQuery') {
        return (cq: CompiledQuery, qid?: unknown) => {
          seen.push(cq);
          return (target.executeQuery as (a: CompiledQuery, b?: unknown) => Promise<QueryResult<unknown>>)(cq, qid);
        };
      }
      if (key === 'getExecutor') {
        return () => {
          const ex = target.getExecutor();
          return new Proxy(ex, {
            get(et, ek) {
              if (ek === 'executeQuery') return (cq: CompiledQuery, qid: unknown) => {
                seen.push(cq);
                return (et.executeQuery as (a: CompiledQuery, b: unknown) => Promise<QueryResult<unknown>>)(cq, qid);
              };
              const v = Reflect.get(et, ek);
              return typeof v === 'function' ? v.bind(et) : v;
            },
          });
        };
      }
      const v = Reflect.get(target, key);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  // Reads go out as one batch with the COMMIT (pipelined sessions): record those too.
  return {
    ...s,
    db,
    batch: (qs, opts) => {
      seen.push(...qs);
      return s.batch(qs, opts);
    },
  };
}

export async function run(): Promise<void> {
  const rows = positiveInt('BENCH_ROWS', 1_000_000);
  const owners = positiveInt('BENCH_OWNERS', 1000);
  const n = positiveInt('BENCH_N', 2000);
  const { text, indexes } = withRecommendedIndexes(MANIFEST);
  const server = await startPostgres({ tls: false });
  const out: Record<string, unknown> = { machine: machine(), engine: 'postgres', rows, owners, rowsPerOwner: Math.round(rows / owners), limit: LIMIT, requests: n, recommendedIndexes: indexes };
  try {
    const url = await createOwnedDatabase(server.url, 'benchkeyset');
    const database = await openDatabase({ dataDir: 'unused', inMemory: false, databaseUrl: url, maxConnections: 4 });
    await migrate(database.db);
    const keyring = await testKeyring();
    const plane = await openDataPlane(database, { databaseUrl: url, kms: keyring.kms, maxConnections: 2 });
    const cursorMac = (data: string) => testIamKey.mac('data-cursor', data);
    const app = await buildApp({ config: loadConfig({ env: {}, flags: BENCH_FLAGS }), database, logger: pino({ level: 'silent' }), signer: ephemeralSigner(), keyring, iamKey: testIamKey, dataPlane: plane });
    const p = { database, url, keyring, plane, app } as unknown as Platform;
    const t = await createTenant(database.db, keyring, systemSource, { name: 'acme' });
    const s0 = t.stages.find((s) => s.name === 'production');
    if (!s0) throw new Error('no production stage');
    const st: TestStage = { tenantId: t.id, tenant: 'acme', stageId: s0.id, stage: s0.name, schema: s0.schema, role: s0.role };
    const ir = await installApp(database.db, 'postgres', st, text, { file: 'ledger.app.yaml' });
    // The revision the API runs (cursors are bound to it, so both paths share them).
    const { revision } = compileForTest(text, 'ledger.app.yaml');
    const bob = await endUser(p, st, 'bob@acme.test', 'ledger', ['Employee']);

    // Bulk load as the stage owner: FORCE row-level security binds even the owner, so it is lifted
    // for this one transaction (the rows are ours, not a caller's). Owner i % owners; bob is owner 0.
    const load = performance.now();
    await database.db.transaction().execute(async (trx) => {
      const ownerIds = [bob.id, ...Array.from({ length: owners - 1 }, () => crypto.randomUUID())];
      await sql`set local role ${sql.id(st.role)}`.execute(trx);
      await sql`alter table ${sql.id(st.schema, 'Entry')} no force row level security`.execute(trx);
      await sql`insert into ${sql.id(st.schema, 'Entry')} (title, amount, status, owner)
        select 'entry ' || i, (i % 100000) / 100.0, (array['open', 'booked', 'void'])[1 + i % 3], (${ownerIds}::uuid[])[1 + i % ${owners}]
        from generate_series(0, ${rows - 1}) as i`.execute(trx);
      await sql`alter table ${sql.id(st.schema, 'Entry')} force row level security`.execute(trx);
      await sql`analyze ${sql.id(st.schema, 'Entry')}`.execute(trx);
    });
    out.loadSeconds = round((performance.now() - load) / 1000);
    const size = await sql<{ table: string; indexes: string }>`select pg_size_pretty(pg_table_size(${`${st.schema}."Entry"`}::regclass)) as table, pg_size_pretty(pg_indexes_size(${`${st.schema}."Entry"`}::regclass)) as indexes`.execute(database.db);
    out.size = size.rows[0];

    const stage = { tenantId: st.tenantId, stageId: st.stageId, schema: st.schema, role: st.role };
    const caller = { kind: 'end-user' as const, principalId: bob.id, roles: ['Employee'], requestId: 'bench-keyset' };
    const scope = (): RequestScope => ({ deps: { db: database.db, keyring, cursorMac }, app: ir, revision, tenantId: st.tenantId, stageId: st.stageId, schema: st.schema, caller: { user: bob.id, roles: ['Employee'], now: new Date() } });
    const list = (cursor?: string) => runAsStage(plane, stage, caller, (s) => listRecords(s, scope(), 'Entry', { limit: LIMIT, params: new Map(), ...(cursor ? { cursor } : {}) }));

    // A cursor deep into bob's rows: walk most of the way by pages.
    const deepPages = Math.max(1, Math.floor(rows / owners / LIMIT) - 5);
    let cursor: string | undefined;
    let walked = 0;
    for (let i = 0; i < deepPages; i++) {
      const page = await list(cursor);
      walked += page.items.length;
      if (!page.next) break;
      cursor = page.next;
    }
    if (!cursor) throw new Error('no deep cursor');
    out.deepPageAfterRows = walked;

    const explain = async (c?: string) => {
      const seen: CompiledQuery[] = [];
      await runAsStage(plane, stage, caller, (s) => listRecords(recording(s, seen), scope(), 'Entry', { limit: LIMIT, params: new Map(), ...(c ? { cursor: c } : {}) }));
      const q = seen.find((x) => /order by/i.test(x.sql));
      if (!q) throw new Error('the list statement was not seen');
      const plan = await runAsStage(plane, stage, caller, async (s) => (await s.db.executeQuery(CompiledQuery.raw(`explain (analyze, buffers) ${q.sql}`, [...q.parameters]))).rows);
      return { sql: q.sql, plan: plan.map((r) => (r as Record<string, string>)['QUERY PLAN']) };
    };
    const headers = { authorization: `Bearer ${bob.token}` };
    const base = '/t/acme/production/apps/ledger/api/Entry';
    const http = async (c?: string) => {
      const r = await app.inject({ method: 'GET', url: `${base}?limit=${LIMIT}${c ? `&cursor=${encodeURIComponent(c)}` : ''}`, headers });
      if (r.statusCode !== 200) throw new Error(`HTTP ${r.statusCode}: ${r.body}`);
    };
    const measure = async () => ({
      listFunction: { firstPage: await timed(n, async () => void (await list())), deepPage: await timed(n, async () => void (await list(cursor))) },
      http: { firstPage: await timed(n, () => http()), deepPage: await timed(n, () => http(cursor)) },
      explain: { firstPage: await explain(), deepPage: await explain(cursor) },
    });
    out.recommended = await measure();
    console.log(JSON.stringify({ recommended: { listFunction: (out.recommended as { listFunction: unknown }).listFunction, http: (out.recommended as { http: unknown }).http } }));

    // For comparison: the rule's column alone (what the validator recommended before its hints
    // ended read-rule indexes with the id): every page then reads all of the owner's rows and sorts.
    const recommendedNames = (ir.entities.find((e) => e.name === 'Entry')?.indexes ?? []).map((ix) => ix.name);
    await database.db.transaction().execute(async (trx) => {
      await sql`set local role ${sql.id(st.role)}`.execute(trx);
      for (const name of recommendedNames) await sql`drop index ${sql.id(st.schema, name)}`.execute(trx);
      await sql`create index entry_owner_only on ${sql.id(st.schema, 'Entry')} (owner)`.execute(trx);
      await sql`analyze ${sql.id(st.schema, 'Entry')}`.execute(trx);
    });
    out.ownerOnlyIndex = await measure();
    console.log(JSON.stringify({ ownerOnlyIndex: { listFunction: (out.ownerOnlyIndex as { listFunction: unknown }).listFunction, http: (out.ownerOnlyIndex as { http: unknown }).http } }));

    await app.close();
    await plane.close();
    await database.close();
  } finally {
    await server.stop();
  }
  // The machine is shared: the load at the end belongs with the figures as much as the start's.
  out.loadAverage1mAtEnd = Math.round((loadavg()[0] ?? 0) * 100) / 100;
  await writeFile(RESULTS, `${JSON.stringify(out, null, 2)}\n`);
  console.log(`written ${RESULTS}`);
}
