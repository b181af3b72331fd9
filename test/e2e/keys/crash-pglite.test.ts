// The rotation crash test on the embedded engine: a server on a PGlite data directory is killed
// with SIGKILL while a re-encryption job is half-way; a restart on the same directory takes the
// stale lock over, resumes the job, and every value still decrypts.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { systemSource } from '../../../src/audit-chain/index.ts';
import { Keyring } from '../../../src/crypto/keyring/index.ts';
import { openKms } from '../../../src/crypto/kms/index.ts';
import { migrate, openDatabase } from '../../../src/db/index.ts';
import { ensureBootstrap } from '../../../src/iam/index.ts';
import { readSecret, setSecret } from '../../../src/keys/index.ts';
import { createTenant } from '../../../src/tenancy/index.ts';
import { EMAIL, PASSWORD, type Ready, ServerProcess } from '../../harness/cli.ts';

const COUNT = 1500;

interface KeyJob {
  id: string;
  state: string;
  attempts: number;
  progress: { reencrypted?: number };
}

function api<T>(ready: Ready, agent: Agent, method: string, path: string, token?: string, body?: unknown): Promise<{ status: number; json: T }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      {
        host: '127.0.0.1',
        port: new URL(ready.url).port,
        servername: 'localhost',
        agent,
        method,
        path,
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: (text ? JSON.parse(text) : undefined) as T }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

describe('a rotation job killed with SIGKILL half-way on PGlite resumes on restart', { concurrency: false }, () => {
  let dir: string;
  let dataDir: string;
  const servers: ServerProcess[] = [];
  const values = new Map<string, string>();
  let ids: { tenantId: string; stageId: string };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'accord-crash-pglite-'));
    dataDir = join(dir, 'data');
    // Seed in-process (thousands of API calls would take minutes), then hand the directory over.
    const database = await openDatabase({ dataDir });
    const kms = await openKms({ kms: 'local', dataDir });
    try {
      await migrate(database.db);
      await ensureBootstrap(database.db, { email: EMAIL, password: PASSWORD });
      const keyring = new Keyring(kms);
      const t = await createTenant(database.db, keyring, systemSource, { name: 'acme' });
      const dev = t.stages[0];
      assert.ok(dev);
      ids = { tenantId: t.id, stageId: dev.id };
      for (let i = 0; i < COUNT; i++) {
        const name = `S${String(i).padStart(5, '0')}`;
        const value = `v${i}-${randomBytes(12).toString('hex')}`;
        values.set(name, value);
        await setSecret(database.db, keyring, systemSource, { tenantId: t.id, stageId: dev.id, stageName: dev.name }, name, value);
      }
    } finally {
      await database.close();
      await kms.close();
    }
  });
  after(async () => {
    for (const s of servers) await s.kill();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const start = async (): Promise<{ ready: Ready; agent: Agent; token: string }> => {
    const server = ServerProcess.spawn(['--port', '0', '--data-dir', dataDir, '--log-level', 'warn'], {});
    servers.push(server);
    const ready = await server.ready();
    const agent = new Agent({ keepAlive: true, ca: readFileSync(ready.caFile, 'utf8') });
    const login = await api<{ accessToken: string }>(ready, agent, 'POST', '/api/v1/auth/login', undefined, { email: EMAIL, password: PASSWORD });
    assert.equal(login.status, 200);
    return { ready, agent, token: login.json.accessToken };
  };
  const jobOf = async (ready: Ready, agent: Agent, token: string, id: string) =>
    (await api<{ jobs: KeyJob[] }>(ready, agent, 'GET', '/api/v1/tenants/acme/keys', token)).json.jobs.find((j) => j.id === id);

  let jobId: string;

  test('the server is killed while the re-encryption job is half-way', async (t) => {
    const { ready, agent, token } = await start();
    const r = await api<{ jobId: string }>(ready, agent, 'POST', '/api/v1/tenants/acme/keys/rotate', token, { stage: 'development' });
    assert.equal(r.status, 202);
    jobId = r.json.jobId;
    let seen: KeyJob | undefined;
    const deadline = Date.now() + 60_000;
    for (;;) {
      seen = await jobOf(ready, agent, token, jobId);
      // On PGlite the job and this poll share the one connection, so the poll is answered between
      // two batches: "running" means some batches are done and some are not.
      if (seen?.state === 'done' || seen?.state === 'running') break;
      assert.ok(Date.now() < deadline, 'the job did not start');
    }
    const server = servers.at(-1) as ServerProcess;
    server.child.kill('SIGKILL');
    const exit = await server.exited;
    agent.destroy();
    t.diagnostic(`killed at ${JSON.stringify(seen?.progress)}`);
    assert.equal(exit.signal, 'SIGKILL');
    assert.equal(seen?.state, 'running', 'caught before the job finished');
    // What the killed process left on disk: the job unfinished, every value under v1 or v2.
    // (This poll-and-kill is what exposed batches starving the event loop on PGlite.)
    const database = await openDatabase({ dataDir });
    try {
      const rows = await database.db.selectFrom('accord.stage_secrets').select('key_version').where('stage_id', '=', ids.stageId).execute();
      const v1 = rows.filter((x) => x.key_version === 1).length;
      const v2 = rows.filter((x) => x.key_version === 2).length;
      t.diagnostic(`on disk after the kill: v1 ${v1}, v2 ${v2}`);
      assert.equal(v1 + v2, COUNT);
      assert.ok(v1 > 0, 'the job had not finished');
    } finally {
      await database.close();
    }
  });

  test('a restart on the same data directory resumes the job to the end', async (t) => {
    const { ready, agent, token } = await start();
    const deadline = Date.now() + 60_000;
    let job: KeyJob | undefined;
    for (;;) {
      job = await jobOf(ready, agent, token, jobId);
      if (job?.state === 'done') break;
      assert.ok(Date.now() < deadline, `job still ${job?.state} ${JSON.stringify(job?.progress)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    agent.destroy();
    t.diagnostic(`done after restart: attempts ${job?.attempts}`);
    assert.equal(job?.attempts, 2);
    await (servers.at(-1) as ServerProcess).stop();
  });

  test('every value decrypts to what was set, under the new key version only', async () => {
    const database = await openDatabase({ dataDir });
    const kms = await openKms({ kms: 'local', dataDir, createIfMissing: false });
    try {
      const versions = await database.db.selectFrom('accord.stage_secrets').select('key_version').where('stage_id', '=', ids.stageId).execute();
      assert.equal(versions.length, COUNT);
      assert.ok(versions.every((v) => v.key_version === 2));
      const deks = await database.db.selectFrom('accord.stage_deks').select('version').where('stage_id', '=', ids.stageId).execute();
      assert.deepEqual(deks.map((d) => d.version), [2]);
      const keyring = new Keyring(kms);
      for (const [name, value] of values) assert.equal(await readSecret(database.db, keyring, ids.tenantId, ids.stageId, name), value, name);
    } finally {
      await database.close();
      await kms.close();
    }
  });
});
