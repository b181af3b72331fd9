// `npm run bench -- waf` (issue 14): the in-process WAF through the platform's real HTTPS server.
//
// The server is buildApp() with TLS on PGlite, plus one catch-all echo route standing for "an
// application route that accepts this content" (what the CRS test runner's backend is): it
// answers 200 to any method and path and takes any content type (JSON, forms, text, XML as text),
// so every request reaches the WAF's preHandler with its body parsed as the platform parses it.
//
// 1. Detection: every line of ../shared/corpora/crs/attack-public.jsonl sent over HTTPS as the CRS
//    test runner sends it (method, URI, headers, body), at paranoia levels 1-4. A 403 WAF_BLOCKED
//    is a detection; a refusal by the platform before the WAF (a URL the router cannot decode, a
//    NUL byte) is counted apart; requests node's HTTP client refuses to send are listed.
// 2. False positives: the `fortunes` quotes (Debian package fortunes) as a form field, a JSON
//    field and a query value; and the realistic API traffic set (bench/waf/traffic.jsonl), with
//    and without the field kinds an app manifest gives.
// 3. Throughput: autocannon, WAF off vs block (PL1), a benign GET and a 1 KB JSON POST, in turns.
//
// Knobs: BENCH_SECONDS (5 per round), BENCH_ROUNDS (2), BENCH_CONNECTIONS (10),
// BENCH_FORTUNE_STEP (1: every quote; n: every n-th, for a quick run), BENCH_PLS (1,2,3,4).
import { fortunes } from './waf/fortunes.ts';
import { readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { ephemeralSigner } from '../src/audit-chain/index.ts';
import { loadConfig } from '../src/config/index.ts';
import { migrate, openDatabase } from '../src/db/index.ts';
import { buildApp } from '../src/server/index.ts';
import { loadOrCreateTlsMaterial } from '../src/server/tls/index.ts';
import { DEFAULT_SETTINGS } from '../src/waf/index.ts';
import { testKeyring } from '../test/harness/keys.ts';
import { machine, positiveInt } from './lib.ts';
import { MANIFEST_KINDS, type TrafficRequest } from './waf/traffic.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CORPUS = join(ROOT, '..', 'shared', 'corpora', 'crs', 'attack-public.jsonl');
const RESULTS = join(ROOT, 'bench', 'results', 'waf.json');
// The traffic set's data-API paths go to the echo route under this prefix: the real data API
// (mounted at /t/...) would answer 401 or 404 before the WAF, and nothing would be measured.
const ECHO = '/echo';

interface Attack {
  id: string;
  category: string;
  pl: number;
  method: string;
  uri: string;
  headers: Record<string, string>;
  body: string | null;
}

interface Answer {
  status: number;
  code?: string;
  error?: string;
}

const agent = new Agent({ keepAlive: true, maxSockets: 16, rejectUnauthorized: false });

function send(port: number, method: string, path: string, headers: Record<string, string>, body?: string): Promise<Answer> {
  return new Promise((resolve) => {
    let req: ReturnType<typeof request>;
    try {
      req = request({ host: '127.0.0.1', port, method, path, headers, agent, servername: 'localhost' }, (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          data += d;
        });
        res.on('end', () => {
          let code: string | undefined;
          try {
            code = (JSON.parse(data) as { code?: string }).code;
          } catch {}
          resolve({ status: res.statusCode ?? 0, ...(code ? { code } : {}) });
        });
      });
    } catch (err) {
      resolve({ status: 0, error: (err as { code?: string }).code ?? String(err) });
      return;
    }
    req.on('error', (err) => resolve({ status: 0, error: (err as { code?: string }).code ?? String(err) }));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** Runs `fn` over `items` with `n` in flight. */
async function pool<T, R>(items: readonly T[], n: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i] as T);
      }
    }),
  );
  return out;
}


async function server(): Promise<{ app: FastifyInstance; port: number; kinds: { on: boolean } }> {
  const dir = await mkdtemp(join(tmpdir(), 'accord-waf-bench-'));
  // The quotas stay on but out of reach (as in bench/api.ts): the corpus is 1,530 requests a
  // minute from one address, which the default per-client limit would refuse before the WAF.
  const config = loadConfig({ env: {}, flags: { logLevel: 'silent', dataDir: dir, rateLimitIp: '1000000000/60', rateLimitUser: '1000000000/60', rateLimitClient: '1000000000/60', rateLimitTenant: '1000000000/60', maxConnectionsPerSource: 0 } });
  const database = await openDatabase({ dataDir: dir, inMemory: true });
  await migrate(database.db);
  const tls = await loadOrCreateTlsMaterial({ dataDir: dir });
  const kinds = { on: false };
  const app = await buildApp({
    config,
    database,
    logger: pino({ level: 'silent' }),
    signer: ephemeralSigner(),
    keyring: await testKeyring(),
    https: { key: tls.key, cert: tls.cert },
    // What the data API supplies from the app manifest (bench/waf/traffic.ts): on for the tuned run.
    wafFieldKinds: (req) => (kinds.on && req.url.startsWith(ECHO) ? MANIFEST_KINDS : undefined),
  });
  await app.register(async (child) => {
    child.removeAllContentTypeParsers();
    child.addContentTypeParser('*', { parseAs: 'string' }, (req, body, done) => {
      const ct = String(req.headers['content-type'] ?? '');
      const text = body as string;
      try {
        if (/json/i.test(ct)) return done(null, JSON.parse(text));
      } catch {
        return done(null, text);
      }
      if (/x-www-form-urlencoded/i.test(ct) || ct === '') return done(null, Object.fromEntries(new URLSearchParams(text)));
      done(null, text);
    });
    child.route({ method: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'], url: '/*', config: { access: { kind: 'public' } }, handler: async () => ({ ok: true }) });
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return { app, port, kinds };
}

const pct = (a: number, b: number) => (b === 0 ? 0 : Math.round((1000 * a) / b) / 10);

export async function run(): Promise<void> {
  const pls = (process.env.BENCH_PLS ?? '1,2,3,4').split(',').map(Number);
  const step = positiveInt('BENCH_FORTUNE_STEP', 1);
  const { app, port, kinds } = await server();
  const setPl = (pl: number, mode: 'off' | 'block' = 'block') => app.waf.setControlPlane({ ...DEFAULT_SETTINGS, mode, paranoiaLevel: pl });
  const attacks = readFileSync(CORPUS, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Attack);

  // 1. Detection.
  const detection: Record<string, unknown> = {};
  const unsendable = new Map<string, string>();
  const beforeWaf = new Map<string, string>();
  for (const pl of pls) {
    setPl(pl);
    const answers = await pool(attacks, 8, (a) => {
      const headers = { ...a.headers };
      if (a.body !== null && a.body !== undefined) headers['Content-Length'] = String(Buffer.byteLength(a.body));
      return send(port, a.method, a.uri, headers, a.body ?? undefined);
    });
    const byCat: Record<string, { detected: number; total: number; platform: number; unsendable: number }> = {};
    attacks.forEach((a, i) => {
      const r = answers[i] as Answer;
      const key = a.category;
      byCat[key] ??= { detected: 0, total: 0, platform: 0, unsendable: 0 };
      const c = byCat[key];
      c.total++;
      if (r.error) {
        c.unsendable++;
        unsendable.set(a.id, r.error);
      } else if (r.status === 403 && r.code === 'WAF_BLOCKED') c.detected++;
      else if (r.status >= 400 && r.status !== 404) {
        c.platform++;
        beforeWaf.set(a.id, `${r.status} ${r.code ?? ''}`);
      }
    });
    const total = Object.values(byCat).reduce((s, c) => ({ detected: s.detected + c.detected, total: s.total + c.total, platform: s.platform + c.platform, unsendable: s.unsendable + c.unsendable }), { detected: 0, total: 0, platform: 0, unsendable: 0 });
    detection[`PL${pl}`] = { total: { ...total, rate: pct(total.detected, total.total - total.unsendable) }, byCategory: Object.fromEntries(Object.entries(byCat).sort().map(([k, c]) => [k, { ...c, rate: pct(c.detected, c.total - c.unsendable) }])) };
    const statuses: Record<string, number> = {};
    for (const st of beforeWaf.values()) statuses[st] = (statuses[st] ?? 0) + 1;
    if (total.platform > 0) console.log(`  refused before the WAF, by status: ${JSON.stringify(statuses)}`);
    console.log(`detection PL${pl}: ${total.detected}/${total.total - total.unsendable} = ${pct(total.detected, total.total - total.unsendable)}% (refused by the platform before the WAF: ${total.platform}; unsendable: ${total.unsendable})`);
  }

  // 2. False positives.
  const quotes = fortunes(step);
  const fp: Record<string, unknown> = {};
  const traffic = readFileSync(join(ROOT, 'bench', 'waf', 'traffic.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as TrafficRequest);
  for (const pl of pls) {
    setPl(pl);
    const shapes = {
      form: (q: string) => send(port, 'POST', '/post', { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': 'Mozilla/5.0' }, new URLSearchParams({ comment: q }).toString()),
      json: (q: string) => send(port, 'POST', '/post', { 'content-type': 'application/json', 'user-agent': 'Mozilla/5.0' }, JSON.stringify({ comment: q })),
      query: (q: string) => send(port, 'GET', `/get?${new URLSearchParams({ comment: q })}`, { 'user-agent': 'Mozilla/5.0' }),
    };
    const row: Record<string, unknown> = {};
    let blocked = 0;
    let sent = 0;
    for (const [shape, fn] of Object.entries(shapes)) {
      const answers = await pool(quotes, 8, fn);
      const b = answers.filter((r) => r.code === 'WAF_BLOCKED').length;
      row[shape] = { blocked: b, total: answers.length, rate: pct(b, answers.length) };
      blocked += b;
      sent += answers.length;
    }
    row.all = { blocked, total: sent, rate: pct(blocked, sent) };
    const api: Record<string, unknown> = {};
    for (const tuned of [false, true]) {
      kinds.on = tuned;
      const answers = await pool(traffic, 8, (t) =>
        send(port, t.method, `${ECHO}${t.url}`, { 'user-agent': 'accord-sdk/1.0', ...(t.contentType ? { 'content-type': t.contentType } : {}) }, t.body === undefined ? undefined : JSON.stringify(t.body)),
      );
      const ids = traffic.filter((_t, i) => answers[i]?.code === 'WAF_BLOCKED').map((t) => t.id);
      // Every request must reach the echo route or be blocked: anything else was not measured.
      const unmeasured = answers.filter((a) => a.code !== 'WAF_BLOCKED' && a.status !== 200);
      if (unmeasured.length > 0) throw new Error(`${unmeasured.length} traffic requests neither reached the echo route nor were blocked (first: ${unmeasured[0]?.status} ${unmeasured[0]?.code ?? ''})`);
      api[tuned ? 'tunedByManifest' : 'untuned'] = { blocked: ids.length, total: traffic.length, rate: pct(ids.length, traffic.length), examples: ids.slice(0, 10) };
    }
    kinds.on = false;
    fp[`PL${pl}`] = { fortunes: row, api };
    console.log(`false positives PL${pl}: fortunes ${pct(blocked, sent)}% of ${sent}; API untuned ${(api.untuned as { rate: number }).rate}%, tuned ${(api.tunedByManifest as { rate: number }).rate}% of ${traffic.length}`);
  }

  // 3. Throughput, off vs block at PL1, in turns.
  const seconds = positiveInt('BENCH_SECONDS', 5);
  const rounds = positiveInt('BENCH_ROUNDS', 2);
  const connections = positiveInt('BENCH_CONNECTIONS', 10);
  const kb = JSON.stringify({ name: 'Ada Lovelace', email: 'ada@example.org', notes: 'x'.repeat(0), bio: 'Mathematician and writer, chiefly known for her work on the proposed mechanical general-purpose computer, the Analytical Engine. '.repeat(7).slice(0, 900) });
  const cases = {
    get: { method: 'GET' as const, path: '/api/v1/bench/items?page=2&sort=name', headers: {} as Record<string, string>, body: undefined as string | undefined },
    post: { method: 'POST' as const, path: '/api/v1/bench/items', headers: { 'content-type': 'application/json' }, body: kb },
  };
  const through: Record<string, Record<string, { rps: number[]; p99: number[] }>> = { get: { off: { rps: [], p99: [] }, block: { rps: [], p99: [] } }, post: { off: { rps: [], p99: [] }, block: { rps: [], p99: [] } } };
  for (let r = 0; r < rounds; r++) {
    for (const [name, c] of Object.entries(cases)) {
      for (const mode of ['off', 'block'] as const) {
        setPl(1, mode);
        const res = await autocannon({ url: `https://127.0.0.1:${port}${c.path}`, method: c.method, headers: c.headers, ...(c.body ? { body: c.body } : {}), connections, duration: seconds, tlsOptions: { rejectUnauthorized: false } } as never);
        const t = through[name]?.[mode];
        const non2xx = (res as { non2xx?: number }).non2xx ?? 0;
        if (non2xx > 0) throw new Error(`throughput ${name} ${mode}: ${non2xx} answers were not 2xx; the figure would not measure the WAF`);
        t?.rps.push((res as { requests: { average: number } }).requests.average);
        t?.p99.push((res as { latency: { p99: number } }).latency.p99);
      }
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
  const throughput = Object.fromEntries(
    Object.entries(through).map(([name, m]) => {
      const off = median(m.off?.rps ?? []);
      const block = median(m.block?.rps ?? []);
      return [name, { offRps: off, blockRps: block, offP99Ms: median(m.off?.p99 ?? []), blockP99Ms: median(m.block?.p99 ?? []), cost: pct(off - block, off) }];
    }),
  );
  console.log('throughput', JSON.stringify(throughput));
  await app.close();
  agent.destroy();
  const result = {
    at: new Date().toISOString(),
    machine: machine(),
    corpus: { attacks: attacks.length, fortunes: quotes.length, fortuneStep: step, traffic: traffic.length },
    detection,
    unsendable: Object.fromEntries(unsendable),
    refusedBeforeWaf: Object.fromEntries(beforeWaf),
    falsePositives: fp,
    throughput: { seconds, rounds, connections, ...throughput },
  };
  writeFileSync(RESULTS, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`results in ${RESULTS}`);
}
