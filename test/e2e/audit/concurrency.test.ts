// Two platform server processes on one PostgreSQL database, both writing audit records as fast as
// the test can make them and both sealing them: every chain must stay one gap-free, valid hash chain
// (issue 3, "Tests"; the request-kernel issue's two-node sealing test). Each tenant search adds a
// record to that tenant's chain; anonymous requests to protected routes are refused and counted
// into per-source summaries (issue 10), so they add no record per request to any chain. Writers
// take no lock; each node's sealer links the records of both nodes into their chains, and the chain
// head's row lock, taken by the sealers only, is what keeps the two nodes from forking a chain.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { newPostgresDatabaseUrl, superuserUrl } from '../../harness/engines.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'accord.js');
const EMAIL = 'ops@example.test';
const PASSWORD = 'correct horse battery staple';
const READY_TIMEOUT_MS = 60_000;
/** Requests per node, and how many each node has in flight at once. */
const REQUESTS_PER_NODE = 1500;
const IN_FLIGHT_PER_NODE = 24;

/** Our environment without ACCORD_* (the harness sets some), plus `extra`. */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ACCORD_')) env[k] = v;
  return { ...env, ...extra };
}

interface Ready {
  event: 'ready';
  url: string;
  caFile: string;
  setup: { state: string; token?: string };
}

/** One `accord start` child with an HTTPS agent that trusts its generated CA. */
class Node {
  readonly name: string;
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  output = '';
  ready: Ready | undefined;
  agent: Agent | undefined;
  port = 0;

  constructor(name: string, args: readonly string[], env: Record<string, string>) {
    this.name = name;
    // Debug level: the sealer says at that level how many records each of its passes sealed.
    this.child = spawn(process.execPath, [BIN, 'start', '--json', '--port', '0', '--log-level', 'debug', ...args], {
      cwd: ROOT,
      env: childEnv(env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.once('error', () => {}); // surfaces as an exit
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
    const keep = (d: Buffer) => {
      this.output += d;
    };
    this.child.stdout?.on('data', keep);
    this.child.stderr?.on('data', keep);
  }

  /** Waits for the `ready` line, then builds a keep-alive agent trusting the node's CA. */
  async start(): Promise<Ready> {
    const ready = await new Promise<Ready>((resolve, reject) => {
      const check = () => {
        for (const line of this.output.split('\n')) {
          try {
            const doc = JSON.parse(line) as Partial<Ready>;
            if (doc?.event === 'ready') return finish(() => resolve(doc as Ready));
          } catch {
            // a log line or a partial line
          }
        }
      };
      const finish = (fn: () => void) => {
        clearTimeout(timer);
        this.child.stdout?.off('data', check);
        fn();
      };
      const timer = setTimeout(() => finish(() => reject(new Error(`${this.name}: no ready line within ${READY_TIMEOUT_MS} ms\n${this.output}`))), READY_TIMEOUT_MS);
      this.child.stdout?.on('data', check);
      void this.exited.then(() => finish(() => reject(new Error(`${this.name}: exited before ready\n${this.output}`))));
      check();
    });
    this.ready = ready;
    this.port = Number(new URL(ready.url).port);
    this.agent = new Agent({ keepAlive: true, ca: await readFile(ready.caFile, 'utf8'), maxSockets: IN_FLIGHT_PER_NODE });
    return ready;
  }

  /** One HTTPS request; resolves with the status and the parsed JSON body (if any). */
  call(method: string, path: string, opts: { token?: string; body?: unknown } = {}): Promise<{ status: number; body: unknown }> {
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const headers: Record<string, string> = {};
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    if (payload !== undefined) headers['content-type'] = 'application/json';
    return new Promise((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: this.port, path, method, servername: 'localhost', agent: this.agent, headers },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            text += c;
          });
          res.on('end', () => {
            let body: unknown = text;
            try {
              body = text ? JSON.parse(text) : null;
            } catch {
              // not JSON: keep the text for the failure message
            }
            resolve({ status: res.statusCode ?? 0, body });
          });
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** SIGTERM, then SIGKILL if it lingers. */
  async kill(): Promise<void> {
    this.agent?.destroy();
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(t);
  }
}

interface ChainRow {
  chain_id: string;
  /** Every row, sealed or not. */
  count: number;
  sealed: number;
  min: number;
  max: number;
}

/** Rows per chain straight from the table, as the harness superuser (no application code in between). */
async function chainRows(url: string): Promise<Map<string, ChainRow>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ chain_id: string; count: string; sealed: string; min: string; max: string }>(
      'select chain_id, count(*), count(seq) as sealed, min(seq), max(seq) from accord.audit_events group by chain_id',
    );
    return new Map(rows.map((r) => [r.chain_id, { chain_id: r.chain_id, count: Number(r.count), sealed: Number(r.sealed), min: Number(r.min), max: Number(r.max) }]));
  } finally {
    await client.end();
  }
}

/** Records a node's sealer reports having sealed (its debug lines `audit events sealed`). */
function sealedBy(node: Node): number {
  let n = 0;
  for (const line of node.output.split('\n')) {
    if (!line.includes('audit events sealed')) continue;
    try {
      n += Number((JSON.parse(line) as { sealed?: number }).sealed ?? 0);
    } catch {
      // a partial line
    }
  }
  return n;
}

type Kind = 'acme' | 'globex' | 'anonymous';
const KINDS: readonly Kind[] = ['acme', 'globex', 'anonymous'];
// Protected routes an anonymous caller is turned away from; each refusal is one record on the chain
// of the tenant in the path, or on the platform chain.
const ANONYMOUS_PATHS = ['/api/v1/tenants', '/api/v1/tenants/acme/audit', '/api/v1/audit', '/api/v1/tenants/globex'];

const chainOfPath = (path: string): 'acme' | 'globex' | 'platform' => (path.startsWith('/api/v1/tenants/acme') ? 'acme' : path.startsWith('/api/v1/tenants/globex') ? 'globex' : 'platform');

interface Tally {
  ok: Record<Kind, number>;
  /** Refused anonymous requests by the chain their refusal is recorded on. */
  refusedOn: Record<'acme' | 'globex' | 'platform', number>;
  /** Milliseconds per request, by kind (for the diagnostics). */
  ms: Record<Kind, number[]>;
  /** Anything but 200 for a search or 401 for an anonymous request: `kind status` → count. */
  unexpected: Map<string, number>;
  errors: string[];
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s[Math.floor(s.length / 2)]!;
}

/** Sends `total` requests to one node with `inFlight` of them outstanding at any time. */
async function burst(node: Node, token: string, total: number, inFlight: number, offset: number): Promise<Tally> {
  const tally: Tally = { ok: { acme: 0, globex: 0, anonymous: 0 }, refusedOn: { acme: 0, globex: 0, platform: 0 }, ms: { acme: [], globex: [], anonymous: [] }, unexpected: new Map(), errors: [] };
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < total; i = next++) {
      const kind = KINDS[(i + offset) % KINDS.length]!;
      const [path, auth, want] =
        kind === 'anonymous'
          ? [ANONYMOUS_PATHS[i % ANONYMOUS_PATHS.length]!, undefined, 401]
          : [`/api/v1/tenants/${kind}/audit?limit=1`, token, 200];
      try {
        const t0 = performance.now();
        const res = await node.call('GET', path, auth ? { token: auth } : {});
        tally.ms[kind].push(performance.now() - t0);
        if (res.status === want) {
          tally.ok[kind]++;
          if (kind === 'anonymous') tally.refusedOn[chainOfPath(path)]++;
        }
        else {
          const code = (res.body as { code?: unknown } | null)?.code;
          const key = `${kind} ${res.status} ${typeof code === 'string' ? code : JSON.stringify(res.body).slice(0, 120)}`;
          tally.unexpected.set(key, (tally.unexpected.get(key) ?? 0) + 1);
        }
      } catch (err) {
        tally.errors.push(`${kind}: ${(err as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return tally;
}

describe('two platform nodes writing the audit trail of one PostgreSQL database at once', { concurrency: false }, () => {
  let dir: string;
  let databaseUrl: string;
  let inspectUrl: string;
  const nodes: Node[] = [];
  let a: Node;
  let b: Node;
  let token: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'accord-audit-concurrency-'));
    databaseUrl = await newPostgresDatabaseUrl();
    inspectUrl = await superuserUrl(databaseUrl);
    // Both nodes sign checkpoints with one key, so each trusts the other's checkpoints; frequent
    // checkpoints make both nodes' checkpoint jobs lock chain heads while the writers do.
    const env = {
      ACCORD_AUDIT_SIGNING_KEY_FILE: join(dir, 'shared', 'audit-signing-key.pem'),
      ACCORD_AUDIT_CHECKPOINT_EVERY_RECORDS: '100',
      ACCORD_AUDIT_CHECKPOINT_EVERY_MINUTES: '0.01',
      // This test floods on purpose, from one address: the rate limits would turn it into 429s.
      ACCORD_RATE_LIMIT_IP: 'off',
      ACCORD_RATE_LIMIT_USER: 'off',
      ACCORD_RATE_LIMIT_TENANT: 'off',
      ACCORD_MAX_CONNECTIONS_PER_SOURCE: '0',
    };
    for (const n of ['a', 'b']) await mkdir(join(dir, n));
    a = new Node('node A', ['--data-dir', join(dir, 'a', 'data'), '--database-url', databaseUrl], env);
    nodes.push(a);
    // One at a time: only the first start finds no operator and prints a setup token.
    await a.start();
    // The nodes share the KMS root key (node A made it), as a multi-node installation must: the IAM
    // key in the shared catalog is wrapped by it.
    await cp(join(dir, 'a', 'data', 'kms'), join(dir, 'b', 'data', 'kms'), { recursive: true });
    b = new Node('node B', ['--data-dir', join(dir, 'b', 'data'), '--database-url', databaseUrl], env);
    nodes.push(b);
    await b.start();
  });

  after(async () => {
    await Promise.all(nodes.map((n) => n.kill()));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('the first node to start prints the setup token and the second does not', () => {
    assert.equal(typeof a.ready?.setup.token, 'string', JSON.stringify(a.ready?.setup));
    assert.equal(b.ready?.setup.token, undefined, JSON.stringify(b.ready?.setup));
  });

  test('an operator set up and signed in on node A can create tenants on both nodes', async () => {
    const setup = await a.call('POST', '/api/v1/setup', { body: { token: a.ready!.setup.token, email: EMAIL, password: PASSWORD } });
    assert.equal(setup.status, 201, JSON.stringify(setup.body));
    const login = await a.call('POST', '/api/v1/auth/login', { body: { email: EMAIL, password: PASSWORD } });
    assert.equal(login.status, 200, JSON.stringify(login.body));
    token = (login.body as { accessToken: string }).accessToken;
    // The session lives in the shared database, so node B accepts it too.
    const acme = await a.call('POST', '/api/v1/tenants', { token, body: { name: 'acme' } });
    assert.equal(acme.status, 201, JSON.stringify(acme.body));
    const globex = await b.call('POST', '/api/v1/tenants', { token, body: { name: 'globex' } });
    assert.equal(globex.status, 201, JSON.stringify(globex.body));
  });

  test('thousands of audited requests on both nodes at once leave every chain gap-free and valid', { timeout: 120_000 }, async (t) => {
    assert.ok(token, 'the setup step ran');
    // Chain ids of the tenants, from the verify report (it names each chain's tenant).
    const first = await a.call('POST', '/api/v1/audit/verify', { token, body: {} });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const chainOf = new Map<string, string>();
    for (const c of (first.body as VerifyOut).chains) chainOf.set(c.tenant ?? 'platform', c.chain);
    const acmeChain = chainOf.get('acme');
    const globexChain = chainOf.get('globex');
    const platformChain = chainOf.get('platform');
    assert.ok(acmeChain && globexChain && platformChain, `chains of acme, globex and the platform: ${JSON.stringify([...chainOf])}`);

    const before = await chainRows(inspectUrl);
    const started = performance.now();
    const [ta, tb] = await Promise.all([
      burst(a, token, REQUESTS_PER_NODE, IN_FLIGHT_PER_NODE, 0),
      burst(b, token, REQUESTS_PER_NODE, IN_FLIGHT_PER_NODE, 1),
    ]);
    const seconds = (performance.now() - started) / 1000;
    const sent = 2 * REQUESTS_PER_NODE;
    t.diagnostic(`${sent} requests on 2 nodes (${IN_FLIGHT_PER_NODE} in flight each) in ${seconds.toFixed(1)} s: ${(sent / seconds).toFixed(0)} req/s`);
    for (const [name, tally] of [
      ['A', ta],
      ['B', tb],
    ] as const) {
      const medians = KINDS.map((k) => `${k} ${median(tally.ms[k]).toFixed(0)} ms`).join(', ');
      t.diagnostic(`node ${name}: ${JSON.stringify(tally.ok)}, median latency ${medians}, unexpected ${JSON.stringify([...tally.unexpected])}, errors ${tally.errors.length}`);
    }
    // A 500 here would mean an audit write failed under contention (a deadlock, a serialization error).
    assert.deepEqual([...ta.unexpected, ...tb.unexpected], [], 'every search 200, every anonymous request 401');
    assert.deepEqual([...ta.errors, ...tb.errors].slice(0, 5), [], 'no transport errors');

    const afterBurst = await chainRows(inspectUrl);
    // Verification seals what has committed first (whichever node's sealer has not yet), then checks.
    const verify = await a.call('POST', '/api/v1/audit/verify', { token, body: {} });
    assert.equal(verify.status, 200, JSON.stringify(verify.body));
    const report = verify.body as VerifyOut;
    for (const c of report.chains) t.diagnostic(`chain ${c.tenant ?? 'platform'}: ${c.records} records, last seq ${c.lastSeq}, ${c.checkpointsChecked} checkpoints checked`);
    const bad = report.chains.filter((c) => !c.ok);
    assert.deepEqual(bad, [], 'every chain verifies');
    assert.equal(report.ok, true);
    const [byA, byB] = [sealedBy(a), sealedBy(b)];
    t.diagnostic(`records sealed by node A's sealer: ${byA}, by node B's: ${byB}`);
    assert.ok(byA > 0 && byB > 0, 'both nodes sealed records while both wrote');

    const afterVerify = await chainRows(inspectUrl);
    for (const c of report.chains) {
      assert.equal(c.records, c.lastSeq, `chain ${c.tenant ?? c.chain}: records == lastSeq`);
      const row = afterVerify.get(c.chain);
      assert.ok(row, `chain ${c.chain} has rows`);
      // (chain_id, seq) is unique: sealed == max and min == 1 means exactly 1..max.
      assert.deepEqual({ sealed: row.sealed, min: row.min }, { sealed: row.max, min: 1 }, `chain ${c.tenant ?? c.chain}: seq is exactly 1..${row.max} in the table`);
      // ...which is the verified chain, plus on the platform chain the verification's own record if sealed since.
      const verifiedOwn: number = c.chain === platformChain && row.max === c.lastSeq + 1 ? 1 : 0;
      assert.equal(row.max, c.lastSeq + verifiedOwn, `chain ${c.tenant ?? c.chain}: the table ends where the verified chain does`);
      assert.ok(row.sealed >= (afterBurst.get(c.chain)?.count ?? 0), `chain ${c.tenant ?? c.chain}: every record written before verification is sealed`);
    }
    assert.equal(report.chains.length, afterBurst.size, 'the report covers every chain in the table');
    // Checkpoint jobs run every second on both nodes; their signatures verified above with the shared key.
    assert.ok(
      report.chains.reduce((n, c) => n + c.checkpointsChecked, 0) > 0,
      'signed checkpoints were taken during the run and checked',
    );

    const grew = (chain: string) => afterBurst.get(chain)!.count - (before.get(chain)?.count ?? 0);
    const refused = (on: keyof Tally['refusedOn']) => ta.refusedOn[on] + tb.refusedOn[on];
    assert.ok(refused('acme') > 0 && refused('platform') > 0, 'anonymous requests were refused on tenant and platform paths');
    assert.equal(grew(acmeChain), ta.ok.acme + tb.ok.acme, 'one acme record per successful acme search, none per anonymous refusal on an acme path');
    assert.equal(grew(globexChain), ta.ok.globex + tb.ok.globex, 'one globex record per successful globex search, none per anonymous refusal');
    // At most one summary per node, source and reason (written when a window closes).
    assert.ok(grew(platformChain) <= 2, `the platform chain grew by summaries only (${grew(platformChain)}), not by ${refused('platform')} refusals`);
    assert.equal(ta.ok.acme + tb.ok.acme + ta.ok.globex + tb.ok.globex + ta.ok.anonymous + tb.ok.anonymous, sent);
  });
});

interface VerifyOut {
  ok: boolean;
  chains: {
    chain: string;
    tenant: string | null;
    ok: boolean;
    records: number;
    lastSeq: number;
    checkpointsChecked: number;
    firstBadSeq?: number;
    problem?: string;
  }[];
}
